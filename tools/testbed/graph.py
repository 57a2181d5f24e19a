"""Loopback emulator of the Microsoft Graph mail endpoints for the test bed.

It validates the identity-platform emulator's tokens (audience https://graph.microsoft.com, ``scp``
or ``roles`` with Mail.ReadWrite, Graph's mailbox rules for delegated and application tokens) and
serves mail folders and messages in Graph v1.0's JSON shapes: ``value`` arrays with
``@odata.context``, ``@odata.nextLink`` paging with ``$skiptoken``, ``$select``, ``$top``,
``$orderby``, ``$filter``; ``$value`` returns the stored MIME bytes exactly; ``move`` returns the
moved message with a new id (the same one with ``Prefer: IdType="ImmutableId"``); ``$batch``.
Tests seed and inspect it in-process::

    with GraphEmulator(pki, "127.0.0.1") as graph:
        graph.add_mailbox("wicbox@klant.example")
        graph.add_message("wicbox@klant.example", "Inbox", raw)
        ...
        graph.messages("wicbox@klant.example", "WICBOX/Processed")

and inject throttling (429 + Retry-After), 503s and dropped connections, also into upload sessions
alone. Exchange Online's limit of 4 concurrent requests per mailbox is enforced (429) and the peak
is kept for assertions. Large mails go as drafts with upload sessions (:mod:`tools.testbed.graph_drafts`,
:mod:`tools.testbed.graph_uploads`); each mailbox has Exchange's default MaxSendSize of 35 MB, which
a test may change (``set_max_send_size``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from types import TracebackType

from tools.testbed.graph_api import GraphApi, utc
from tools.testbed.graph_auth import GRAPH_AUDIENCES, AccessPolicies, AccessPolicy, PolicyAccess
from tools.testbed.graph_http import GraphServer
from tools.testbed.graph_items import UploadSession
from tools.testbed.graph_model import DELETED_ITEMS, GraphStoreError, Mailbox, MailStore, Submission
from tools.testbed.graph_traffic import (
    MAILBOX_CONCURRENCY,
    ConcurrencyGauge,
    GraphFault,
    GraphFaultPlan,
    GraphRequestLog,
    GraphRequestRecord,
)
from tools.testbed.pki import LoopbackPki
from tools.testbed.tokens import TEST_TENANT_ID, TokenRules

__all__ = ["GraphEmulator", "GraphMessage", "GraphRequestRecord"]


@dataclass(frozen=True)
class GraphMessage:
    """A stored message as tests see it: both of its ids, its bytes and state."""

    immutable_id: str
    rest_id: str
    raw: bytes
    received: dt.datetime
    is_read: bool


class GraphEmulator:
    """``https://{host_ip}:{port}``: the Graph v1.0 mail endpoints (port 0 picks a free port)."""

    def __init__(
        self, pki: LoopbackPki, host_ip: str, port: int = 0, *, tenant_id: str = TEST_TENANT_ID
    ) -> None:
        self.host = host_ip
        self.request_log = GraphRequestLog()
        self._store = MailStore()
        self._faults = GraphFaultPlan()
        self._upload_faults = GraphFaultPlan()
        self._batch_faults = GraphFaultPlan()
        self._gauge = ConcurrencyGauge()
        self._policies = AccessPolicies()
        rules = TokenRules(
            pki.signing_public_key.read_bytes(), pki.signing_kid, tenant_id, audiences=GRAPH_AUDIENCES
        )
        api = GraphApi(
            self._store,
            rules,
            lambda: self.base_url,
            self.request_log,
            self._faults,
            self._gauge,
            self._policies,
            self._upload_faults,
            self._batch_faults,
        )
        self._api = api
        self._server = GraphServer(api, pki, host_ip, port)

    @property
    def base_url(self) -> str:
        """What WICBOX_MAILCLIENT_GRAPHURL points at (no /v1.0)."""
        return f"https://{self.host}:{self._server.port}"

    # -- lifecycle -----------------------------------------------------------------------------
    def start(self) -> None:
        self._server.start()

    def stop(self) -> None:
        self._server.stop()

    def __enter__(self) -> GraphEmulator:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.stop()

    def reset(self) -> None:
        """No mailboxes, policies, faults, delay, log or concurrency peaks left from earlier tests."""
        self._store.clear()
        self._policies.clear()
        self._faults.clear()
        self._upload_faults.clear()
        self._batch_faults.clear()
        self._gauge.clear()
        self._gauge.limit = MAILBOX_CONCURRENCY
        self.request_log.clear()
        self._api.delta.forget_all()

    # -- mailboxes and messages ----------------------------------------------------------------
    def add_mailbox(self, upn: str, *, object_id: str | None = None) -> None:
        self._store.add_mailbox(upn, object_id)

    def _mailbox(self, upn: str) -> Mailbox:
        mailbox = self._store.mailbox(upn)
        if mailbox is None:
            raise KeyError(f"no mailbox {upn} in the Graph emulator")
        return mailbox

    def add_folder(self, upn: str, path: str) -> str:
        """Create ``path`` ('/' between levels, from the mailbox root) and its parents; its id."""
        with self._store.locked():
            return self._mailbox(upn).ensure_path(path).folder_id

    def add_message(
        self, upn: str, folder: str, raw: bytes, *, received: dt.datetime | None = None, is_read: bool = False
    ) -> str:
        """Deliver ``raw`` into ``folder`` (a path like "Inbox" or "Inbox/Sub"); its immutable id."""
        with self._store.locked():
            mailbox = self._mailbox(upn)
            target = mailbox.folder_by_path(folder)
            return mailbox.add_message(target.folder_id, raw, utc(received), is_read).immutable_id

    def remove_message(self, upn: str, message_id: str) -> None:
        """Delete a message for good, as another client could (it is no longer addressable)."""
        with self._store.locked():
            self._mailbox(upn).purge(message_id)

    def messages(self, upn: str, folder: str) -> list[GraphMessage]:
        """The messages of ``folder`` (a path; "Deleted Items" too), oldest first; [] if it does not exist."""
        with self._store.locked():
            mailbox = self._mailbox(upn)
            try:
                target = mailbox.folder_by_path(folder)
            except GraphStoreError:
                return []
            stored = sorted(mailbox.in_folder(target.folder_id), key=lambda m: (m.received, m.created))
            return [GraphMessage(m.immutable_id, m.rest_id, m.raw, m.received, m.is_read) for m in stored]

    def folders(self, upn: str) -> list[str]:
        """Every folder path of the mailbox below the root."""
        with self._store.locked():
            mailbox = self._mailbox(upn)
            return sorted(mailbox.path_of(f) for f in mailbox.folders.values() if f.parent_id)

    def submitted(self, upn: str) -> list[Submission]:
        """What sendMail and a draft's send accepted for ``upn``, in order: the MIME and the recipients
        (sendMail: taken from the MIME's To, Cc and Bcc; a draft: its toRecipients, cc and bcc)."""
        with self._store.locked():
            return list(self._mailbox(upn).submitted)

    def set_max_send_size(self, upn: str, size: int) -> None:
        """Like ``Set-Mailbox -MaxSendSize``: the largest message (bytes) the mailbox may send."""
        with self._store.locked():
            self._mailbox(upn).max_send_size = size

    def upload_sessions(self, upn: str) -> list[UploadSession]:
        """The mailbox's open upload sessions (none once every file is uploaded or its draft deleted)."""
        with self._store.locked():
            return list(self._mailbox(upn).sessions.values())

    def deleted(self, upn: str) -> list[GraphMessage]:
        """Messages in Deleted Items."""
        with self._store.locked():
            name = self._mailbox(upn).folder(DELETED_ITEMS).display_name
        return self.messages(upn, name)

    # -- access --------------------------------------------------------------------------------
    def add_application_access_policy(
        self, app_id: str, mailboxes: Iterable[str], access: PolicyAccess = "RestrictAccess"
    ) -> None:
        """Like New-ApplicationAccessPolicy: ``app_id`` may open only (or never) ``mailboxes``."""
        self._policies.add(AccessPolicy(app_id, access, frozenset(m.casefold() for m in mailboxes)))

    # -- faults and measurements -----------------------------------------------------------------
    def expire_delta_tokens(self) -> None:
        """Every delta and skip token handed out so far is answered 410 Gone (SyncStateNotFound)."""
        self._api.delta.forget_all()

    def throttle(self, count: int = 1, *, retry_after: float = 1) -> None:
        """Answer the next ``count`` requests ``429 ApplicationThrottled`` with ``Retry-After``."""
        self._faults.add(GraphFault("throttle", 429, retry_after), count)

    def fail(self, count: int = 1, *, status: int = 503, retry_after: float | None = None) -> None:
        """Answer the next ``count`` requests with a server error (default 503)."""
        self._faults.add(GraphFault("unavailable", status, retry_after), count)

    def drop(self, count: int = 1) -> None:
        """Close the connection of the next ``count`` requests without a reply."""
        self._faults.add(GraphFault("drop", 0), count)

    def set_delay(self, seconds: float) -> None:
        """Wait this long inside every request (makes concurrency measurable)."""
        self._faults.set_delay(seconds)

    def throttle_uploads(self, count: int = 1, *, retry_after: float = 1) -> None:
        """Answer the next ``count`` requests to upload URLs ``429`` with ``Retry-After``."""
        self._upload_faults.add(GraphFault("throttle", 429, retry_after), count)

    def fail_uploads(self, count: int = 1, *, status: int = 503, retry_after: float | None = None) -> None:
        """Answer the next ``count`` requests to upload URLs with a server error (default 503)."""
        self._upload_faults.add(GraphFault("unavailable", status, retry_after), count)

    def drop_uploads(self, count: int = 1) -> None:
        """Close the connection of the next ``count`` requests to upload URLs without a reply."""
        self._upload_faults.add(GraphFault("drop", 0), count)

    def reject_tokens(self, count: int = 1) -> None:
        """Answer the next ``count`` requests ``401 InvalidAuthenticationToken`` (a token Exchange
        revoked or that expired in flight), whatever token they carry."""
        self._faults.add(GraphFault("unauthorized", 401), count)

    def fail_in_batches(self, count: int = 1, *, status: int = 500) -> None:
        """Answer the next ``count`` requests inside ``$batch`` requests with ``status`` (the batch
        itself still answers 200, as Graph does)."""
        self._batch_faults.add(GraphFault("unavailable", status), count)

    def clear_faults(self) -> None:
        self._faults.clear()
        self._upload_faults.clear()
        self._batch_faults.clear()

    def set_mailbox_concurrency(self, limit: int) -> None:
        """Exchange Online allows 4 concurrent requests per app and mailbox; a test may lower it."""
        self._gauge.limit = limit

    def peak_total_concurrency(self) -> int:
        """The most requests that were ever in flight at once, every mailbox together."""
        return self._gauge.peak_total()

    def throttle_in_batches(self, count: int = 1, *, retry_after: float = 1) -> None:
        """Answer the next ``count`` requests inside ``$batch`` requests ``429`` with their own
        ``Retry-After`` (the batch itself answers 200, the other requests in it normally)."""
        self._batch_faults.add(GraphFault("throttle", 429, retry_after), count)

    def peak_concurrency(self, upn: str) -> int:
        """The most requests that were ever in flight at once for the mailbox."""
        return self._gauge.peak(upn)

    def connections_so_far(self) -> int:
        """How many connections the emulator has taken (a mark for :meth:`wait_until_idle`)."""
        return self._server.connections_so_far()

    def wait_until_idle(self, timeout_s: float = 10.0, *, since: int = 0) -> bool:
        """Wait until the connections after the first ``since`` are closed, every request on them
        answered; False on timeout. After a client was killed: whether its last sendMail was taken
        is then final (``since``: :meth:`connections_so_far` before it started, so that a connection
        another test left open does not count)."""
        return self._server.wait_until_idle(timeout_s, since)
