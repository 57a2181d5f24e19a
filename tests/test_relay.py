"""`wicbox relay` end to end: a real relay process, smtplib clients, the SMTP test server (XOAUTH2)
and the Graph emulator behind it.

The relay is started as `python -m wicbox_bridge relay` and stopped with SIGTERM (or killed); what
the clients send must reach the cloud side byte for byte, from the right mailbox, exactly once,
and everything the relay refuses must leave nothing behind in the outbox.
"""

from __future__ import annotations

import base64
import json
import signal
import smtplib
import socket
import ssl
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest

from tests.helpers.processes import WicboxProcess, start_wicbox
from tests.helpers.waiting import wait_until
from tests.plugins.wic import Mailroom, WicInstallation
from tests.test_send_graph import GraphSendroom, graph_sendroom  # noqa: F401 - the fixture
from tests.test_send_test import RECIPIENT, SENDER, Sendroom, make_sendroom
from tools.testbed.pki import LoopbackPki
from tools.testbed.ports import free_port
from tools.testbed.smtp import AUTH_DISABLED_FOR_TENANT, SmtpServer
from wicbox_bridge.auth.relay_accounts import ACCOUNTS_FILE_NAME
from wicbox_bridge.config.paths import machine_state_dir_for
from wicbox_bridge.store.outbox import OutboxRow, OutboxStatus, rows_with_status

pytestmark = pytest.mark.testbed

RELAY_USER = "wic-oud"
RELAY_PASSWORD = "Relay-Wachtwoord-4711!"
HIDDEN = "verborgen@elders.example"  # an envelope recipient in no header (a Bcc)
START_TIMEOUT_S = 30.0


@dataclass
class Relay:
    wic: WicInstallation
    host: str
    port: int
    process: WicboxProcess

    def client(self) -> smtplib.SMTP:
        return smtplib.SMTP(self.host, self.port, timeout=30)

    def logged_in(self) -> smtplib.SMTP:
        client = self.client()
        client.login(RELAY_USER, RELAY_PASSWORD)
        return client

    def stop(self) -> int:
        if self.process.process.poll() is None:
            self.process.process.send_signal(signal.SIGTERM)
        return self.process.wait()

    def rows(self, status: OutboxStatus) -> list[OutboxRow]:
        with self.wic.store() as store:
            return rows_with_status(store, status)

    def all_rows(self) -> list[OutboxRow]:
        return [row for status in OutboxStatus for row in self.rows(status)]


def add_relay_user(wic: WicInstallation, *senders: str, name: str = RELAY_USER) -> None:
    args = [arg for sender in senders for arg in ("--from", sender)]
    result = wic.cli("relay", "user", "add", name, *args, "--password-stdin", input=f"{RELAY_PASSWORD}\n")
    assert result.exit_code == 0, result.output


def start_relay(wic: WicInstallation, host: str, *options: str, verbosity: str = "-vv") -> Relay:
    port = free_port(host)
    process = start_wicbox(wic, verbosity, "relay", "--listen", f"{host}:{port}", *options, name="relay")
    wait_until(
        lambda: "listening on" in process.output() or process.process.poll() is not None,
        "the relay starts",
        START_TIMEOUT_S,
    )
    assert process.process.poll() is None, process.output()
    return Relay(wic, host, port, process)


@pytest.fixture
def relay_for(sendroom: Sendroom) -> Iterator[Callable[..., Relay]]:
    started: list[Relay] = []

    def start(*options: str, verbosity: str = "-vv") -> Relay:
        relay = start_relay(sendroom.room.wic, sendroom.smtp.host, *options, verbosity=verbosity)
        started.append(relay)
        return relay

    yield start
    for relay in started:
        code = relay.stop()
        assert code in (0, -signal.SIGKILL), relay.process.output()


@pytest.fixture
def sendroom(mailroom: Mailroom, smtp_clean: SmtpServer) -> Sendroom:
    room = make_sendroom(mailroom, smtp_clean)
    add_relay_user(room.room.wic, SENDER)
    return room


@pytest.fixture
def relay(relay_for: Callable[..., Relay]) -> Relay:
    return relay_for()


def old_wic_mail(subject: str = "Dossier 2026/0042", sender: str = SENDER) -> bytes:
    """A mail as an old WIC (System.Net.Mail) writes it: quoted-printable text and an 8-bit part."""
    return (
        f"From: WIC <{sender}>\r\n"
        f"To: {RECIPIENT}\r\n"
        f"Subject: {subject}\r\n"
        "Message-ID: <wic-4.9.8-0042@wic.klant.example>\r\n"
        "MIME-Version: 1.0\r\n"
        'Content-Type: multipart/mixed; boundary="--boundary_0"\r\n'
        "\r\n"
        "----boundary_0\r\n"
        'Content-Type: text/plain; charset="utf-8"\r\n'
        "Content-Transfer-Encoding: quoted-printable\r\n"
        "\r\n"
        "Geachte heer, uw dossier is geopend. Met vriendelijke groet, =C3=A9=C3=A8n=\r\n"
        " lange regel die =3D verder gaat.\r\n"
        ".Een regel die met een punt begint.\r\n"
        "----boundary_0\r\n"
        'Content-Type: text/plain; charset="iso-8859-1"\r\n'
        "Content-Transfer-Encoding: 8bit\r\n"
        "\r\n"
    ).encode("ascii") + "Caf\xe9 \xe0 Li\xe8ge\r\n----boundary_0--\r\n".encode("latin-1")


# --------------------------------------------------------------------------- delivery through the relay


def test_a_relayed_mail_reaches_smtp_byte_identical_from_the_mailbox_with_xoauth2(
    sendroom: Sendroom, relay: Relay
) -> None:
    raw = old_wic_mail()
    with relay.logged_in() as client:
        refused = client.sendmail(SENDER, [RECIPIENT, HIDDEN], raw)
    assert refused == {}

    wait_until(lambda: len(sendroom.smtp.accepted()) == 1, "the mail reaches the SMTP server")
    submitted = sendroom.smtp.accepted()[0]
    assert submitted.raw == raw
    assert (submitted.login_user, submitted.mechanism) == (SENDER, "XOAUTH2")
    assert submitted.mail_from == SENDER
    assert submitted.rcpt_tos == (RECIPIENT, HIDDEN)
    wait_until(lambda: len(relay.rows(OutboxStatus.SENT)) == 1, "the row is marked SENT")
    row = relay.rows(OutboxStatus.SENT)[0]
    assert row.raw_mime == raw and row.subject == "Dossier 2026/0042"
    with relay.wic.store() as store:
        source = store.query_one("SELECT SOURCE FROM WICBOX_OUTBOX WHERE OUTBOX_ID = ?", (row.outbox_id,))
    assert source is not None and source[0] == f"relay:{RELAY_USER}"
    delivered = [message.raw for message in sendroom.room.dovecot.messages(user=RECIPIENT)]
    assert len(delivered) == 1 and delivered[0].endswith(b"\r\n" + raw)  # after Dovecot's trace headers


def test_forced_to_graph_every_envelope_recipient_gets_the_bytes(
    graph_sendroom: GraphSendroom,  # noqa: F811 - the fixture
) -> None:
    wic = graph_sendroom.room.room.wic
    wic.set_params({"WICBOX_MAILCLIENT_SENDPROTOCOL": "GRAPH"})
    add_relay_user(wic, SENDER)
    relay = start_relay(wic, graph_sendroom.room.smtp.host)
    try:
        raw = old_wic_mail("Via Graph")
        with relay.logged_in() as client:
            client.sendmail(SENDER, [RECIPIENT, HIDDEN], raw)
        wait_until(lambda: len(graph_sendroom.graph.submitted(SENDER)) == 1, "Graph takes the mail")
    finally:
        assert relay.stop() == 0, relay.process.output()
    sent = graph_sendroom.graph.submitted(SENDER)[0]
    assert set(sent.recipients) == {RECIPIENT, HIDDEN}
    assert sent.raw == f"Bcc: {HIDDEN}\r\n".encode() + raw  # the only change: the Bcc Graph needs
    assert graph_sendroom.room.smtp.accepted() == []


def test_auto_falls_back_to_graph_when_smtp_auth_is_disabled(
    graph_sendroom: GraphSendroom,  # noqa: F811 - the fixture
) -> None:
    wic = graph_sendroom.room.room.wic
    add_relay_user(wic, SENDER)
    graph_sendroom.room.smtp.script_reply("AUTH", AUTH_DISABLED_FOR_TENANT)
    relay = start_relay(wic, graph_sendroom.room.smtp.host)
    try:
        with relay.logged_in() as client:
            client.sendmail(SENDER, [RECIPIENT], old_wic_mail("Terugval"))
        wait_until(lambda: len(graph_sendroom.graph.submitted(SENDER)) == 1, "AUTO sends through Graph")
    finally:
        assert relay.stop() == 0, relay.process.output()
    assert graph_sendroom.room.smtp.accepted() == []
    assert "5.7.139" in relay.process.output()


# --------------------------------------------------------------------------- refusals


def test_a_spoofed_envelope_sender_is_refused_with_550(sendroom: Sendroom, relay: Relay) -> None:
    with relay.logged_in() as client, pytest.raises(smtplib.SMTPSenderRefused) as refused:
        client.sendmail("directie@klant.example", [RECIPIENT], old_wic_mail(sender="directie@klant.example"))
    assert refused.value.smtp_code == 550
    assert b"may not send as directie@klant.example" in refused.value.smtp_error
    assert relay.all_rows() == []
    assert "may not send as directie@klant.example" in relay.process.output()


def test_a_spoofed_from_header_is_refused_with_550(sendroom: Sendroom, relay: Relay) -> None:
    with relay.logged_in() as client, pytest.raises(smtplib.SMTPDataError) as refused:
        client.sendmail(SENDER, [RECIPIENT], old_wic_mail(sender="directie@klant.example"))
    assert refused.value.smtp_code == 550
    assert relay.all_rows() == []


def test_a_message_over_the_size_limit_is_refused_with_552(
    sendroom: Sendroom, relay_for: Callable[..., Relay]
) -> None:
    relay = relay_for("--max-size", "1")
    big = old_wic_mail() + b"X" * 70 + b"\r\n"
    big += (b"Y" * 998 + b"\r\n") * 1100
    with relay.logged_in() as client:
        assert client.has_extn("size") and client.esmtp_features["size"] == str(1024 * 1024)
        with pytest.raises(smtplib.SMTPSenderRefused) as announced:  # smtplib announces SIZE=
            client.sendmail(SENDER, [RECIPIENT], big)
        assert announced.value.smtp_code == 552
        assert client.mail(SENDER)[0] == 250  # a client that does not announce it: 552 after DATA
        assert client.rcpt(RECIPIENT)[0] == 250
        assert client.data(big)[0] == 552
        # the connection goes on: the next, smaller message is taken
        assert client.sendmail(SENDER, [RECIPIENT], old_wic_mail()) == {}
    assert len(relay.all_rows()) == 1


def test_a_wrong_password_is_refused_and_repeated_failures_lock_the_address(
    sendroom: Sendroom, relay: Relay
) -> None:
    def plain(password: str) -> int:
        with relay.client() as client:
            client.ehlo()
            client.user, client.password = RELAY_USER, password
            try:
                return client.auth("PLAIN", client.auth_plain)[0]
            except smtplib.SMTPAuthenticationError as refused:
                return refused.smtp_code

    assert [plain("fout-wachtwoord-123") for _ in range(5)] == [535] * 5
    assert plain(RELAY_PASSWORD) == 454  # locked: the right password does not help now
    output = relay.process.output()
    assert "too many failed logins" in output
    assert "fout-wachtwoord" not in output and RELAY_PASSWORD not in output


def test_mail_needs_auth_and_login_works_too(sendroom: Sendroom, relay: Relay) -> None:
    with relay.client() as client:
        client.ehlo()
        assert client.mail(SENDER)[0] == 530
        client.rset()
        client.user, client.password = RELAY_USER, RELAY_PASSWORD
        code, _ = client.auth("LOGIN", client.auth_login, initial_response_ok=False)
        assert code == 235
        assert client.sendmail(SENDER, [RECIPIENT], old_wic_mail()) == {}


def test_at_most_500_recipients(sendroom: Sendroom, relay: Relay) -> None:
    with relay.logged_in() as client:
        client.ehlo()
        assert client.mail(SENDER)[0] == 250
        for number in range(500):
            assert client.rcpt(f"ontvanger{number}@elders.example")[0] == 250
        code, text = client.rcpt("een-te-veel@elders.example")
        assert code == 452 and b"at most 500" in text
        code, _ = client.data(old_wic_mail())
        assert code == 250
    rows = relay.all_rows()
    assert len(rows) == 1 and rows[0].to_addrs.count("@") == 500


def test_a_recipient_that_is_no_plain_address_is_refused(sendroom: Sendroom, relay: Relay) -> None:
    with relay.logged_in() as client:
        client.ehlo()
        client.mail(SENDER)
        for address in ('"a,b"@elders.example', "a b@elders.example", "a@b@elders.example"):
            assert client.rcpt(address)[0] in (501, 553), address
        assert client.rcpt("ok@elders.example")[0] == 250


def test_smtputf8_and_8bitmime_are_offered_and_taken(sendroom: Sendroom, relay: Relay) -> None:
    with relay.logged_in() as client:
        client.ehlo()
        assert client.has_extn("smtputf8") and client.has_extn("8bitmime")
        raw = old_wic_mail().replace(b"Subject: Dossier", "Subject: Café-dossier".encode())
        client.sendmail(SENDER, [RECIPIENT], raw, mail_options=["SMTPUTF8", "BODY=8BITMIME"])
    wait_until(lambda: len(sendroom.smtp.accepted()) == 1, "the UTF-8 mail is delivered")
    assert sendroom.smtp.accepted()[0].raw == raw


def test_pipelined_commands_are_answered_in_order(sendroom: Sendroom, relay: Relay) -> None:
    raw = old_wic_mail("Pipelined")
    with socket.create_connection((relay.host, relay.port), timeout=30) as connection:
        reader = connection.makefile("rb")
        assert reader.readline().startswith(b"220")
        plain = base64.b64encode(f"\0{RELAY_USER}\0{RELAY_PASSWORD}".encode()).decode()
        connection.sendall(
            f"EHLO wic\r\nAUTH PLAIN {plain}\r\nMAIL FROM:<{SENDER}>\r\n"
            f"RCPT TO:<{RECIPIENT}>\r\nDATA\r\n".encode()
        )
        codes = []
        while len(codes) < 5:
            line = reader.readline()
            if line[3:4] == b" ":
                codes.append(int(line[:3]))
        assert codes == [250, 235, 250, 250, 354]
        connection.sendall(raw + b".\r\nQUIT\r\n")
        assert reader.readline().startswith(b"250 2.0.0 Queued in the outbox")
    wait_until(lambda: len(sendroom.smtp.accepted()) == 1, "the pipelined mail is delivered")


def test_a_relay_killed_during_data_stores_nothing_and_the_client_sees_an_error(
    sendroom: Sendroom, relay: Relay
) -> None:
    with relay.logged_in() as client:
        client.ehlo()
        client.mail(SENDER)
        client.rcpt(RECIPIENT)
        code, _ = client.docmd("DATA")
        assert code == 354
        client.send(old_wic_mail()[:400])
        relay.process.kill()
        with pytest.raises((smtplib.SMTPServerDisconnected, ConnectionError)):
            client.send(b"rest\r\n.\r\n")
            client.getreply()
    assert relay.all_rows() == []
    restarted = start_relay(relay.wic, relay.host)
    try:
        assert restarted.all_rows() == [] and sendroom.smtp.accepted() == []
    finally:
        assert restarted.stop() == 0


# --------------------------------------------------------------------------- accounts and options


def test_relay_accounts_are_kept_as_hashes_in_a_private_file(sendroom: Sendroom) -> None:
    wic = sendroom.room.wic
    state = machine_state_dir_for(wic.config, env={"WICBOX_HOME": str(wic.cli_runner.home)})
    path = state / ACCOUNTS_FILE_NAME
    text = path.read_text(encoding="utf-8")
    assert RELAY_PASSWORD not in text and "scrypt$" in text
    assert stat.S_IMODE(path.stat().st_mode) == 0o600

    listed = wic.cli("relay", "user", "list")
    assert listed.exit_code == 0 and f"{RELAY_USER}: may send as {SENDER}" in listed.output
    assert "scrypt" not in listed.output
    again = wic.cli("relay", "user", "add", RELAY_USER, "--from", SENDER, "--password-stdin", input="x" * 20)
    assert again.exit_code == 2 and "exists already" in again.output
    short = wic.cli("relay", "user", "add", "kort", "--from", SENDER, "--password-stdin", input="kort\n")
    assert short.exit_code == 2 and "at least 12 characters" in short.output
    removed = wic.cli("relay", "user", "remove", RELAY_USER)
    assert removed.exit_code == 0
    assert "no relay accounts" in wic.cli("relay", "user", "list").output


def test_an_account_file_others_can_write_is_refused(sendroom: Sendroom) -> None:
    wic = sendroom.room.wic
    state = machine_state_dir_for(wic.config, env={"WICBOX_HOME": str(wic.cli_runner.home)})
    (state / ACCOUNTS_FILE_NAME).chmod(0o666)
    result = wic.cli("relay", "user", "list")
    assert result.exit_code == 2
    assert "can be changed by other accounts" in result.output and "chmod 600" in result.output


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        (("--listen", "0.0.0.0:2525"), "reachable from the network"),
        (("--listen", "0.0.0.0:2525", "--allow-remote"), "--allow-remote needs TLS"),
        (("--listen", "127.0.0.1:2525", "--allow-remote"), "has no effect on the loopback"),
        (("--tls-cert", "relay.pem"), "go together"),
        (("--listen", "relay"), "not HOST:PORT"),
    ],
)
def test_conflicting_options_are_refused_with_what_to_change(
    sendroom: Sendroom, options: tuple[str, ...], expected: str
) -> None:
    result = sendroom.room.wic.cli("relay", *options)
    assert result.exit_code == 2, result.output
    assert expected in result.output and "fix:" in result.output


def test_with_a_certificate_starttls_is_required_before_auth(
    sendroom: Sendroom, relay_for: Callable[..., Relay], loopback_pki: LoopbackPki
) -> None:
    cert, key = loopback_pki.server_cert, loopback_pki.server_key
    relay = relay_for("--tls-cert", str(cert), "--tls-key", str(key))
    with relay.client() as client:
        client.ehlo()
        assert client.has_extn("starttls")
        code, text = client.docmd("AUTH", "PLAIN " + base64.b64encode(f"\0{RELAY_USER}\0x".encode()).decode())
        assert (code, text) == (530, b"Must issue a STARTTLS command first")
    with relay.client() as client:
        client.starttls(context=ssl.create_default_context(cafile=str(loopback_pki.ca_cert)))
        client.login(RELAY_USER, RELAY_PASSWORD)
        assert client.sendmail(SENDER, [RECIPIENT], old_wic_mail()) == {}


def test_no_password_reaches_the_log_at_the_highest_verbosity(sendroom: Sendroom, relay: Relay) -> None:
    with relay.logged_in() as client:
        client.sendmail(SENDER, [RECIPIENT], old_wic_mail())
    wait_until(lambda: len(sendroom.smtp.accepted()) == 1, "the mail is delivered")
    assert relay.stop() == 0
    wic = sendroom.room.wic
    state = machine_state_dir_for(wic.config, env={"WICBOX_HOME": str(wic.cli_runner.home)})
    log_text = "".join(path.read_text(encoding="utf-8") for path in (state / "logs").glob("wicbox.log*"))
    plain = base64.b64encode(f"\0{RELAY_USER}\0{RELAY_PASSWORD}".encode()).decode()
    for text in (relay.process.output(), log_text):
        assert RELAY_PASSWORD not in text and plain not in text
    assert "Relay: took outbox mail" in log_text


def test_status_counts_relayed_mails(sendroom: Sendroom, relay: Relay) -> None:
    with relay.logged_in() as client:
        client.sendmail(SENDER, [RECIPIENT], old_wic_mail())
    wait_until(lambda: len(relay.rows(OutboxStatus.SENT)) == 1, "the relayed mail is sent")
    result = sendroom.room.wic.cli("status")
    assert (
        "Relay: 1 message(s) taken in the last 24 hours: 1 sent, 0 failed; 0 waiting, 0 held as UNKNOWN"
        in result.output
    )


def test_a_mail_the_cloud_refuses_for_good_is_failed_and_status_shows_the_answer(
    sendroom: Sendroom, relay: Relay
) -> None:
    refusal = "554 5.6.211 Invalid MIME Content: Single text value size (32768) limit exceeded"
    sendroom.smtp.script_reply("DATA", refusal)
    with relay.logged_in() as client:
        assert client.sendmail(SENDER, [RECIPIENT], old_wic_mail("Geweigerd")) == {}  # the relay took it
    wait_until(lambda: len(relay.rows(OutboxStatus.FAILED)) == 1, "the refused mail is marked FAILED")
    failed = relay.rows(OutboxStatus.FAILED)[0]
    assert failed.last_error is not None and "5.6.211" in failed.last_error
    result = sendroom.room.wic.cli("status")
    assert "0 sent, 1 failed" in result.output
    assert f"Relay: outbox mail {failed.outbox_id} (relay:{RELAY_USER}" in result.output
    assert "5.6.211" in result.output
    document = json.loads(sendroom.room.wic.cli("status", "--json").output)
    assert (
        document["relay"]["failed"] == 1 and document["relay"]["failures"][0]["outbox_id"] == failed.outbox_id
    )
