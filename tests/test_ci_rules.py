"""The suite's own rules under CI: a skip fails the run with its reason (a stopped PostgreSQL or a
missing corpus included), and the summary counts the tests of each kind. Each case runs pytest in a
subprocess on a small test file, with and without CI set."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run_pytest(tmp_path: Path, source: str, *, ci: bool, **env: str) -> subprocess.CompletedProcess[str]:
    test_file = tmp_path / "test_sample.py"
    test_file.write_text(source, encoding="utf-8")
    environment = {key: value for key, value in os.environ.items() if key != "CI"}
    environment.update(env, PYTHONPATH=str(ROOT))
    if ci:
        environment["CI"] = "true"
    return subprocess.run(
        [
            sys.executable, "-m", "pytest", str(test_file), "-q", "-p", "no:cacheprovider",
            "-p", "tests.plugins.postgres", "-p", "tests.plugins.ci", "--rootdir", str(tmp_path),
        ],
        cwd=tmp_path, env=environment, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


SKIPPING = """
import pytest

def test_left_out():
    pytest.skip("the server is not there")
"""


def test_a_skip_fails_under_ci_with_its_reason(tmp_path: Path) -> None:
    locally = run_pytest(tmp_path, SKIPPING, ci=False)
    assert locally.returncode == 0 and "1 skipped" in locally.stdout, locally.stdout
    under_ci = run_pytest(tmp_path, SKIPPING, ci=True)
    assert under_ci.returncode == 1, under_ci.stdout
    assert "skipped under CI, which allows no skips: the server is not there" in under_ci.stdout


def test_a_stopped_postgresql_fails_under_ci(tmp_path: Path) -> None:
    source = "def test_needs_postgres(postgres):\n    assert postgres.port\n"
    result = run_pytest(tmp_path, source, ci=True, WICBOX_TEST_PG_BIN=str(tmp_path / "no-postgres"))
    assert result.returncode == 1, result.stdout
    assert "PostgreSQL test server unavailable" in result.stdout
    assert "tests per kind (collected): postgres 1," in result.stdout


def test_a_missing_corpus_fails_under_ci(tmp_path: Path) -> None:
    source = "from tests.corpus import require_corpus\n\ndef test_reads_corpus():\n    require_corpus()\n"
    result = run_pytest(tmp_path, source, ci=True, WICBOX_MAIL_CORPUS=str(tmp_path / "no-corpus"))
    assert result.returncode == 1, result.stdout
    assert "the mail corpus is missing" in result.stdout


def test_an_expected_failure_stays_one_under_ci(tmp_path: Path) -> None:
    source = "import pytest\n\n@pytest.mark.xfail(strict=True)\ndef test_known():\n    assert False\n"
    result = run_pytest(tmp_path, source, ci=True)
    assert result.returncode == 0 and "1 xfailed" in result.stdout, result.stdout


def test_this_suite_has_tests_of_every_kind() -> None:
    """The kinds are given where the tests are: a change that loses them shows here (and in CI's log)."""
    collected = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", "tests"],
        cwd=ROOT, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    line = next(text for text in collected.stdout.splitlines() if text.startswith("tests per kind"))
    counts = dict(part.rsplit(" ", 1) for part in line.split(": ", 1)[1].split(", "))
    assert set(counts) == {"postgres", "corpus", "crash", "graph", "smtp"}
    assert all(int(count) > 0 for count in counts.values()), line
