"""The crash matrix's table: one line per cell (pure: results in, lines out)."""

from __future__ import annotations

from collections.abc import Sequence

from tools.crash.cell import CellResult
from tools.crash.kills import Hit

COLUMNS = (
    ("cell", 18),
    ("rows", 5),
    ("kills", 6),
    ("before accept", 14),
    ("after accept", 13),
    ("during lookup", 14),
    ("elsewhere", 10),
    ("lost", 5),
    ("sent twice", 11),
    ("confirmed by lookup", 20),
    ("parked UNKNOWN", 15),
    ("seconds", 8),
)


def _row(values: Sequence[str]) -> str:
    cells = [
        value.ljust(width) if index == 0 else value.rjust(width)
        for index, (value, (_n, width)) in enumerate(zip(values, COLUMNS, strict=True))
    ]
    return " ".join(cells).rstrip()


def header() -> str:
    return _row([name for name, _width in COLUMNS])


def line(result: CellResult) -> str:
    hits = result.hits
    verdict = result.verdict
    return _row(
        [
            result.name,
            str(result.plan.rows),
            str(len(result.kills)),
            str(hits[Hit.BEFORE_ACCEPT]),
            str(hits[Hit.AFTER_ACCEPT]),
            str(hits[Hit.DURING_LOOKUP]),
            str(hits[Hit.ELSEWHERE] + hits[Hit.FINISHED]),
            str(verdict.lost),
            str(verdict.twice),
            str(verdict.confirmed),
            str(verdict.parked),
            f"{result.seconds:.1f}",
        ]
    )


def problems(results: Sequence[CellResult]) -> list[str]:
    """Each cell's problems, named by cell (none when all is well)."""
    return [f"{result.name}: {problem}" for result in results for problem in result.problems]


def table(results: Sequence[CellResult]) -> list[str]:
    """The header, a line per cell, then the problems."""
    return [header(), *(line(result) for result in results), *problems(results)]
