"""Benchmark of mail parsers for the filing job (not a test; prints a table).

    python -m tools.bench.parse_bench [--corpus DIR] [--repeat N] [--no-huge] [--no-hostile]

Data sets: the shared test corpus (WICBOX_MAIL_CORPUS or WICBOX_TEST_CORPUS, else
../shared/corpus/mikel-mail from the repository root) and mails generated here, deterministically:
1,050 office mails of about 21 KB (text + HTML, a third with a small attachment; the size of the
reference fetch measurement), 120 mails of 20-200 KB with attachments, and two very large mails
(30 MB with one 22 MB attachment; 20 MB with five attachments), and the hostile set of the tests
(``tests/hostile.py``: deep nesting, odd boundaries, 200,000 parts, huge lines and headers, ...).
Every contender is timed on the
same bytes in the same run, best of N, and reported as ms per mail and as a ratio to the standard
library's full parse with policy.default (the baseline). The "raised" column counts mails on which
the contender threw. "peak x" is the largest tracemalloc peak while parsing one of the set's
(up to) five largest mails, as a multiple of that mail's size, measured in a separate untimed pass
with the mail already allocated; tracemalloc sees the Python heap only, so a contender that
allocates natively (the Rust parser) shows "-".
"""

from __future__ import annotations

import argparse
import hashlib
import os
import random
import sys
import time
import tracemalloc
from collections.abc import Callable, Iterable
from email import policy
from email.message import EmailMessage
from email.parser import BytesHeaderParser, BytesParser
from pathlib import Path
from typing import Any

from wicbox_bridge.mail.parse import FastPathUnsupported, parse_mail, parse_mail_fast, parse_mail_stdlib

REPO_ROOT = Path(__file__).resolve().parents[2]
WORDS = (
    "dossier",
    "project",
    "vraag",
    "antwoord",
    "offerte",
    "factuur",
    "bijlage",
    "planning",
    "overleg",
    "levering",
    "contract",
    "klant",
    "leverancier",
    "gemeente",
    "aanvraag",
    "vergunning",
    "termijn",
    "bevestiging",
    "verslag",
    "afspraak",
    "budget",
    "wijziging",
    "opmerking",
    "status",
    "document",
)


def corpus_dir(explicit: str | None) -> Path | None:
    default = REPO_ROOT / ".." / "shared" / "corpus" / "mikel-mail"
    configured = os.environ.get("WICBOX_MAIL_CORPUS") or os.environ.get("WICBOX_TEST_CORPUS")
    candidate = Path(explicit or configured or default)
    return candidate if candidate.is_dir() else None


def _text(rng: random.Random, size: int) -> str:
    words: list[str] = []
    length = 0
    while length < size:
        word = rng.choice(WORDS)
        words.append(word + ("\n" if rng.random() < 0.08 else " "))
        length += len(word) + 1
    return "".join(words)


def generated_mail(rng: random.Random, number: int, body_size: int, attachments: Iterable[int]) -> bytes:
    message = EmailMessage()
    message["From"] = f"Afzender {number} <afzender{number}@klant.example>"
    message["To"] = "Project Alpha <project-alpha@klant.example>"
    message["Cc"] = "wicbox@klant.example"
    message["Subject"] = f"RE: [ALPHA] vraag {number} over het dossier — één bijlage"
    message["Date"] = f"Mon, {1 + number % 28:02d} Sep 2025 10:{number % 60:02d}:00 +0200"
    message["Message-ID"] = f"<bench-{number}@klant.example>"
    text = _text(rng, body_size)
    message.set_content(text)
    message.add_alternative(f"<html><body><p>{text}</p></body></html>", subtype="html")
    for index, size in enumerate(attachments, start=1):
        message.add_attachment(
            rng.randbytes(size),
            maintype="application",
            subtype="pdf",
            filename=f"bijlage-{number}-{index}.pdf",
        )
    return message.as_bytes(policy=policy.SMTP)


def office_mails(count: int = 1050) -> list[bytes]:
    rng = random.Random(21)
    mails = []
    for number in range(count):
        with_attachment = number % 3 == 0
        mails.append(
            generated_mail(rng, number, 4500 if with_attachment else 9500, [6000] if with_attachment else [])
        )
    return mails


def large_mails(count: int = 120) -> list[bytes]:
    rng = random.Random(200)
    return [
        generated_mail(
            rng,
            number,
            rng.randrange(2000, 20000),
            [rng.randrange(10_000, 70_000) for _ in range(rng.randrange(1, 4))],
        )
        for number in range(count)
    ]


def huge_mails() -> list[bytes]:
    """A 30 MB mail with one 22 MB attachment and a 20 MB mail with five attachments."""
    rng = random.Random(30)
    return [
        generated_mail(rng, 1, 5000, [22_000_000]),
        generated_mail(rng, 2, 5000, [4_000_000, 3_500_000, 3_000_000, 2_500_000, 2_000_000]),
    ]


def stdlib_default(raw: bytes) -> object:
    """The naive reference: policy.default, get_body/get_content, iter_attachments."""
    message = BytesParser(policy=policy.default).parsebytes(raw)
    assert isinstance(message, EmailMessage)
    bodies = [message.get_body(preferencelist=(kind,)) for kind in ("plain", "html")]
    texts = [body.get_content() for body in bodies if body is not None]
    files = [(part.get_filename(), part.get_content()) for part in message.iter_attachments()]
    return message["subject"], message["from"], texts, files


def stdlib_headers_only(raw: bytes) -> object:
    message = BytesHeaderParser(policy=policy.compat32).parsebytes(raw)
    return message.get("subject"), message.get("from")


def fast_path_only(raw: bytes) -> object:
    try:
        return parse_mail_fast(raw)
    except FastPathUnsupported:
        return None


def sha256_only(raw: bytes) -> object:
    return hashlib.sha256(raw).hexdigest()


def fast_mail_parser_contender() -> Callable[[bytes], object] | None:
    try:
        import fast_mail_parser
    except ImportError:
        return None

    def parse(raw: bytes) -> object:
        return fast_mail_parser.parse_email(raw)

    return parse


Contender = tuple[str, Callable[[bytes], Any], bool]  # label, parse, allocates on the Python heap


def contenders() -> list[Contender]:
    found: list[Contender] = [
        ("stdlib policy.default full (baseline)", stdlib_default, True),
        ("stdlib compat32 + own decoding (fallback)", parse_mail_stdlib, True),
        ("own fast path only", fast_path_only, True),
        ("parse_mail (fast path, fallback)", parse_mail, True),
        ("stdlib header-only parse (floor)", stdlib_headers_only, True),
        ("sha256 only", sha256_only, True),
    ]
    third_party = fast_mail_parser_contender()
    if third_party is not None:
        found.append(("fast-mail-parser (PyPI, Rust)", third_party, False))
    return found


def time_contender(parse: Callable[[bytes], Any], mails: list[bytes], repeat: int) -> tuple[float, int]:
    best = float("inf")
    raised = 0
    for _ in range(repeat):
        raised = 0
        start = time.perf_counter()
        for raw in mails:
            try:
                parse(raw)
            except Exception:
                raised += 1
        best = min(best, time.perf_counter() - start)
    return best, raised


def peak_ratio(parse: Callable[[bytes], Any], mails: list[bytes]) -> float:
    """Largest tracemalloc peak / mail size while parsing one of the (up to) five largest mails."""
    worst = 0.0
    for raw in sorted(mails, key=len, reverse=True)[:5]:
        tracemalloc.start()
        try:
            parse(raw)
        except Exception:
            pass
        finally:
            peak = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
        worst = max(worst, peak / max(len(raw), 1))
    return worst


def report(name: str, mails: list[bytes], repeat: int) -> None:
    size = sum(map(len, mails)) / len(mails) / 1024
    fast = sum(1 for raw in mails if fast_path_only(raw) is not None)
    print(f"\n== {name}: {len(mails)} mails, {size:.1f} KB average; fast path takes {fast}/{len(mails)}")
    print(f"{'contender':45} {'total s':>8} {'ms/mail':>8} {'ratio':>7} {'raised':>7} {'peak x':>7}")
    baseline: float | None = None
    for label, parse, traceable in contenders():
        seconds, raised = time_contender(parse, mails, repeat)
        baseline = baseline or seconds
        peak = f"{peak_ratio(parse, mails):7.2f}" if traceable else f"{'-':>7}"
        print(
            f"{label:45} {seconds:8.3f} {seconds / len(mails) * 1000:8.3f} "
            f"{seconds / baseline:7.3f} {raised:7d} {peak}"
        )


def main(argv: list[str] | None = None) -> int:
    arguments = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    arguments.add_argument("--corpus", help="corpus root (default: WICBOX_TEST_CORPUS or ../shared/corpus)")
    arguments.add_argument("--repeat", type=int, default=3)
    arguments.add_argument("--no-huge", action="store_true", help="skip the 20-30 MB mails")
    arguments.add_argument("--no-hostile", action="store_true", help="skip the hostile set")
    options = arguments.parse_args(argv)
    corpus = corpus_dir(options.corpus)
    if corpus is None:
        print("corpus not found: set WICBOX_TEST_CORPUS; benchmarking generated mails only")
    else:
        report("test corpus", [path.read_bytes() for path in sorted(corpus.rglob("*.eml"))], options.repeat)
    report("generated office mails (~21 KB)", office_mails(), options.repeat)
    report("generated large mails (20-200 KB, attachments)", large_mails(), options.repeat)
    if not options.no_huge:
        report("generated very large mails (30 MB, 20 MB)", huge_mails(), options.repeat)
    if not options.no_hostile:
        hostile_report(options.repeat)
    return 0


def per_mb_ms(mails: list[bytes], repeat: int) -> float:
    seconds, _ = time_contender(parse_mail, mails, repeat)
    return seconds * 1000 / (sum(map(len, mails)) / 1_000_000)


def padded(raw: bytes, least: int = 1_000_000) -> bytes:
    """The mail grown to at least ``least`` bytes with ordinary text lines at its end (a single
    part's body, or a multipart's epilogue), so that "per MB" is not a tiny mail's fixed cost."""
    missing = least - len(raw)
    line = b"gewone tekst van een gewone mail, niets bijzonders aan deze regel\r\n"
    return raw if missing <= 0 else raw + line * (missing // len(line) + 1)


def hostile_report(repeat: int) -> None:
    """parse_mail on every hostile kind (grown to 1 MB or more), per MB, against normal mails'
    per MB measured in the same run; the worst ratio is the figure the issue bounds (5x)."""
    sys.path.insert(0, str(REPO_ROOT))
    from tests.hostile import KINDS, build  # the test suite's generator

    normal = per_mb_ms(office_mails() + large_mails(), repeat)
    print(f"\n== hostile set: parse_mail per MB against normal mails ({normal:.2f} ms/MB, same run)")
    print(f"{'kind':50} {'MB':>6} {'ms':>8} {'ms/MB':>8} {'ratio':>6} {'peak x':>7}")
    worst = ("", 0.0)
    for kind in KINDS:
        raw = padded(build(kind, 16))
        ms = per_mb_ms([raw], repeat) * len(raw) / 1_000_000
        ratio = ms / (len(raw) / 1_000_000) / normal
        worst = max(worst, (kind.name, ratio), key=lambda item: item[1])
        peak = peak_ratio(parse_mail, [raw])
        size_mb = len(raw) / 1e6
        print(f"{kind.name:50} {size_mb:6.2f} {ms:8.1f} {ms / size_mb:8.2f} {ratio:6.2f} {peak:7.2f}")
    print(f"worst hostile per MB / normal per MB: {worst[1]:.2f}x ({worst[0]})")


if __name__ == "__main__":
    sys.exit(main())
