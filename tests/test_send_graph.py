"""Sending through Microsoft Graph's sendMail: the GRAPH route, AUTO's fallback when SMTP AUTH is
disabled (5.7.139) and its memory, a missing Mail.Send permission, Bcc recipients that no header
names, and `send-test --via graph`; against the Graph emulator and the SMTP test server."""

from __future__ import annotations

import datetime as dt
import email
import email.policy
import json
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.plugins.wic import Mailroom
from tests.test_send_test import RECIPIENT, SENDER, Sendroom, assert_no_secrets, make_sendroom
from tools.testbed.graph import GraphEmulator
from tools.testbed.idp import IdentityPlatformEmulator, SeededDirectory
from tools.testbed.smtp import AUTH_DISABLED_FOR_TENANT, SmtpServer
from wicbox_bridge.adapters.graph import GraphSettings
from wicbox_bridge.adapters.graph_send import with_envelope_recipients
from wicbox_bridge.adapters.graph_sent import GraphSentLookup
from wicbox_bridge.adapters.identity import TokenService
from wicbox_bridge.auth.scopes import GRAPH_APPLICATION
from wicbox_bridge.config.params import parse_parameters
from wicbox_bridge.config.paths import machine_state_dir_for
from wicbox_bridge.errors import SendError
from wicbox_bridge.send.routes import RETRY_SMTP_AFTER, ROUTES_FILE_NAME, RouteMemory
from wicbox_bridge.store.outbox import OutboxStatus, enqueue, get_row
from wicbox_bridge.store.parameters import read_parameters

pytestmark = pytest.mark.testbed

ROLES_WITH_SEND = {
    "https://outlook.office365.com": ("IMAP.AccessAsApp", "SMTP.SendAsApp"),
    "https://graph.microsoft.com": ("Mail.ReadWrite", "Mail.Send"),
}


@dataclass
class GraphSendroom:
    room: Sendroom
    graph: GraphEmulator
    secret: str

    def cli(self, *args: str) -> object:
        return self.room.cli(*args)

    def enqueue(self, count: int = 1, **values: object) -> list[int]:
        defaults: dict[str, object] = {"from_addr": SENDER, "to": RECIPIENT, "body_text": "Inhoud"}
        with self.room.room.wic.store() as store:
            return [
                enqueue(store, **{"subject": f"Graph {n}", **defaults, **values})  # type: ignore[arg-type]
                for n in range(count)
            ]

    def statuses(self, ids: list[int]) -> list[OutboxStatus]:
        with self.room.room.wic.store() as store:
            rows = [get_row(store, outbox_id) for outbox_id in ids]
        return [row.status for row in rows if row is not None]

    def routes_file(self) -> Path:
        wic = self.room.room.wic
        state = machine_state_dir_for(wic.config, env={"WICBOX_HOME": str(wic.cli_runner.home)})
        return state / ROUTES_FILE_NAME


@pytest.fixture
def graph_sendroom(
    mailroom: Mailroom,
    smtp_clean: SmtpServer,
    graph_clean: GraphEmulator,
    idp_clean: IdentityPlatformEmulator,
    idp_directory: SeededDirectory,
) -> GraphSendroom:
    """Application permissions with Mail.Send on Graph (an app of this test), SMTP to the test server."""
    room = make_sendroom(mailroom, smtp_clean)
    client_id, secret = str(uuid.uuid4()), f"Sx~{uuid.uuid4().hex}"
    idp_clean.add_application(
        client_id,
        idp_directory.tenant_id,
        "WICBOX mail (sends through Graph)",
        secrets={secret: dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=30)},
        app_roles=ROLES_WITH_SEND,
    )
    graph_clean.add_mailbox(SENDER)
    mailroom.wic.set_params(
        {
            "WICBOX_MAILCLIENT_CLIENTID": client_id,
            "WICBOX_MAILCLIENT_CLIENTSECRET": secret,
            "WICBOX_MAILCLIENT_PASSWORD": None,
            "WICBOX_MAILCLIENT_SCOPE": "https://outlook.office365.com/.default",
            "WICBOX_MAILCLIENT_GRAPHURL": graph_clean.base_url,
        }
    )
    return GraphSendroom(room, graph_clean, secret)


def test_the_graph_route_sends_every_envelope_recipient(graph_sendroom: GraphSendroom) -> None:
    room = graph_sendroom
    room.room.room.wic.set_params({"WICBOX_MAILCLIENT_SENDPROTOCOL": "GRAPH"})
    ids = room.enqueue(2, cc="Team <team@elders.example>", bcc="geheim@elders.example")

    result = room.room.cli("send")

    assert result.exit_code == 0, result.output
    assert "sent 2, failed 0" in result.output
    assert room.statuses(ids) == [OutboxStatus.SENT, OutboxStatus.SENT]
    assert room.room.smtp.accepted() == []  # nothing went over SMTP
    submitted = room.graph.submitted(SENDER)
    assert len(submitted) == 2
    for sent in submitted:
        assert set(sent.recipients) == {RECIPIENT, "team@elders.example", "geheim@elders.example"}
        parsed = email.message_from_bytes(sent.raw, policy=email.policy.default)
        assert str(parsed["Subject"]).startswith("Graph ")
    assert len(room.graph.messages(SENDER, "Sent Items")) == 2
    assert_no_secrets(result.output, room.secret)


def test_auto_falls_back_to_graph_when_smtp_auth_is_disabled_and_remembers_it(
    graph_sendroom: GraphSendroom,
) -> None:
    room = graph_sendroom
    room.room.smtp.script_reply("AUTH", AUTH_DISABLED_FOR_TENANT)
    first = room.enqueue(1)

    result = room.room.cli("send")

    assert result.exit_code == 0, result.output
    assert room.statuses(first) == [OutboxStatus.SENT]
    assert len(room.graph.submitted(SENDER)) == 1 and room.room.smtp.accepted() == []
    remembered = json.loads(room.routes_file().read_text(encoding="utf-8"))
    assert remembered[SENDER]["reason"].startswith("SMTP answered 5.7.139")
    verdicts_before = len(room.room.smtp.auth_verdicts())
    second = room.enqueue(1)
    again = room.room.cli("send")
    assert again.exit_code == 0, again.output
    assert room.statuses(second) == [OutboxStatus.SENT]
    assert len(room.graph.submitted(SENDER)) == 2
    assert len(room.room.smtp.auth_verdicts()) == verdicts_before, "a remembered route skips SMTP"
    status = room.room.cli("status")
    assert f"Sending: {SENDER} sends through Microsoft Graph since" in status.output
    document = json.loads(room.room.cli("status", "--json").stdout)
    assert [route["mailbox"] for route in document["send_routes"]] == [SENDER]


def test_a_remembered_route_expires_after_a_day_and_smtp_is_tried_again(tmp_path: Path) -> None:
    now = dt.datetime(2027, 1, 4, 9, 0, tzinfo=dt.timezone.utc)
    clock = [now]
    memory = RouteMemory(tmp_path / ROUTES_FILE_NAME, lambda: clock[0])
    memory.remember("WICBOX@klant.example", "SMTP answered 5.7.139")
    assert memory.graph_since("wicbox@klant.example") is not None
    clock[0] = now + RETRY_SMTP_AFTER
    assert memory.graph_since("wicbox@klant.example") is None
    memory.forget("wicbox@klant.example")
    assert memory.all() == {}
    (tmp_path / ROUTES_FILE_NAME).write_text("{not json", encoding="utf-8")
    assert memory.all() == {}  # a damaged file means: no remembered route, never a crash


def test_without_mail_send_the_graph_route_names_the_permission(
    graph_sendroom: GraphSendroom, idp_directory: SeededDirectory
) -> None:
    room = graph_sendroom
    room.room.room.wic.set_params(
        {
            "WICBOX_MAILCLIENT_SENDPROTOCOL": "GRAPH",
            "WICBOX_MAILCLIENT_CLIENTID": idp_directory.confidential_client_id,  # Graph: Mail.ReadWrite only
            "WICBOX_MAILCLIENT_CLIENTSECRET": idp_directory.confidential_client_secret,
        }
    )
    ids = room.enqueue(1)
    result = room.room.cli("send")
    assert result.exit_code == 3, result.output
    assert "Mail.Send" in result.output and "application permission Mail.Send" in result.output
    assert room.statuses(ids) == [OutboxStatus.PENDING]  # due again once the permission is granted
    assert room.graph.submitted(SENDER) == []


def test_send_test_via_graph(graph_sendroom: GraphSendroom) -> None:
    result = graph_sendroom.room.cli("send-test", "--to", RECIPIENT, "--via", "graph")
    assert result.exit_code == 0, result.output
    assert "Microsoft Graph accepted the test mail" in result.output
    [sent] = graph_sendroom.graph.submitted(SENDER)
    assert sent.recipients == (RECIPIENT,)


RAW = b"From: wicbox@klant.example\r\nTo: a@klant.example\r\nSubject: s\r\n\r\nbody =C3=A9\r\n"


@pytest.mark.parametrize(
    ("recipients", "expected"),
    [
        (["a@klant.example"], RAW),
        (["A@KLANT.example"], RAW),
        (["a@klant.example", "b@elders.example"], b"Bcc: b@elders.example\r\n" + RAW),
    ],
)
def test_envelope_recipients_missing_from_the_headers_become_a_bcc(
    recipients: list[str], expected: bytes
) -> None:
    assert with_envelope_recipients(RAW, recipients) == expected


@pytest.mark.parametrize("hostile", ["x@a.be,victim@b.be", "x@a.be\r\nSubject: spoof", "é@a.be", "x y@a.be"])
def test_an_address_that_could_rewrite_the_headers_is_refused(hostile: str) -> None:
    with pytest.raises(SendError) as refused:
        with_envelope_recipients(RAW, ["a@klant.example", hostile])
    assert refused.value.permanent
    assert "SMTP" in (refused.value.fix or "")


def test_send_test_in_auto_says_which_route_worked_and_why_smtp_did_not(
    graph_sendroom: GraphSendroom,
) -> None:
    graph_sendroom.room.smtp.script_reply("AUTH", AUTH_DISABLED_FOR_TENANT)
    result = graph_sendroom.room.cli("send-test", "--to", RECIPIENT)  # SENDPROTOCOL AUTO (the default)
    assert result.exit_code == 0, result.output
    assert "SMTP did not take it (5.7.139" in result.output
    assert "Route: Microsoft Graph (SMTP refused with 5.7.139)" in result.output
    assert len(graph_sendroom.graph.submitted(SENDER)) == 1
    assert graph_sendroom.room.smtp.accepted() == []


def test_when_both_routes_refuse_the_error_names_both_fixes_and_nothing_is_remembered(
    graph_sendroom: GraphSendroom, idp_directory: SeededDirectory
) -> None:
    room = graph_sendroom
    room.room.room.wic.set_params(
        {
            "WICBOX_MAILCLIENT_CLIENTID": idp_directory.confidential_client_id,  # Graph: no Mail.Send
            "WICBOX_MAILCLIENT_CLIENTSECRET": idp_directory.confidential_client_secret,
        }
    )
    room.room.smtp.script_reply("AUTH", AUTH_DISABLED_FOR_TENANT)
    ids = room.enqueue(1)
    result = room.room.cli("send")
    assert result.exit_code == 3, result.output
    assert "SmtpClientAuthenticationDisabled $false" in result.output  # SMTP's fix ...
    assert "Mail.Send" in result.output  # ... and Graph's
    assert room.statuses(ids) == [OutboxStatus.PENDING]
    assert not room.routes_file().exists()


def test_graph_finds_a_sent_mail_by_its_message_id(graph_sendroom: GraphSendroom, tmp_path: Path) -> None:
    wic = graph_sendroom.room.room.wic
    with wic.store() as store:
        params = parse_parameters(read_parameters(store), wic.endpoints()).parameters
    tokens = TokenService.from_parameters(params, tmp_path / "cache.bin", encrypt_cache=False)
    assert params.client_secret is not None
    provider = tokens.application((GRAPH_APPLICATION,), params.client_secret)
    raw = (
        b"From: wicbox@klant.example\r\nTo: project-alpha@klant.example\r\nSubject: s\r\n"
        b"Message-ID: <gevonden-1@klant.example>\r\n\r\nx\r\n"
    )
    graph_sendroom.graph.add_message(SENDER, "Sent Items", raw)
    lookup = GraphSentLookup(GraphSettings.from_parameters(params), provider, SENDER)
    assert lookup.find("<gevonden-1@klant.example>", [RECIPIENT])
    assert not lookup.find("<nooit-1@klant.example>", [RECIPIENT])
    assert not lookup.find("<o'brien@klant.example>", [RECIPIENT])  # a quote in the id is escaped
    to_self = raw.replace(b"gevonden-1", b"aan-mezelf-1")
    graph_sendroom.graph.add_message(SENDER, "Inbox", to_self)
    assert not lookup.find("<aan-mezelf-1@klant.example>", [RECIPIENT])
    assert lookup.find("<aan-mezelf-1@klant.example>", [SENDER])  # sent to itself: its Inbox counts
    rewritten = raw.replace(
        b"Message-ID: <gevonden-1@klant.example>",
        b"Message-ID: <AM0PR01MB1234.eurprd01.prod.outlook.com>\r\n"
        b"X-WICBOX-Message-ID: <origineel-1@klant.example>",
    )
    graph_sendroom.graph.add_message(SENDER, "Sent Items", rewritten)
    assert lookup.find("<origineel-1@klant.example>", [RECIPIENT])  # Exchange rewrote the Message-ID
