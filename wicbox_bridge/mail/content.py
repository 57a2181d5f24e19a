"""From a MIME tree to bodies and attachments: transfer decoding, charsets, file names.

The main text/plain and text/html bodies are the first part of each type (document order) that is
not marked as an attachment and names no file. Every other leaf is an attachment: files, inline
images, extra text parts, ``message/*`` parts (stored as their bytes, named from their subject)
and any part whose transfer encoding cannot be decoded (stored as its raw encoded bytes).
"""

from __future__ import annotations

import binascii
from dataclasses import dataclass, field

from wicbox_bridge.mail.filename import sanitise_filename
from wicbox_bridge.mail.headers import filename_of, parse_params
from wicbox_bridge.mail.limits import DEFAULT_LIMITS, ParseLimits
from wicbox_bridge.mail.record import Attachment
from wicbox_bridge.mail.text import decode_bytes, header_bytes_to_text, header_text, scrub_text
from wicbox_bridge.mail.tree import (
    FastPathUnsupported,
    MimePart,
    PartBody,
    header_block_end,
    split_headers_fast,
)

_IDENTITY_ENCODINGS = frozenset({"", "7bit", "8bit", "binary"})
_UUENCODE = frozenset({"x-uuencode", "uuencode", "x-uue", "uue"})
_BODY_TYPES = frozenset({"text/plain", "text/html"})


@dataclass
class MailContent:
    """Bodies and attachments collected from one tree (mutable while it is being collected)."""

    body_text: str | None = None
    body_html: str | None = None
    attachments: list[Attachment] = field(default_factory=list)


def decode_transfer(body: PartBody, encoding: str | None, what: str, problems: list[str]) -> bytes | None:
    """Undo Content-Transfer-Encoding; None when the body is not valid in its encoding.

    A view is decoded straight from the mail's bytes; only the result is a new ``bytes``.
    """
    name = (encoding or "").split(";")[0].strip().strip('"').lower()
    if name in _IDENTITY_ENCODINGS:
        return bytes(body)
    if name.replace(" ", "-") == "quoted-printable":
        return binascii.a2b_qp(body)
    if name == "base64":
        try:
            return binascii.a2b_base64(body)
        except (binascii.Error, ValueError):
            return None
    if name in _UUENCODE:
        return _decode_uuencode(body)
    problems.append(f"{what}: unknown Content-Transfer-Encoding {encoding!r}; body taken as is")
    return bytes(body)


def _decode_uuencode(body: PartBody) -> bytes | None:
    lines = bytes(body).splitlines()
    start = next((i for i, line in enumerate(lines) if line.startswith(b"begin ")), None)
    if start is None:
        return None
    out: list[bytes] = []
    for line in lines[start + 1 :]:
        if line.strip() == b"end":
            return b"".join(out)
        try:
            out.append(binascii.a2b_uu(line))
        except binascii.Error:
            try:  # some encoders pad lines wrongly; the stdlib's uu handled it this way
                length = (((line[0] - 32) & 63) * 4 + 5) // 3
                out.append(binascii.a2b_uu(line[:length]))
            except (binascii.Error, IndexError):
                return None
    return None


def collect_content(root: MimePart, problems: list[str], limits: ParseLimits = DEFAULT_LIMITS) -> MailContent:
    content = MailContent()
    for index, leaf in enumerate(root.walk_leaves(), start=1):
        _take_leaf(leaf, index, content, problems, limits)
    return content


def _take_leaf(
    leaf: MimePart, index: int, content: MailContent, problems: list[str], limits: ParseLimits
) -> None:
    what = f"part {index} ({leaf.content_type})"
    if leaf.kept_whole:
        _attach(content, None, leaf.content_type, bytes(leaf.body), problems)
        return
    content_type = "text/plain" if leaf.content_type.startswith("multipart/") else leaf.content_type
    type_text = _text(leaf, "content-type", what, problems, limits.max_header_value)
    type_params = parse_params(type_text, what, problems, limits.max_params)
    disposition_text = _text(leaf, "content-disposition", what, problems, limits.max_header_value)
    disposition = parse_params(disposition_text, what, problems, limits.max_params)
    declared_name = filename_of(disposition, type_params, problems)
    decoded = decode_transfer(leaf.body, leaf.header("content-transfer-encoding"), what, problems)
    if decoded is None:
        problems.append(
            f"{what}: invalid {leaf.header('content-transfer-encoding')!r} transfer "
            "encoding; stored as its raw encoded bytes"
        )
        _attach(content, declared_name, content_type, bytes(leaf.body), problems)
        return
    if content_type in _BODY_TYPES and disposition.value != "attachment" and declared_name is None:
        text = decode_bytes(decoded, type_params.get("charset"), what, problems)
        if content_type == "text/plain" and content.body_text is None:
            content.body_text = scrub_text(text, what, problems)
            return
        if content_type == "text/html" and content.body_html is None:
            content.body_html = scrub_text(text, what, problems)
            return
    if declared_name is None and content_type == "message/rfc822":
        declared_name = name_from_subject(decoded, problems, limits)
    _attach(content, declared_name, content_type, decoded, problems)


def _text(part: MimePart, name: str, what: str, problems: list[str], max_chars: int) -> str | None:
    raw = part.header(name)
    return None if raw is None else header_bytes_to_text(raw, f"{what} {name}", problems, max_chars)


def _attach(
    content: MailContent, name: str | None, content_type: str, data: bytes, problems: list[str]
) -> None:
    index = len(content.attachments) + 1
    filename = sanitise_filename(name, index, content_type)
    if name is not None and filename != name:
        problems.append(f"attachment {index}: file name {name!r} stored as {filename!r}")
    content.attachments.append(Attachment(filename, content_type, data))


def name_from_subject(
    message: bytes, problems: list[str], limits: ParseLimits = DEFAULT_LIMITS
) -> str | None:
    """``<subject>.eml`` for an attached message; None when it has no subject. Only its header
    block is read (at most the header limit), however large the attached message."""
    try:
        headers, _ = split_headers_fast(message, max_bytes=limits.max_header_bytes)
        raw = next((value for key, value in headers if key == "subject"), None)
    except FastPathUnsupported:
        raw = _subject_by_stdlib(message[: header_block_end(message, limits.max_header_bytes)])
    subject = header_text(raw, "attached message Subject", problems, limits.max_header_value)
    return f"{subject}.eml" if subject else None


def _subject_by_stdlib(header_block: bytes) -> str | None:
    import email.parser  # noqa: PLC0415 - only for attached messages with irregular headers
    from email.policy import compat32  # noqa: PLC0415

    parsed = email.parser.BytesHeaderParser(policy=compat32).parsebytes(header_block)
    return next((value for key, value in parsed.raw_items() if key.lower() == "subject"), None)
