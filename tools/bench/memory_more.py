"""The memory case over Microsoft Graph and in MULTIPLE mode: peak RSS of one ``wicbox run`` per run
size, into PostgreSQL over ODBC (see :mod:`tools.bench.memory_bench`, which runs these after the
IMAP ones and prints them in the same table).

* Graph: the mails in the Graph emulator's global mailbox (delegated, Mail.ReadWrite, so AUTO
  picks GRAPH), as in :mod:`tools.bench.graph_bench`;
* MULTIPLE: the same mails spread over :data:`MAILBOXES` project mailboxes on Dovecot
  (application permissions), as in :mod:`tools.bench.modes_bench`.

Each run is checked as the benchmarks check theirs (all mails filed, every inbox empty).
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable, Sequence
from typing import Any

from tools.bench.bench_bed import BenchBed
from tools.bench.contenders import WicboxInstall, filed_count, new_install, run_wicbox
from tools.bench.graph_bench import graph_bed, measure_graph_wicbox
from tools.bench.measure import ChildRun
from tools.bench.modes_bench import (
    ModeCase,
    configure,
    mails_left,
    project_mailbox,
    restore_inboxes,
    seed_templates,
)

MAILBOXES = 10
Progress = Callable[[str], None]
# (backend column, mails of the set, seconds, peak RSS MB, CPU seconds) for memory_bench's rows
Figures = tuple[str, Sequence[bytes], float, float, float]


def graph_runs(sets: Sequence[tuple[str, Sequence[bytes]]], progress: Progress) -> list[Figures]:
    """One checked Graph run per set, into a fresh database each."""
    figures: list[Figures] = []
    progress("starting the test bed with the Graph emulator")
    with graph_bed() as (bed, graph):
        install = new_install(bed)
        for title, mails in sets:
            progress(f"{title}: wicbox run over Graph")
            measured = measure_graph_wicbox(bed, graph, install, title, mails)
            figures.append(("graph pg", mails, measured.seconds, measured.peak_rss_mb, measured.cpu_seconds))
            progress(f"peak RSS {measured.peak_rss_mb:.1f} MB in {measured.seconds:.2f} s")
    return figures


def multiple_case(mails: Sequence[bytes], mailboxes: int = MAILBOXES) -> ModeCase:
    """``mails`` spread in order over ``mailboxes`` project mailboxes (projects 1..mailboxes)."""
    each = -(-len(mails) // mailboxes)
    return ModeCase(
        "MULTIPLE",
        tuple(
            (number, project_mailbox(number), tuple(mails[(number - 1) * each : number * each]))
            for number in range(1, mailboxes + 1)
            if mails[(number - 1) * each : number * each]
        ),
    )


def multiple_run(bed: BenchBed, install: WicboxInstall, case: ModeCase) -> ChildRun:
    """One checked MULTIPLE ``wicbox run`` of ``case`` into a fresh database."""
    database = configure(bed, install, case, None)
    try:
        _expect(restore_inboxes(bed, case), case.mail_count, "the mailboxes hold")
        child = run_wicbox(install, case.mail_count).require_success("wicbox run (MULTIPLE)")
        report: dict[str, Any] = json.loads(child.stdout)
        _expect(report["counts"]["filed"], case.mail_count, "wicbox run (MULTIPLE) filed")
        _expect(filed_count(bed, database), case.mail_count, "the database holds")
        _expect(mails_left(bed, case), 0, "the INBOXes still hold")
    except BaseException:
        with contextlib.suppress(Exception):  # the run's own error is the one to see
            drop_database(bed, database)
        raise
    drop_database(bed, database)
    return child


def drop_database(bed: BenchBed, name: str, attempts: int = 240) -> None:
    """Drop a run's database. After a large run an autovacuum worker may still be at work in it,
    which the benchmark's role cannot force out: try again until it is done (up to 2 minutes)."""
    for attempt in range(attempts):
        try:
            bed.postgres.drop_database(name)
            return
        except Exception:
            if attempt == attempts - 1:
                raise
            time.sleep(0.5)


def multiple_runs(
    bed: BenchBed, sets: Sequence[tuple[str, Sequence[bytes]]], progress: Progress
) -> list[Figures]:
    """One checked MULTIPLE run per set on the running test bed."""
    figures: list[Figures] = []
    install = new_install(bed)
    for title, mails in sets:
        case = multiple_case(mails)
        progress(f"{title}: seeding {len(case.mailboxes)} project mailboxes")
        seed_templates(bed, case)
        progress(f"{title}: wicbox run (MULTIPLE)")
        child = multiple_run(bed, install, case)
        figures.append(
            (
                f"multiple pg x{len(case.mailboxes)}",
                mails,
                child.seconds,
                child.peak_rss_mb,
                child.cpu_seconds,
            )
        )
        progress(f"peak RSS {child.peak_rss_mb:.1f} MB in {child.seconds:.2f} s")
    return figures


def _expect(actual: int, expected: int, what: str) -> None:
    if actual != expected:
        raise RuntimeError(f"{what} {actual} mails, expected {expected}")
