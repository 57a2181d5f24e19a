"""Mail parsing: the shared corpus, hand-made hostile cases, fast path == reference path, fuzzing."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import random
import tracemalloc
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

import pytest

from tests.corpus import CORPUS_ENV, find_corpus, require_corpus
from wicbox_bridge.mail.filename import MAX_FILENAME_LENGTH, sanitise_filename
from wicbox_bridge.mail.parse import (
    FastPathUnsupported,
    MailRecord,
    parse_mail,
    parse_mail_fast,
    parse_mail_stdlib,
)
from wicbox_bridge.mail.record import RecipientHeader
from wicbox_bridge.mail.text import decode_bytes, header_text
from wicbox_bridge.mail.tree import MAX_DEPTH

REPO_ROOT = Path(__file__).resolve().parents[1]
DATA = Path(__file__).resolve().parent / "data" / "eml"


CORPUS = find_corpus()
CORPUS_FILES = sorted(CORPUS.rglob("*.eml")) if CORPUS else []
_corpus_missing = pytest.mark.skipif(
    CORPUS is None, reason=f"mail corpus not found: set {CORPUS_ENV} to the mikel-mail corpus root"
)


def needs_corpus(test: Callable[..., None]) -> Callable[..., None]:
    """A corpus test: counted as such, and skipped (a failure under CI) without the corpus."""
    return pytest.mark.corpus(_corpus_missing(test))


def corpus_mail(relative: str) -> bytes:
    assert CORPUS is not None
    return (CORPUS / relative).read_bytes()


def names_and_sizes(record: MailRecord) -> list[tuple[str, str, int]]:
    return [(a.filename, a.content_type, a.size) for a in record.attachments]


# --------------------------------------------------------------------------------------------
# The whole corpus


@pytest.mark.corpus
def test_corpus_is_there() -> None:
    assert len(sorted(require_corpus().rglob("*.eml"))) >= 100


@needs_corpus
@pytest.mark.parametrize("path", CORPUS_FILES, ids=lambda p: str(p.relative_to(CORPUS)) if CORPUS else "")
def test_corpus_mail_parses_and_both_paths_agree(path: Path) -> None:
    raw = path.read_bytes()
    record = parse_mail(raw)
    assert record.sha256 == hashlib.sha256(raw).hexdigest()
    assert record.size == len(raw)
    assert not any("could not be parsed" in note for note in record.problems)
    reference = parse_mail_stdlib(raw)
    try:
        fast = parse_mail_fast(raw)
    except FastPathUnsupported:
        assert record == reference
    else:
        assert fast == reference
        assert record == fast


@needs_corpus
def test_fast_path_takes_most_of_the_corpus() -> None:
    accepted = 0
    for path in CORPUS_FILES:
        try:
            parse_mail_fast(path.read_bytes())
            accepted += 1
        except FastPathUnsupported:
            pass
    assert accepted >= 0.85 * len(CORPUS_FILES)


CORPUS_EXPECTATIONS = [
    # file, subject, from, attachments (name, type, size), text body start
    (
        "attachment_emails/attachment_pdf.eml",
        "Another PDF with 🎉 Unicode chars in it 🍿",
        "Test Tester <xxxx@xxxx.com>",
        [("broken.pdf", "application/pdf", 1026)],
        "Just attaching another PDF",
    ),
    (
        "attachment_emails/attachment_pdf_lf.eml",
        "Another PDF with 🎉 Unicode chars in it 🍿",
        "Test Tester <xxxx@xxxx.com>",
        [("broken.pdf", "application/pdf", 1026)],
        "Just attaching another PDF",
    ),
    (
        "attachment_emails/attachment_nonascii_filename.eml",
        "testing",
        "foo@example.com",
        [("ciële.txt", "text/plain", 11)],
        "This is the first part.",
    ),
    (
        "attachment_emails/attachment_with_quoted_filename.eml",
        "Eelanalüüsi päring",
        "Jeffrey Hardy <jeff@37signals.com>",
        [("Eelanalüüsi päring.jpg", "image/jpeg", 1952)],
        None,
    ),
    (
        "attachment_emails/attachment_with_base64_encoded_name.eml",
        "Fwd: Signed email causes file attachments",
        None,
        [("This is a test.pdf", "application/pdf", 399)],
        "We should not include these files",
    ),
    (
        "attachment_emails/attachment_with_unquoted_name.eml",
        "testing",
        "foo@example.com",
        [("This is a test.txt", "text/plain", 11)],
        "This is the first part.",
    ),
    (
        "attachment_emails/attachment_content_disposition.eml",
        "testing",
        "foo@example.com",
        [("api.rb", "text/x-ruby-script", 28)],
        "This is the first part.",
    ),
    (
        "attachment_emails/attachment_message_rfc822.eml",
        "testing",
        "foo@example.com",
        [("ForwardedMessage.eml", "message/rfc822", 3781)],
        "This is the first part.",
    ),
    (
        "attachment_emails/attachment_message_rfc822_inline_image.eml",
        "test",
        "test@example.com",
        [("img.png", "image/png", 370), ("Testmail.eml", "message/rfc822", 1851)],
        None,
    ),
    (
        "attachment_emails/attachment_only_email.eml",
        "this message JUST contains an attachment",
        "Ryan Finnie <rfinnie@domain.dom>",
        [("blah.gz", "application/x-gzip", 288)],
        None,
    ),
    (
        "multi_charset/japanese_iso_2022.eml",
        "まみむめも",
        "Mikel Lindsaar <raasdnil@gmail.com>",
        [],
        "すみません。",
    ),
    (
        "multi_charset/japanese_shift_jis.eml",
        "test",
        "xxxxxxx@docomo.ne.jp",
        [],
        "あいうえお\r\n\r\nこのメールはテスト用のメールです。",
    ),
    ("multi_charset/ks_c_5601-1987.eml", "test", "from@example.com", [], "스티해"),
    ("multi_charset/japanese.eml", "まみむめも", "Mikel Lindsaar <raasdnil@gmail.com>", [], "かきくえこ"),
    (
        "multi_charset/japanese_attachment.eml",
        "testing",
        "Mikel Lindsaar <raasdnil@gmail.com>",
        [("てすと.txt", "text/plain", 33)],
        "testing",
    ),
    (
        "multi_charset/japanese_attachment_long_name.eml",
        "まみむめも" * 10,
        "Mikel Lindsaar <mikel@test.lindsaar.net>",
        [("かきくけこ" * 5 + ".txt", "text/plain", 18)],
        None,
    ),
    ("rfc6532/utf8_headers.eml", "Säying Hello", "Jöhn Doe <jdöe@mächine.example>", [], "body"),
    (
        "plain_emails/raw_email_with_partially_quoted_subject.eml",
        'Re: Test: "漢字" mid "漢字" tail',
        "Jamis Buck <jamis@37signals.com>",
        [],
        None,
    ),
    (
        "plain_emails/raw_email_multiple_from.eml",
        "/home/svn/public/minebox revision 214",
        "tim@powerupdev.com, concierge@powerupdev.com",
        [],
        None,
    ),
    (
        "multipart_report_emails/multi_address_bounce1.eml",
        "Undelivered Mail Returned to Sender",
        "Mail Delivery System <MAILER-DAEMON@lvmail01.LL.com>",
        [
            ("attachment-1.txt", "message/delivery-status", 2780),
            ("Test of bounce email.eml", "message/rfc822", 1381),
        ],
        "This is the mail system at host",
    ),
    (
        "mime_emails/raw_email_with_mimepart_without_content_type.eml",
        "Warning: could not send message for past 1 day",
        "Mail Delivery Subsystem <MAILER-DAEMON@antivirus.uqam.ca>",
        [("attachment-1.txt", "message/delivery-status", 322), ("Est-ce toi _.eml", "message/rfc822", 1548)],
        None,
    ),
    (
        "mime_emails/raw_email7.eml",
        "testing",
        "foo@example.com",
        [
            ("test.rb", "text/x-ruby-script", 25),
            ("test.pdf", "application/pdf", 14),
            ("attachment-3.txt", "text/plain", 2),
            ("smime.p7s", "application/pkcs7-signature", 227),
        ],
        "This is the first part.",
    ),
    (
        "mime_emails/raw_email_with_binary_encoded.eml",
        "Testing outlook",
        "Mikel Lindsaar <email_test@me.nowhere>",
        [("2013-08-13_19-08-28-1.jpg", "image/jpeg", 24)],
        None,
    ),
    (
        "error_emails/content_transfer_encoding_x_uuencode.eml",
        "PGP Comments on RTO West Release of Dec. 14",
        "Lon L. Peters <lpeters@PACIFIER.COM>",
        [("PGP_Cmts_on_12-14-01_Pkg.doc", "application/msword", 0)],
        "Attached are the comments",
    ),
    (
        "error_emails/missing_content_disposition.eml",
        "Redacted",
        "redacted@example.com",
        [("attachment-1.bin", "image/jpg", 1311)],
        None,
    ),
]


@needs_corpus
@pytest.mark.parametrize(
    ("relative", "subject", "sender", "attachments", "text_start"),
    CORPUS_EXPECTATIONS,
    ids=[case[0] for case in CORPUS_EXPECTATIONS],
)
def test_corpus_expectations(
    relative: str,
    subject: str,
    sender: str | None,
    attachments: list[tuple[str, str, int]],
    text_start: str | None,
) -> None:
    record = parse_mail(corpus_mail(relative))
    assert record.subject == subject
    if sender is not None:
        assert record.from_addr == sender
    assert names_and_sizes(record) == attachments
    if text_start is not None:
        assert record.body_text is not None
        assert record.body_text.startswith(text_start)


PROBLEM_EXPECTATIONS = [
    ("error_emails/invalid_subject_characters.eml", "Subject: raw 8-bit header bytes are not UTF-8"),
    ("error_emails/bad_date_header.eml", "Date: cannot parse"),
    ("plain_emails/raw_email_with_bad_date.eml", "Date: cannot parse"),
    ("plain_emails/raw_email10.eml", "unknown charset 'X-UNKNOWN'"),
    ("error_emails/content_transfer_encoding_7-bit.eml", "unknown Content-Transfer-Encoding '7-bit'"),
    ("error_emails/content_transfer_encoding_spam.eml", "unknown Content-Transfer-Encoding"),
    ("error_emails/content_transfer_encoding_x_uuencode.eml", "invalid 'x-uuencode' transfer encoding"),
    ("error_emails/empty_in_reply_to.eml", "multipart whose boundary never occurs"),
    ("mime_emails/raw_email4.eml", "without its closing boundary"),
    ("plain_emails/raw_email_incorrect_header.eml", "a header line without a name"),
    ("attachment_emails/attachment_with_encoded_name.eml", "bytes invalid in declared charset 'iso-2022-jp'"),
    ("plain_emails/raw_email_multiple_from.eml", "From: malformed address list"),
]


@needs_corpus
@pytest.mark.parametrize(("relative", "note"), PROBLEM_EXPECTATIONS, ids=[c[0] for c in PROBLEM_EXPECTATIONS])
def test_corpus_problems_are_flagged(relative: str, note: str) -> None:
    problems = parse_mail(corpus_mail(relative)).problems
    assert any(note in problem for problem in problems), problems


@needs_corpus
def test_clean_mails_have_no_problems() -> None:
    for relative in (
        "plain_emails/basic_email.eml",
        "rfc2822/example01.eml",
        "multi_charset/japanese_iso_2022.eml",
        "attachment_emails/attachment_pdf.eml",
        "mime_emails/raw_email2.eml",
    ):
        assert parse_mail(corpus_mail(relative)).problems == (), relative


@needs_corpus
def test_header_fields_of_a_plain_mail() -> None:
    record = parse_mail(corpus_mail("plain_emails/basic_email.eml"))
    assert record.message_id == "6B7EC235-5B17-4CA8-B2B8-39290DEB43A3@test.lindsaar.net"
    assert record.sent_at == datetime(2008, 11, 22, 4, 4, 59, tzinfo=timezone.utc)
    assert record.sent_at is not None and record.sent_at.utcoffset() is not None
    assert record.to_addrs == ("Mikel Lindsaar <raasdnil@gmail.com>",)
    assert record.delivered_to == ("raasdnil@gmail.com",)
    assert record.recipients == (
        (RecipientHeader.TO, "raasdnil@gmail.com"),
        (RecipientHeader.DELIVERED_TO, "raasdnil@gmail.com"),
    )


@needs_corpus
def test_html_body_is_decoded() -> None:
    record = parse_mail(corpus_mail("mime_emails/raw_email_encoded_stack_level_too_deep.eml"))
    assert record.body_text is not None and record.body_text.startswith("Nicolas Fouché has accepted")
    assert record.body_html is not None and record.body_html.startswith("<html>")


# --------------------------------------------------------------------------------------------
# Hand-made cases (tests/data/eml and inline)


def data_mail(name: str) -> MailRecord:
    raw = (DATA / name).read_bytes()
    record = parse_mail(raw)
    with contextlib.suppress(FastPathUnsupported):
        assert parse_mail_fast(raw) == parse_mail_stdlib(raw)
    return record


def test_rfc2231_and_encoded_word_file_names() -> None:
    record = data_mail("rfc2231_and_encoded_names.eml")
    assert record.subject == "Bijlagen met één naam"
    assert record.body_text == "Zie bijlagen."
    assert [(a.filename, a.content) for a in record.attachments] == [
        ("Offerte één deel.pdf", b"%PDF-1.4\n"),  # RFC 2231 continuations, charset, mixed sections
        ("résumé.txt", b"hello"),  # RFC 2047 inside a quoted name=
        ("élèment.docx", b"PK\x03\x04"),  # RFC 2047 as an unquoted filename=
        ("plain-unquoted.png", b"\x89PNG\r\n\x1a\n"),  # inline image with a Content-ID
    ]
    assert record.problems == ()


def test_hostile_file_names_are_sanitised() -> None:
    record = data_mail("hostile_names.eml")
    assert [a.filename for a in record.attachments] == [
        "passwd",
        "evil.exe",
        "_CON.txt",
        "attachment-4.txt",
        "tab_and_ctl.pdf",
    ]
    assert sum("stored as" in note for note in record.problems) == 5


def test_bad_base64_unknown_charset_and_bad_date_are_kept_and_flagged() -> None:
    record = data_mail("bad_base64_and_charset.eml")
    assert record.subject == "café and =?utf-8?b?QUJDx?="
    assert record.body_text == "Café crème"
    assert names_and_sizes(record) == [("broken.pdf", "application/pdf", len(b"JVBERi0xLjQK=A"))]
    assert record.attachments[0].content == b"JVBERi0xLjQK=A"
    assert record.sent_at is None
    for note in (
        "unknown charset 'x-no-such-charset'",
        "invalid 'base64' transfer encoding",
        "bad base64 in encoded word",
        "Date: cannot parse",
    ):
        assert any(note in problem for problem in record.problems), note


def test_missing_boundary_keeps_the_body_as_text() -> None:
    raw = (DATA / "missing_boundary.eml").read_bytes()
    with pytest.raises(FastPathUnsupported):
        parse_mail_fast(raw)
    record = parse_mail(raw)
    assert record.body_text is not None and "hello" in record.body_text
    assert any("without a boundary" in note for note in record.problems)


def nested_multipart(depth: int) -> bytes:
    head = b"From: a@klant.example\r\nSubject: deep\r\nContent-Type: multipart/mixed; boundary=b0\r\n\r\n"
    opening = b"".join(
        b"--b%d\r\nContent-Type: multipart/mixed; boundary=b%d\r\n\r\n" % (level, level + 1)
        for level in range(depth)
    )
    leaf = b"--b%d\r\nContent-Type: text/plain\r\n\r\ninnermost\r\n--b%d--\r\n" % (depth, depth)
    closing = b"".join(b"--b%d--\r\n" % level for level in reversed(range(depth)))
    return head + opening + leaf + closing


@pytest.mark.parametrize("depth", [3, MAX_DEPTH + 5, 3000])
def test_deep_nesting_is_bounded(depth: int) -> None:
    record = parse_mail(nested_multipart(depth))
    assert record.subject == "deep"
    if depth < MAX_DEPTH:
        assert record.body_text == "innermost"
        assert record.problems == ()
    else:
        assert any("nesting deeper than" in note for note in record.problems)
        assert len(record.attachments) == 1 and b"innermost" in record.attachments[0].content


def test_deep_nesting_in_the_reference_path_does_not_raise() -> None:
    raw = nested_multipart(3000).replace(b"innermost", b"inner\rmost")  # bare CR: the fast path declines
    with pytest.raises(FastPathUnsupported):
        parse_mail_fast(raw)
    record = parse_mail(raw)
    assert record.subject == "deep"
    assert record.problems


@pytest.mark.parametrize(
    "raw", [b"", b"\r\n", b"\n\n\n", b"Subject:", b"From \r\n", b"\x00" * 50, b"--\r\n--"]
)
def test_degenerate_inputs(raw: bytes) -> None:
    record = parse_mail(raw)
    assert record.size == len(raw)
    assert record.sha256 == hashlib.sha256(raw).hexdigest()


def test_empty_message() -> None:
    record = parse_mail(b"")
    assert record == MailRecord(sha256=hashlib.sha256(b"").hexdigest(), size=0, body_text="")


# --------------------------------------------------------------------------------------------
# Large mails: the fast path slices without copying, so parsing keeps little more than the decoded
# attachments alive besides the mail itself


def large_mail(attachment_sizes: tuple[int, ...], seed: int) -> tuple[bytes, list[bytes]]:
    """A multipart/mixed mail with a short text and base64 attachments of random bytes."""
    rng = random.Random(seed)
    files = [rng.randbytes(size) for size in attachment_sizes]
    head = (
        b"From: Afzender <afzender@klant.example>\r\nTo: project-alpha@klant.example\r\n"
        b"Subject: grote bijlagen\r\nMIME-Version: 1.0\r\n"
        b'Content-Type: multipart/mixed; boundary="grens-42"\r\n\r\n'
    )
    parts = [b"Content-Type: text/plain; charset=utf-8\r\n\r\nZie bijlagen.\r\n"] + [
        b"Content-Type: application/pdf\r\nContent-Transfer-Encoding: base64\r\n"
        b'Content-Disposition: attachment; filename="bijlage-%d.pdf"\r\n\r\n'
        % index
        + base64.encodebytes(data).replace(b"\n", b"\r\n")
        for index, data in enumerate(files, start=1)
    ]
    return head + b"".join(b"--grens-42\r\n" + part for part in parts) + b"--grens-42--\r\n", files


@pytest.mark.parametrize(
    ("attachment_sizes", "mail_mb"),
    [
        ((22_000_000,), 30),
        ((4_000_000, 3_500_000, 3_000_000, 2_500_000, 1_500_000), 20),
    ],
    ids=["30MB-one-attachment", "20MB-five-attachments"],
)
def test_large_mail_parse_peak_memory(attachment_sizes: tuple[int, ...], mail_mb: int) -> None:
    raw, files = large_mail(attachment_sizes, seed=mail_mb)
    assert round(len(raw) / 1_000_000) == mail_mb
    tracemalloc.start()
    try:
        record = parse_mail(raw)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert record.problems == ()
    assert record.body_text == "Zie bijlagen."
    assert [a.filename for a in record.attachments] == [f"bijlage-{i}.pdf" for i in range(1, len(files) + 1)]
    assert [a.content for a in record.attachments] == files
    # the mail itself was allocated before tracing: what parsing adds is the decoded attachments
    # and small change, far below the 2x-the-mail bound of the memory budget
    assert peak < 2 * len(raw)
    assert peak < sum(attachment_sizes) + len(raw) // 10, f"peak {peak:,} bytes for a {len(raw):,} byte mail"


def test_message_id_normalisation() -> None:
    def message_id(value: str) -> str | None:
        return parse_mail(f"Message-ID: {value}\r\n\r\nx".encode()).message_id

    assert message_id("<abc@klant.example>") == "abc@klant.example"
    assert message_id("  <abc@klant.example> (comment)") == "abc@klant.example"
    assert message_id("bare@klant.example") == "bare@klant.example"
    assert message_id("<>") is None
    assert message_id("") is None


def test_sent_at_is_utc() -> None:
    record = parse_mail(b"Date: Tue, 02 Sep 2025 09:15:00 +0200\r\n\r\nx")
    assert record.sent_at == datetime(2025, 9, 2, 7, 15, tzinfo=timezone.utc)
    assert parse_mail(b"Date: Tue, 02 Sep 2025 09:15:00 -0000\r\n\r\nx").sent_at == datetime(
        2025, 9, 2, 9, 15, tzinfo=timezone.utc
    )
    assert parse_mail(b"Date: 31 Feb 2025 09:15:00 +0000\r\n\r\nx").sent_at is None


def test_nul_characters_are_replaced_and_flagged() -> None:
    record = parse_mail(b"Subject: a\x00b\r\nContent-Type: text/plain\r\n\r\nbo\x00dy")
    assert record.subject == "a\ufffdb"
    assert record.body_text == "bo\ufffddy"
    assert any("NUL" in note for note in record.problems)


# --------------------------------------------------------------------------------------------
# Header text, charsets, file names (tables)

HEADER_CASES = [
    ("=?utf-8?q?caf=C3=A9?=", "café"),
    ("=?UTF-8?B?44G+44G/?= =?UTF-8?B?44KA?=", "まみむ"),  # white space between words dropped
    ("=?utf-8?b?4w==?= =?utf-8?b?gbw=?=", "ぼ"),  # one character split over two words
    ("Re: =?iso-8859-1?q?r=E9ponse?= [ALPHA]", "Re: réponse [ALPHA]"),
    ("=?ks_c_5601-1987?B?vbrGvMfY?=", "스티해"),
    ("=?iso-2022-jp?B?GyRCJF4kXyRgJGEkYhsoQg==?=", "まみむめも"),
    ("=?shift_jis?B?gqCCooKk?=", "あいう"),
    ("=?utf-8*nl?q?ok?=", "ok"),  # RFC 2231 language suffix
    ("plain\r\n folded", "plain folded"),
    ("=?utf-8?q?half", "=?utf-8?q?half"),
]


@pytest.mark.parametrize(("raw", "expected"), HEADER_CASES)
def test_header_text(raw: str, expected: str) -> None:
    assert header_text(raw, "Subject", []) == expected


CHARSET_CASES = [
    (b"caf\xc3\xa9", "utf-8", "café", False),
    (b"caf\xe9", "iso-8859-1", "café", False),
    (b"\x80 5", "iso-8859-1", "€ 5", False),  # Latin-1 labels are read as Windows-1252
    (b"caf\xc3\xa9", "iso-8859-1", "café", True),  # UTF-8 labelled Latin-1
    (b"caf\xe9", "utf-8", "caf\ufffd", True),
    (b"caf\xe9", "no-such-charset", "café", True),
    (b"caf\xe9", "base64", "café", True),  # a codec that is no charset
    (b"caf\xe9", None, "café", False),
    (b"\xbd\xba\xc6\xbc\xc7\xd8", "ks_c_5601-1987", "스티해", False),
    (b"\x82\xa0", "shift_jis", "あ", False),
]


@pytest.mark.parametrize(("data", "charset", "expected", "flagged"), CHARSET_CASES)
def test_decode_bytes(data: bytes, charset: str | None, expected: str, flagged: bool) -> None:
    problems: list[str] = []
    assert decode_bytes(data, charset, "body", problems) == expected
    assert bool(problems) == flagged


FILENAME_CASES = [
    ("report.pdf", "report.pdf"),
    ("../../etc/passwd", "passwd"),
    ("C:\\evil.exe", "evil.exe"),
    ("CON.txt", "_CON.txt"),
    ("nul", "_nul"),
    ("com1.tar.gz", "_com1.tar.gz"),
    ("LPT9.doc", "_LPT9.doc"),
    ("console.txt", "console.txt"),
    ("name. . .", "name"),
    ('a<b>c:d"e|f?g*h.txt', "a_b_c_d_e_f_g_h.txt"),
    ("line\r\nbreak.txt", "line__break.txt"),
    ("", "attachment-3.pdf"),
    ("...", "attachment-3.pdf"),
    ("rtl\u202egpj.exe", "rtlgpj.exe"),
]


@pytest.mark.parametrize(("name", "expected"), FILENAME_CASES)
def test_sanitise_filename(name: str, expected: str) -> None:
    assert sanitise_filename(name, 3, "application/pdf") == expected


def test_long_file_name_keeps_its_extension() -> None:
    name = sanitise_filename("x" * 500 + ".docx", 1, "application/octet-stream")
    assert len(name) == MAX_FILENAME_LENGTH
    assert name.endswith("x.docx")


# --------------------------------------------------------------------------------------------
# Robustness: parse_mail never raises, and the fast path never fails other than by declining


def mutations(corpus: list[bytes], count: int, seed: int) -> list[bytes]:
    rng = random.Random(seed)
    out = []
    for _ in range(count):
        base = rng.choice(corpus)
        kind = rng.randrange(4)
        if kind == 0:
            out.append(base[: rng.randrange(len(base) + 1)])
        elif kind == 1:
            mutated = bytearray(base)
            for _ in range(rng.randrange(1, 20)):
                mutated[rng.randrange(len(mutated))] = rng.randrange(256)
            out.append(bytes(mutated))
        elif kind == 2:
            out.append(rng.randbytes(rng.randrange(300)))
        else:
            out.append(base[: rng.randrange(len(base))] + base[rng.randrange(len(base)) :])
    return out


@pytest.mark.corpus
def test_fuzzed_mails_never_raise() -> None:
    sources = [path.read_bytes() for path in CORPUS_FILES] + [
        path.read_bytes() for path in DATA.glob("*.eml")
    ]
    sources.append(nested_multipart(40))
    for raw in mutations(sources, 3000, seed=2025):
        record = parse_mail(raw)
        assert record.size == len(raw)
        with contextlib.suppress(FastPathUnsupported):
            parse_mail_fast(raw)


def test_random_bytes_property() -> None:
    hypothesis = pytest.importorskip("hypothesis", reason="hypothesis is in the test extras")
    strategies = hypothesis.strategies

    @hypothesis.settings(max_examples=300, deadline=None)
    @hypothesis.given(strategies.binary(max_size=2000))
    def check(raw: bytes) -> None:
        record = parse_mail(raw)
        assert record.sha256 == hashlib.sha256(raw).hexdigest()

    check()
