"""IMAP IDLE watches (``wicbox serve``) against the test bed's Dovecot, through the fault proxy:
new mail wakes the watch, IDLE is issued again before the server's timeout (injected clock), and a
dropped connection is opened again with a backoff (injected sleep) and then asks for a catch-up."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.adapter_bed import RecordedWaits
from tools.testbed.dovecot import DovecotServer
from tools.testbed.imap_faults import ImapFaultProxy, running_fault_proxy
from tools.testbed.pki import LoopbackPki
from wicbox_bridge.adapters.imap import ImapAdapter, ImapSettings
from wicbox_bridge.adapters.imap_watch import IDLE_RENEW_S, reports_new_mail
from wicbox_bridge.config.params import Endpoint, TlsMode
from wicbox_bridge.errors import ConnectionFailure
from wicbox_bridge.secret import Secret

pytestmark = pytest.mark.testbed

MAILBOX = "wicbox@klant.example"
PASSWORD = "Zomer 2026!"
WAKE_TIMEOUT_S = 20.0


def mail(number: int) -> bytes:
    return (
        f"From: klant{number}@extern.example\r\nTo: {MAILBOX}\r\nSubject: Dossier {number}\r\n"
        f"Message-ID: <w{number}@extern.example>\r\n\r\nInhoud {number}\r\n"
    ).encode()


class Clock:
    """The watch's clock: moves only when the test moves it."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def proxy(dovecot_clean: DovecotServer, loopback_pki: LoopbackPki) -> Iterator[ImapFaultProxy]:
    dovecot_clean.add_mailbox(MAILBOX, PASSWORD)
    with running_fault_proxy(dovecot_clean.host, dovecot_clean.imaps_port, loopback_pki) as running:
        yield running


def adapter(proxy: ImapFaultProxy, pki: LoopbackPki, waits: RecordedWaits, clock: Clock) -> ImapAdapter:
    settings = ImapSettings(
        endpoint=Endpoint(proxy.host, proxy.port, TlsMode.IMPLICIT), ca_bundle=pki.ca_cert, timeout_s=10
    )
    return ImapAdapter(settings, password=Secret(PASSWORD), sleep=waits, clock=clock)


def woken(wait: object) -> bool:
    """Waits (each up to the watch's own timeout) until the watch reports; False if it never does."""
    assert callable(wait)
    return any(wait(WAKE_TIMEOUT_S / 4) for _ in range(4))


@pytest.mark.parametrize(
    ("responses", "new"),
    [
        ([(3, b"EXISTS")], True),
        ([(1, b"RECENT")], True),
        ([(b"OK", b"Still here")], False),
        ([(2, b"EXPUNGE"), (1, b"FETCH", (b"FLAGS", ()))], False),
        ([], False),
    ],
)
def test_reports_new_mail(responses: list[tuple[object, ...]], new: bool) -> None:
    assert reports_new_mail(responses) is new


def test_bye_ends_the_idle() -> None:
    with pytest.raises(Exception, match="Disconnected"):
        reports_new_mail([(b"BYE", b"Disconnected for inactivity.")])


def test_an_append_wakes_the_watch(
    proxy: ImapFaultProxy, dovecot_clean: DovecotServer, loopback_pki: LoopbackPki
) -> None:
    watch = adapter(proxy, loopback_pki, RecordedWaits(), Clock()).watch(MAILBOX, None)
    try:
        assert watch.how == "IDLE"
        assert watch.wait(0.05) is False  # nothing arrived
        dovecot_clean.append(MAILBOX, "INBOX", mail(1))
        assert woken(watch.wait)
    finally:
        watch.close()


def test_idle_is_issued_again_before_the_server_timeout(
    proxy: ImapFaultProxy, dovecot_clean: DovecotServer, loopback_pki: LoopbackPki
) -> None:
    clock = Clock()
    watch = adapter(proxy, loopback_pki, RecordedWaits(), clock).watch(MAILBOX, None)
    try:
        assert proxy.commands()["IDLE"] == 1
        clock.now += IDLE_RENEW_S - 1
        assert watch.wait(0) is False
        assert proxy.commands()["IDLE"] == 1
        clock.now += 1
        assert watch.wait(0) is False
        assert proxy.commands()["IDLE"] == 2
        dovecot_clean.append(MAILBOX, "INBOX", mail(2))
        assert woken(watch.wait)  # the renewed IDLE still reports
    finally:
        watch.close()


def test_a_dropped_connection_is_reopened_with_backoff_and_asks_for_a_catch_up(
    proxy: ImapFaultProxy, dovecot_clean: DovecotServer, loopback_pki: LoopbackPki
) -> None:
    waits = RecordedWaits()
    bridge = adapter(proxy, loopback_pki, waits, Clock())
    watch = bridge.watch(MAILBOX, None)
    try:
        proxy.refuse_connections()
        proxy.cut_connections()
        dovecot_clean.append(MAILBOX, "INBOX", mail(3))  # arrives while the watch is blind
        assert watch.wait(5) is False  # the drop is seen, reconnecting is refused: backed off
        assert watch.wait(5) is False
        assert waits == [1.0, 2.0]
        proxy.refuse_connections(False)
        assert watch.wait(5) is True  # back: the caller searches the folder
        assert waits == [1.0, 2.0]
        session = bridge.open(MAILBOX, None)
        try:
            assert len(session.list_pending(10)) == 1
        finally:
            session.close()
        dovecot_clean.append(MAILBOX, "INBOX", mail(4))
        assert woken(watch.wait)  # and watches again
    finally:
        watch.close()


def test_a_server_that_cannot_be_reached_fails_the_start(
    proxy: ImapFaultProxy, loopback_pki: LoopbackPki
) -> None:
    proxy.refuse_connections()
    with pytest.raises(ConnectionFailure):
        adapter(proxy, loopback_pki, RecordedWaits(), Clock()).watch(MAILBOX, None)
