"""Structured header values: parameters (RFC 2045/2231), addresses, dates and Message-IDs.

Every function takes header text that :func:`wicbox_bridge.mail.text.header_bytes_to_text` has
already made a ``str`` (8-bit bytes decoded, unfolded) and never raises.
"""

from __future__ import annotations

import re
import urllib.parse
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from email.utils import getaddresses, parsedate_tz

from wicbox_bridge.mail.limits import DEFAULT_LIMITS
from wicbox_bridge.mail.text import decode_bytes, decode_encoded_words

_SECTION = re.compile(r"^(?P<name>[^*]+)\*(?:(?P<index>\d+)\*?|)$")
# Anchored at a token start (the look-behind): a long run without '@' is tried once, not from
# every position in it (that made a 64 KB To: header take seconds).
_ADDR_SPEC = re.compile(r"(?<![^\s<>,;:\"()\[\]])[^\s<>,;:\"()\[\]]+@[^\s<>,;:\"()\[\]]+")
# One parameter: unquoted text, or a quoted string (backslash escapes inside), up to a ';' outside
# quotes. Possessive, so the scan is linear whatever the quotes.
_PARAM_PIECE = re.compile(r'(?:[^";]++|"(?:[^"\\]++|\\.)*+"?)*+', re.DOTALL)
_VALID_ADDR = re.compile(r"[^@\s]+@[^@\s]+")
# The common address list, read without the standard library's parser (which it would return the
# same way): entries of a plain addr-spec, or a display name of atoms (single spaces between) or one
# quoted string without backslashes, and an addr-spec in angle brackets. No comments, dots or other
# specials in names, no groups, no route: anything else takes getaddresses.
_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_SIMPLE_SPEC = rf"{_ATOM}(?:\.{_ATOM})*@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*"
_SIMPLE_ENTRY = re.compile(
    rf"[ \t]*(?:(?P<name>{_ATOM}(?: {_ATOM})*|\"[^\"\\\r\n]*\")[ \t]*<(?P<angled>{_SIMPLE_SPEC})>"
    rf"|(?P<bare>{_SIMPLE_SPEC}))[ \t]*(?:,|$)"
)
_ANGLE_ID = re.compile(r"<([^<>]*)>")


@dataclass(frozen=True)
class HeaderParams:
    """A header like Content-Type split into its lower-cased value and its parameters."""

    value: str
    params: dict[str, str]

    def get(self, name: str) -> str | None:
        return self.params.get(name)


def _split_unquoted(text: str, most: int) -> tuple[list[str], bool]:
    """Split on ';' outside double quotes (a backslash escapes inside quotes), at most ``most``
    pieces; whether pieces were left over."""
    parts: list[str] = []
    position = 0
    while len(parts) < most:
        match = _PARAM_PIECE.match(text, position)
        assert match is not None  # the pattern matches the empty string
        parts.append(match.group())
        position = match.end() + 1  # past the ';'
        if position > len(text):
            return parts, False
    return parts, True


def _unquote(value: str) -> str:
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] == '"':
        return re.sub(r"\\(.)", r"\1", value[1:-1])
    if value.startswith('"'):
        return value[1:]
    return value


def parse_params(
    text: str | None, what: str, problems: list[str], most: int = DEFAULT_LIMITS.max_params
) -> HeaderParams:
    """Parse ``value; a=1; b="x y"; c*=utf-8''%C3%A9; d*0=..; d*1=..`` leniently (at most
    ``most`` parameters; more are noted and ignored)."""
    if not text:
        return HeaderParams("", {})
    if ";" not in text:
        return HeaderParams(text.strip().lower(), {})
    (head, *pieces), left_over = _split_unquoted(text, most + 1)
    if left_over:
        problems.append(f"{what}: more than {most} parameters; the rest ignored")
    plain: dict[str, str] = {}
    sections: dict[str, list[tuple[int, bool, str]]] = {}
    for piece in pieces:
        name, sep, raw_value = piece.partition("=")
        name = name.strip().lower()
        if not sep or not name:
            continue
        match = _SECTION.match(name)
        if match is None:
            plain.setdefault(name, _unquote(raw_value))
        else:
            index = int(match.group("index") or 0)
            encoded = name.endswith("*")
            sections.setdefault(match.group("name"), []).append((index, encoded, _unquote(raw_value)))
    for name, parts in sections.items():
        plain[name] = _join_rfc2231(sorted(parts), f"{what} parameter {name}", problems)
    return HeaderParams(head.strip().lower(), plain)


def _join_rfc2231(parts: list[tuple[int, bool, str]], what: str, problems: list[str]) -> str:
    charset: str | None = None
    chunks: list[bytes] = []
    for position, (_, encoded, section) in enumerate(parts):
        text = section
        if encoded and position == 0 and text.count("'") >= 2:
            charset, _, text = text.split("'", 2)
        if encoded:
            chunks.append(urllib.parse.unquote_to_bytes(text))
        else:
            chunks.append(text.encode("utf-8", "surrogateescape"))
    data = b"".join(chunks)
    return decode_bytes(data, charset or "utf-8", what, problems)


def filename_of(disposition: HeaderParams, content_type: HeaderParams, problems: list[str]) -> str | None:
    """The file name a part declares (Content-Disposition filename, else Content-Type name)."""
    raw = disposition.get("filename") or content_type.get("name")
    if not raw:
        return None
    return decode_encoded_words(raw, "attachment file name", problems).strip() or None


def parse_addresses(text: str | None, what: str, problems: list[str]) -> tuple[tuple[str, str], ...]:
    """(display name, addr-spec) pairs of an address-list header; display names decoded.

    Addresses the standard parser cannot make sense of (e.g. two bare addresses without a comma)
    are recovered from the raw text and reported.
    """
    if not text or not text.strip():
        return ()
    if len(text) > DEFAULT_LIMITS.max_header_value:
        problems.append(
            f"{what}: address list longer than {DEFAULT_LIMITS.max_header_value} characters; the rest ignored"
        )
        text = text[: DEFAULT_LIMITS.max_header_value]
    simple = simple_addresses(text)
    if simple is not None:
        return tuple((decode_encoded_words(name, what, problems).strip(), addr) for name, addr in simple)
    try:
        parsed = getaddresses([text])
    except Exception:
        parsed = [("", "")]
    pairs = [(name, addr.strip()) for name, addr in parsed if _VALID_ADDR.fullmatch(addr.strip())]
    if len(pairs) < len(parsed):
        known = {addr.lower() for _, addr in pairs}
        recovered = [addr for addr in _ADDR_SPEC.findall(text) if addr.lower() not in known]
        if recovered:
            problems.append(f"{what}: malformed address list; addresses taken from the raw text")
            pairs.extend(("", addr) for addr in dict.fromkeys(recovered))
    return tuple((decode_encoded_words(name, what, problems).strip(), addr) for name, addr in pairs)


def simple_addresses(text: str) -> list[tuple[str, str]] | None:
    """The (name, addr-spec) pairs of a plain address list, as ``getaddresses`` gives them; None
    when any part of ``text`` is not plain (then the standard library's parser reads it)."""
    pairs: list[tuple[str, str]] = []
    position, end = 0, len(text)
    while position < end:
        match = _SIMPLE_ENTRY.match(text, position)
        if match is None:
            return None
        name, angled, bare = match.group("name", "angled", "bare")
        if bare is not None:
            pairs.append(("", bare))
        else:
            pairs.append((name[1:-1] if name.startswith('"') else name, angled))
        position = match.end()
        if text.endswith(",", 0, position) and position == end:
            return None  # a trailing comma: an empty entry, which getaddresses treats as invalid
    return pairs or None


def format_address(name: str, addr: str) -> str:
    return f"{name} <{addr}>" if name else addr


def parse_date(text: str | None, problems: list[str]) -> datetime | None:
    """The Date header as an aware UTC datetime; None (and a note) when it cannot be read."""
    if not text or not text.strip():
        return None
    try:
        fields = parsedate_tz(text)
        if fields is None:
            raise ValueError(text)
        year, month, day, hour, minute, second = fields[:6]
        offset = fields[9]
        stamp = datetime(
            year, month, day, hour, minute, second, tzinfo=timezone(timedelta(seconds=offset or 0))
        )
        return stamp.astimezone(timezone.utc)
    except (ValueError, TypeError, OverflowError, IndexError):
        problems.append(f"Date: cannot parse {text.strip()[:80]!r}; sent time left empty")
        return None


def normalise_message_id(text: str | None) -> str | None:
    """The first ``<...>`` of a Message-ID without the brackets; bare ids as written; None if empty."""
    if not text:
        return None
    match = _ANGLE_ID.search(text)
    value = match.group(1) if match else text
    value = "".join(value.split())
    return value or None
