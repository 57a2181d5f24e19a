"""Benchmark of mail parsers for the filing job (not a test; prints a table).

    python -m tools.bench.parse_bench [--corpus DIR] [--repeat N] [--no-huge] [--no-hostile]
    python -m tools.bench.parse_bench --differential   # fast-mail-parser against parse_mail (issue 18)

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
import resource
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections import Counter
from collections.abc import Callable, Iterable
from email import policy
from email.message import EmailMessage
from email.parser import BytesHeaderParser, BytesParser
from pathlib import Path
from typing import Any

from wicbox_bridge.mail.filename import sanitise_filename
from wicbox_bridge.mail.parse import FastPathUnsupported, parse_mail, parse_mail_fast, parse_mail_stdlib
from wicbox_bridge.mail.record import Attachment, RecipientHeader

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
    arguments.add_argument(
        "--differential",
        action="store_true",
        help="compare fast-mail-parser with parse_mail instead of timing",
    )
    arguments.add_argument("--child", nargs=2, metavar=("MAIL_FILE", "CONTENDER"), help=argparse.SUPPRESS)
    options = arguments.parse_args(argv)
    if options.child:
        return hostile_child(*options.child)
    if options.differential:
        return differential_main(corpus_dir(options.corpus))
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


# --- fast-mail-parser against parse_mail: what it gets wrong, and how it fails (issue 18) ---


def _lines(text: str | None) -> str | None:
    return None if not text or not text.strip() else text.replace("\r\n", "\n").rstrip()


def differences(raw: bytes) -> list[str]:
    """What fast-mail-parser's flat result says differently from :func:`parse_mail` (the record
    filed today, which the tests hold equal to the standard library's on every mail the fast path
    takes). Empty when they agree on everything the database stores."""
    import fast_mail_parser

    ours = parse_mail(raw)
    try:
        theirs = fast_mail_parser.parse_email(raw)
    except Exception as exc:
        return [f"raised {type(exc).__name__}"]
    found: list[str] = []
    if (theirs.subject or "").strip() != (ours.subject or "").strip():
        found.append("subject")
    sender = theirs.from_.address.lower() if theirs.from_ else ""
    if sender not in (ours.from_addr or "").lower():
        found.append("From address")
    for kind, addresses in ((RecipientHeader.TO, theirs.to), (RecipientHeader.CC, theirs.cc)):
        if [a.address.lower() for a in addresses] != [a for k, a in ours.recipients if k is kind]:
            found.append(f"{kind.value} addresses")
    if _lines(theirs.text_plain[0] if theirs.text_plain else None) != _lines(ours.body_text):
        found.append("text body")
    if _lines(theirs.text_html[0] if theirs.text_html else None) != _lines(ours.body_html):
        found.append("HTML body")
    found += _attachment_differences(ours.attachments, theirs)
    return found


def _attachment_differences(ours: tuple[Attachment, ...], theirs: Any) -> list[str]:
    """Attachments by their decoded bytes: a file we store that is missing from theirs (or whose
    bytes differ), and a file we store under a name theirs does not give (after sanitising)."""
    their_files = {item.content: item for item in theirs.attachments}
    extra_bodies = [*theirs.text_plain[1:], *theirs.text_html[1:]]
    found: list[str] = []
    for index, attachment in enumerate(ours, start=1):
        other = their_files.get(attachment.content)
        if other is None:
            text = attachment.content.decode("utf-8", "replace").replace("\r\n", "\n").strip()
            in_bodies = any(text == body.replace("\r\n", "\n").strip() for body in extra_bodies)
            found.append(
                "extra text part moved into the bodies"
                if in_bodies
                else "attachment lost or its bytes changed"
            )
        elif sanitise_filename(other.filename or None, index, attachment.content_type) != attachment.filename:
            generated = not other.filename
            found.append("file name missing" if generated else "file name differs")
    return list(dict.fromkeys(found))


def differential_report(name: str, mails: list[tuple[str, bytes]]) -> None:
    tally: Counter[str] = Counter()
    examples: dict[str, str] = {}
    for label, raw in mails:
        for difference in differences(raw):
            tally[difference] += 1
            examples.setdefault(difference, label)
    agree = sum(1 for _, raw in mails if not differences(raw))
    print(f"\n== {name}: {len(mails)} mails; fast-mail-parser agrees with parse_mail on {agree}")
    for difference, count in tally.most_common():
        print(f"{difference:45} {count:5d}  e.g. {examples[difference]}")


def differential_main(corpus: Path | None) -> int:
    if fast_mail_parser_contender() is None:
        print("fast-mail-parser is not installed: pip install fast-mail-parser")
        return 1
    if corpus is not None:
        files = sorted(corpus.rglob("*.eml"))
        differential_report("test corpus", [(path.name, path.read_bytes()) for path in files])
    generated = office_mails() + large_mails()
    differential_report("generated mails", [(f"generated {n}", raw) for n, raw in enumerate(generated)])
    sys.path.insert(0, str(REPO_ROOT))
    from tests.hostile import KINDS, build

    with tempfile.TemporaryDirectory() as folder:
        hostile_failures([(kind.name, build(kind, 16)) for kind in KINDS], Path(folder))
    differential_report("hostile set", [(kind.name, build(kind, 16)) for kind in KINDS])
    return 0


CHILD_TIMEOUT_S = 120
CHILD_ADDRESS_SPACE = 4 * 1024**3


def hostile_failures(kinds: list[tuple[str, bytes]], folder: Path) -> None:
    """Every hostile kind parsed by each parser in a process of its own (4 GB address space,
    120 s): seconds, whether it raised, crashed or hung, and the parse's peak RSS above the
    process's peak with the mail read (the mail is handed over in a file)."""
    print(f"\n== hostile set, each parse in its own process (limit {CHILD_TIMEOUT_S} s, 4 GB)")
    print(f"{'kind':50} {'MB':>6} {'parse_mail':>24} {'fast-mail-parser':>38}")
    for number, (name, raw) in enumerate(kinds):
        path = folder / f"{number}.eml"
        path.write_bytes(raw)
        results = [_run_child(path, contender) for contender in ("parse_mail", "fast-mail-parser")]
        print(f"{name:50} {len(raw) / 1e6:6.2f} {results[0]:>24} {results[1]:>38}")
        path.unlink()


def _run_child(path: Path, contender: str) -> str:
    command = [sys.executable, "-m", "tools.bench.parse_bench", "--child", str(path), contender]
    try:
        done = subprocess.run(
            command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=CHILD_TIMEOUT_S, check=False
        )
    except subprocess.TimeoutExpired:
        return f"HUNG (> {CHILD_TIMEOUT_S} s)"
    if done.returncode != 0:
        tail = (done.stdout + done.stderr).strip().splitlines()[-1:] or [""]
        return f"exit {done.returncode}: {tail[0][:30]}"
    return done.stdout.strip().splitlines()[-1]


def hostile_child(path: str, contender: str) -> int:
    """One parse of one mail in a process of its own; prints '<s> s, +<MB> MB[, raised X]'."""
    resource.setrlimit(resource.RLIMIT_AS, (CHILD_ADDRESS_SPACE, CHILD_ADDRESS_SPACE))
    raw = Path(path).read_bytes()
    parse: Callable[[bytes], Any] = parse_mail
    if contender != "parse_mail":
        import fast_mail_parser

        parse = fast_mail_parser.parse_email
    before = _reset_peak_rss_kb()
    outcome = ""
    start = time.perf_counter()
    try:
        parse(raw)
    except Exception as exc:
        outcome = f", raised {type(exc).__name__}"
    seconds = time.perf_counter() - start
    grown = (_status_kb("VmHWM") - before) / 1024
    print(f"{seconds:.3f} s, +{grown:.0f} MB{outcome}")
    return 0


def _reset_peak_rss_kb() -> int:
    """Linux: reset this process's peak RSS to its current RSS (a forked child starts with its
    parent's peak) and return it."""
    Path("/proc/self/clear_refs").write_text("5")
    return _status_kb("VmHWM")


def _status_kb(field: str) -> int:
    line = next(line for line in Path("/proc/self/status").read_text().splitlines() if line.startswith(field))
    return int(line.split()[1])


if __name__ == "__main__":
    sys.exit(main())
