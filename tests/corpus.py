"""The shared mail corpus of real-world and malformed mails (MIT licensed, kept outside the repository).

Found through WICBOX_MAIL_CORPUS, else at ../shared/corpus/mikel-mail beside the repository.
Under CI (CI set) a missing corpus fails the tests that need it instead of skipping them.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

CORPUS_ENV = "WICBOX_MAIL_CORPUS"
_REPOSITORY = Path(__file__).resolve().parents[1]


def find_corpus() -> Path | None:
    configured = os.environ.get(CORPUS_ENV)
    candidate = Path(configured) if configured else _REPOSITORY.parent / "shared" / "corpus" / "mikel-mail"
    return candidate if candidate.is_dir() else None


def corpus_files() -> list[Path]:
    """Every .eml of the corpus, sorted; empty when the corpus is not there."""
    root = find_corpus()
    return sorted(root.rglob("*.eml")) if root else []


def require_corpus() -> Path:
    """The corpus root, or skip (fail under CI) with how to provide it."""
    root = find_corpus()
    if root is not None:
        return root
    message = f"the mail corpus is missing: set {CORPUS_ENV} to the mikel-mail corpus directory"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)
    raise AssertionError("unreachable")
