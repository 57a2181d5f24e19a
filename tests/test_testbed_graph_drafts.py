"""The Graph emulator's drafts and upload sessions, faithful to Microsoft's documentation: drafts in
Drafts, fileAttachments, createUploadSession, chunks PUT to the pre-authenticated upload URL (no
Authorization header, in order, at most 4 MB), send, and the limits (3 MB, 4 MB, MaxSendSize)."""

from __future__ import annotations

import base64
import email
import email.policy
from collections.abc import Iterator
from email.message import EmailMessage
from typing import Any

import pytest
import requests

from tests import test_testbed_graph
from tests.test_testbed_graph import GRAPH_AUD, IMMUTABLE, USER, Client, token
from tools.testbed.graph import GraphEmulator
from tools.testbed.pki import LoopbackPki
from tools.testbed.tokens import delegated_claims

pytestmark = pytest.mark.testbed

bed = test_testbed_graph.bed  # the fixture, bound here
MiB = 1024 * 1024
FILE = bytes(range(251)) * 14_000  # 3.5 MB without a period that chunks of 1 or 2 MB repeat


@pytest.fixture
def sender(bed: GraphEmulator, loopback_pki: LoopbackPki) -> Iterator[Client]:
    claims = delegated_claims(USER, ("Mail.ReadWrite", "Mail.Send"), audience=GRAPH_AUD)
    client = Client(bed, loopback_pki, token(loopback_pki, claims))
    yield client
    client.session.close()


def put(client: Client, url: str, data: bytes, content_range: str, **headers: str) -> requests.Response:
    """A chunk as Microsoft documents it: no Authorization header (the URL carries its own)."""
    all_headers = {"Content-Type": "application/octet-stream", "Content-Range": content_range, **headers}
    return requests.put(url, data=data, headers=all_headers, verify=client.session.verify, timeout=10)


def new_draft(client: Client, **extra: Any) -> str:
    document = {
        "subject": "Dossier 12",
        "body": {"contentType": "html", "content": '<p>Logo: <img src="cid:logo"></p>'},
        "toRecipients": [{"emailAddress": {"address": "klant@elders.example", "name": "Klant"}}],
        "bccRecipients": [{"emailAddress": {"address": "geheim@elders.example"}}],
        "internetMessageId": "<draft-1@klant.example>",
        "internetMessageHeaders": [{"name": "X-WICBOX-Message-ID", "value": "<draft-1@klant.example>"}],
        "attachments": [
            {
                "@odata.type": "#microsoft.graph.fileAttachment",
                "name": "logo.png",
                "contentType": "image/png",
                "contentBytes": base64.b64encode(b"\x89PNG").decode(),
                "isInline": True,
                "contentId": "logo",
            }
        ],
        **extra,
    }
    created = client.ok("POST", "/me/messages", json=document, headers=IMMUTABLE)
    assert created["isDraft"] is True and created["hasAttachments"] is True
    return str(created["id"])


def open_session(client: Client, draft: str, size: int = len(FILE)) -> dict[str, Any]:
    item = {"attachmentType": "file", "name": "verslag.pdf", "size": size, "contentType": "application/pdf"}
    response = client.call(
        "POST", f"/me/messages/{draft}/attachments/createUploadSession", json={"AttachmentItem": item}
    )
    assert response.status_code == 201, response.text
    return dict(response.json())


def test_a_draft_gets_a_file_through_an_upload_session_and_is_sent(
    sender: Client, bed: GraphEmulator
) -> None:
    draft = new_draft(sender)
    assert [m.immutable_id for m in bed.messages(USER, "Drafts")] == [draft]
    session = open_session(sender, draft)
    assert session["nextExpectedRanges"] == ["0-"] and session["expirationDateTime"].endswith("Z")
    url = session["uploadUrl"]
    assert "authtoken=" in url

    with_token = put(sender, url, FILE[:MiB], f"bytes 0-{MiB - 1}/{len(FILE)}", Authorization="Bearer x")
    assert with_token.status_code == 401  # the upload URL is pre-authenticated
    assert put(sender, url, FILE[5:MiB], f"bytes 5-{MiB - 1}/{len(FILE)}").status_code == 416  # not in order
    first = put(sender, url, FILE[: 2 * MiB], f"bytes 0-{2 * MiB - 1}/{len(FILE)}")
    assert first.status_code == 200 and first.json()["nextExpectedRanges"] == [str(2 * MiB)]
    last = put(sender, url, FILE[2 * MiB :], f"bytes {2 * MiB}-{len(FILE) - 1}/{len(FILE)}")
    assert last.status_code == 201 and last.content == b""
    assert "/Attachments('" in last.headers["Location"]
    assert bed.upload_sessions(USER) == []

    listed = sender.ok("GET", f"/me/messages/{draft}/attachments", params={"$select": "name,size,isInline"})
    assert [(a["name"], a["size"], a["isInline"]) for a in listed["value"]] == [
        ("logo.png", 4, True),
        ("verslag.pdf", len(FILE), False),
    ]
    assert sender.call("POST", f"/me/messages/{draft}/send").status_code == 202
    [sent] = bed.submitted(USER)
    assert sent.recipients == ("klant@elders.example", "geheim@elders.example")
    message = email.message_from_bytes(sent.raw, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    assert (message["Message-ID"], message["X-WICBOX-Message-ID"]) == ("<draft-1@klant.example>",) * 2
    assert [(a.get_filename(), a.get_content()) for a in message.iter_attachments()] == [
        ("verslag.pdf", FILE)
    ]
    related = message.get_body(("related",))
    assert related is not None and [p.get("Content-ID") for p in related.iter_parts()][1:] == ["<logo>"]
    assert bed.messages(USER, "Drafts") == [] and len(bed.messages(USER, "Sent Items")) == 1
    puts = bed.request_log.entries(method="PUT")
    assert [r.status for r in puts] == [401, 416, 200, 201]
    assert all("authtoken" not in r.query and r.mailbox == USER for r in puts)  # tokens are never logged


def test_the_documented_limits(sender: Client, bed: GraphEmulator) -> None:
    bad_header = sender.call(
        "POST", "/me/messages", json={"internetMessageHeaders": [{"name": "Foo", "value": "1"}]}
    )
    assert (
        bad_header.status_code == 400 and bad_header.json()["error"]["code"] == "InvalidInternetMessageHeader"
    )
    draft = new_draft(sender)
    small = {"attachmentType": "file", "name": "klein.pdf", "size": 2 * MiB}
    refused = sender.call(
        "POST", f"/me/messages/{draft}/attachments/createUploadSession", json={"AttachmentItem": small}
    )
    assert refused.status_code == 400
    assert refused.json()["error"]["code"] == "ErrorAttachmentSizeShouldNotBeLessThanMinimumSize"
    too_big = sender.call(
        "POST", "/me/sendMail", data=b"A" * (4 * MiB + 1), headers={"Content-Type": "text/plain"}
    )
    assert too_big.status_code == 413
    url = open_session(sender, draft)["uploadUrl"]
    assert put(sender, url, b"x" * (4 * MiB + 1), f"bytes 0-{4 * MiB}/{len(FILE)}").status_code == 413

    bed.set_max_send_size(USER, 3 * MiB)  # Set-Mailbox -MaxSendSize 3MB
    over = put(sender, url, FILE, f"bytes 0-{len(FILE) - 1}/{len(FILE)}")
    assert over.status_code == 400 and over.json()["error"]["code"] == "ErrorMessageSizeExceeded"

    assert sender.call("DELETE", f"/me/messages/{draft}").status_code == 204  # to Deleted Items ...
    assert put(sender, url, FILE[:10], f"bytes 0-9/{len(FILE)}").status_code == 404  # ... sessions end
    assert [m.immutable_id for m in bed.deleted(USER)] == [draft]


def test_sending_a_draft_needs_mail_send(bed: GraphEmulator, loopback_pki: LoopbackPki) -> None:
    client = Client(
        bed,
        loopback_pki,
        token(loopback_pki, delegated_claims(USER, ("Mail.ReadWrite",), audience=GRAPH_AUD)),
    )
    try:
        draft = new_draft(client)
        refused = client.call("POST", f"/me/messages/{draft}/send")
    finally:
        client.session.close()
    assert refused.status_code == 403
    assert bed.submitted(USER) == [] and len(bed.messages(USER, "Drafts")) == 1
