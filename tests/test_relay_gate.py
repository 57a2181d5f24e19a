"""The relay's decisions without a network: logins, senders, recipients, headers, and the outbox row
an accepted message becomes (a real SQLite or PostgreSQL WIC database behind the gate)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.plugins.postgres import BACKENDS
from tests.plugins.wic import WicInstallation
from wicbox_bridge.adapters.base import RelayedMessage, RelayReply
from wicbox_bridge.auth.relay_accounts import (
    RelayAccount,
    RelayAccountFile,
    checked_senders,
    checked_sources,
    hash_password,
    password_matches,
)
from wicbox_bridge.errors import ConfigurationError, ParameterError
from wicbox_bridge.secret import Secret
from wicbox_bridge.send.relay import FailedLoginLimit, FailedLogins, OutboxRelayGate
from wicbox_bridge.store.base import atomic
from wicbox_bridge.store.outbox import OutboxStatus, get_row

PASSWORD = Secret("Een-lang-wachtwoord-42")
SENDER = "dossiers@klant.example"
FAST_HASH_N = 2**10  # the stored form names its own cost: tests need not pay for the real one


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def accounts(tmp_path: Path) -> RelayAccountFile:
    account_file = RelayAccountFile(tmp_path / "relay_accounts.json")
    account_file.add(
        RelayAccount("wic", hash_password(PASSWORD, n=FAST_HASH_N), senders=(SENDER, "Info@Klant.example"))
    )
    account_file.add(
        RelayAccount(
            "scanner",
            hash_password(PASSWORD, n=FAST_HASH_N),
            senders=("scan@klant.example",),
            sources=checked_sources(["10.1.2.0/24"]),
        )
    )
    return account_file


@pytest.fixture
def gate(accounts: RelayAccountFile, wic: WicInstallation) -> OutboxRelayGate:
    return OutboxRelayGate(accounts, wic.store, clock=Clock(), max_recipients=3)


def message(
    data: bytes, *, mail_from: str = SENDER, recipients: tuple[str, ...] = ("a@elders.example",)
) -> RelayedMessage:
    return RelayedMessage("127.0.0.1", "wic", mail_from, recipients, data)


def accept_one(gate: OutboxRelayGate, relayed: RelayedMessage) -> RelayReply:
    replies = gate.accept([relayed])
    assert len(replies) == 1
    return replies[0]


def mail(headers: str, body: bytes = b"Inhoud\r\n") -> bytes:
    return headers.replace("\n", "\r\n").encode("utf-8") + b"\r\n" + body


# --------------------------------------------------------------------------- passwords and logins


def test_the_hash_is_salted_and_checks_the_password() -> None:
    first, second = hash_password(PASSWORD, n=FAST_HASH_N), hash_password(PASSWORD, n=FAST_HASH_N)
    assert first != second and first.startswith(f"scrypt${FAST_HASH_N}$8$1$")
    assert password_matches(PASSWORD, first) and password_matches(PASSWORD, second)
    assert not password_matches(Secret("Een-lang-wachtwoord-43"), first)
    assert not password_matches(PASSWORD, "scrypt$garbage") and not password_matches(PASSWORD, "")
    assert PASSWORD.reveal() not in repr(RelayAccount("x", first, senders=(SENDER,)))
    assert hash_password(PASSWORD).startswith("scrypt$32768$8$1$")  # the cost the product stores


@pytest.mark.parametrize(
    ("login", "password", "peer", "expected"),
    [
        ("wic", PASSWORD, "127.0.0.1", None),
        ("WIC", PASSWORD, "127.0.0.1", None),  # names are not case-sensitive
        ("wic", Secret("fout"), "127.0.0.1", 535),
        ("niemand", PASSWORD, "127.0.0.1", 535),
        ("scanner", PASSWORD, "10.1.2.9", None),
        ("scanner", PASSWORD, "10.1.3.9", 535),  # outside its --source network
        ("scanner", PASSWORD, "not-an-address", 535),
    ],
)
def test_logins(gate: OutboxRelayGate, login: str, password: Secret, peer: str, expected: int | None) -> None:
    reply = gate.authenticate(login, password, peer)
    assert (reply.code if reply else None) == expected


def test_five_failures_lock_an_address_for_ten_minutes_and_only_that_address() -> None:
    clock = Clock()
    failures = FailedLogins(FailedLoginLimit(failures=5, window_s=600, lockout_s=600), clock)
    for _ in range(4):
        failures.failed("10.0.0.1")
        clock.now += 100
    assert not failures.locked("10.0.0.1")
    failures.failed("10.0.0.1")
    assert failures.locked("10.0.0.1") and not failures.locked("10.0.0.2")
    clock.now += 599
    assert failures.locked("10.0.0.1")
    clock.now += 2
    assert not failures.locked("10.0.0.1")


def test_failures_spread_beyond_the_window_never_lock() -> None:
    clock = Clock()
    failures = FailedLogins(FailedLoginLimit(failures=3, window_s=60, lockout_s=600), clock)
    for _ in range(10):
        failures.failed("10.0.0.1")
        clock.now += 31
    assert not failures.locked("10.0.0.1")


def test_a_locked_address_is_refused_without_checking_the_password(gate: OutboxRelayGate) -> None:
    for _ in range(5):
        assert gate.authenticate("wic", Secret("fout"), "10.9.9.9") is not None
    refused = gate.authenticate("wic", PASSWORD, "10.9.9.9")
    assert refused is not None and refused.code == 454
    assert gate.authenticate("wic", PASSWORD, "127.0.0.1") is None


# --------------------------------------------------------------------------- envelope and headers


@pytest.mark.parametrize(
    ("address", "allowed"),
    [
        (SENDER, True),
        ("DOSSIERS@klant.example", True),
        ("info@klant.example", True),
        ("directie@klant.example", False),
        ("", False),  # a bounce (MAIL FROM:<>) is no sender of WIC's
    ],
)
def test_mail_from_must_be_one_of_the_accounts_addresses(
    gate: OutboxRelayGate, address: str, allowed: bool
) -> None:
    reply = gate.check_sender("wic", address)
    assert (reply is None) is allowed
    if reply is not None:
        assert reply.code == 550 and "may not send as" in reply.text


@pytest.mark.parametrize(
    ("address", "count", "expected"),
    [
        ("a@elders.example", 0, None),
        ("ünïcode@elders.example", 0, None),  # SMTPUTF8
        ('"a,b"@elders.example', 0, 553),
        ("a b@elders.example", 0, 553),
        ("a@b@elders.example", 0, 553),
        ("a@elders.example", 3, 452),  # max_recipients of this gate
    ],
)
def test_recipients(gate: OutboxRelayGate, address: str, count: int, expected: int | None) -> None:
    reply = gate.check_recipient("wic", address, count)
    assert (reply.code if reply else None) == expected


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        (f"From: WIC <{SENDER}>\nSubject: ok", 250),
        (f"From: {SENDER}\nSender: info@klant.example\nSubject: ok", 250),
        ("From: Directie <directie@klant.example>\nSubject: spoof", 550),
        (f"From: {SENDER}, directie@klant.example\nSubject: two authors", 550),
        (f"From: {SENDER}\nSender: directie@klant.example\nSubject: spoofed sender", 550),
        (f'From: "{SENDER}" <directie@klant.example>\nSubject: display-name trick', 550),
        ("Subject: no author", 550),
    ],
)
def test_from_and_sender_headers(gate: OutboxRelayGate, headers: str, expected: int) -> None:
    reply = accept_one(gate, message(mail(headers)))
    assert reply.code == expected, reply


def test_an_accepted_message_is_committed_as_an_outbox_row(
    gate: OutboxRelayGate, wic: WicInstallation
) -> None:
    stored: list[int] = []
    gate.on_stored = stored.append
    data = mail(
        f"From: {SENDER}\nSubject: =?utf-8?q?Caf=C3=A9_dossier?=\nTo: a@elders.example", b"\xe9t\xe9\r\n"
    )

    reply = accept_one(gate, message(data, recipients=("a@elders.example", "bcc@elders.example")))
    gate.close()

    assert reply.code == 250 and reply.text.endswith(str(stored[0]))
    with wic.store() as store:  # another connection: the row is committed
        row = get_row(store, stored[0])
    assert row is not None and row.status is OutboxStatus.PENDING
    assert row.raw_mime == data and row.subject == "Café dossier"
    assert row.from_addr == SENDER and row.to_addrs == "a@elders.example, bcc@elders.example"


@pytest.mark.parametrize("wic_backend", BACKENDS)
def test_a_database_that_is_gone_answers_451_and_the_next_message_reconnects(
    accounts: RelayAccountFile, wic: WicInstallation
) -> None:
    opened: list[int] = []

    def opener():  # type: ignore[no-untyped-def]
        opened.append(1)
        return wic.store()

    gate = OutboxRelayGate(accounts, opener)
    assert accept_one(gate, message(mail(f"From: {SENDER}"))).code == 250
    with wic.store() as store, atomic(store):
        store.execute("ALTER TABLE WICBOX_OUTBOX RENAME TO WICBOX_OUTBOX_AWAY")
    refused = accept_one(gate, message(mail(f"From: {SENDER}")))
    assert refused == RelayReply(451, "4.3.0 The relay cannot store the message now; try again later")
    with wic.store() as store, atomic(store):
        store.execute("ALTER TABLE WICBOX_OUTBOX_AWAY RENAME TO WICBOX_OUTBOX")
    assert accept_one(gate, message(mail(f"From: {SENDER}"))).code == 250
    gate.close()
    assert len(opened) == 2


# --------------------------------------------------------------------------- the account file


def test_the_account_file_is_read_again_when_it_changes(accounts: RelayAccountFile) -> None:
    other_view = RelayAccountFile(accounts.path)
    assert other_view.find("wic") is not None
    accounts.remove("wic")
    assert other_view.find("wic") is None


def test_a_damaged_account_file_names_the_file_and_the_fix(accounts: RelayAccountFile) -> None:
    accounts.path.write_text('{"format": 1, "accounts": {"wic": {}}}', encoding="utf-8")
    with pytest.raises(ConfigurationError) as caught:
        RelayAccountFile(accounts.path).accounts()
    assert str(accounts.path) in caught.value.message and "relay user add" in (caught.value.fix or "")


@pytest.mark.parametrize("addresses", [(), ("geen adres",), ("a@b",), ("x@klant.example\r\nBcc: y@z",)])
def test_sender_addresses_are_plain(addresses: tuple[str, ...]) -> None:
    with pytest.raises(ParameterError):
        checked_senders(addresses)


def test_a_batch_is_committed_together_and_each_message_gets_its_own_answer(
    gate: OutboxRelayGate, wic: WicInstallation
) -> None:
    stored: list[int] = []
    gate.on_stored = stored.append
    good, spoofed = (
        mail(f"From: {SENDER}\nSubject: goed"),
        mail("From: directie@klant.example\nSubject: vals"),
    )
    replies = gate.accept([message(good), message(spoofed), message(good)])
    assert [reply.code for reply in replies] == [250, 550, 250]
    with wic.store() as store:
        rows = store.query("SELECT OUTBOX_ID FROM WICBOX_OUTBOX ORDER BY OUTBOX_ID")
    ids = [int(row[0]) for row in rows]
    assert len(ids) == 2 and replies[0].text.endswith(str(ids[0])) and replies[2].text.endswith(str(ids[1]))
    assert stored == [ids[1]]  # the delivery is woken once per batch
    gate.close()
