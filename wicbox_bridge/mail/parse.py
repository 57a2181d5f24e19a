"""Raw mail bytes to a :class:`MailRecord`, pure and I/O-free; never raises.

Three layers, tried in order:

1. the fast path (:func:`parse_mail_fast`): a header split and a boundary scan over the bytes,
   about an order of magnitude faster than the standard library's full parse; it refuses
   irregular structure by raising :class:`FastPathUnsupported`;
2. the reference path (:func:`parse_mail_stdlib`): the standard library's lenient compat32 parser
   builds the same tree, decoded by the same code, so both give equal records for any mail the
   fast path accepts (the tests check this on the corpus);
3. a last resort for anything that still fails (e.g. a nesting so deep that the standard library
   runs out of stack): a record with the SHA-256, the size, what a header-only look can recover,
   and a problem note. The mail is filed with its raw bytes either way.
"""

from __future__ import annotations

import hashlib

from wicbox_bridge.mail.content import collect_content
from wicbox_bridge.mail.headers import format_address, normalise_message_id, parse_addresses, parse_date
from wicbox_bridge.mail.record import Attachment, MailRecord, RecipientHeader
from wicbox_bridge.mail.text import header_bytes_to_text, header_text
from wicbox_bridge.mail.tree import (
    FastPathUnsupported,
    MimePart,
    split_fast,
    split_headers_fast,
    split_stdlib,
)

__all__ = [
    "Attachment",
    "FastPathUnsupported",
    "MailRecord",
    "RecipientHeader",
    "parse_mail",
    "parse_mail_fast",
    "parse_mail_stdlib",
]


def parse_mail(raw: bytes) -> MailRecord:
    """Parse one mail's exact bytes. Never raises; problems are listed in ``record.problems``."""
    try:
        return parse_mail_fast(raw)
    except Exception:  # noqa: S110 - FastPathUnsupported, or a fast-path bug: the reference path decides
        pass
    try:
        return parse_mail_stdlib(raw)
    except Exception as exc:
        return _last_resort(raw, exc)


def parse_mail_fast(raw: bytes) -> MailRecord:
    """The fast path alone; raises :class:`FastPathUnsupported` for structure it does not handle."""
    return record_from_tree(raw, split_fast(raw))


def parse_mail_stdlib(raw: bytes) -> MailRecord:
    """The reference path alone (standard library compat32 parser, same decoding as the fast path)."""
    return record_from_tree(raw, split_stdlib(raw))


def record_from_tree(raw: bytes, root: MimePart) -> MailRecord:
    problems = root.all_problems()
    header = _HeaderReader(root, problems)
    to_pairs = header.addresses("to", "To")
    cc_pairs = header.addresses("cc", "Cc")
    delivered_to = tuple(addr for _, addr in header.addresses("delivered-to", "Delivered-To"))
    x_original_to = tuple(addr for _, addr in header.addresses("x-original-to", "X-Original-To"))
    from_pairs = header.addresses("from", "From")
    content = collect_content(root, problems)
    recipients = (
        [(RecipientHeader.TO, addr) for _, addr in to_pairs]
        + [(RecipientHeader.CC, addr) for _, addr in cc_pairs]
        + [(RecipientHeader.DELIVERED_TO, addr) for addr in delivered_to]
        + [(RecipientHeader.X_ORIGINAL_TO, addr) for addr in x_original_to]
    )
    return MailRecord(
        sha256=hashlib.sha256(raw).hexdigest(),
        size=len(raw),
        message_id=normalise_message_id(header.plain("message-id", "Message-ID")),
        subject=header_text(root.header("subject"), "Subject", problems),
        from_addr=", ".join(format_address(name, addr) for name, addr in from_pairs) or header.text("from"),
        to_addrs=tuple(format_address(name, addr) for name, addr in to_pairs),
        cc_addrs=tuple(format_address(name, addr) for name, addr in cc_pairs),
        delivered_to=delivered_to,
        x_original_to=x_original_to,
        sent_at=parse_date(header.plain("date", "Date"), problems),
        body_text=content.body_text,
        body_html=content.body_html,
        attachments=tuple(content.attachments),
        recipients=tuple((kind, addr.lower()) for kind, addr in recipients),
        problems=tuple(dict.fromkeys(problems)),
    )


class _HeaderReader:
    """Reads the top-level headers of a tree, collecting problems."""

    def __init__(self, root: MimePart, problems: list[str]) -> None:
        self._root = root
        self._problems = problems

    def plain(self, name: str, what: str) -> str | None:
        raw = self._root.header(name)
        return None if raw is None else header_bytes_to_text(raw, what, self._problems)

    def text(self, name: str) -> str | None:
        return header_text(self._root.header(name), name, []) or None

    def addresses(self, name: str, what: str) -> tuple[tuple[str, str], ...]:
        values = self._root.header_all(name)
        if not values:
            return ()
        joined = ", ".join(header_bytes_to_text(value, what, self._problems) for value in values)
        return parse_addresses(joined, what, self._problems)


def _last_resort(raw: bytes, exc: BaseException) -> MailRecord:
    problems = [f"the mail could not be parsed ({type(exc).__name__}); filed with its raw bytes only"]
    subject = message_id = None
    try:
        headers, _ = split_headers_fast(raw)
        first = dict(reversed(headers))
        subject = header_text(first.get("subject"), "Subject", problems)
        message_id = normalise_message_id(first.get("message-id"))
    except Exception:  # noqa: S110 - best effort only
        pass
    return MailRecord(
        sha256=hashlib.sha256(raw).hexdigest(),
        size=len(raw),
        message_id=message_id,
        subject=subject,
        problems=tuple(problems),
    )
