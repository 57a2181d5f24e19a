"""Large mails through Microsoft Graph: a draft, upload sessions, send; against the Graph emulator.

The sender on its own (with the room's app and an injected wait for Retry-After) and `wicbox send`
with RAW_MIME rows: files of 10 and 30 MB arrive byte for byte with subject, recipients (a Bcc only
in the envelope too) and an X-WICBOX-Message-ID the Sent Items lookup finds; a mail just under the
4 MB of one request still goes by sendMail; a throttled chunk is sent again after Retry-After; a
failure deletes the draft; a draft an interrupted try left behind is never sent.
"""

from __future__ import annotations

import base64
import datetime as dt
import email
import email.policy
import hashlib
import uuid
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path
from urllib.parse import quote

import pytest

from tests import test_send_graph
from tests.test_send_graph import ROLES_WITH_SEND, GraphSendroom
from tests.test_send_test import RECIPIENT, SENDER, assert_no_secrets
from tools.testbed.graph import GraphEmulator
from tools.testbed.idp import IdentityPlatformEmulator, SeededDirectory
from wicbox_bridge.adapters.graph import GraphSettings
from wicbox_bridge.adapters.graph_draft import MAX_REQUEST_BYTES
from wicbox_bridge.adapters.graph_send import GraphSender, with_envelope_recipients
from wicbox_bridge.adapters.graph_sent import GraphSentLookup
from wicbox_bridge.adapters.graph_upload import CHUNK_BYTES
from wicbox_bridge.adapters.identity import TokenService
from wicbox_bridge.auth.scopes import GRAPH_APPLICATION
from wicbox_bridge.config.params import parse_parameters
from wicbox_bridge.errors import SendError
from wicbox_bridge.mail.outgoing import BuiltMessage, OutgoingAttachment, OutgoingMail, build_message
from wicbox_bridge.store.outbox import OutboxStatus, claim_for_sending, enqueue, get_row
from wicbox_bridge.store.parameters import read_parameters

pytestmark = pytest.mark.testbed

graph_sendroom = test_send_graph.graph_sendroom  # the fixture, bound here
MiB = 1024 * 1024
HIDDEN = "geheim@elders.example"  # a Bcc: only in the envelope, never in a header
HTML = "<p>Zie het verslag in bijlage, met één opmerking.</p>"


def payload(label: str, size: int) -> bytes:
    """Deterministic bytes without a repeating pattern (no randomness, so no seed to print)."""
    return hashlib.shake_256(label.encode()).digest(size)


def large_mail(content: bytes, subject: str = "Verslag dossier 12: één bijlage") -> BuiltMessage:
    mail = OutgoingMail(
        from_addr=f"WIC <{SENDER}>",
        to=f"Project Alpha <{RECIPIENT}>",
        bcc=HIDDEN,
        subject=subject,
        body_text="Zie het verslag in bijlage.",
        body_html=HTML,
        attachments=(OutgoingAttachment("verslag.pdf", "application/pdf", content),),
    )
    return build_message(mail, message_id=f"<{uuid.uuid4().hex}@klant.example>")


def parsed(raw: bytes) -> EmailMessage:
    message = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    return message


@dataclass
class Direct:
    """The Graph sender and lookup of the room's app, waits recorded instead of slept."""

    sender: GraphSender
    lookup: GraphSentLookup
    graph: GraphEmulator
    waits: list[float]


@pytest.fixture
def direct(graph_sendroom: GraphSendroom, tmp_path: Path) -> Direct:
    with graph_sendroom.room.room.wic.store() as store:
        params = parse_parameters(read_parameters(store), graph_sendroom.room.room.wic.endpoints()).parameters
    assert params.client_secret is not None
    service = TokenService.from_parameters(params, tmp_path / "cache.bin", encrypt_cache=False)
    provider = service.application((GRAPH_APPLICATION,), params.client_secret)
    settings = GraphSettings.from_parameters(params)
    waits: list[float] = []
    sender = GraphSender(settings, provider, SENDER, sleep=waits.append)
    return Direct(sender, GraphSentLookup(settings, provider, SENDER), graph_sendroom.graph, waits)


@pytest.mark.parametrize("size_mb", [10, 30])
def test_a_large_file_goes_through_an_upload_session_unchanged(direct: Direct, size_mb: int) -> None:
    content = payload(f"verslag-{size_mb}", size_mb * MiB)
    built = large_mail(content)
    original = built.message_id
    # Exchange rewrites some Message-IDs: the lookup must find the mail by X-WICBOX-Message-ID then.
    raw = built.as_bytes().replace(
        f"Message-ID: {original}".encode(), b"Message-ID: <herschreven@klant.example>", 1
    )

    result = direct.sender.send(raw, SENDER, list(built.envelope.recipients))

    assert "upload sessions" in result.server_reply
    [sent] = direct.graph.submitted(SENDER)
    assert set(sent.recipients) == {RECIPIENT, HIDDEN}
    message = parsed(sent.raw)
    assert message["Subject"] == "Verslag dossier 12: één bijlage"
    assert message["Message-ID"] == "<herschreven@klant.example>"
    assert message["X-WICBOX-Message-ID"] == original
    assert HIDDEN in str(message["Bcc"]) and HIDDEN.encode() not in raw
    body = message.get_body(("html",))
    assert body is not None and body.get_content().strip() == HTML
    [attachment] = list(message.iter_attachments())
    assert attachment.get_filename() == "verslag.pdf"
    assert attachment.get_content() == content  # byte for byte
    puts = direct.graph.request_log.entries(method="PUT")
    sizes = [record.size for record in puts]
    assert sum(sizes) == len(content) and len(puts) == -(-len(content) // CHUNK_BYTES)
    assert all(size % (320 * 1024) == 0 and size <= 4 * MiB for size in sizes[:-1])
    assert [record.status for record in puts] == [200] * (len(puts) - 1) + [201]
    assert all(record.query == "" for record in puts)  # the URL's own token is never logged
    assert direct.graph.messages(SENDER, "Drafts") == [] and direct.graph.upload_sessions(SENDER) == []
    assert len(direct.graph.messages(SENDER, "Sent Items")) == 1
    assert direct.lookup.find(original, [RECIPIENT])
    assert direct.waits == []


def test_a_mail_just_under_4_mb_still_goes_by_sendmail_in_one_request(direct: Direct) -> None:
    size = 3 * MiB - 100_000
    for _ in range(3):  # the attachment size whose sendMail request is just under 4 MB
        built = large_mail(payload("bijna", size))
        recipients = list(built.envelope.recipients)
        request = len(base64.b64encode(with_envelope_recipients(built.as_bytes(), recipients)))
        size += int((MAX_REQUEST_BYTES - 2_000 - request) / 1.83)
    assert MAX_REQUEST_BYTES - 20_000 < request <= MAX_REQUEST_BYTES

    direct.sender.send(built.as_bytes(), SENDER, recipients)

    [call] = direct.graph.request_log.entries()
    assert (call.method, call.path, call.status) == ("POST", f"/v1.0/users/{quote(SENDER)}/sendMail", 202)
    assert call.size == request
    assert len(direct.graph.submitted(SENDER)) == 1


def test_a_throttled_chunk_is_sent_again_after_retry_after(direct: Direct) -> None:
    content = payload("gedrosseld", 10 * MiB)
    built = large_mail(content)
    direct.graph.throttle_uploads(1, retry_after=7)

    direct.sender.send(built.as_bytes(), SENDER, list(built.envelope.recipients))

    puts = direct.graph.request_log.entries(method="PUT")
    assert [record.status for record in puts[:2]] == [429, 200]
    assert puts[0].headers == puts[1].headers  # the same Content-Range again
    assert direct.waits == [7.0]
    [sent] = direct.graph.submitted(SENDER)
    assert next(parsed(sent.raw).iter_attachments()).get_content() == content


def test_a_draft_left_by_an_interrupted_try_is_deleted_not_sent(direct: Direct) -> None:
    built = large_mail(payload("onderbroken", 5 * MiB))
    leftover = direct.graph.add_message(SENDER, "Drafts", built.as_bytes()[:2000])  # same Message-ID

    direct.sender.send(built.as_bytes(), SENDER, list(built.envelope.recipients))

    assert len(direct.graph.submitted(SENDER)) == 1
    assert [m.immutable_id for m in direct.graph.deleted(SENDER)] == [leftover]
    assert direct.graph.messages(SENDER, "Drafts") == []
    assert not direct.lookup.find("<nooit-verstuurd@klant.example>", [RECIPIENT])


def test_a_mail_over_the_mailboxs_limit_fails_and_its_draft_is_deleted(direct: Direct) -> None:
    direct.graph.set_max_send_size(SENDER, 5 * MiB)  # Set-Mailbox -MaxSendSize 5MB
    built = large_mail(payload("te-groot", 8 * MiB))

    with pytest.raises(SendError) as caught:
        direct.sender.send(built.as_bytes(), SENDER, list(built.envelope.recipients))

    assert caught.value.permanent
    assert "ErrorMessageSizeExceeded" in caught.value.message
    assert f"Set-Mailbox -Identity {SENDER} -MaxSendSize 150MB" in (caught.value.fix or "")
    assert direct.graph.submitted(SENDER) == []
    assert direct.graph.messages(SENDER, "Drafts") == [] and len(direct.graph.deleted(SENDER)) == 1
    assert direct.graph.upload_sessions(SENDER) == []
    assert not direct.lookup.find(built.message_id, [RECIPIENT])  # a draft never counts as sent


def test_a_broken_upload_deletes_the_draft_and_leaves_the_mail_due(direct: Direct) -> None:
    built = large_mail(payload("verbroken", 5 * MiB))
    direct.graph.drop_uploads(1)

    with pytest.raises(SendError) as caught:
        direct.sender.send(built.as_bytes(), SENDER, list(built.envelope.recipients))

    assert not caught.value.permanent  # nothing went out: a later run sends it (no lookup needed)
    assert "Nothing was sent (the draft was deleted)" in caught.value.message
    assert direct.graph.host in caught.value.message  # the upload URL's host, for the firewall
    assert direct.graph.messages(SENDER, "Drafts") == [] and len(direct.graph.deleted(SENDER)) == 1
    assert direct.graph.submitted(SENDER) == []


# ---------------------------------------------------------------------------------- wicbox send


def enqueue_raw(room: GraphSendroom, raw: bytes) -> int:
    with room.room.room.wic.store() as store:
        return enqueue(store, from_addr=SENDER, to=RECIPIENT, bcc=HIDDEN, raw_mime=raw)


def row_of(room: GraphSendroom, outbox_id: int) -> tuple[OutboxStatus, str | None]:
    with room.room.room.wic.store() as store:
        row = get_row(store, outbox_id)
    assert row is not None
    return row.status, row.last_error


def test_wicbox_send_delivers_a_large_raw_mime_row_through_graph(graph_sendroom: GraphSendroom) -> None:
    room = graph_sendroom
    room.room.room.wic.set_params({"WICBOX_MAILCLIENT_SENDPROTOCOL": "GRAPH"})
    content = payload("cli", 12 * MiB)
    raw = large_mail(content).as_bytes()
    outbox_id = enqueue_raw(room, raw)

    result = room.cli("send")

    assert result.exit_code == 0, result.output
    assert "sent 1, failed 0" in result.output
    assert row_of(room, outbox_id)[0] is OutboxStatus.SENT
    [sent] = room.graph.submitted(SENDER)
    assert set(sent.recipients) == {RECIPIENT, HIDDEN}
    assert next(parsed(sent.raw).iter_attachments()).get_content() == content
    assert room.room.smtp.accepted() == []
    assert_no_secrets(result.output, room.secret)


def test_wicbox_send_fails_a_row_whose_upload_is_refused_and_deletes_the_draft(
    graph_sendroom: GraphSendroom,
) -> None:
    room = graph_sendroom
    room.room.room.wic.set_params({"WICBOX_MAILCLIENT_SENDPROTOCOL": "GRAPH"})
    room.graph.set_max_send_size(SENDER, 5 * MiB)
    outbox_id = enqueue_raw(room, large_mail(payload("cli-te-groot", 8 * MiB)).as_bytes())

    result = room.cli("send")

    assert result.exit_code == 1, result.output
    status, error = row_of(room, outbox_id)
    assert status is OutboxStatus.FAILED
    assert error is not None and "MaxSendSize" in error and "Set-Mailbox" in error
    assert room.graph.messages(SENDER, "Drafts") == [] and len(room.graph.deleted(SENDER)) == 1
    assert room.graph.submitted(SENDER) == []


def test_an_interrupted_large_mail_is_sent_once_and_its_leftover_draft_deleted(
    graph_sendroom: GraphSendroom,
) -> None:
    room = graph_sendroom
    room.room.room.wic.set_params(  # read over Graph too: the outbox looks the mail up there
        {
            "WICBOX_MAILCLIENT_SENDPROTOCOL": "GRAPH",
            "WICBOX_MAILCLIENT_PROTOCOL": "GRAPH",
            "WICBOX_MAILCLIENT_SCOPE": "https://graph.microsoft.com/.default",
        }
    )
    built = large_mail(payload("crash", 6 * MiB))
    outbox_id = enqueue_raw(room, built.as_bytes())
    with room.room.room.wic.store() as store:  # killed while its files were being uploaded:
        assert claim_for_sending(store, outbox_id, built.message_id)  # the row is SENDING ...
    leftover = room.graph.add_message(SENDER, "Drafts", built.as_bytes()[:2000])  # ... its draft in Drafts

    result = room.cli("send")

    assert result.exit_code == 0, result.output
    assert "to send again 1" in result.output  # not in Sent Items: a draft is no sent mail
    assert row_of(room, outbox_id)[0] is OutboxStatus.SENT
    assert len(room.graph.submitted(SENDER)) == 1
    assert [m.immutable_id for m in room.graph.deleted(SENDER)] == [leftover]
    assert room.graph.messages(SENDER, "Drafts") == []
    lookups = room.graph.request_log.entries(method="GET")
    assert any("/mailFolders/sentitems/messages" in record.path for record in lookups)


def test_without_mail_readwrite_a_large_mail_names_the_permission_and_stays_due(
    graph_sendroom: GraphSendroom, idp_clean: IdentityPlatformEmulator, idp_directory: SeededDirectory
) -> None:
    room = graph_sendroom
    client_id, secret = str(uuid.uuid4()), f"Sx~{uuid.uuid4().hex}"
    idp_clean.add_application(
        client_id,
        idp_directory.tenant_id,
        "WICBOX mail (Mail.Send only)",
        secrets={secret: dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=30)},
        app_roles={**ROLES_WITH_SEND, "https://graph.microsoft.com": ("Mail.Send",)},
    )
    room.room.room.wic.set_params(
        {
            "WICBOX_MAILCLIENT_SENDPROTOCOL": "GRAPH",
            "WICBOX_MAILCLIENT_CLIENTID": client_id,
            "WICBOX_MAILCLIENT_CLIENTSECRET": secret,
        }
    )
    outbox_id = enqueue_raw(room, large_mail(payload("geen-readwrite", 5 * MiB)).as_bytes())

    result = room.cli("send")

    assert result.exit_code == 3, result.output
    assert "Mail.ReadWrite" in result.output and "besides Mail.Send" in result.output
    assert row_of(room, outbox_id)[0] is OutboxStatus.PENDING
    assert room.graph.messages(SENDER, "Drafts") == [] and room.graph.submitted(SENDER) == []
    assert_no_secrets(result.output, secret)
