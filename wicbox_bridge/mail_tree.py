"""The MIME tree of a mail, built two ways that must agree.

:func:`split_fast` is a header split plus a boundary scan over the bytes (C-speed ``find`` and
regular expressions, no line-by-line work). It handles well-formed structure only and raises
:class:`FastPathUnsupported` for anything irregular (a header line that is no header, bare CR
line ends, a missing or odd boundary, a part that does not end), so those mails go to
:func:`split_stdlib`, which uses the standard library's lenient compat32 parser. Both produce
:class:`MimePart` trees with identical raw header values and raw (still transfer-encoded) leaf
bodies: the compat32 conventions (value after the colon with leading blanks removed, folding kept;
the line end before a boundary belongs to the boundary) are followed by the fast path too.

``message/*`` parts are leaves in both: their body is kept as bytes (it is stored as an
attachment), and nesting is bounded by :data:`MAX_DEPTH`.
"""

from __future__ import annotations

import email.message
import email.parser
import re
from collections.abc import Iterator
from dataclasses import dataclass
from email import errors as email_errors
from email.policy import compat32

MAX_DEPTH = 32
_HEADER_LINE = re.compile(rb"[\x21-\x39\x3b-\x7e]+:")
_BLANK_LINE = re.compile(rb"\r?\n\r?\n")
_BOUNDARY_CHARS = re.compile(r"[0-9A-Za-z'()+_,\-./:=? ]{0,69}[0-9A-Za-z'()+_,\-./:=?]")


class FastPathUnsupported(Exception):
    """The fast splitter met structure it does not handle; the standard library parser will."""


@dataclass(frozen=True)
class MimePart:
    """One MIME node: raw headers (lower-cased names; values as ASCII with surrogate-escaped
    8-bit bytes, folding kept), the resolved ``type/subtype``, and either children (a multipart
    with a usable boundary) or the raw body bytes (a leaf). A multipart leaf is either one whose
    boundary is unusable (its body is then read as text) or one ``kept_whole`` below MAX_DEPTH."""

    headers: tuple[tuple[str, str], ...]
    content_type: str
    body: bytes = b""
    children: tuple[MimePart, ...] = ()
    problems: tuple[str, ...] = ()
    kept_whole: bool = False  # a multipart nested too deep, kept as its raw body

    @property
    def is_container(self) -> bool:
        return bool(self.children)

    def header(self, name: str) -> str | None:
        """The first header called ``name`` (lower case), raw; None when absent."""
        for key, value in self.headers:
            if key == name:
                return value
        return None

    def header_all(self, name: str) -> list[str]:
        return [value for key, value in self.headers if key == name]

    def all_problems(self) -> list[str]:
        """Structural problems of this node and every node below it, in document order."""
        return [note for part in self._walk() for note in part.problems]

    def walk_leaves(self) -> list[MimePart]:
        """Leaves in document order."""
        return [part for part in self._walk() if not part.is_container]

    def _walk(self) -> list[MimePart]:
        """Every node in document order (iterative: no recursion limit involved)."""
        nodes: list[MimePart] = []
        stack: list[MimePart] = [self]
        while stack:
            part = stack.pop()
            nodes.append(part)
            stack.extend(reversed(part.children))
        return nodes


def content_type_of(raw: str | None, default: str) -> str:
    """``type/subtype`` as compat32 reads it: up to the first ';', lower-cased; malformed -> text/plain."""
    if raw is None:
        return default
    ctype = raw.partition(";")[0].strip().lower()
    return ctype if ctype.count("/") == 1 else "text/plain"


def _child_default(parent_type: str) -> str:
    return "message/rfc822" if parent_type == "multipart/digest" else "text/plain"


# ---------------------------------------------------------------------------------------------
# Fast path


def split_headers_fast(data: bytes) -> tuple[tuple[tuple[str, str], ...], bytes]:
    """Split ``data`` into raw headers and body; raises FastPathUnsupported on irregular headers."""
    if data.startswith(b"From "):  # an mbox envelope line, as compat32 skips it
        data = data[data.find(b"\n") + 1 :] if b"\n" in data else b""
    if data.startswith((b"\n", b"\r\n")):
        return (), data[1:] if data[:1] == b"\n" else data[2:]
    match = _BLANK_LINE.search(data)
    if match is None:
        block, body = data, b""
    else:
        block, body = data[: match.start() + (2 if data[match.start()] == 13 else 1)], data[match.end() :]
    if block.count(b"\r") != block.count(b"\r\n"):
        raise FastPathUnsupported("bare CR in the header block")
    return _parse_header_block(block), body


def _parse_header_block(block: bytes) -> tuple[tuple[str, str], ...]:
    headers: list[tuple[str, list[bytes]]] = []
    for line in block.splitlines(keepends=True):
        if line[:1] in (b" ", b"\t"):
            if not headers:
                raise FastPathUnsupported("the first header line is a continuation")
            headers[-1][1].append(line)
        elif _HEADER_LINE.match(line):
            name, _, value = line.partition(b":")
            headers.append((name.decode("ascii").lower(), [value.lstrip(b" \t")]))
        else:
            raise FastPathUnsupported("a header line without a name")
    return tuple(
        (name, b"".join(lines).rstrip(b"\r\n").decode("ascii", "surrogateescape")) for name, lines in headers
    )


def split_fast(
    data: bytes, default_type: str = "text/plain", depth: int = 0, outer_boundaries: tuple[bytes, ...] = ()
) -> MimePart:
    """Build the tree of ``data`` (a whole message or one part) without the stdlib parser."""
    headers, body = split_headers_fast(data)
    content_type = content_type_of(_first(headers, "content-type"), default_type)
    if not content_type.startswith("multipart/"):
        return MimePart(headers, content_type, body)
    if depth >= MAX_DEPTH:
        return _too_deep(headers, content_type, body)
    boundary = _fast_boundary(_first(headers, "content-type"))
    if boundary in outer_boundaries:
        raise FastPathUnsupported("a nested multipart reuses an outer boundary")
    segments = _split_on_boundary(body, boundary)
    child_default = _child_default(content_type)
    children = tuple(
        split_fast(segment, child_default, depth + 1, (*outer_boundaries, boundary)) for segment in segments
    )
    return MimePart(headers, content_type, b"", children)


def _first(headers: tuple[tuple[str, str], ...], name: str) -> str | None:
    return next((value for key, value in headers if key == name), None)


def _too_deep(headers: tuple[tuple[str, str], ...], content_type: str, body: bytes) -> MimePart:
    note = f"MIME nesting deeper than {MAX_DEPTH} levels; the deeper part is kept whole as an attachment"
    return MimePart(headers, content_type, body, (), (note,), kept_whole=True)


def _fast_boundary(raw: str | None) -> bytes:
    found: list[str] = []
    for piece in (raw or "").split(";")[1:]:
        name, sep, value = piece.partition("=")
        name = name.strip().lower()
        if name.startswith("boundary*"):
            raise FastPathUnsupported("an RFC 2231 boundary parameter")
        if sep and name == "boundary":
            found.append(value.strip())
    if len(found) != 1:
        raise FastPathUnsupported("no single boundary parameter")
    value = found[0]
    if len(value) >= 2 and value[0] == value[-1] == '"':
        value = value[1:-1]
    value = value.rstrip()
    if not _BOUNDARY_CHARS.fullmatch(value):
        raise FastPathUnsupported("a boundary outside RFC 2046's characters")
    return value.encode("ascii")


def _split_on_boundary(body: bytes, boundary: bytes) -> list[bytes]:
    if body.count(b"\r") != body.count(b"\r\n"):
        raise FastPathUnsupported("bare CR in a multipart body")
    segments: list[bytes] = []
    start: int | None = None
    for line_start, line_end, is_close in _delimiter_lines(body, b"--" + boundary):
        if start is not None:
            if line_start <= start:
                raise FastPathUnsupported("two boundary lines in a row")
            segments.append(_without_final_eol(body[start:line_start]))
        if is_close:
            if start is None:
                raise FastPathUnsupported("a close boundary before the first part")
            return segments
        start = line_end
    raise FastPathUnsupported("no close boundary" if segments else "no boundary line")


def _delimiter_lines(body: bytes, marker: bytes) -> Iterator[tuple[int, int, bool]]:
    """(start, end after the line break, is close delimiter) of each delimiter line, as compat32
    recognises them: the marker at a line start, an optional "--", then only blanks."""
    position = body.find(marker)
    while position >= 0:
        line_end = body.find(b"\n", position)
        line_end = len(body) if line_end < 0 else line_end + 1
        if position == 0 or body[position - 1] == 0x0A:
            rest = body[position + len(marker) : line_end].rstrip(b"\r\n")
            is_close = rest.startswith(b"--")
            if not (rest[2:] if is_close else rest).strip(b" \t"):
                yield position, line_end, is_close
        position = body.find(marker, position + 1)


def _without_final_eol(segment: bytes) -> bytes:
    if segment.endswith(b"\r\n"):
        return segment[:-2]
    return segment[:-1] if segment.endswith(b"\n") else segment


# ---------------------------------------------------------------------------------------------
# Standard-library path


class _OpaqueMessage(email.message.Message):
    """A compat32 Message that keeps ``message/*`` bodies as bytes instead of parsing them."""

    def get_content_type(self) -> str:
        ctype = super().get_content_type()
        return "application/octet-stream" if ctype.startswith("message/") else ctype

    def raw_payload(self) -> object:
        """The payload as parsed: a list of parts, or the body as ASCII with surrogate-escaped
        8-bit bytes (``get_payload()`` would decode those with the declared charset)."""
        return self._payload  # type: ignore[attr-defined]


_STRUCTURE_DEFECTS: dict[type[email_errors.MessageDefect], str] = {
    email_errors.NoBoundaryInMultipartDefect: "multipart without a boundary parameter; body kept whole",
    email_errors.StartBoundaryNotFoundDefect: "multipart whose boundary never occurs; body kept whole",
    email_errors.CloseBoundaryNotFoundDefect: "multipart without its closing boundary (truncated mail?)",
    email_errors.MissingHeaderBodySeparatorDefect: "a header line without a name; the rest is body",
    email_errors.FirstHeaderLineIsContinuationDefect: "the first header line is a continuation; ignored",
}


def split_stdlib(data: bytes) -> MimePart:
    """Build the tree with the standard library's compat32 parser (lenient, slower)."""
    parser = email.parser.BytesParser(_class=_OpaqueMessage, policy=compat32)
    message = parser.parsebytes(data)
    assert isinstance(message, _OpaqueMessage)
    return _from_message(message, "text/plain", 0)


def _from_message(message: _OpaqueMessage, default_type: str, depth: int) -> MimePart:
    headers = tuple((name.lower(), value) for name, value in message.raw_items())
    content_type = content_type_of(_first(headers, "content-type"), default_type)
    problems = tuple(
        note
        for kind, note in _STRUCTURE_DEFECTS.items()
        if any(isinstance(defect, kind) for defect in message.defects)
    )
    payload = message.raw_payload()
    if not isinstance(payload, list):
        text = payload if isinstance(payload, str) else ""
        return MimePart(headers, content_type, text.encode("ascii", "surrogateescape"), (), problems)
    if depth >= MAX_DEPTH:
        body = message.as_bytes().partition(b"\n\n")[2]
        return _too_deep(headers, content_type, body)
    child_default = _child_default(content_type)
    children = tuple(_from_message(child, child_default, depth + 1) for child in payload)
    return MimePart(headers, content_type, b"", children, problems)
