"""Hostile mails, generated in code: what anyone on the internet can send to a filed mailbox.

Each kind is a function of a random generator (seeded; the tests print the seed) that returns a
complete mail with CRLF line ends. :data:`KINDS` lists them with what the parse must show for
them (a problem note that names the limit or the defect, or nothing in particular). The big ones
(a 50 MB attachment, 200,000 parts, a 5 MB line) are as large as the issue names; the tests build
them once per session. The parser benchmark (``tools/bench/parse_bench.py``) times the same kinds.
"""

from __future__ import annotations

import base64
import random
from collections.abc import Callable
from dataclasses import dataclass

CRLF = b"\r\n"
HEAD = (
    b"From: Aanvaller <attacker@evil.example>\r\nTo: wicbox@klant.example\r\n"
    b"Date: Mon, 02 Nov 2026 10:00:00 +0100\r\n"
)


@dataclass(frozen=True)
class Kind:
    """One hostile kind: its name, its builder, and a note its parse must list (None: any)."""

    name: str
    build: Callable[[random.Random], bytes]
    expect_note: str | None = None


def _mail(subject: str, headers: bytes, body: bytes) -> bytes:
    return HEAD + b"Subject: " + subject.encode() + CRLF + b"MIME-Version: 1.0\r\n" + headers + CRLF + body


def _multipart(subject: str, boundary: bytes, parts: list[bytes], *, quote: bool = True) -> bytes:
    value = b'"' + boundary + b'"' if quote else boundary
    body = b"".join(b"--" + boundary + CRLF + part + CRLF for part in parts) + b"--" + boundary + b"--" + CRLF
    return _mail(subject, b"Content-Type: multipart/mixed; boundary=" + value + CRLF, body)


def _text_part(text: bytes, extra: bytes = b"") -> bytes:
    return b"Content-Type: text/plain; charset=utf-8\r\n" + extra + CRLF + text


def _file_part(name: str, content: bytes = b"%PDF-1.4 hostile\r\n") -> bytes:
    encoded = name.encode("utf-8")
    return (
        b"Content-Type: application/pdf\r\nContent-Transfer-Encoding: base64\r\n"
        b"Content-Disposition: attachment; filename*=utf-8''"
        + b"".join(b"%%%02X" % byte for byte in encoded)
        + CRLF
        + CRLF
        + base64.encodebytes(content).replace(b"\n", CRLF)
    )


def nested(depth: int, boundary: Callable[[int], bytes], *, close: bool = True) -> bytes:
    """``depth`` multiparts, each inside the one before, with a text part at the bottom."""
    opening = b"".join(
        b'--%s\r\nContent-Type: multipart/mixed; boundary="%s"\r\n\r\n'
        % (boundary(level), boundary(level + 1))
        for level in range(depth)
    )
    leaf = b"--%s\r\nContent-Type: text/plain\r\n\r\ninnermost\r\n" % boundary(depth)
    closing = (
        b"".join(b"--%s--\r\n" % boundary(level) for level in reversed(range(depth + 1))) if close else b""
    )
    head = b'Content-Type: multipart/mixed; boundary="%s"\r\n' % boundary(0)
    return _mail(f"nested {depth}", head, opening + leaf + closing)


_ODD = "!#$%&*+-./:=?@[]^_`{|}~<>'()"


def _odd_boundary(rng: random.Random, length: int = 40) -> bytes:
    return "".join(rng.choice(_ODD + "abcXYZ019 ") for _ in range(length)).strip().encode() + b"z"


def deep_nesting(rng: random.Random) -> bytes:
    return nested(10_000, lambda level: b"b%d" % level)


def deep_nesting_odd_boundaries(rng: random.Random) -> bytes:
    stem = _odd_boundary(rng, 30)
    return nested(10_000, lambda level: stem + b"%d" % level)


def deep_nesting_unclosed(rng: random.Random) -> bytes:
    return nested(10_000, lambda level: b"u%d" % level, close=False)


def deep_nesting_bare_cr(rng: random.Random) -> bytes:
    return nested(10_000, lambda level: b"c%d" % level).replace(b"innermost", b"inner\rmost")


def odd_boundary(rng: random.Random) -> bytes:
    boundary = _odd_boundary(rng)
    return _multipart("odd boundary", boundary, [_text_part(b"hallo"), _file_part("bijlage.pdf")])


def odd_boundary_unquoted(rng: random.Random) -> bytes:
    boundary = _odd_boundary(rng).replace(b" ", b"")
    return _multipart("odd unquoted", boundary, [_text_part(b"hallo")], quote=False)


def boundary_with_quote_and_semicolon(rng: random.Random) -> bytes:
    body = b'--a\\"b;c\r\nContent-Type: text/plain\r\n\r\nhallo\r\n--a\\"b;c--\r\n'
    return _mail("quoted boundary", b'Content-Type: multipart/mixed; boundary="a\\"b;c"\r\n', body)


def boundary_rfc2231(rng: random.Random) -> bytes:
    body = b"--abc\r\nContent-Type: text/plain\r\n\r\nhallo\r\n--abc--\r\n"
    return _mail("rfc2231 boundary", b"Content-Type: multipart/mixed; boundary*=utf-8''abc\r\n", body)


def boundary_missing(rng: random.Random) -> bytes:
    return _mail("no boundary", b"Content-Type: multipart/mixed\r\n", b"--x\r\n\r\nhallo\r\n--x--\r\n")


def boundary_never_occurs(rng: random.Random) -> bytes:
    return _mail(
        "boundary absent", b'Content-Type: multipart/mixed; boundary="nope"\r\n', b"hallo\r\n" * 1000
    )


def boundary_reused_when_nested(rng: random.Random) -> bytes:
    return nested(200, lambda level: b"same")


def tiny_parts(rng: random.Random) -> bytes:
    return _multipart("200000 parts", b"p", [b"\r\nx"] * 200_000)


def long_line(rng: random.Random) -> bytes:
    return _mail("5 MB line", b"Content-Type: text/plain\r\n", b"a" * 5_000_000 + CRLF)


def long_line_of_markers(rng: random.Random) -> bytes:
    line = b"--m " * 250_000  # 1 MB without a line break, full of delimiter markers
    return _multipart("markers", b"m", [_text_part(line), _text_part(b"na")])


def to_header_64kb(rng: random.Random) -> bytes:
    addresses = b", ".join(b"Ontvanger %d <ontvanger%d@klant.example>" % (n, n) for n in range(1800))
    return (
        HEAD.replace(b"To: wicbox@klant.example", b"To: " + addresses[:65536])
        + b"Subject: to\r\n\r\nhallo\r\n"
    )


def to_header_64kb_without_at(rng: random.Random) -> bytes:
    return (
        HEAD.replace(b"To: wicbox@klant.example", b"To: " + b"x" * 70_000) + b"Subject: to\r\n\r\nhallo\r\n"
    )


def subject_1mb_encoded_words(rng: random.Random) -> bytes:
    words = b"\r\n ".join(b"=?utf-8?q?=C3=A9t=C3=A9_?=" for _ in range(40_000))
    return HEAD + b"Subject: " + words + b"\r\n\r\nhallo\r\n"


def content_type_1mb(rng: random.Random) -> bytes:
    params = b";".join(b' p%d="a;b\\"c"' % n for n in range(80_000))
    return _multipart("params", b"q", [b"Content-Type: text/plain;" + params + b"\r\n\r\nhallo"])


def header_block_over_limit(rng: random.Random) -> bytes:
    lines = b"".join(b"X-Filler-%d: %s\r\n" % (n, b"v" * 100) for n in range(12_000))
    return HEAD + lines + b"Subject: after the filler\r\n\r\nhallo\r\n"


def header_lines_100000(rng: random.Random) -> bytes:
    return HEAD + b"X-A: 1\r\n" * 100_000 + b"Subject: many lines\r\n\r\nhallo\r\n"


def headers_without_body(rng: random.Random) -> bytes:
    return HEAD + b"X-Long: " + b"w " * 600_000


def nul_bytes(rng: random.Random) -> bytes:
    return _mail(
        "nul\x00subject", b"Content-Type: text/plain\r\nX-Nul: a\x00b\r\n", b"body\x00with\x00nul\r\n" * 1000
    )


def nul_in_header_name(rng: random.Random) -> bytes:
    return HEAD + b"X-\x00Bad: 1\r\nSubject: nul name\r\n\r\nhallo\r\n"


def invalid_charsets(rng: random.Random) -> bytes:
    parts = [
        _text_part(b"caf\xe9").replace(b"charset=utf-8", b"charset=x-nonsense"),
        b"Content-Type: text/plain; charset=base64\r\n\r\naGFsbG8=",
        b"Content-Type: text/html; charset=utf-16\r\n\r\n\xff",
    ]
    subject = "=?x-bogus?q?caf=E9?= =?utf-8?b?!!!?="
    return _multipart(subject, b"cs", parts)


def invalid_transfer_encodings(rng: random.Random) -> bytes:
    parts = [
        b"Content-Type: application/pdf\r\nContent-Transfer-Encoding: x-bogus\r\n\r\nabc",
        b"Content-Type: application/pdf\r\nContent-Transfer-Encoding: uuencode\r\n\r\nbegin 644 a\r\n!!!\r\n",
    ]
    return _multipart("encodings", b"te", parts)


def broken_base64(rng: random.Random) -> bytes:
    part = b"Content-Type: application/pdf\r\nContent-Transfer-Encoding: base64\r\n\r\nQUJD=RA==*&^%$\r\nQ"
    return _multipart("base64", b"b64", [part])


def broken_quoted_printable(rng: random.Random) -> bytes:
    part = b"Content-Type: text/plain\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n=ZZ=\r\n=" * 2000
    return _multipart("qp", b"qp", [part])


def attachment_50mb(rng: random.Random) -> bytes:
    return _multipart(
        "50 MB", b"big", [_text_part(b"zie bijlage"), _file_part("groot.bin", rng.randbytes(37_500_000))]
    )


def rfc822_nested(rng: random.Random) -> bytes:
    inner = HEAD + b"Subject: level 0\r\n\r\nhallo\r\n"
    for level in range(1, 300):
        inner = _multipart(
            f"level {level}", b"r%d" % level, [b"Content-Type: message/rfc822\r\n\r\n" + inner]
        )
    return inner


def rfc822_digest_loop(rng: random.Random) -> bytes:
    message = HEAD + b"Subject: forwarded\r\n\r\nhallo\r\n"
    digest = (
        b"Content-Type: multipart/digest; boundary=d\r\n\r\n"
        + b"".join(b"--d\r\n\r\n" + message for _ in range(500))
        + b"--d--"
    )
    return _multipart("digest", b"outer", [digest] * 2)


def filename_traversal(rng: random.Random) -> bytes:
    names = ["../../../etc/passwd", "..\\..\\Windows\\System32\\drivers\\etc\\hosts", "/abs/path.pdf", "..."]
    return _multipart("traversal", b"ft", [_file_part(name) for name in names])


def filename_reserved(rng: random.Random) -> bytes:
    names = ["CON", "aux.txt", "LPT1", "nul.tar.gz", "COM1 ", "Con.pdf", "conin$"]
    return _multipart("reserved", b"fr", [_file_part(name) for name in names])


def filename_rtl_override(rng: random.Random) -> bytes:
    return _multipart("rtl", b"rtl", [_file_part("factuur\u202efdp.exe"), _file_part("\u200bfoto.jpg")])


def filename_trailing_dots_spaces(rng: random.Random) -> bytes:
    return _multipart("trailing", b"td", [_file_part("rapport.pdf. . .  "), _file_part(" .  . ")])


def filename_very_long(rng: random.Random) -> bytes:
    return _multipart("long name", b"ln", [_file_part("x" * 100_000 + ".pdf"), _file_part("y." + "z" * 5000)])


def bare_cr_multipart(rng: random.Random) -> bytes:
    return _multipart("bare cr", b"cr", [_text_part(b"regel\r" * 200_000), _text_part(b"na")])


def many_boundary_words(rng: random.Random) -> bytes:
    return _mail("boundary words", b"Content-Type: text/plain\r\n", b"boundary= boundary*0= \r\n" * 40_000)


def random_bytes(rng: random.Random) -> bytes:
    return rng.randbytes(1_000_000)


def first_line_continuation(rng: random.Random) -> bytes:
    return b" folded first line\r\n" + HEAD + b"Subject: continuation\r\n\r\nhallo\r\n"


def encoded_filename_sections(rng: random.Random) -> bytes:
    sections = b"".join(b"; filename*%d*=%%41" % n for n in range(5000))
    part = b"Content-Type: application/pdf\r\nContent-Disposition: attachment" + sections + b"\r\n\r\nx"
    return _multipart("2231 sections", b"s", [part])


KINDS: tuple[Kind, ...] = (
    Kind("deep nesting, 10,000 levels", deep_nesting, "MIME nesting deeper than"),
    Kind("deep nesting, odd boundary characters", deep_nesting_odd_boundaries, "MIME nesting deeper than"),
    Kind("deep nesting, never closed", deep_nesting_unclosed, "over the parse budget"),
    Kind("deep nesting with a bare CR", deep_nesting_bare_cr, "over the parse budget"),
    Kind("odd boundary characters", odd_boundary),
    Kind("odd boundary characters, unquoted", odd_boundary_unquoted),
    Kind("boundary with a quote and a semicolon", boundary_with_quote_and_semicolon),
    Kind("RFC 2231 boundary", boundary_rfc2231),
    Kind("multipart without a boundary", boundary_missing, "without a boundary"),
    Kind("boundary that never occurs", boundary_never_occurs, "boundary never occurs"),
    Kind("nested multiparts reusing one boundary", boundary_reused_when_nested),
    Kind("200,000 tiny parts", tiny_parts, "more than 1000 MIME parts"),
    Kind("a 5 MB line", long_line),
    Kind("a 1 MB line full of delimiter markers", long_line_of_markers),
    Kind("a 64 KB To: header", to_header_64kb),
    Kind("a 64 KB To: header without any @", to_header_64kb_without_at, "header longer than"),
    Kind("a 1 MB Subject of encoded words", subject_1mb_encoded_words, "header longer than"),
    Kind("a 1 MB Content-Type with quoted semicolons", content_type_1mb, "header longer than"),
    Kind("a header block over 1 MB", header_block_over_limit, "header block larger than"),
    Kind("100,000 header lines", header_lines_100000),
    Kind("headers and no body", headers_without_body, "header block larger than"),
    Kind("NUL bytes", nul_bytes, "NUL characters replaced"),
    Kind("a NUL byte in a header name", nul_in_header_name),
    Kind("invalid charsets", invalid_charsets, "unknown charset"),
    Kind("invalid transfer encodings", invalid_transfer_encodings, "Content-Transfer-Encoding"),
    Kind("broken base64", broken_base64),
    Kind("broken quoted-printable", broken_quoted_printable),
    Kind("a 50 MB attachment", attachment_50mb),
    Kind("message/rfc822 nested 300 deep", rfc822_nested),
    Kind("a digest of 1,000 messages", rfc822_digest_loop, "more than 1000 MIME parts"),
    Kind("file names with path traversal", filename_traversal, "stored as"),
    Kind("reserved Windows file names", filename_reserved, "stored as"),
    Kind("file names with RTL override", filename_rtl_override, "stored as"),
    Kind("file names with trailing dots and spaces", filename_trailing_dots_spaces, "stored as"),
    Kind("very long file names", filename_very_long, "stored as"),
    Kind("bare CRs in a 1 MB multipart", bare_cr_multipart, "over the parse budget"),
    Kind("40,000 boundary words in a body", many_boundary_words),
    Kind("1 MB of random bytes", random_bytes),
    Kind("first header line is a continuation", first_line_continuation, "continuation"),
    Kind("5,000 RFC 2231 file name sections", encoded_filename_sections, "parameters"),
)


def build(kind: Kind, seed: int) -> bytes:
    """The mail of one kind for one seed (a kind's own generator, so the kinds do not shift)."""
    return kind.build(random.Random(f"{seed}:{kind.name}"))
