"""What a mail becomes once parsed: the values filed into WICBOX_MAIL and WICBOX_ATTACHMENT.

The raw bytes themselves (RAW_MIME) are not repeated here: the caller has them, and the record
carries their SHA-256 and size so both can be filed together.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import Enum


class RecipientHeader(Enum):
    """Headers that name a recipient, in the order routing consults them."""

    TO = "To"
    CC = "Cc"
    DELIVERED_TO = "Delivered-To"
    X_ORIGINAL_TO = "X-Original-To"


@dataclass(frozen=True)
class Attachment:
    """One stored attachment: a sanitised file name, its ``type/subtype`` and its decoded bytes."""

    filename: str
    content_type: str
    content: bytes

    @property
    def size(self) -> int:
        return len(self.content)

    def __repr__(self) -> str:
        return f"Attachment(filename={self.filename!r}, content_type={self.content_type!r}, size={self.size})"


@dataclass(frozen=True)
class MailRecord:
    """A parsed mail.

    Addresses are kept as the mail gives them (display name and all, encoded words decoded);
    ``recipients`` holds the lower-cased addr-specs of To, Cc, Delivered-To and X-Original-To in
    that order, for routing. ``problems`` lists every header or part that could not be decoded
    cleanly; such content is kept in a lossless or lenient form rather than dropped.
    """

    sha256: str
    size: int
    message_id: str | None = None
    subject: str | None = None
    from_addr: str | None = None
    to_addrs: tuple[str, ...] = ()
    cc_addrs: tuple[str, ...] = ()
    delivered_to: tuple[str, ...] = ()
    x_original_to: tuple[str, ...] = ()
    sent_at: datetime | None = None
    body_text: str | None = None
    body_html: str | None = None
    attachments: tuple[Attachment, ...] = ()
    recipients: tuple[tuple[RecipientHeader, str], ...] = ()
    problems: tuple[str, ...] = ()

    @property
    def recipient_addresses(self) -> frozenset[str]:
        """Lower-cased addr-specs of every recipient header (To, Cc, Delivered-To, X-Original-To)."""
        return frozenset(address for _, address in self.recipients)
