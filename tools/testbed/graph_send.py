"""Microsoft Graph's ``POST /users/{id}/sendMail`` with MIME content, as Exchange Online runs it.

The body is the message's MIME, base64-encoded, with ``Content-Type: text/plain``; the request may
be at most 4 MB (larger messages need a draft and upload sessions). Exchange takes the recipients
from the To, Cc and Bcc headers (there is no envelope), keeps a copy in Sent Items (with its Bcc
header) and answers ``202 Accepted`` without a body. A body that is not base64 is ``400
ErrorMimeContentInvalidBase64String``; a message without recipients is ``400
ErrorInvalidRecipients``; Mail.Send is checked by :mod:`tools.testbed.graph_auth`.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
from email import message_from_bytes
from email.policy import compat32
from email.utils import getaddresses

from tools.testbed.graph_docs import ApiReply
from tools.testbed.graph_model import GraphStoreError, Mailbox, Submission

MAX_REQUEST_BYTES = 4 * 1024 * 1024


def send_mime(mailbox: Mailbox, content_type: str, body: bytes) -> ApiReply:
    """Accept one MIME message for ``mailbox``: keep it in Sent Items and in ``submitted``."""
    if not content_type.lower().startswith("text/plain"):
        raise GraphStoreError(
            400, "ErrorInvalidRequest", "This emulator takes MIME sendMail only (Content-Type: text/plain)."
        )
    if len(body) > MAX_REQUEST_BYTES:
        raise GraphStoreError(
            413, "ErrorRequestEntityTooLarge", "The request exceeds the maximum size of 4 MB."
        )
    try:
        raw = base64.b64decode(body, validate=True)
    except (binascii.Error, ValueError):
        raise GraphStoreError(
            400, "ErrorMimeContentInvalidBase64String", "Invalid base64 string for MIME content."
        ) from None
    parsed = message_from_bytes(raw, policy=compat32)
    fields = [value for name in ("To", "Cc", "Bcc") for value in parsed.get_all(name, [])]
    recipients = tuple(address for _name, address in getaddresses([str(f) for f in fields]) if "@" in address)
    if not recipients:
        raise GraphStoreError(
            400,
            "ErrorInvalidRecipients",
            "At least one recipient isn't valid., A message can't be sent because it contains no recipients.",
        )
    mailbox.add_message("sentitems", raw, dt.datetime.now(dt.timezone.utc), True)
    mailbox.submitted.append(Submission(raw, recipients))
    return ApiReply(202)
