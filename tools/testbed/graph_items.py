"""What the Graph emulator keeps of drafts: their JSON fields, attachments and upload sessions.

A draft is a message in Drafts created with ``POST /users/{id}/messages`` (JSON); its MIME is
written from these fields (:func:`tools.testbed.graph_drafts.draft_mime`) whenever it changes, so
the Drafts folder, ``$value`` and, once sent, Sent Items and ``submitted`` show what Exchange would.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

DEFAULT_MAX_SEND_SIZE = 35 * 1024 * 1024  # Exchange Online's default MaxSendSize (35 MB)
MAX_ATTACHMENT_SIZE = 150 * 1024 * 1024  # an upload session's limit, and the largest MaxSendSize
MIN_UPLOAD_SIZE = 3_000_000  # createUploadSession refuses smaller files ("under 3 MB: POST it")


@dataclass
class DraftAttachment:
    attachment_id: str
    name: str
    content_type: str
    content: bytes = field(repr=False)
    is_inline: bool = False
    content_id: str | None = None


@dataclass
class Draft:
    """The fields the draft was created with (subject, body, recipients, headers) and its files."""

    fields: dict[str, Any]
    attachments: list[DraftAttachment] = field(default_factory=list)

    @property
    def size(self) -> int:
        """What Exchange counts against MaxSendSize here: the body and the files' bytes."""
        body = self.fields.get("body") or {}
        text = str(body.get("content") or "") if isinstance(body, dict) else ""
        return len(text.encode("utf-8")) + sum(len(a.content) for a in self.attachments)


@dataclass
class UploadSession:
    """An attachment being uploaded to a draft: ``received`` grows chunk by chunk, in order."""

    session_id: str
    token: str = field(repr=False)
    message_id: str  # the draft's immutable id
    name: str
    size: int
    content_type: str
    is_inline: bool
    content_id: str | None
    expires: dt.datetime
    received: bytearray = field(default_factory=bytearray, repr=False)
    chunks: list[int] = field(default_factory=list)  # sizes of the chunks taken, for tests
