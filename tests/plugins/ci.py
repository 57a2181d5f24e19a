"""Under CI nothing passes by being left out: a skipped test fails the run with its reason, and the
summary counts the tests of each kind (postgres, corpus, crash, graph, smtp) so a drop is visible.

CI is the environment variable the test command's callers set (`CI=true bash .ci/run`); locally a
skip stays a skip. The kinds are markers declared once in setup.cfg: postgres, graph and smtp are
given here to every test that uses that server (as a fixture, or a `wic_backend`/`database_target`
parameter naming PostgreSQL); corpus and crash are set by the tests themselves.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Generator

import pytest

COUNTED = ("postgres", "corpus", "crash", "graph", "smtp")
FIXTURES_OF = {
    "postgres": ("postgres", "pg_database"),
    "graph": ("graph", "graph_clean", "graphroom"),
    "smtp": ("smtp", "smtp_clean"),
}
_counts_key = pytest.StashKey[Counter[str]]()


def under_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def _uses_postgres_parameter(item: pytest.Item) -> bool:
    callspec = getattr(item, "callspec", None)
    if callspec is None:
        return False
    return any("postgres" in str(value) for value in callspec.params.values())


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    counts: Counter[str] = Counter()
    for item in items:
        fixtures = set(getattr(item, "fixturenames", ()))
        for marker, names in FIXTURES_OF.items():
            if fixtures & set(names) or (marker == "postgres" and _uses_postgres_parameter(item)):
                item.add_marker(marker)
        for marker in COUNTED:
            if item.get_closest_marker(marker) is not None:
                counts[marker] += 1
    config.stash[_counts_key] = counts


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, None, None]:
    outcome = yield
    report: pytest.TestReport = outcome.get_result()
    if not (report.skipped and under_ci()) or hasattr(report, "wasxfail"):
        return
    reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
    reason = reason.removeprefix("Skipped: ")
    report.outcome = "failed"
    report.longrepr = f"skipped under CI, which allows no skips: {reason}"


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, config: pytest.Config) -> None:
    counts = config.stash.get(_counts_key, Counter())
    listed = ", ".join(f"{marker} {counts[marker]}" for marker in COUNTED)
    terminalreporter.write_line(f"tests per kind (collected): {listed}")
