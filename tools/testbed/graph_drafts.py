"""Drafts in the Graph emulator, as Exchange Online keeps them: create, attach, upload, send.

* ``POST /users/{id}/messages`` (JSON) creates a draft in Drafts: subject, body, from, to/cc/bcc,
  replyTo, internetMessageId (Exchange makes one when none is given), internetMessageHeaders (names
  must start with ``x-``) and fileAttachments; ``201`` with the message. A property Graph does not
  know is ``400 RequestBodyRead``.
* ``POST .../messages/{id}/attachments`` adds a fileAttachment (``201``); ``GET`` lists them.
* ``POST .../attachments/createUploadSession`` with an ``AttachmentItem`` (``attachmentType``
  file, name, size; 3 MB to 150 MB, else ``400 ErrorAttachmentSizeShouldNotBeLessThanMinimumSize``
  or the emulator's ``ErrorAttachmentSizeShouldNotBeGreaterThanMaximumSize``): ``201`` with the
  uploadSession (``uploadUrl`` with its own token, ``expirationDateTime``, ``nextExpectedRanges``
  ``["0-"]``); the chunks go to :mod:`tools.testbed.graph_uploads`.
* ``POST .../messages/{id}/send``: ``202``; the MIME is written from the draft, kept in Sent Items
  and in ``submitted`` with the To, Cc and Bcc recipients. No recipient, or an address that is none,
  is ``400 ErrorInvalidRecipients``; a draft over the mailbox's MaxSendSize (35 MB by default) is
  ``400 ErrorMessageSizeExceeded`` (as is a file that takes it there).
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import re
import secrets
from email import policy
from email.headerregistry import Address
from email.message import EmailMessage, MIMEPart
from email.utils import format_datetime, make_msgid
from typing import Any

from tools.testbed.graph_docs import ApiReply, json_reply
from tools.testbed.graph_items import (
    MAX_ATTACHMENT_SIZE,
    MIN_UPLOAD_SIZE,
    Draft,
    DraftAttachment,
    UploadSession,
)
from tools.testbed.graph_model import GraphStoreError, Mailbox, Message, Submission, new_id
from tools.testbed.graph_query import graph_time

SESSION_LIFETIME = dt.timedelta(minutes=15)
FILE_ATTACHMENT = "#microsoft.graph.fileAttachment"
MESSAGE_PROPERTIES = frozenset(
    {
        "subject",
        "body",
        "from",
        "toRecipients",
        "ccRecipients",
        "bccRecipients",
        "replyTo",
        "internetMessageId",
        "internetMessageHeaders",
        "attachments",
        "importance",
    }
)
RECIPIENT_LISTS = (("To", "toRecipients"), ("Cc", "ccRecipients"), ("Bcc", "bccRecipients"))
_ADDRESS = re.compile(r"^[^@\s<>,;\"]+@[^@\s<>,;\"]+\.[^@\s<>,;\"]+$")


def bad_request(message: str, code: str = "ErrorInvalidRequest") -> GraphStoreError:
    return GraphStoreError(400, code, message)


def size_exceeded() -> GraphStoreError:
    return bad_request("The message exceeds the maximum supported size.", "ErrorMessageSizeExceeded")


def now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


# ---- creating and filling a draft -----------------------------------------------------------


def create_draft(mailbox: Mailbox, document: dict[str, Any]) -> Message:
    unknown = sorted(set(document) - MESSAGE_PROPERTIES)
    if unknown:
        raise bad_request(
            f"The property '{unknown[0]}' does not exist on type 'microsoft.graph.message'.",
            "RequestBodyRead",
        )
    fields = {key: value for key, value in document.items() if key != "attachments"}
    _check_fields(fields)
    fields.setdefault("internetMessageId", make_msgid(domain=mailbox.upn.rpartition("@")[2] or "localhost"))
    draft = Draft(fields, [_file_attachment(item) for item in document.get("attachments") or []])
    if draft.size > mailbox.max_send_size:
        raise size_exceeded()
    return mailbox.add_message("drafts", draft_mime(mailbox, draft), now(), True, draft=draft)


def _check_fields(fields: dict[str, Any]) -> None:
    for _header, key in (*RECIPIENT_LISTS, ("Reply-To", "replyTo")):
        for recipient in fields.get(key) or []:
            _address_of(recipient)
    if "from" in fields:
        _address_of(fields["from"])
    for header in fields.get("internetMessageHeaders") or []:
        name = str(header.get("name", "")) if isinstance(header, dict) else ""
        if not name.lower().startswith("x-"):
            raise bad_request(
                f"The internet message header name '{name}' should start with 'x-' or 'X-'.",
                "InvalidInternetMessageHeader",
            )
    body = fields.get("body", {})
    if not isinstance(body, dict) or str(body.get("contentType", "text")).lower() not in ("text", "html"):
        raise bad_request("The body must have contentType text or html.", "RequestBodyRead")


def _address_of(recipient: Any) -> Address:
    email = recipient.get("emailAddress") if isinstance(recipient, dict) else None
    if not isinstance(email, dict) or not _ADDRESS.match(str(email.get("address", ""))):
        raise bad_request("At least one recipient isn't valid.", "ErrorInvalidRecipients")
    username, _, domain = str(email["address"]).rpartition("@")
    return Address(display_name=str(email.get("name") or ""), username=username, domain=domain)


def _file_attachment(item: Any) -> DraftAttachment:
    if not isinstance(item, dict) or item.get("@odata.type") != FILE_ATTACHMENT:
        raise bad_request("This emulator takes fileAttachment attachments only.")
    name = str(item.get("name") or "")
    if not name:
        raise bad_request("The attachment needs a name.")
    try:
        content = base64.b64decode(str(item.get("contentBytes", "")), validate=True)
    except (binascii.Error, ValueError):
        raise bad_request("contentBytes is not valid base64.", "RequestBodyRead") from None
    return DraftAttachment(
        new_id("AAMkAtt"),
        name,
        str(item.get("contentType") or "application/octet-stream"),
        content,
        bool(item.get("isInline", False)),
        str(item["contentId"]) if item.get("contentId") else None,
    )


def draft_of(mailbox: Mailbox, ref: str) -> tuple[Message, Draft]:
    message = mailbox.message(ref)
    if message.draft is None:
        raise bad_request("The item is not a draft: it has been sent.", "ErrorInvalidOperation")
    return message, message.draft


def add_attachment(mailbox: Mailbox, ref: str, item: dict[str, Any]) -> DraftAttachment:
    message, draft = draft_of(mailbox, ref)
    attachment = _file_attachment(item)
    if draft.size + len(attachment.content) > mailbox.max_send_size:
        raise size_exceeded()
    attach(mailbox, message, draft, attachment)
    return attachment


def attach(mailbox: Mailbox, message: Message, draft: Draft, attachment: DraftAttachment) -> None:
    draft.attachments.append(attachment)
    message.raw = draft_mime(mailbox, draft)


def attachment_document(attachment: DraftAttachment, *, content: bool = True) -> dict[str, Any]:
    document: dict[str, Any] = {
        "@odata.type": FILE_ATTACHMENT,
        "id": attachment.attachment_id,
        "lastModifiedDateTime": graph_time(now()),
        "name": attachment.name,
        "contentType": attachment.content_type,
        "size": len(attachment.content),
        "isInline": attachment.is_inline,
        "contentId": attachment.content_id,
    }
    if content:
        document["contentBytes"] = base64.b64encode(attachment.content).decode("ascii")
    return document


def open_upload_session(mailbox: Mailbox, ref: str, document: dict[str, Any], base_url: str) -> ApiReply:
    message, _draft = draft_of(mailbox, ref)
    item = document.get("AttachmentItem", document.get("attachmentItem"))
    if not isinstance(item, dict) or str(item.get("attachmentType", "")).lower() != "file":
        raise bad_request("AttachmentItem with attachmentType 'file' is required.")
    name, size = str(item.get("name") or ""), item.get("size")
    if not name or not isinstance(size, int) or isinstance(size, bool):
        raise bad_request("AttachmentItem needs a name and a size.")
    if size < MIN_UPLOAD_SIZE:
        raise bad_request(
            "Attachment size must be greater than the minimum size.",
            "ErrorAttachmentSizeShouldNotBeLessThanMinimumSize",
        )
    if size > MAX_ATTACHMENT_SIZE:
        raise bad_request(
            "Attachment size must not be greater than the maximum size.",
            "ErrorAttachmentSizeShouldNotBeGreaterThanMaximumSize",
        )
    session = UploadSession(
        session_id=new_id("AAMkSes"),
        token=secrets.token_urlsafe(32),
        message_id=message.immutable_id,
        name=name,
        size=size,
        content_type=str(item.get("contentType") or "application/octet-stream"),
        is_inline=bool(item.get("isInline", False)),
        content_id=str(item["contentId"]) if item.get("contentId") else None,
        expires=now() + SESSION_LIFETIME,
    )
    mailbox.sessions[session.session_id] = session
    return json_reply(
        201,
        {
            "@odata.context": f"{base_url}/v1.0/$metadata#microsoft.graph.uploadSession",
            "uploadUrl": f"{base_url}{session_path(mailbox, session)}?authtoken={session.token}",
            "expirationDateTime": graph_time(session.expires),
            "nextExpectedRanges": ["0-"],
        },
    )


def session_path(mailbox: Mailbox, session: UploadSession) -> str:
    return (
        f"/api/v2.0/Users('{mailbox.object_id}')/Messages('{session.message_id}')"
        f"/AttachmentSessions('{session.session_id}')"
    )


# ---- sending ---------------------------------------------------------------------------------


def send_draft(mailbox: Mailbox, ref: str) -> ApiReply:
    message, draft = draft_of(mailbox, ref)
    recipients = tuple(
        _address_of(recipient).addr_spec
        for _header, key in RECIPIENT_LISTS
        for recipient in draft.fields.get(key) or []
    )
    if not recipients:
        raise bad_request(
            "At least one recipient isn't valid., A message can't be sent because it contains no recipients.",
            "ErrorInvalidRecipients",
        )
    if draft.size > mailbox.max_send_size:
        raise size_exceeded()
    raw = message.raw  # written from the draft at its last change
    mailbox.close_sessions(message.immutable_id)
    message.draft, message.received = None, now()
    mailbox.move(message.immutable_id, "sentitems")
    mailbox.submitted.append(Submission(raw, recipients))
    return ApiReply(202)


def draft_mime(mailbox: Mailbox, draft: Draft) -> bytes:
    """The MIME Exchange writes for a draft: headers from its fields, its body, its files (inline
    ones of an HTML body in multipart/related, the others in multipart/mixed)."""
    fields = draft.fields
    head = EmailMessage(policy=policy.SMTP)
    head["From"] = _address_of(fields["from"]) if "from" in fields else mailbox.upn
    for header, key in (*RECIPIENT_LISTS, ("Reply-To", "replyTo")):
        if fields.get(key):
            head[header] = [_address_of(recipient) for recipient in fields[key]]
    head["Subject"] = str(fields.get("subject") or "")
    head["Date"] = format_datetime(now())
    head["Message-ID"] = str(fields["internetMessageId"])
    for header in fields.get("internetMessageHeaders") or []:
        head[str(header["name"])] = str(header.get("value", ""))
    body = fields.get("body") or {}
    html = str(body.get("contentType", "text")).lower() == "html"
    text = MIMEPart(policy=policy.SMTP)
    text.set_content(str(body.get("content") or ""), subtype="html" if html else "plain", charset="utf-8")
    related = [a for a in draft.attachments if html and a.is_inline]
    content = text.as_bytes()
    if related:
        content = _multipart("related", [content, *(_file_part(a, "inline") for a in related)])
    others = [a for a in draft.attachments if not any(a is r for r in related)]
    if others:
        content = _multipart("mixed", [content, *(_file_part(a, "attachment") for a in others)])
    head["MIME-Version"] = "1.0"
    return head.as_bytes().removesuffix(b"\r\n") + content  # the content's headers join the head's


def _multipart(subtype: str, parts: list[bytes]) -> bytes:
    """A multipart entity (its Content-Type header, a blank line, the parts between boundaries)."""
    boundary = f"=_wicbox_emulator_{secrets.token_hex(8)}"
    body = b"".join(b"--" + boundary.encode() + b"\r\n" + part + b"\r\n" for part in parts)
    header = f'Content-Type: multipart/{subtype}; boundary="{boundary}"\r\n\r\n'.encode()
    return header + body + b"--" + boundary.encode() + b"--\r\n"


def _file_part(attachment: DraftAttachment, disposition: str) -> bytes:
    """A file's part: the headers email writes for it, then its base64 body (encoded in C: fast)."""
    content_type, _, params = attachment.content_type.partition(";")
    maintype, _, subtype = content_type.strip().lower().partition("/")
    if not maintype or not subtype or maintype == "multipart":
        maintype, subtype = "application", "octet-stream"
    charset = params.strip().partition("=")[2].strip('" ') if "charset" in params.lower() else ""
    part = MIMEPart(policy=policy.SMTP)
    part.set_content(
        b"",
        maintype,
        subtype,
        disposition=disposition,
        filename=attachment.name,
        cid=f"<{attachment.content_id}>" if attachment.content_id else None,
        params={"charset": charset} if charset else None,
    )
    headers = part.as_bytes().partition(b"\r\n\r\n")[0]
    encoded = base64.b64encode(attachment.content)
    lines = b"\r\n".join(encoded[start : start + 76] for start in range(0, len(encoded), 76))
    return headers + b"\r\n\r\n" + lines + b"\r\n"
