"""The Exchange-fault IMAP proxy: its line and literal handling (tables) and each fault against Dovecot."""

from __future__ import annotations

import imaplib
import ssl
from collections.abc import Iterator

import pytest
from imapclient import IMAPClient

from tools.testbed.dovecot import DovecotServer
from tools.testbed.imap_faults import (
    FaultPlan,
    ImapFaultProxy,
    command_name,
    literal_size,
    running_fault_proxy,
    without_capabilities,
)
from tools.testbed.pki import LoopbackPki

MAILBOX = "wicbox@klant.example"
PASSWORD = "Zomer 2026!"


@pytest.fixture
def imap_faults(dovecot_clean: DovecotServer, loopback_pki: LoopbackPki) -> Iterator[ImapFaultProxy]:
    """A fault proxy (TLS on both sides) in front of a clean Dovecot; stopped after the test."""
    with running_fault_proxy(dovecot_clean.host, dovecot_clean.imaps_port, loopback_pki) as proxy:
        yield proxy


def _client(proxy: ImapFaultProxy, pki: LoopbackPki) -> IMAPClient:
    context = ssl.create_default_context(cafile=str(pki.ca_cert))
    return IMAPClient(proxy.host, port=proxy.port, ssl=True, ssl_context=context, timeout=10)


@pytest.fixture
def signed_in(
    imap_faults: ImapFaultProxy, dovecot_clean: DovecotServer, loopback_pki: LoopbackPki
) -> Iterator[IMAPClient]:
    dovecot_clean.add_mailbox(MAILBOX, PASSWORD)
    client = _client(imap_faults, loopback_pki)
    client.login(MAILBOX, PASSWORD)
    yield client
    client.shutdown()


# ---------------------------------------------------------------------------------- pure tables


@pytest.mark.parametrize(
    ("line", "size"),
    [
        (b"A1 APPEND INBOX {310}\r\n", 310),
        (b"A1 APPEND INBOX {310+}\r\n", 310),
        (b"* 1 FETCH (UID 4 BODY[] {12}\r\n", 12),
        (b"* 1 FETCH (UID 4 FLAGS ())\r\n", None),
        (b"A1 LOGIN user {5}x\r\n", None),
        (b"", None),
    ],
)
def test_literal_size(line: bytes, size: int | None) -> None:
    assert literal_size(line) == size


@pytest.mark.parametrize(
    ("line", "parsed"),
    [
        (b"A001 CAPABILITY\r\n", ("A001", "CAPABILITY")),
        (b"MKFH3 uid fetch 1:3 (BODY.PEEK[])\r\n", ("MKFH3", "UID FETCH")),
        (b"X2 UID EXPUNGE 4\r\n", ("X2", "UID EXPUNGE")),
        (b"X3 authenticate XOAUTH2\r\n", ("X3", "AUTHENTICATE")),
        (b"dXNlcj13aWNib3hAa2xhbnQuZXhhbXBsZQFhdXRoPUJlYXJlcg==\r\n", None),
        (b"DONE\r\n", None),
        (b")\r\n", None),
    ],
)
def test_command_name(line: bytes, parsed: tuple[str, str] | None) -> None:
    assert command_name(line) == parsed


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (b"* CAPABILITY IMAP4rev1 MOVE UIDPLUS IDLE\r\n", b"* CAPABILITY IMAP4rev1 IDLE\r\n"),
        (b"* OK [CAPABILITY IMAP4rev1 UIDPLUS MOVE] ready.\r\n", b"* OK [CAPABILITY IMAP4rev1] ready.\r\n"),
        (
            b"A1 OK [CAPABILITY IMAP4rev1 MOVE SORT] Logged in\r\n",
            b"A1 OK [CAPABILITY IMAP4rev1 SORT] Logged in\r\n",
        ),
        (b"* 3 FETCH (FLAGS (MOVE))\r\n", b"* 3 FETCH (FLAGS (MOVE))\r\n"),
    ],
)
def test_capability_filter(line: bytes, expected: bytes) -> None:
    assert without_capabilities(line, frozenset({"MOVE", "UIDPLUS"})) == expected


def test_fault_plan_bye_after_commands_and_throttle_counts() -> None:
    plan = FaultPlan(bye_after_commands=1, throttle_count=1)
    assert [plan.on_command("NOOP"), plan.on_command("NOOP"), plan.on_command("NOOP")] == [
        "throttle",
        "bye",
        None,
    ]
    assert plan.commands["NOOP"] == 3


# ---------------------------------------------------------------------------------- against Dovecot


def test_forwards_literals_both_ways(
    signed_in: IMAPClient, imap_faults: ImapFaultProxy, dovecot_clean: DovecotServer
) -> None:
    raw = b"Subject: literal\r\n\r\n" + b"x" * 70_000 + b"\r\n"
    signed_in.append("INBOX", raw)
    signed_in.select_folder("INBOX")
    (uid,) = signed_in.search("ALL")
    assert signed_in.fetch([uid], ["BODY.PEEK[]"])[uid][b"BODY[]"] == raw
    assert dovecot_clean.messages(MAILBOX)[0].raw == raw
    counts = imap_faults.commands()
    assert (counts["LOGIN"], counts["APPEND"], counts["UID FETCH"]) == (1, 1, 1)


def test_hides_capabilities(
    imap_faults: ImapFaultProxy, signed_in: IMAPClient, loopback_pki: LoopbackPki
) -> None:
    assert signed_in.has_capability("MOVE")
    imap_faults.hide_capabilities("MOVE", "UIDPLUS")
    client = _client(imap_faults, loopback_pki)
    try:
        client.login(MAILBOX, PASSWORD)
        assert not client.has_capability("MOVE")
        assert not client.has_capability("UIDPLUS")
        assert client.has_capability("IDLE")
    finally:
        client.logout()


def test_throttles_without_forwarding(imap_faults: ImapFaultProxy, signed_in: IMAPClient) -> None:
    imap_faults.throttle(2, backoff_ms=250)
    for _ in range(2):
        with pytest.raises(
            imaplib.IMAP4.error, match=r"Request is throttled\. Suggested Backoff Time: 250 ms"
        ):
            signed_in.noop()
    assert signed_in.noop()[0].startswith(b"NOOP completed")
    assert imap_faults.commands()["NOOP"] == 3


def test_bye_at_fetch_ends_the_session(imap_faults: ImapFaultProxy, signed_in: IMAPClient) -> None:
    signed_in.select_folder("INBOX")
    imap_faults.expire_token(at_fetch=1)
    signed_in.noop()
    with pytest.raises(imaplib.IMAP4.abort, match="Session invalidated - AccessTokenExpired"):
        signed_in.fetch("1:*", ["FLAGS"])


def test_bye_after_commands(imap_faults: ImapFaultProxy, signed_in: IMAPClient) -> None:
    imap_faults.expire_token(after_commands=2)
    signed_in.select_folder("INBOX")
    signed_in.select_folder("INBOX", readonly=True)
    with pytest.raises(imaplib.IMAP4.abort, match="AccessTokenExpired"):
        signed_in.select_folder("INBOX")
    counts = imap_faults.commands()
    assert (counts["SELECT"], counts["EXAMINE"]) == (2, 1)


def test_drop_mid_fetch(imap_faults: ImapFaultProxy, signed_in: IMAPClient) -> None:
    signed_in.append("INBOX", b"Subject: big\r\n\r\n" + b"y" * 50_000 + b"\r\n")
    signed_in.select_folder("INBOX")
    imap_faults.drop_during_fetch()
    with pytest.raises((imaplib.IMAP4.abort, OSError)):
        signed_in.fetch("1:*", ["BODY.PEEK[]"])


def test_stop_ends_every_thread(dovecot_clean: DovecotServer, loopback_pki: LoopbackPki) -> None:
    dovecot_clean.add_mailbox(MAILBOX, PASSWORD)
    with running_fault_proxy(dovecot_clean.host, dovecot_clean.imaps_port, loopback_pki) as proxy:
        client = _client(proxy, loopback_pki)
        client.login(MAILBOX, PASSWORD)  # left open: stopping the proxy must still end its threads
        assert proxy.threads_alive() >= 3
    assert proxy.threads_alive() == 0
    client.shutdown()


def test_plain_client_side(dovecot_clean: DovecotServer, loopback_pki: LoopbackPki) -> None:
    dovecot_clean.add_mailbox(MAILBOX, PASSWORD)
    with running_fault_proxy(
        dovecot_clean.host, dovecot_clean.imaps_port, loopback_pki, client_tls=False
    ) as proxy:
        client = IMAPClient(proxy.host, port=proxy.port, ssl=False, timeout=10)
        try:
            client.login(MAILBOX, PASSWORD)
            assert client.select_folder("INBOX")[b"EXISTS"] == 0
        finally:
            client.logout()
