"""Hostile mails (tests/hostile.py): every kind is parsed within the limits, flagged where it went
over one, and filed by a real ``wicbox run`` with the mail after it in the same mailbox; the fast
path agrees with the standard library on generated mails (Hypothesis, with a deadline per input).

No timing is asserted here: the parse budget is counted in work units, and speed is measured by
``tools/bench/parse_bench.py`` (see docs/performance.md)."""

from __future__ import annotations

import functools
import hashlib
import json
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.helpers.mailgen import make_mail
from tests.helpers.processes import wicbox_command, wicbox_environment
from tests.hostile import KINDS, Kind, build
from tests.plugins.wic import Mailroom
from tools.bench import rss_probe
from wicbox_bridge.mail.limits import DEFAULT_LIMITS, ParseLimits, prescan
from wicbox_bridge.mail.parse import FastPathUnsupported, parse_mail, parse_mail_fast, parse_mail_stdlib

SEED = 16
# docs/performance.md, "The hostile set": a run over it stays under 5x its largest mail plus 100 MB
# (SQLite; the 3x + 80 MB target of the IMAP benchmark is met on PostgreSQL up to 30 MB mails).
RSS_FACTOR, RSS_EXTRA_MB = 5, 100


@functools.cache
def hostile(kind: Kind) -> bytes:
    """Each kind built once per session (the large ones take a moment)."""
    print(f"hostile mail {kind.name!r}: seed {SEED}")
    return build(kind, SEED)


def test_there_are_at_least_thirty_kinds() -> None:
    assert len({kind.name for kind in KINDS}) == len(KINDS) >= 30


@pytest.mark.parametrize("kind", KINDS, ids=lambda kind: kind.name)
def test_hostile_mail_is_parsed_within_the_limits(kind: Kind) -> None:
    raw = hostile(kind)
    record = parse_mail(raw)
    assert record.size == len(raw)
    assert record.sha256 == hashlib.sha256(raw).hexdigest()
    assert len(record.attachments) <= DEFAULT_LIMITS.max_parts
    if kind.expect_note is not None:
        assert any(kind.expect_note in note for note in record.problems), record.problems
    for attachment in record.attachments:
        name = attachment.filename
        assert "/" not in name and "\\" not in name and "\u202e" not in name, name
        assert not name.endswith((".", " ")) and len(name) <= 150, name
        assert name.split(".")[0].lower() not in {"con", "aux", "lpt1", "nul", "com1", "conin$"}, name


def test_the_standard_parser_only_gets_mails_within_the_budget() -> None:
    """A mail the fast path declines goes to the standard library only within the work budget;
    the same mail with a smaller budget is filed with headers only and says why."""
    kind = next(kind for kind in KINDS if kind.name == "multipart without a boundary")
    raw = hostile(kind)
    with pytest.raises(FastPathUnsupported):
        parse_mail_fast(raw)
    work = prescan(raw).reference_work
    assert parse_mail(raw) == parse_mail_stdlib(raw)
    tight = ParseLimits(reference_work=work - 1)
    record = parse_mail(raw, tight)
    assert record.subject == "no boundary"
    assert record.body_text is None
    assert any(f"{work} work units > {work - 1}" in note for note in record.problems), record.problems


def test_parts_and_depth_limits_are_settings() -> None:
    raw = hostile(next(kind for kind in KINDS if kind.name == "200,000 tiny parts"))
    record = parse_mail(raw, ParseLimits(max_parts=10))
    # the root multipart is one of the 10 parts; the first of its 9 leaves is the body
    assert record.body_text == "x"
    assert len(record.attachments) == 8
    assert any("more than 10 MIME parts" in note for note in record.problems)


# ------------------------------------------------------------------ a real run against Dovecot


def test_wicbox_run_files_every_hostile_mail_and_the_mail_after_it(
    mailroom: Mailroom, tmp_path: Path
) -> None:
    """Each hostile mail is followed by an ordinary one in the same mailbox; one ``wicbox run``
    (its own process, under the benchmark's RSS probe) files or quarantines all of them."""
    raws: list[bytes] = []
    for number, kind in enumerate(KINDS):
        raws += [hostile(kind), make_mail(number, subject=f"Na {kind.name}")]
    mailroom.deliver(raws)
    stored = [message.raw for message in mailroom.messages("INBOX")]  # as the server hands them out
    assert len(stored) == len(raws)
    report = tmp_path / "rss.json"
    command = [sys.executable, rss_probe.__file__, str(report), *wicbox_command(mailroom.wic, ["run"])]
    done = subprocess.run(
        command, env=wicbox_environment(mailroom.wic), capture_output=True, timeout=600, check=False
    )
    assert done.returncode == 0, (
        done.stdout.decode(errors="replace")[-3000:] + done.stderr.decode(errors="replace")[-3000:]
    )

    rows = {row.sha256: row for row in mailroom.filed()}
    for raw in stored:
        row = rows[hashlib.sha256(raw).hexdigest()]
        assert row.status in {"FILED", "QUARANTINED"}, (row.subject, row.status)
        if row.status == "FILED":
            assert row.raw == raw
    followers = [rows[hashlib.sha256(raw).hexdigest()] for raw in stored[1::2]]
    assert {row.status for row in followers} == {"FILED"}
    assert mailroom.messages("INBOX") == []

    figures = json.loads(report.read_text(encoding="utf-8"))
    peak_mb = max(figures["max_rss_kb"], figures["tree_rss_kb"]) / 1024
    largest_mb = max(map(len, raws)) / 1024 / 1024
    print(f"wicbox run over the hostile set: peak RSS {peak_mb:.0f} MB, largest mail {largest_mb:.0f} MB")
    assert peak_mb < RSS_FACTOR * largest_mb + RSS_EXTRA_MB


# ------------------------------------------------------------------ differential fuzzing

_BOUNDARY_ALPHABET = "".join(chr(code) for code in range(0x21, 0x7F)) + " "
_TEXT = st.binary(max_size=200).map(lambda data: data.replace(b"\r", b"").replace(b"\n", b"\r\n"))


@st.composite
def mails(draw: st.DrawFn, depth: int = 0) -> bytes:
    """A mail or part: headers (some odd), and a text body or a multipart of further parts."""
    headers = [b"Subject: " + draw(st.sampled_from([b"hallo", b"=?utf-8?q?caf=C3=A9?=", b"\xc3\xa9\xff"]))]
    if depth < 3 and draw(st.booleans()):
        boundary = draw(st.text(_BOUNDARY_ALPHABET, min_size=1, max_size=40)).strip() or "b"
        quoted = draw(st.booleans())
        value = f'"{boundary}"' if quoted else boundary
        headers.append(b"Content-Type: multipart/mixed; boundary=" + value.encode())
        children = draw(st.lists(mails(depth + 1), max_size=4))
        close = draw(st.sampled_from([b"--", b"--  ", b""]))
        body = b"".join(b"--" + boundary.encode() + b"\r\n" + child + b"\r\n" for child in children)
        body += b"--" + boundary.encode() + close + b"\r\n" + draw(_TEXT)
    else:
        charset = draw(st.sampled_from([b"utf-8", b"iso-8859-1", b"x-bogus", b"utf-16"]))
        encoding = draw(st.sampled_from([b"7bit", b"base64", b"quoted-printable", b"x-nonsense"]))
        disposition = draw(
            st.sampled_from([b"", b'Content-Disposition: attachment; filename="../CON.txt. "\r\n'])
        )
        headers.append(b"Content-Type: text/plain; charset=" + charset)
        headers.append(b"Content-Transfer-Encoding: " + encoding + b"\r\n" + disposition.rstrip(b"\r\n"))
        body = draw(_TEXT)
    return b"\r\n".join(header for header in headers if header) + b"\r\n\r\n" + body


@settings(
    max_examples=300,
    deadline=timedelta(milliseconds=500),
    suppress_health_check=[HealthCheck.too_slow],
    print_blob=True,
)
@given(mails())
def test_fast_path_agrees_with_the_standard_library(raw: bytes) -> None:
    try:
        fast = parse_mail_fast(raw)
    except FastPathUnsupported:
        assert parse_mail(raw).sha256 == hashlib.sha256(raw).hexdigest()
        return
    assert fast == parse_mail_stdlib(raw)
