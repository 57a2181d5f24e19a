"""A large outgoing mail as Microsoft Graph's draft documents and the way each file travels (pure).

Graph takes one request of at most 4 MB. A mail whose MIME does not fit into one ``sendMail``
request is sent as a draft instead (``POST /users/{mailbox}/messages``, then its files, then
``POST .../send``); this module turns the unpacked mail (:mod:`wicbox_bridge.mail.unpack`) into:

* the draft's JSON: subject, body (HTML or text), from, toRecipients/ccRecipients/bccRecipients as
  the headers name them plus every envelope recipient no header names as Bcc (as the ``sendMail``
  route does), replyTo, internetMessageId, and X-WICBOX-Message-ID in internetMessageHeaders
  (Exchange keeps it as the internet-header property the Sent Items lookup searches);
* the files, in the mail's order: as many leading small ones as fit into the draft's own request,
  then each of the others either by ``POST .../attachments`` (under 3 MB, Graph's documented
  limit for that request) or through an upload session (3 MB to 150 MB);
* the limits: at most 150 MB per message, so per file too (Exchange Online's largest message size,
  and an upload session's); a body that alone does not fit into one request. Exceeding one is a
  permanent SendError.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

from wicbox_bridge.errors import SendError
from wicbox_bridge.mail.outgoing import STABLE_ID_HEADER
from wicbox_bridge.mail.unpack import NamedAddress, UnpackedFile, UnpackedMail

MiB: Final = 1024 * 1024
MAX_REQUEST_BYTES: Final = 4 * MiB  # one Graph request, body included
SMALL_FILE_BYTES: Final = 3_000_000  # below: POST .../attachments; from here on: an upload session
MAX_MESSAGE_BYTES: Final = 150 * MiB  # Exchange Online's largest message (MaxSendSize at most 150 MB)
REQUEST_MARGIN: Final = 64 * 1024  # HTTP headers and JSON around the documents
FILE_ATTACHMENT: Final = "#microsoft.graph.fileAttachment"
SPLIT_FIX: Final = (
    "share the file as a link (OneDrive or SharePoint) or split it over several mails; Exchange Online "
    "takes no larger mail on any route"
)


@dataclass(frozen=True)
class DraftPlan:
    """What to send: the draft (with ``message['attachments']`` as far as they fit) and the other
    files in the mail's order, each posted (:func:`is_small`) or uploaded."""

    message: dict[str, Any]
    files: tuple[UnpackedFile, ...]
    total_files: int

    @property
    def uploads(self) -> int:
        return sum(not is_small(file) for file in self.files)


def is_small(file: UnpackedFile) -> bool:
    return file.size < SMALL_FILE_BYTES


def check_size(raw_size: int) -> None:
    """The whole message against Exchange Online's largest message (before anything is sent); a file
    is never larger than the message that carries it, so upload sessions' 150 MB hold as well."""
    if raw_size > MAX_MESSAGE_BYTES:
        raise SendError(
            f"the mail is {raw_size / MiB:.1f} MB; Exchange Online takes at most "
            f"{MAX_MESSAGE_BYTES // MiB} MB per message (attachments included, as sent: base64 adds a third)",
            permanent=True,
            fix=SPLIT_FIX,
        )


def plan_draft(mail: UnpackedMail, envelope: Sequence[str]) -> DraftPlan:
    """The draft of ``mail`` for the envelope recipients ``envelope``; SendError for a body that does
    not fit into one request."""
    message = draft_message(mail, envelope)
    budget = MAX_REQUEST_BYTES - REQUEST_MARGIN
    used = _json_size(message)
    if used > budget:
        raise SendError(
            f"the text of the mail is {used // 1024} KB, more than one Microsoft Graph request carries "
            f"({MAX_REQUEST_BYTES // MiB} MB)",
            permanent=True,
            fix="send it over SMTP (WICBOX_MAILCLIENT_SENDPROTOCOL = SMTP or AUTO), or put the long "
            "text in an attachment",
        )
    inline: list[dict[str, Any]] = []
    taken = 0
    for file in mail.files:
        document = file_attachment(file)
        size = _json_size(document) + 2
        if not is_small(file) or used + size > budget:
            break
        inline.append(document)
        used += size
        taken += 1
    if inline:
        message["attachments"] = inline
    return DraftPlan(message, mail.files[taken:], len(mail.files))


def draft_message(mail: UnpackedMail, envelope: Sequence[str]) -> dict[str, Any]:
    """The JSON of ``POST /users/{mailbox}/messages`` for ``mail``, without its files."""
    named = {address.casefold() for _name, address in mail.recipients}
    hidden = [address for address in dict.fromkeys(envelope) if address.casefold() not in named]
    message: dict[str, Any] = {
        "subject": mail.subject,
        "body": {"contentType": "html" if mail.body_is_html else "text", "content": mail.body},
        "toRecipients": [recipient(pair) for pair in mail.to],
        "ccRecipients": [recipient(pair) for pair in mail.cc],
        "bccRecipients": [recipient(pair) for pair in (*mail.bcc, *(("", address) for address in hidden))],
    }
    if mail.sender is not None:
        message["from"] = recipient(mail.sender)
    if mail.reply_to:
        message["replyTo"] = [recipient(pair) for pair in mail.reply_to]
    if mail.message_id:
        message["internetMessageId"] = mail.message_id
    if mail.stable_id:
        message["internetMessageHeaders"] = [{"name": STABLE_ID_HEADER, "value": mail.stable_id}]
    return message


def recipient(pair: NamedAddress) -> dict[str, Any]:
    name, address = pair
    email: dict[str, str] = {"address": address}
    if name:
        email["name"] = name
    return {"emailAddress": email}


def file_attachment(file: UnpackedFile) -> dict[str, Any]:
    """A fileAttachment with its bytes (``POST .../attachments``, or in the draft itself)."""
    document: dict[str, Any] = {
        "@odata.type": FILE_ATTACHMENT,
        "name": file.name,
        "contentType": file.content_type,
        "contentBytes": base64.b64encode(file.content).decode("ascii"),
        "isInline": file.inline,
    }
    if file.content_id:
        document["contentId"] = file.content_id
    return document


def upload_item(file: UnpackedFile) -> dict[str, Any]:
    """The body of ``POST .../attachments/createUploadSession`` for ``file``."""
    item: dict[str, Any] = {
        "attachmentType": "file",
        "name": file.name,
        "size": file.size,
        "contentType": file.content_type,
        "isInline": file.inline,
    }
    if file.content_id:
        item["contentId"] = file.content_id
    return {"AttachmentItem": item}


def _json_size(document: dict[str, Any]) -> int:
    """Bytes of ``document`` as the HTTP client sends it (JSON with non-ASCII escaped)."""
    return len(json.dumps(document))
