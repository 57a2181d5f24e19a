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

Every layer is bounded (:mod:`wicbox_bridge.mail.limits`): the fast path is linear in the mail's
size and enforces the depth, part and header limits itself; the reference path, whose cost grows
with lines times nesting depth, only gets a mail whose pre-scan keeps that cost within the budget.
A mail the fast path declines and the budget refuses goes to the last resort, with a note that
names the limit. Decoded header values are bounded too (:attr:`ParseLimits.max_header_value`).
"""

from __future__ import annotations

import email.parser
import hashlib
from email.policy import compat32

from wicbox_bridge.mail.content import collect_content
from wicbox_bridge.mail.headers import format_address, normalise_message_id, parse_addresses, parse_date
from wicbox_bridge.mail.limits import DEFAULT_LIMITS, ParseLimits, prescan
from wicbox_bridge.mail.record import Attachment, MailRecord, RecipientHeader
from wicbox_bridge.mail.text import header_bytes_to_text, header_text
from wicbox_bridge.mail.tree import (
    FastPathUnsupported,
    MimePart,
    header_block_end,
    split_fast,
    split_headers_fast,
    split_stdlib,
)

__all__ = [
    "Attachment",
    "FastPathUnsupported",
    "MailRecord",
    "ParseLimits",
    "RecipientHeader",
    "parse_mail",
    "parse_mail_fast",
    "parse_mail_stdlib",
]


def parse_mail(raw: bytes, limits: ParseLimits = DEFAULT_LIMITS) -> MailRecord:
    """Parse one mail's exact bytes within ``limits``. Never raises; problems (and any limit the
    mail went over) are listed in ``record.problems``."""
    try:
        return parse_mail_fast(raw, limits)
    except Exception as exc:  # FastPathUnsupported, or a fast-path bug: the reference path decides
        declined = exc
    over_budget = prescan(raw).over_reference_budget(limits)
    if over_budget is not None:
        note = (
            f"irregular MIME structure ({declined}) over the parse budget ({over_budget}); "
            "filed with its raw bytes and headers only"
        )
        return _last_resort(raw, note, limits)
    try:
        return parse_mail_stdlib(raw, limits)
    except Exception as exc:
        note = f"the mail could not be parsed ({type(exc).__name__}); filed with its raw bytes only"
        return _last_resort(raw, note, limits)


def parse_mail_fast(raw: bytes, limits: ParseLimits = DEFAULT_LIMITS) -> MailRecord:
    """The fast path alone; raises :class:`FastPathUnsupported` for structure it does not handle."""
    return record_from_tree(raw, split_fast(raw, limits), limits)


def parse_mail_stdlib(raw: bytes, limits: ParseLimits = DEFAULT_LIMITS) -> MailRecord:
    """The reference path alone (standard library compat32 parser, same decoding as the fast path).
    Unbounded in time for hostile input: :func:`parse_mail` checks the budget first."""
    return record_from_tree(raw, split_stdlib(raw, limits), limits)


def record_from_tree(raw: bytes, root: MimePart, limits: ParseLimits = DEFAULT_LIMITS) -> MailRecord:
    problems = root.all_problems()
    header = _HeaderReader(root, problems, limits.max_header_value)
    to_pairs = header.addresses("to", "To")
    cc_pairs = header.addresses("cc", "Cc")
    delivered_to = tuple(addr for _, addr in header.addresses("delivered-to", "Delivered-To"))
    x_original_to = tuple(addr for _, addr in header.addresses("x-original-to", "X-Original-To"))
    from_pairs = header.addresses("from", "From")
    content = collect_content(root, problems, limits)
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

    def __init__(self, root: MimePart, problems: list[str], max_value: int) -> None:
        self._root = root
        self._problems = problems
        self._max = max_value

    def plain(self, name: str, what: str) -> str | None:
        raw = self._root.header(name)
        return None if raw is None else header_bytes_to_text(raw, what, self._problems, self._max)

    def text(self, name: str) -> str | None:
        return header_text(self._root.header(name), name, [], self._max) or None

    def addresses(self, name: str, what: str) -> tuple[tuple[str, str], ...]:
        values = self._root.header_all(name)
        if not values:
            return ()
        joined = ", ".join(header_bytes_to_text(value, what, self._problems, self._max) for value in values)
        return parse_addresses(joined, what, self._problems)


def _last_resort(raw: bytes, note: str, limits: ParseLimits) -> MailRecord:
    """The raw bytes with what the top-level headers give (read from at most the header limit)."""
    problems = [note]
    headers = _top_headers(raw, limits)
    first = dict(reversed(headers))
    reader = _HeaderReader(MimePart(headers, "text/plain"), problems, limits.max_header_value)
    return MailRecord(
        sha256=hashlib.sha256(raw).hexdigest(),
        size=len(raw),
        message_id=normalise_message_id(reader.plain("message-id", "Message-ID")),
        subject=header_text(first.get("subject"), "Subject", problems, limits.max_header_value),
        from_addr=reader.text("from"),
        problems=tuple(dict.fromkeys(problems)),
    )


def _top_headers(raw: bytes, limits: ParseLimits) -> tuple[tuple[str, str], ...]:
    """The top-level headers, leniently: the fast split, else the standard library's header
    parser on the header block alone (bounded by the header limit, so linear)."""
    try:
        return split_headers_fast(raw, max_bytes=limits.max_header_bytes, max_lines=limits.max_header_lines)[
            0
        ]
    except Exception:  # noqa: S110 - irregular headers: the lenient parser below
        pass
    try:
        block = raw[: header_block_end(raw, limits.max_header_bytes)]
        parsed = email.parser.BytesHeaderParser(policy=compat32).parsebytes(block)
        return tuple((name.lower(), value) for name, value in parsed.raw_items())
    except Exception:
        return ()
