"""Memory at any run size: peak RSS of ``wicbox run`` per run size, on SQLite and PostgreSQL (not a
test; prints a table).

    python -m tools.bench.memory_bench [--sizes 100,500,1000] [--large 200] [--backend both]
                                       [--paths imap,graph,multiple]
    python -m tools.bench.run_bench --memory        (the same, with the defaults)

On the IMAP benchmark's test bed (identity platform, Dovecot over IMAPS with XOAUTH2, a private
PostgreSQL over ODBC) it seeds each set once and runs ``wicbox run`` over all of it (the cap is
the set's size, MOVE to WICBOX/Processed) into a fresh database of each backend:

* 100, 500 and 1000 generated mails of 20-200 KB (the same generator and seed, so the smaller
  sets are the first mails of the larger one);
* 200 generated mails of 2-5 MB.

The same sets then go, into PostgreSQL, through Microsoft Graph (the Graph emulator) and in
MULTIPLE mode over 10 project mailboxes (:mod:`tools.bench.memory_more`); ``--paths`` picks which.

Every run is checked (all mails filed, INBOX empty), so a broken run cannot pass as a lean one.
Peak RSS is measured as in the IMAP benchmark (:mod:`tools.bench.measure`). Targets: each run
within 3x its largest mail plus 80 MB, and the 20-200 KB runs flat across sizes (the largest peak
at most :data:`FLAT_TOLERANCE_MB` above the smallest).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import FrameType
from typing import Any

from tools.bench.bench_bed import BenchBed, inbox_count, restore_inbox, running_bed, seed_template
from tools.bench.bench_mails import generated_mails, large_mails
from tools.bench.bench_report import LARGEST_MAIL_FACTOR, MB, MEMORY_ALLOWANCE_MB
from tools.bench.contenders import (
    WicboxInstall,
    new_install,
    odbc_target,
    run_wicbox,
    wicman_parameters,
    write_config,
)
from tools.bench.memory_more import Figures, drop_database, graph_runs, multiple_runs
from wicbox_bridge.config.dbtarget import DatabaseTarget, SqliteTarget
from wicbox_bridge.store import init_schema, open_store
from wicbox_bridge.store.parameters import set_parameter

BACKENDS = ("sqlite", "postgresql")
PATHS = ("imap", "graph", "multiple")
FLAT_TOLERANCE_MB = 5.0
DEFAULT_SIZES = (100, 500, 1000)
DEFAULT_LARGE = 200


@dataclass(frozen=True)
class MailSet:
    title: str
    mails: Sequence[bytes]

    @property
    def limit_mb(self) -> float:
        return LARGEST_MAIL_FACTOR * max(map(len, self.mails)) / MB + MEMORY_ALLOWANCE_MB


@dataclass(frozen=True)
class MemoryRow:
    backend: str
    title: str
    mails: int
    total_mb: float
    largest_mb: float
    seconds: float
    peak_rss_mb: float
    limit_mb: float
    cpu_seconds: float = 0.0

    @property
    def met(self) -> bool:
        return self.peak_rss_mb <= self.limit_mb


def progress(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def mail_sets(sizes: Sequence[int], large: int) -> list[MailSet]:
    """The 20-200 KB sets (prefixes of one generated list) and the 2-5 MB set."""
    small = generated_mails(max(sizes, default=0))
    sets = [MailSet(f"{size} mails of 20-200 KB", small[:size]) for size in sizes]
    return sets + ([MailSet(f"{large} mails of 2-5 MB", large_mails(large))] if large else [])


def _fill(target: DatabaseTarget, bed: BenchBed) -> None:
    with open_store(target) as store:
        init_schema(store)
        for parameter, value in wicman_parameters(bed).items():
            set_parameter(store, parameter, value)


def prepare(
    bed: BenchBed, install: WicboxInstall, backend: str, cap: int
) -> tuple[Callable[[], int], Callable[[], None]]:
    """A fresh database of ``backend`` with the schema and parameters; the config points at it.

    Returns how to count its filed mails and how to remove it."""
    count_sql = "SELECT COUNT(*) FROM WICBOX_MAIL WHERE STATUS = 'FILED'"
    if backend == "sqlite":
        path = bed.root / f"wicbox-bench-{uuid.uuid4().hex[:12]}.db"
        target: DatabaseTarget = SqliteTarget(path)
        _fill(target, bed)
        write_config(install.config, f"sqlite:///{path}", cap, bed)

        def remove_file() -> None:
            for leftover in path.parent.glob(path.name + "*"):
                leftover.unlink()

        return lambda: _count(target, count_sql), remove_file
    name = f"wicbox_bench_{uuid.uuid4().hex[:12]}"
    bed.postgres.create_database(name)
    odbc = odbc_target(bed.postgres, name)
    _fill(odbc, bed)
    write_config(install.config, bed.postgres.connection_string(name), cap, bed)
    return lambda: _count(odbc, count_sql), lambda: drop_database(bed, name)


def _count(target: DatabaseTarget, sql: str) -> int:
    with open_store(target) as store:
        return int(store.query(sql)[0][0])


def measure(bed: BenchBed, install: WicboxInstall, backend: str, mail_set: MailSet) -> MemoryRow:
    """One ``wicbox run`` of the whole set into a fresh database; checked, then measured."""
    count = len(mail_set.mails)
    filed, remove = prepare(bed, install, backend, count)
    try:
        restore_inbox(bed)
        child = run_wicbox(install, count).require_success(f"wicbox run ({backend}, {mail_set.title})")
        report: dict[str, Any] = json.loads(child.stdout)
        for what, got in (("wicbox run filed", report["counts"]["filed"]), ("the database holds", filed())):
            if got != count:
                raise RuntimeError(f"{what} {got} mails, expected {count}")
        if inbox_count(bed):
            raise RuntimeError("INBOX still holds mail after the run")
    except BaseException:
        with contextlib.suppress(Exception):  # the run's own error is the one to see
            remove()
        raise
    remove()
    return MemoryRow(
        backend,
        mail_set.title,
        count,
        sum(map(len, mail_set.mails)) / MB,
        max(map(len, mail_set.mails)) / MB,
        child.seconds,
        child.peak_rss_mb,
        mail_set.limit_mb,
        child.cpu_seconds,
    )


def run(sets: Sequence[MailSet], backends: Sequence[str], paths: Sequence[str] = PATHS) -> list[MemoryRow]:
    rows: list[MemoryRow] = []
    titled = [(mail_set.title, mail_set.mails) for mail_set in sets]
    progress("starting the test bed (identity platform, Dovecot, PostgreSQL)")
    with running_bed() as bed:
        install = new_install(bed)
        for mail_set in sets if "imap" in paths else ():
            progress(f"{mail_set.title}: seeding ({sum(map(len, mail_set.mails)) / MB:.0f} MB)")
            seed_template(bed, mail_set.mails)
            for backend in backends:
                progress(f"{mail_set.title}: wicbox run into {backend}")
                rows.append(measure(bed, install, backend, mail_set))
                row = rows[-1]
                progress(
                    f"peak RSS {row.peak_rss_mb:.1f} MB in {row.seconds:.2f} s ({row.cpu_seconds:.2f} CPU s)"
                )
        if "multiple" in paths:
            rows += [_row(sets, figures) for figures in multiple_runs(bed, titled, progress)]
        progress("stopping the test bed")
    if "graph" in paths:
        rows += [_row(sets, figures) for figures in graph_runs(titled, progress)]
    return rows


def _row(sets: Sequence[MailSet], figures: Figures) -> MemoryRow:
    backend, mails, seconds, peak, cpu = figures
    mail_set = next(mail_set for mail_set in sets if mail_set.mails is mails)
    sizes = list(map(len, mails))
    return MemoryRow(
        backend,
        mail_set.title,
        len(mails),
        sum(sizes) / MB,
        max(sizes) / MB,
        seconds,
        peak,
        mail_set.limit_mb,
        cpu,
    )


def report_lines(rows: Sequence[MemoryRow]) -> list[str]:
    lines = [
        "== memory at any run size: peak RSS of one wicbox run (IMAP unless named, cap = the set's size)",
        f"{'backend':18} {'mail set':24} {'MB':>7} {'largest':>8} {'seconds':>8} {'CPU s':>7} "
        f"{'peak RSS':>9} {'limit':>8}  target",
    ]
    for row in rows:
        lines.append(
            f"{row.backend:18} {row.title:24} {row.total_mb:7.1f} {row.largest_mb:7.2f}M {row.seconds:8.2f} "
            f"{row.cpu_seconds:7.2f} {row.peak_rss_mb:7.1f}MB {row.limit_mb:6.1f}MB  "
            f"{'PASS' if row.met else 'MISS'}"
        )
    for backend in sorted({row.backend for row in rows}):
        small = [row for row in rows if row.backend == backend and "20-200 KB" in row.title]
        if len(small) > 1:
            peaks = [row.peak_rss_mb for row in small]
            spread = max(peaks) - min(peaks)
            verdict = "PASS" if spread <= FLAT_TOLERANCE_MB else "MISS"
            lines.append(
                f"  {verdict}  {backend}: flat across run sizes: peaks {min(peaks):.1f}-{max(peaks):.1f} MB "
                f"(spread {spread:.1f} MB, at most {FLAT_TOLERANCE_MB:.0f} MB)"
            )
    return lines


def parse_sizes(text: str) -> tuple[int, ...]:
    sizes = tuple(int(part) for part in text.split(",") if part.strip())
    if not sizes or not all(1 <= size <= 1000 for size in sizes):
        raise argparse.ArgumentTypeError("comma-separated run sizes of 1-1000 (the cap of one wicbox run)")
    return sizes


@dataclass(frozen=True)
class MemoryOptions:
    sizes: tuple[int, ...] = DEFAULT_SIZES
    large: int = DEFAULT_LARGE
    backends: tuple[str, ...] = BACKENDS
    paths: tuple[str, ...] = PATHS


def main_with(options: MemoryOptions) -> int:
    started = time.monotonic()
    try:
        rows = run(mail_sets(options.sizes, options.large), options.backends, options.paths)
    except KeyboardInterrupt:
        progress("interrupted; the test bed is stopped and its files removed")
        return 130
    for line in report_lines(rows):
        print(line)
    print(f"\nmachine: {os.cpu_count()} CPUs; total benchmark time {time.monotonic() - started:.0f} s")
    return 0


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    arguments = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    arguments.add_argument(
        "--sizes", type=parse_sizes, default=DEFAULT_SIZES, help="run sizes, e.g. 100,500,1000"
    )
    arguments.add_argument(
        "--large", type=int, default=DEFAULT_LARGE, help="mails in the 2-5 MB set (0: none)"
    )
    arguments.add_argument("--backend", choices=(*BACKENDS, "both"), default="both", help="for IMAP")
    arguments.add_argument(
        "--paths", type=parse_paths, default=PATHS, help="which of imap,graph,multiple (default: all)"
    )
    options = arguments.parse_args(argv)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _interrupt)
    backends = BACKENDS if options.backend == "both" else (options.backend,)
    return main_with(MemoryOptions(options.sizes, options.large, backends, options.paths))


def parse_paths(text: str) -> tuple[str, ...]:
    paths = tuple(part.strip() for part in text.split(",") if part.strip())
    if not paths or not set(paths) <= set(PATHS):
        raise argparse.ArgumentTypeError(f"comma-separated, of {','.join(PATHS)}")
    return paths


if __name__ == "__main__":
    sys.exit(main())
