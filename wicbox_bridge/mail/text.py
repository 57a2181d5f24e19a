"""Bytes to text for mail: charsets (declared, unknown or wrong) and RFC 2047 encoded words.

Nothing here raises on bad input. Whatever cannot be decoded exactly is decoded leniently and a
note is appended to the caller's ``problems`` list.
"""

from __future__ import annotations

import binascii
import codecs
import re

from wicbox_bridge.mail.limits import DEFAULT_LIMITS

_MAX_VALUE = DEFAULT_LIMITS.max_header_value

# Labels mail software writes that Python spells differently, or where the common practice is a
# superset of the label (Outlook's ks_c_5601-1987 is cp949; "iso-8859-1" text is usually cp1252).
_CHARSET_ALIASES = {
    "ks_c_5601-1987": "cp949",
    "ks_c_5601": "cp949",
    "euc-kr": "cp949",
    "iso-8859-1": "cp1252",
    "iso8859-1": "cp1252",
    "latin1": "cp1252",
    "latin-1": "cp1252",
    "x-sjis": "shift_jis",
    "shift-jis": "shift_jis",
    "x-mac-roman": "mac_roman",
    "iso-8859-8-i": "iso-8859-8",
    "gb2312": "gb18030",
    "gbk": "gb18030",
    "us-ascii": "ascii",
    "x-unknown": "",
    "unknown-8bit": "",
}
# Codecs that are not charsets, or exist only on some platforms (the result must not depend on it).
_NOT_CHARSETS = frozenset(
    {
        "base64",
        "bz2",
        "hex",
        "quopri",
        "rot-13",
        "uu",
        "zlib",
        "mbcs",
        "oem",
        "undefined",
        "unicode-escape",
        "raw-unicode-escape",
        "idna",
        "punycode",
        "palmos",
        "cp65001",
    }
)
_SINGLE_BYTE_LEGACY = frozenset({"ascii", "cp1252", "iso8859-1", "iso8859-15"})
_ENCODED_WORD = re.compile(r"=\?([^?\s]+?)(?:\*[^?\s]*)?\?([bBqQ])\?([^?\s]*)\?=")
_FOLD = re.compile(r"\r?\n(?=[ \t])")
_STRAY_EOL = re.compile(r"[\r\n]+")


def codec_for(charset: str | None) -> str | None:
    """The Python codec for a mail charset label; None when the label names no usable charset."""
    if not charset:
        return None
    label = charset.strip().strip("\"'").lower()
    label = _CHARSET_ALIASES.get(label, label)
    if not label:
        return None
    try:
        name = codecs.lookup(label).name
    except (LookupError, ValueError, TypeError):
        return None
    return None if name.replace("_", "-") in _NOT_CHARSETS else name


def _windows_1252_table() -> str:
    """A 256-character decoding table: Windows-1252, and Latin-1 for the five bytes it leaves
    undefined (0x81, 0x8D, 0x8F, 0x90, 0x9D), so nothing is lost."""
    chars = []
    for byte in range(256):
        try:
            chars.append(bytes([byte]).decode("cp1252"))
        except UnicodeDecodeError:
            chars.append(chr(byte))
    return "".join(chars)


_WINDOWS_1252_OR_LATIN_1 = _windows_1252_table()


def decode_windows_1252(data: bytes) -> str:
    """Windows-1252, never failing (a C-speed table look-up, linear in the bytes)."""
    return codecs.charmap_decode(data, "strict", _WINDOWS_1252_OR_LATIN_1)[0]


def decode_lenient(data: bytes) -> str:
    """UTF-8 when the bytes are valid UTF-8, else Windows-1252 (the usual legacy charset here)."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return decode_windows_1252(data)


def _utf8_or_none(data: bytes) -> str | None:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


def decode_bytes(data: bytes, charset: str | None, what: str, problems: list[str]) -> str:
    """Decode ``data`` labelled ``charset``; unknown or wrong labels fall back to UTF-8 / Windows-1252.

    A valid non-ASCII UTF-8 text labelled ASCII or Latin-1 is taken as UTF-8 (a common mislabel;
    no real Latin-1 text is also valid UTF-8 in practice).
    """
    codec = codec_for(charset)
    if codec is None:
        if charset and not data.isascii():
            problems.append(f"{what}: unknown charset {charset.strip()!r}; decoded as UTF-8/Windows-1252")
        return decode_lenient(data)
    utf8 = _utf8_or_none(data) if codec != "utf-8" and not data.isascii() else None
    text = None if utf8 is not None and codec in _SINGLE_BYTE_LEGACY else _strict(data, codec)
    if text is not None:
        return text
    if utf8 is not None:
        problems.append(f"{what}: declared charset {charset!r} is wrong; the bytes are UTF-8")
        return utf8
    problems.append(f"{what}: bytes invalid in declared charset {charset!r}; undecodable bytes replaced")
    return _replacing(data, codec)


def _strict(data: bytes, codec: str) -> str | None:
    try:
        return data.decode(codec)
    except (ValueError, LookupError, TypeError):  # invalid bytes, or a codec that is no text encoding
        return None


def _replacing(data: bytes, codec: str) -> str:
    try:
        return data.decode(codec, errors="replace")
    except (ValueError, LookupError, TypeError):
        return decode_lenient(data)


def header_bytes_to_text(raw: str, what: str, problems: list[str], max_chars: int = _MAX_VALUE) -> str:
    """A raw header value (ASCII with surrogate-escaped 8-bit bytes) as text, unfolded; of a value
    longer than ``max_chars`` only the start is read (and that is noted): header decoding is
    Python work per character, and no database column or routing rule needs more."""
    if len(raw) > max_chars:
        problems.append(f"{what}: header longer than {max_chars} characters; only its start is read")
        raw = raw[:max_chars]
    if not raw.isascii():
        data = raw.encode("ascii", "surrogateescape")
        try:
            raw = data.decode("utf-8")
        except UnicodeDecodeError:
            problems.append(f"{what}: raw 8-bit header bytes are not UTF-8; decoded as Windows-1252")
            raw = decode_windows_1252(data)
    return unfold(raw)


def unfold(value: str) -> str:
    """Remove header folding (a line break before white space) and any stray line breaks."""
    if "\n" not in value and "\r" not in value:
        return value
    return _STRAY_EOL.sub(" ", _FOLD.sub("", value))


def _decode_word_payload(encoding: str, text: str) -> bytes | None:
    data = text.encode("ascii", "replace")
    if encoding in "qQ":
        return binascii.a2b_qp(data, header=True)
    try:
        return binascii.a2b_base64(data + b"=" * (-len(data) % 4))
    except binascii.Error:
        return None


def decode_encoded_words(value: str, what: str, problems: list[str]) -> str:
    """Decode RFC 2047 encoded words anywhere in ``value`` (leniently: also inside quotes or words).

    White space between two encoded words is dropped; adjacent words in one charset are joined
    before decoding, so a multi-byte character split across words survives. A word that cannot
    be decoded stays as written and is reported.
    """
    if "=?" not in value:
        return value
    pieces: list[str] = []
    pending_charset: str | None = None
    pending: list[bytes] = []
    position = 0
    for match in _ENCODED_WORD.finditer(value):
        between = value[position : match.start()]
        payload = _decode_word_payload(match.group(2), match.group(3))
        if payload is None:
            problems.append(f"{what}: bad base64 in encoded word {match.group(0)!r}; kept as written")
            _flush(pieces, pending_charset, pending, what, problems)
            pending_charset, pending = None, []
            pieces.append(between + match.group(0))
        else:
            charset = match.group(1).lower()
            if between.strip(" \t") or charset != pending_charset:
                _flush(pieces, pending_charset, pending, what, problems)
                pending_charset, pending = charset, []
                if between.strip(" \t") or not pieces:
                    pieces.append(between)
            pending.append(payload)
        position = match.end()
    _flush(pieces, pending_charset, pending, what, problems)
    pieces.append(value[position:])
    return "".join(pieces)


def _flush(
    pieces: list[str], charset: str | None, pending: list[bytes], what: str, problems: list[str]
) -> None:
    if pending:
        pieces.append(decode_bytes(b"".join(pending), charset, what, problems))


def header_text(raw: str | None, what: str, problems: list[str], max_chars: int = _MAX_VALUE) -> str | None:
    """A header's display text: 8-bit bytes decoded, unfolded, encoded words decoded, trimmed."""
    if raw is None:
        return None
    text = decode_encoded_words(header_bytes_to_text(raw, what, problems, max_chars), what, problems)
    return scrub_text(text.strip(), what, problems)


def scrub_text(text: str, what: str, problems: list[str]) -> str:
    """Replace NUL characters (no database text column stores them) and report it."""
    if "\x00" in text:
        problems.append(f"{what}: NUL characters replaced")
        return text.replace("\x00", "\ufffd")
    return text
