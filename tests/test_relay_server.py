"""The relay's SMTP server in this process, with its real gate and a real WIC database: the
protocol edges that a process test cannot set up cheaply (bare LF, over-long lines, idle clients,
too many connections)."""

from __future__ import annotations

import smtplib
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers.waiting import wait_until
from tests.plugins.wic import WicInstallation
from tools.testbed.ports import free_port
from wicbox_bridge.adapters.smtp_relay import RelayServerSettings, SmtpRelayServer
from wicbox_bridge.auth.relay_accounts import RelayAccount, RelayAccountFile, hash_password
from wicbox_bridge.secret import Secret
from wicbox_bridge.send.relay import OutboxRelayGate

HOST = "127.0.0.1"
USER, PASSWORD = "wic", "Relay-wachtwoord-2026"
SENDER = "wic@klant.example"


@pytest.fixture
def accounts(tmp_path: Path) -> RelayAccountFile:
    account_file = RelayAccountFile(tmp_path / "relay_accounts.json")
    account_file.add(RelayAccount(USER, hash_password(Secret(PASSWORD), n=2**10), senders=(SENDER,)))
    return account_file


def serve(wic: WicInstallation, accounts: RelayAccountFile, **settings: object) -> SmtpRelayServer:
    server = SmtpRelayServer(
        RelayServerSettings(host=HOST, port=free_port(HOST), **settings),  # type: ignore[arg-type]
        OutboxRelayGate(accounts, wic.store),
    )
    server.start()
    return server


@pytest.fixture
def server(wic: WicInstallation, accounts: RelayAccountFile) -> Iterator[SmtpRelayServer]:
    running = serve(wic, accounts)
    yield running
    running.stop()


def stored(wic: WicInstallation) -> list[bytes]:
    with wic.store() as store:
        return [bytes(row[0]) for row in store.query("SELECT RAW_MIME FROM WICBOX_OUTBOX ORDER BY OUTBOX_ID")]


def raw_session(server: SmtpRelayServer) -> tuple[socket.socket, smtplib.SMTP]:
    """A logged-in session whose DATA the test writes byte for byte."""
    client = smtplib.SMTP(HOST, server.settings.port, timeout=30)
    client.login(USER, PASSWORD)
    assert client.mail(SENDER)[0] == 250
    assert client.rcpt("klant@elders.example")[0] == 250
    assert client.docmd("DATA")[0] == 354
    assert client.sock is not None
    return client.sock, client


def test_a_bare_lf_dot_does_not_end_the_message(server: SmtpRelayServer, wic: WicInstallation) -> None:
    """SMTP smuggling: only CRLF.CRLF ends DATA, so '\\n.\\n' cannot start a second, forged message."""
    sock, client = raw_session(server)
    data = (
        f"From: {SENDER}\r\nSubject: eerste\r\n\r\nregel\n.\nMAIL FROM:<directie@klant.example>\n"
        "RCPT TO:<slachtoffer@elders.example>\nDATA\nFrom: directie@klant.example\n\nvervalst\n.\n"
    ).encode()
    sock.sendall(data + b"\r\n.\r\n")
    code, _ = client.getreply()
    client.quit()
    assert code == 250
    assert stored(wic) == [data + b"\r\n"]  # one message, the smuggled part inside it


def test_an_over_long_line_is_refused_after_data_and_nothing_is_stored(
    server: SmtpRelayServer, wic: WicInstallation
) -> None:
    sock, client = raw_session(server)
    sock.sendall(f"From: {SENDER}\r\n\r\n".encode() + b"x" * 20_000 + b"\r\n.\r\n")
    code, text = client.getreply()
    assert (code, text) == (500, b"Line too long (see RFC5321 4.5.3.1.6)")
    assert client.noop()[0] == 250  # the session goes on
    long_line = f"From: {SENDER}\r\n\r\n".encode() + b"y" * 5_000 + b"\r\n"
    assert client.sendmail(SENDER, ["klant@elders.example"], long_line) == {}  # 5,000 characters: fine
    client.quit()
    assert stored(wic) == [long_line]


def test_an_idle_client_is_disconnected(wic: WicInstallation, accounts: RelayAccountFile) -> None:
    running = serve(wic, accounts, idle_timeout_s=0.5)
    try:
        with socket.create_connection((HOST, running.settings.port), timeout=30) as connection:
            reader = connection.makefile("rb")
            assert reader.readline().startswith(b"220")
            connection.sendall(b"EHLO traag\r\n")
            while reader.readline().startswith(b"250-"):
                pass
            rest = reader.read()  # blocks until the relay closes the connection
    finally:
        running.stop()
    assert b"421" in rest or rest == b""


def greeting_after_close(server: SmtpRelayServer) -> bytes:
    """The first greeting that is not 421: the relay counts a connection closed a moment later."""
    codes: list[bytes] = []

    def greeted() -> bool:
        with socket.create_connection((HOST, server.settings.port), timeout=30) as connection:
            codes.append(connection.makefile("rb").readline()[:3])
        return codes[-1] != b"421"

    wait_until(greeted, "a connection is taken again")
    return codes[-1]


def test_connections_beyond_the_limit_get_421(wic: WicInstallation, accounts: RelayAccountFile) -> None:
    running = serve(wic, accounts, max_connections=2)
    try:
        first = smtplib.SMTP(HOST, running.settings.port, timeout=30)
        second = smtplib.SMTP(HOST, running.settings.port, timeout=30)
        with socket.create_connection((HOST, running.settings.port), timeout=30) as third:
            greeting = third.makefile("rb").readline()
        assert greeting == b"421 4.7.0 Too many connections; try again later\r\n"
        first.quit()
        second.quit()
        assert greeting_after_close(running) == b"220"  # room again once the relay saw them go
    finally:
        running.stop()
