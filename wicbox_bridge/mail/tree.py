"""The MIME tree of a mail, built two ways that must agree.

:func:`split_fast` is a header split plus a boundary scan over the bytes (C-speed ``find`` and
regular expressions, no line-by-line work). It handles well-formed structure only and raises
:class:`FastPathUnsupported` for anything irregular (a header line that is no header, bare CR
line ends, a missing or odd boundary, a part that does not end), so those mails go to
:func:`split_stdlib`, which uses the standard library's lenient compat32 parser. Both produce
:class:`MimePart` trees with identical raw header values and raw (still transfer-encoded) leaf
bodies: the compat32 conventions (value after the colon with leading blanks removed, folding kept;
the line end before a boundary belongs to the boundary) are followed by the fast path too.
The fast path copies nothing but header blocks: parts are offsets into the mail's bytes and leaf
bodies are ``memoryview`` slices of them, materialised only when they are decoded.

``message/*`` parts are leaves in both: their body is kept raw (it is stored as an
attachment), and nesting is bounded by :data:`MAX_DEPTH`.

Both are bounded by :class:`~wicbox_bridge.mail.limits.ParseLimits` (nesting depth, number of
parts, size of a header block), and the fast path is linear in the mail's size for every input:
each delimiter occurrence is looked at once, a bare CR is searched for once per multipart mail,
and a nested multipart is scanned only to the depth limit. The standard library's parser is not:
its cost grows with lines times nesting depth, so :mod:`wicbox_bridge.mail.parse` gives it only
mails whose pre-scan stays within the budget.
"""

from __future__ import annotations

import email.message
import email.parser
import re
from collections.abc import Iterator
from dataclasses import dataclass
from email import errors as email_errors
from email.policy import compat32

from wicbox_bridge.mail.limits import DEFAULT_LIMITS, ParseLimits

MAX_DEPTH = DEFAULT_LIMITS.max_depth
_HEADER_LINE = re.compile(rb"[\x21-\x39\x3b-\x7e]+:")
_BLANK_LINE = re.compile(rb"\r?\n\r?\n")
_BARE_CR = re.compile(rb"\r(?!\n)")  # one pass; a CR just before the span's end counts as bare
# Any printable ASCII boundary compat32 reads the same way: no quote, backslash or ';' (those need
# its quoting rules), blanks only inside.
_BOUNDARY_CHARS = re.compile(r"[\x21-\x7e](?:[\x20-\x7e]*[\x21-\x7e])?")
_BOUNDARY_UNSAFE = frozenset('"\\;')

PartBody = bytes | memoryview
"""A leaf's raw body: a zero-copy view into the mail's bytes (fast path) or bytes (reference path).
Consumers that need ``bytes`` materialise it with ``bytes(body)`` (no copy when it is bytes)."""


class FastPathUnsupported(Exception):
    """The fast splitter met structure it does not handle; the standard library parser will."""


@dataclass(frozen=True)
class MimePart:
    """One MIME node: raw headers (lower-cased names; values as ASCII with surrogate-escaped
    8-bit bytes, folding kept), the resolved ``type/subtype``, and either children (a multipart
    with a usable boundary) or the raw body (a leaf; see :data:`PartBody`). A multipart leaf is
    either one whose boundary is unusable (its body is then read as text) or one ``kept_whole``
    below MAX_DEPTH."""

    headers: tuple[tuple[str, str], ...]
    content_type: str
    body: PartBody = b""
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
# Fast path: every step works on offsets into the one original ``bytes`` (``find``, ``startswith``
# and regular expressions take start/end positions), so no part of a large mail is copied; a leaf's
# body is a zero-copy ``memoryview`` that is only materialised when it is decoded.


Headers = tuple[tuple[str, str], ...]


def split_headers_fast(
    data: bytes,
    start: int = 0,
    end: int | None = None,
    max_bytes: int = DEFAULT_LIMITS.max_header_bytes,
    max_lines: int = DEFAULT_LIMITS.max_header_lines,
) -> tuple[Headers, int]:
    """Raw headers of ``data[start:end]`` and the offset where its body starts; raises
    FastPathUnsupported on irregular headers. Only the header block is copied, and of it at most
    ``max_bytes`` (header lines past that are ignored)."""
    end = len(data) if end is None else end
    headers, body_start, _ = _split_headers(
        data, start, end, ParseLimits(max_header_bytes=max_bytes, max_header_lines=max_lines)
    )
    return headers, body_start


def header_block_end(data: bytes, max_bytes: int = DEFAULT_LIMITS.max_header_bytes) -> int:
    """Where the top-level header block of ``data`` ends (the blank line), at most ``max_bytes``."""
    match = _BLANK_LINE.search(data, 0, max_bytes)
    return min(len(data), max_bytes) if match is None else match.end()


def _split_headers(data: bytes, start: int, end: int, limits: ParseLimits) -> tuple[Headers, int, str | None]:
    """Headers, body offset, and a note when the header block was cut at a limit."""
    max_bytes = limits.max_header_bytes
    if data.startswith(b"From ", start, end):  # an mbox envelope line, as compat32 skips it
        newline = data.find(b"\n", start, end)
        start = end if newline < 0 else newline + 1
    if data.startswith(b"\n", start, end):
        return (), start + 1, None
    if data.startswith(b"\r\n", start, end):
        return (), start + 2, None
    match = _BLANK_LINE.search(data, start, end)
    if match is None:
        block_end = body_start = end
    else:
        block_end, body_start = match.start() + (2 if data[match.start()] == 13 else 1), match.end()
    note = None
    if block_end - start > max_bytes:
        cut = data.rfind(b"\n", start, start + max_bytes)
        block_end = start + max_bytes if cut < 0 else cut + 1
        note = f"a header block larger than {max_bytes} bytes; the header lines past that are ignored"
    if _BARE_CR.search(data, start, block_end):
        raise FastPathUnsupported("bare CR in the header block")
    lines = data[start:block_end].splitlines(keepends=True)
    if len(lines) > limits.max_header_lines:
        del lines[limits.max_header_lines :]
        note = f"more than {limits.max_header_lines} header lines; the lines past that are ignored"
    return _parse_header_block(lines), body_start, note


def _parse_header_block(block: list[bytes]) -> tuple[tuple[str, str], ...]:
    headers: list[tuple[str, list[bytes]]] = []
    for line in block:
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


def split_fast(data: bytes, limits: ParseLimits = DEFAULT_LIMITS) -> MimePart:
    """Build the tree of a whole message without the stdlib parser; leaf bodies are views of
    ``data`` (which must stay unchanged while the tree is in use)."""
    return _FastSplitter(data, limits).part(0, len(data), "text/plain", 0, ())


class _FastSplitter:
    """Splits one message's bytes; a part is the span ``data[start:end]``."""

    def __init__(self, data: bytes, limits: ParseLimits) -> None:
        self._data = data
        self._view = memoryview(data)
        self._limits = limits
        self._parts = 0

    def part(
        self, start: int, end: int, default_type: str, depth: int, outer_boundaries: tuple[bytes, ...]
    ) -> MimePart:
        self._parts += 1
        headers, body_start, note = _split_headers(self._data, start, end, self._limits)
        notes: tuple[str, ...] = () if note is None else (note,)
        content_type = content_type_of(_first(headers, "content-type"), default_type)
        if not content_type.startswith("multipart/"):
            return MimePart(headers, content_type, self._view[body_start:end], (), notes)
        if depth >= self._limits.max_depth:
            return _too_deep(headers, content_type, self._view[body_start:end], self._limits.max_depth)
        boundary = _fast_boundary(_first(headers, "content-type"))
        if boundary in outer_boundaries:
            raise FastPathUnsupported("a nested multipart reuses an outer boundary")
        if depth == 0 and _BARE_CR.search(self._data, body_start, end):  # once: every part lies within
            raise FastPathUnsupported("bare CR in a multipart body")
        children: list[MimePart] = []
        for segment_start, segment_end in _split_on_boundary(self._data, body_start, end, boundary):
            if self._parts >= self._limits.max_parts:
                notes += (_too_many_parts(self._limits.max_parts),)
                break
            children.append(
                self.part(
                    segment_start,
                    segment_end,
                    _child_default(content_type),
                    depth + 1,
                    (*outer_boundaries, boundary),
                )
            )
        return MimePart(headers, content_type, b"", tuple(children), notes)


def _too_many_parts(limit: int) -> str:
    return f"more than {limit} MIME parts; the parts past that are kept in the raw mail only"


def _first(headers: tuple[tuple[str, str], ...], name: str) -> str | None:
    return next((value for key, value in headers if key == name), None)


def _too_deep(headers: Headers, content_type: str, body: PartBody, limit: int) -> MimePart:
    note = f"MIME nesting deeper than {limit} levels; the deeper part is kept whole as an attachment"
    return MimePart(headers, content_type, body, (), (note,), kept_whole=True)


def _fast_boundary(raw: str | None) -> bytes:
    found: list[str] = []
    for piece in (raw or "").split(";")[1:]:
        name, sep, value = piece.partition("=")
        name = name.strip().lower()
        if name.startswith("boundary*"):
            raise FastPathUnsupported("an RFC 2231 boundary parameter")
        if name == "boundary":
            found.append(value.strip() if sep else "")
    if len(found) != 1:
        raise FastPathUnsupported("no single boundary parameter")
    value = found[0]
    if len(value) >= 2 and value[0] == value[-1] == '"':
        value = value[1:-1]
    value = value.rstrip()
    angled = value.startswith("<") and value.endswith(">")  # compat32 unquotes <...> too
    if angled or not _BOUNDARY_CHARS.fullmatch(value) or not _BOUNDARY_UNSAFE.isdisjoint(value):
        raise FastPathUnsupported("a boundary that needs the standard library's quoting rules")
    pieces = (raw or "").split('"')
    if len(pieces) % 2 == 0 or any(";" in text or "\\" in text for text in pieces[1::2]):
        raise FastPathUnsupported("a quoted parameter that could hide a ';'")
    return value.encode("ascii")


def _split_on_boundary(data: bytes, start: int, end: int, boundary: bytes) -> Iterator[tuple[int, int]]:
    """(start, end) of each part of the multipart body ``data[start:end]``, without the line end
    that belongs to the next delimiter; lazily, so a caller that stops early scans no further."""
    segment_start: int | None = None
    seen = False
    for line_start, line_end, is_close in _delimiter_lines(data, start, end, b"--" + boundary):
        if segment_start is not None:
            if line_start <= segment_start:
                raise FastPathUnsupported("two boundary lines in a row")
            seen = True
            yield segment_start, _without_final_eol(data, segment_start, line_start)
        if is_close:
            if segment_start is None:
                raise FastPathUnsupported("a close boundary before the first part")
            return
        segment_start = line_end
    raise FastPathUnsupported("no close boundary" if seen else "no boundary line")


def _delimiter_lines(data: bytes, start: int, end: int, marker: bytes) -> Iterator[tuple[int, int, bool]]:
    """(start, end after the line break, is close delimiter) of each delimiter line in
    ``data[start:end]``, as compat32 recognises them: the marker at a line start, an optional
    "--", then only blanks."""
    for position in _line_starts_with(data, start, end, marker):
        line_end = data.find(b"\n", position, end)
        line_end = end if line_end < 0 else line_end + 1
        rest = data[position + len(marker) : line_end].rstrip(b"\r\n")
        is_close = rest.startswith(b"--")
        if not (rest[2:] if is_close else rest).strip(b" \t"):
            yield position, line_end, is_close


def _line_starts_with(data: bytes, start: int, end: int, marker: bytes) -> Iterator[int]:
    """Offsets of ``marker`` at a line start in ``data[start:end]``: a C-speed search for a line
    break followed by the marker, so markers inside a line cost nothing (a 1 MB line full of
    them is one scan) and each line's end is looked for once."""
    if data.startswith(marker, start, end):
        yield start
    needle = b"\n" + marker
    found = data.find(needle, start, end)
    while found >= 0:
        yield found + 1
        found = data.find(needle, found + 1, end)


def _without_final_eol(data: bytes, start: int, end: int) -> int:
    """The end of ``data[start:end]`` without its final line break."""
    if data.endswith(b"\r\n", start, end):
        return end - 2
    return end - 1 if data.endswith(b"\n", start, end) else end


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


def split_stdlib(data: bytes, limits: ParseLimits = DEFAULT_LIMITS) -> MimePart:
    """Build the tree with the standard library's compat32 parser (lenient, slower; its cost grows
    with lines times nesting depth, so callers bound its input first)."""
    parser = email.parser.BytesParser(_class=_OpaqueMessage, policy=compat32)
    message = parser.parsebytes(data)
    assert isinstance(message, _OpaqueMessage)
    return _StdlibTree(limits).part(message, "text/plain", 0)


class _StdlibTree:
    """Turns a parsed compat32 message into :class:`MimePart` nodes within the limits."""

    def __init__(self, limits: ParseLimits) -> None:
        self._limits = limits
        self._parts = 0

    def part(self, message: _OpaqueMessage, default_type: str, depth: int) -> MimePart:
        self._parts += 1
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
        if depth >= self._limits.max_depth:
            body = message.as_bytes().partition(b"\n\n")[2]
            return _too_deep(headers, content_type, body, self._limits.max_depth)
        children: list[MimePart] = []
        for child in payload:
            if self._parts >= self._limits.max_parts:
                problems += (_too_many_parts(self._limits.max_parts),)
                break
            children.append(self.part(child, _child_default(content_type), depth + 1))
        return MimePart(headers, content_type, b"", tuple(children), problems)
