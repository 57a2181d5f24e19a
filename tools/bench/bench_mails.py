"""The mails the IMAP benchmark seeds: the test corpus plus generated 20-200 KB mails, and one
optional 30 MB mail. Deterministic (fixed seeds) and every mail unique by its bytes, so that
``wicbox run`` files each one instead of recognising a duplicate.
"""

from __future__ import annotations

import math
import os
import random
from pathlib import Path

from tools.bench.parse_bench import generated_mail

REPO_ROOT = Path(__file__).resolve().parents[2]
CORPUS_ENV_NAMES = ("WICBOX_MAIL_CORPUS", "WICBOX_TEST_CORPUS")
CORPUS_SHARE = 5  # at most one mail in CORPUS_SHARE comes from the corpus
GENERATED_MIN_BYTES = 20 * 1024
GENERATED_MAX_BYTES = 200 * 1024
LARGE_MAIL_BYTES = 30 * 1024 * 1024
LARGE_SET_MIN_BYTES = 2 * 1024 * 1024
LARGE_SET_MAX_BYTES = 5 * 1024 * 1024
BASE64_GROWTH = 78 / 57  # 57 raw bytes per 76-character base64 line plus CRLF


def corpus_root(explicit: Path | None = None) -> Path | None:
    """The shared mail corpus: ``explicit``, the environment, else ../shared/corpus beside the repository."""
    candidates = [explicit] if explicit else []
    candidates += [Path(os.environ[name]) for name in CORPUS_ENV_NAMES if os.environ.get(name)]
    candidates.append(REPO_ROOT.parent / "shared" / "corpus" / "mikel-mail")
    for candidate in candidates:
        if candidate.is_dir():
            return candidate
    return None


def to_crlf(raw: bytes) -> bytes:
    """What an IMAP server hands out: every line ending as CRLF."""
    return raw.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


def corpus_mails(root: Path | None) -> list[bytes]:
    """Every distinct ``.eml`` of the corpus, CRLF line ends, in path order."""
    if root is None:
        return []
    unique: dict[bytes, None] = {}
    for path in sorted(root.rglob("*.eml")):
        unique.setdefault(to_crlf(path.read_bytes()))
    return list(unique)


def sized_mail(rng: random.Random, number: int, total_bytes: int) -> bytes:
    """A text + HTML mail with PDF-like attachments, about ``total_bytes`` long."""
    body = rng.randrange(2_000, 12_000)
    attachment_bytes = max(1_000, int((total_bytes - 2.3 * body - 1_500) / BASE64_GROWTH))
    parts = rng.randrange(1, 4)
    sizes = [attachment_bytes // parts] * parts
    return generated_mail(rng, 100_000 + number, body, sizes)


def generated_mails(count: int, seed: int = 2026) -> list[bytes]:
    """``count`` mails whose sizes are spread log-uniformly over 20-200 KB."""
    rng = random.Random(seed)
    low, high = math.log(GENERATED_MIN_BYTES), math.log(GENERATED_MAX_BYTES)
    return [sized_mail(rng, number, int(math.exp(rng.uniform(low, high)))) for number in range(count)]


def large_mails(count: int, seed: int = 2027) -> list[bytes]:
    """``count`` mails whose sizes are spread uniformly over 2-5 MB (the memory benchmark's large set)."""
    rng = random.Random(seed)
    return [
        sized_mail(rng, 500_000 + number, rng.randrange(LARGE_SET_MIN_BYTES, LARGE_SET_MAX_BYTES))
        for number in range(count)
    ]


def benchmark_mails(count: int, corpus: Path | None) -> list[bytes]:
    """``count`` unique mails: up to a fifth from the corpus, the rest generated, shuffled together."""
    from_corpus = corpus_mails(corpus)[: count // CORPUS_SHARE]
    mails = from_corpus + generated_mails(count - len(from_corpus))
    random.Random(7).shuffle(mails)
    return mails


def large_mail(total_bytes: int = LARGE_MAIL_BYTES) -> bytes:
    """One mail of about ``total_bytes`` (a single incompressible attachment)."""
    rng = random.Random(30)
    attachment = int((total_bytes - 12_000) / BASE64_GROWTH)
    return generated_mail(rng, 900_000, 4_000, [attachment])


def with_large_mail(mails: list[bytes]) -> list[bytes]:
    """The same number of mails, the last one replaced by a 30 MB mail (the run cap stays the same)."""
    return [*mails[:-1], large_mail()]
