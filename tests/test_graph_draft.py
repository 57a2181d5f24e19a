"""A large outgoing mail taken apart for Microsoft Graph's drafts (pure): the MIME's parts
(mail/unpack.py, on the .eml files of tests/data) and the draft's documents and limits
(adapters/graph_draft.py), as tables."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from wicbox_bridge.adapters.graph_draft import (
    MAX_MESSAGE_BYTES,
    MAX_REQUEST_BYTES,
    SMALL_FILE_BYTES,
    check_size,
    is_small,
    plan_draft,
    upload_item,
)
from wicbox_bridge.errors import SendError
from wicbox_bridge.mail.outgoing import OutgoingAttachment, OutgoingMail, build_message
from wicbox_bridge.mail.unpack import UnpackedFile, UnpackedMail, unpack

DATA = Path(__file__).resolve().parent / "data" / "eml"
MB = 1_000_000


def test_a_related_html_mail_with_files_is_taken_apart_exactly() -> None:
    raw = (DATA / "outgoing_related.eml").read_bytes()
    mail = unpack(raw)
    assert mail.subject == "Dossier 12 \N{EN DASH} bijlagen"
    assert mail.sender == ("WIC Box", "wicbox@klant.example")
    assert mail.to == (("Jansen, Piet", "piet@elders.example"), ("", "project-alpha@klant.example"))
    assert mail.cc == (("Team één", "team@elders.example"),)
    assert mail.reply_to == (("", "dossiers@klant.example"),)
    assert mail.message_id == mail.stable_id == "<related-1@klant.example>"
    assert mail.body_is_html  # the richest alternative; its text/plain twin is left out
    assert mail.body == '<p>Zie het logo <img src="cid:logo@klant.example"> en de bijlagen. é</p>'
    forwarded = raw.split(b"Content-Type: message/rfc822\r\n\r\n")[1].split(b"\r\n--mixed")[0]
    assert [(f.name, f.content_type, f.content, f.content_id, f.inline) for f in mail.files] == [
        ("attachment-1.png", "image/png", b"\x89PNG\r\n\x1a\n", "logo@klant.example", True),
        ("offerte.pdf", "application/pdf", b"%PDF-1.4\n", None, False),
        ("Vraag over dossier 12.eml", "message/rfc822", forwarded, None, False),  # byte for byte
        ("notities.txt", "text/plain; charset=utf-8", "notities é".encode(), None, False),
    ]
    assert mail.problems == ()


@pytest.mark.parametrize(
    ("name", "html", "body", "files", "problem"),
    [
        (
            "rfc2231_and_encoded_names.eml",
            False,
            "Zie bijlagen.",
            [
                ("Offerte één deel.pdf", False),
                ("résumé.txt", False),
                ("élèment.docx", False),
                ("plain-unquoted.png", True),
            ],
            None,
        ),
        (
            "bad_base64_and_charset.eml",
            False,
            "Café crème",
            [("broken.pdf", False)],
            "sent as its encoded bytes",
        ),
        (
            "hostile_names.eml",
            False,
            "body",
            [
                ("passwd", False),
                ("evil.exe", False),
                ("_CON.txt", False),
                ("attachment-4.txt", False),
                ("tab_and_ctl.pdf", False),
            ],
            "sent as 'passwd'",
        ),
        ("missing_boundary.eml", False, "--whatever", [], "body kept whole"),
    ],
)
def test_saved_mails_are_taken_apart(
    name: str, html: bool, body: str, files: list[tuple[str, bool]], problem: str | None
) -> None:
    mail = unpack((DATA / name).read_bytes())
    assert mail.body_is_html is html
    assert mail.body.startswith(body)
    assert [(f.name, f.inline) for f in mail.files] == files
    if problem is not None:
        assert any(problem in note for note in mail.problems), mail.problems


def test_a_built_message_keeps_its_attachments_and_prefers_html() -> None:
    pdf = bytes(range(256)) * 40
    built = build_message(
        OutgoingMail(
            from_addr="WIC <wicbox@klant.example>",
            to="a@klant.example",
            subject="Offerte",
            body_text="tekst",
            body_html="<b>html</b>",
            attachments=(OutgoingAttachment("offerte.pdf", "application/pdf", pdf),),
        ),
        message_id="<built-1@klant.example>",
    )
    mail = unpack(built.as_bytes())
    assert (mail.body_is_html, mail.body.strip()) == (True, "<b>html</b>")
    assert [(f.name, f.content) for f in mail.files] == [("offerte.pdf", pdf)]


# ---------------------------------------------------------------------------------- the draft


def mail_with(*sizes: int, to: tuple[tuple[str, str], ...] = (("", "a@klant.example"),)) -> UnpackedMail:
    files = tuple(
        UnpackedFile(f"f{n}.bin", "application/octet-stream", b"x" * size) for n, size in enumerate(sizes)
    )
    return UnpackedMail(
        subject="s",
        sender=("WIC", "wicbox@klant.example"),
        to=to,
        cc=(),
        bcc=(("", "b@klant.example"),),
        reply_to=(),
        message_id="<m-1@klant.example>",
        stable_id="<m-1@klant.example>",
        body="tekst",
        body_is_html=False,
        files=files,
    )


def test_the_draft_names_every_envelope_recipient_and_carries_both_ids() -> None:
    envelope = ["A@KLANT.example", "b@klant.example", "geheim@elders.example", "geheim@elders.example"]
    message = plan_draft(mail_with(), envelope).message
    assert message["toRecipients"] == [{"emailAddress": {"address": "a@klant.example"}}]
    assert message["bccRecipients"] == [
        {"emailAddress": {"address": "b@klant.example"}},
        {"emailAddress": {"address": "geheim@elders.example"}},  # only in the envelope: a Bcc
    ]
    assert message["from"] == {"emailAddress": {"address": "wicbox@klant.example", "name": "WIC"}}
    assert message["internetMessageId"] == "<m-1@klant.example>"
    assert message["internetMessageHeaders"] == [
        {"name": "X-WICBOX-Message-ID", "value": "<m-1@klant.example>"}
    ]
    assert message["body"] == {"contentType": "text", "content": "tekst"}
    assert "attachments" not in message


@pytest.mark.parametrize(
    ("sizes", "in_draft", "then"),
    [
        ((1 * MB, 1 * MB), 2, []),  # both fit into the draft's own request
        ((1 * MB, 1 * MB, 1 * MB), 3, []),  # 4.0 MB of base64: just fits
        ((11 * MB // 10,) * 3, 2, ["post"]),  # the third would take the request over 4 MB
        ((2 * MB, 10 * MB, 1 * MB), 1, ["upload", "post"]),  # the mail's order is kept
        ((SMALL_FILE_BYTES - 1,), 1, []),  # the largest small file fits into one request
        ((MB, SMALL_FILE_BYTES - 1), 1, ["post"]),  # not with another one: a POST of its own
        ((SMALL_FILE_BYTES,), 0, ["upload"]),  # 3 MB: an upload session
    ],
)
def test_files_travel_in_the_draft_by_post_or_by_upload_session(
    sizes: tuple[int, ...], in_draft: int, then: list[str]
) -> None:
    plan = plan_draft(mail_with(*sizes), [])
    inline = plan.message.get("attachments", [])
    assert [a["name"] for a in inline] == [f"f{n}.bin" for n in range(in_draft)]
    assert [("post" if is_small(f) else "upload") for f in plan.files] == then
    assert [f.name for f in plan.files] == [f"f{n}.bin" for n in range(in_draft, len(sizes))]
    assert all(base64.b64decode(a["contentBytes"]) == b"x" * sizes[n] for n, a in enumerate(inline))
    assert plan.total_files == len(sizes)
    assert len(str(plan.message).encode()) < MAX_REQUEST_BYTES


def test_an_upload_session_is_asked_for_with_the_files_details() -> None:
    file = UnpackedFile("logo.png", "image/png", b"x" * 5, content_id="logo@k", inline=True)
    assert upload_item(file) == {
        "AttachmentItem": {
            "attachmentType": "file",
            "name": "logo.png",
            "size": 5,
            "contentType": "image/png",
            "isInline": True,
            "contentId": "logo@k",
        }
    }


@pytest.mark.parametrize(("size", "refused"), [(MAX_MESSAGE_BYTES, False), (MAX_MESSAGE_BYTES + 1, True)])
def test_a_mail_over_150_mb_is_refused_for_good(size: int, refused: bool) -> None:
    if not refused:
        check_size(size)
        return
    with pytest.raises(SendError) as caught:
        check_size(size)
    assert caught.value.permanent
    assert "150 MB" in caught.value.message and "link" in (caught.value.fix or "")


def test_a_body_too_large_for_one_request_is_refused_for_good() -> None:
    mail = mail_with()
    huge = UnpackedMail(**{**mail.__dict__, "body": "x" * MAX_REQUEST_BYTES})
    with pytest.raises(SendError) as caught:
        plan_draft(huge, [])
    assert caught.value.permanent
    assert "SMTP" in (caught.value.fix or "")
