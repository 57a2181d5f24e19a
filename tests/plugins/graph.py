"""Test-bed fixtures: the Microsoft Graph emulator on https://{testbed_ip}:{free port}.

- ``graph``: the running :class:`GraphEmulator` (session-wide).
- ``graph_clean``: ``graph`` without mailboxes, policies, faults, delay or log from earlier tests.
- ``graphroom``: a WIC installation (the ``wic`` fixture: delegated SINGLE mode) reading its global
  mailbox through the emulator: SCOPE Mail.ReadWrite (AUTO picks GRAPH) and GRAPHURL set.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import pytest

from tests.plugins.wic import FiledRow, WicInstallation
from tools.testbed.graph import GraphEmulator, GraphMessage
from tools.testbed.pki import LoopbackPki

INBOX = "Inbox"
PROCESSED = "WICBOX/Processed"
FAILED = "WICBOX/Failed"
FIRST_RECEIVED = dt.datetime(2026, 11, 2, 9, 0, tzinfo=dt.timezone.utc)


@pytest.fixture(scope="session", name="graph")
def graph_fixture(loopback_pki: LoopbackPki, testbed_ip: str) -> Iterator[GraphEmulator]:
    with GraphEmulator(loopback_pki, testbed_ip) as emulator:
        yield emulator


@pytest.fixture(name="graph_clean")
def graph_clean_fixture(graph: GraphEmulator) -> Iterator[GraphEmulator]:
    graph.reset()
    yield graph
    graph.clear_faults()


@dataclass
class GraphRoom:
    """A WIC installation whose global mailbox lives in the Graph emulator."""

    wic: WicInstallation
    graph: GraphEmulator
    mailbox: str
    delivered: int = 0

    def deliver(self, raws: Sequence[bytes], folder: str = INBOX, mailbox: str | None = None) -> list[str]:
        """Store mails oldest first (one second apart); their immutable ids."""
        ids = []
        for raw in raws:
            received = FIRST_RECEIVED + dt.timedelta(seconds=self.delivered)
            self.delivered += 1
            ids.append(self.graph.add_message(mailbox or self.mailbox, folder, raw, received=received))
        return ids

    def messages(self, folder: str = INBOX, mailbox: str | None = None) -> list[GraphMessage]:
        return self.graph.messages(mailbox or self.mailbox, folder)

    def raws(self, folder: str = INBOX) -> list[bytes]:
        return [message.raw for message in self.messages(folder)]

    def filed(self) -> list[FiledRow]:
        with self.wic.store() as store:
            rows = store.query(
                "SELECT MAIL_ID, PROJECT_ID, MAILBOX, SHA256, STATUS, RAW_MIME, SUBJECT, ERROR "
                "FROM WICBOX_MAIL ORDER BY MAIL_ID"
            )
        return [FiledRow(*row) for row in rows]

    def use_application_permissions(self) -> None:
        """Client secret instead of the password: the app token opens /users/{mailbox}."""
        directory = self.wic.directory
        self.wic.set_params(
            {
                "WICBOX_MAILCLIENT_CLIENTID": directory.confidential_client_id,
                "WICBOX_MAILCLIENT_CLIENTSECRET": directory.confidential_client_secret,
                "WICBOX_MAILCLIENT_PASSWORD": None,
            }
        )


@pytest.fixture(name="graphroom")
def graphroom_fixture(wic: WicInstallation, graph_clean: GraphEmulator) -> GraphRoom:
    """SINGLE mode, delegated OAuth2 with Mail.ReadWrite, the global mailbox in the Graph emulator."""
    mailbox = wic.directory.mailbox.upn
    graph_clean.add_mailbox(mailbox)
    wic.set_params(
        {"WICBOX_MAILCLIENT_SCOPE": "Mail.ReadWrite", "WICBOX_MAILCLIENT_GRAPHURL": graph_clean.base_url}
    )
    return GraphRoom(wic, graph_clean, mailbox)
