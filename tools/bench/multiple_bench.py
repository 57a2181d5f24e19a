"""MULTIPLE per-mailbox cost (issue 19): many small project mailboxes against one large mailbox,
and a MULTIPLE run over many project mailboxes with no new mail (not a test; prints a table).

    python -m tools.bench.multiple_bench [--backend sqlite|postgresql|both] [--baseline REV]
                                         [--mailboxes N] [--mails-each M] [--empty E]
                                         [--repeats R] [--workers W] [--corpus DIR]
    python -m tools.bench.run_bench --multiple        (the same, with the defaults)

Per backend (a fresh SQLite file or PostgreSQL database over ODBC for every run), three cases, all
with application permissions (one app token, an Exchange mailbox permission per mailbox):

* SINGLE: 500 mails (the benchmark's mixed set) in the global mailbox;
* MULTIPLE: the same 500 mails as 100 project mailboxes x 5;
* EMPTY: 500 project mailboxes with no new mail.

Targets: MULTIPLE at most 1.5x of SINGLE (same run, same database), EMPTY under 30 s. Each case
runs once cold (the token from the identity platform, not measured) and R times warm (the median
is the measured one); every run is checked (all mails filed, every INBOX empty, no mailbox
failed), so a broken run cannot pass as a fast one.

``--baseline REV`` measures the source tree of git revision REV too, in the same run, on the same
test bed and databases (``git archive`` into the bed's directory, put first on the child's
``PYTHONPATH``): before and after side by side. ``--revision REV`` measures REV instead of the
working tree (so edits made while the benchmark runs do not change what it measures).
``--profile DIR`` adds one untimed run of MULTIPLE and of EMPTY per backend under cProfile in every
thread (:mod:`tools.bench.thread_profile`), saves ``DIR/{backend}-{case}.pstats`` and prints the
functions with the most cumulative time.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import pstats
import signal
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

from tools.bench.bench_bed import BenchBed, running_bed
from tools.bench.bench_mails import benchmark_mails, corpus_root
from tools.bench.contenders import (
    REPO_ROOT,
    WicboxInstall,
    new_install,
    odbc_target,
    wicman_parameters,
    write_config,
)
from tools.bench.measure import ChildRun, run_child
from tools.bench.modes_bench import ModeCase, mails_left, project_mailbox, restore_inboxes, seed_templates
from wicbox_bridge.config.dbtarget import DatabaseTarget, SqliteTarget
from wicbox_bridge.store import init_schema, open_store
from wicbox_bridge.store.parameters import set_parameter

BACKENDS = ("sqlite", "postgresql")
MAX_RATIO = 1.5
MAX_EMPTY_SECONDS = 30.0
DEFAULTS = {"mailboxes": 100, "mails_each": 5, "empty": 500, "repeats": 3}
_INSERT_PROJECT = (
    "INSERT INTO WIC_PROJECT (PROJECT_ID, CODE, NAME, ACTIVE, WICBOX_MAILBOX) VALUES (?, ?, ?, 1, ?)"
)

Progress = Callable[[str], None]


@dataclass(frozen=True)
class Tree:
    """A source tree to measure: the working tree (``path`` None) or an exported revision."""

    label: str
    path: Path | None = None


@dataclass(frozen=True)
class Cpu:
    """CPU seconds one run took, by who: ``wicbox run`` itself, the test bed's Dovecot (every
    process of it), PostgreSQL (every backend) and this process (the login check Dovecot asks,
    the identity-platform emulator). On 2 cores a run whose CPU adds up to about twice its wall
    time waits for a core, not for a server."""

    product: float
    dovecot: float
    postgres: float
    bed: float

    @staticmethod
    def median(runs: Sequence[Cpu]) -> Cpu:
        return Cpu(*(statistics.median(getattr(run, name) for run in runs) for name in _CPU_FIELDS))


_CPU_FIELDS = ("product", "dovecot", "postgres", "bed")


def tree_cpu_seconds(root: int | None) -> float:
    """User and system CPU of process ``root`` and its live descendants, with what their reaped
    children took (Linux /proc; 0 elsewhere or when the process is gone). A process that ends
    between two readings moves into its parent's reaped-children time, so differences stay right."""
    if root is None:
        return 0.0
    children: dict[int, list[int]] = {}
    times: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        pid = int(entry.name)
        children.setdefault(int(fields[1]), []).append(pid)
        times[pid] = sum(int(value) for value in fields[11:15])  # utime stime cutime cstime
    total, todo = 0, [root]
    while todo:
        pid = todo.pop()
        total += times.get(pid, 0)
        todo += children.get(pid, [])
    return total / os.sysconf("SC_CLK_TCK")


def _cpu_now(bed: BenchBed) -> tuple[float, float, float]:
    own = os.times()
    return tree_cpu_seconds(bed.dovecot.pid), tree_cpu_seconds(bed.postgres.pid), own.user + own.system


@dataclass(frozen=True)
class Row:
    backend: str
    tree: str
    case: str
    mailboxes: int
    mails: int
    warm: tuple[float, ...]
    cpu: tuple[Cpu, ...] = ()

    @property
    def measured(self) -> float:
        return statistics.median(self.warm)


@dataclass(frozen=True)
class Options:
    backends: tuple[str, ...] = BACKENDS
    baseline: str | None = None
    revision: str | None = None
    profile: Path | None = None
    mailboxes: int = DEFAULTS["mailboxes"]
    mails_each: int = DEFAULTS["mails_each"]
    empty: int = DEFAULTS["empty"]
    repeats: int = DEFAULTS["repeats"]
    workers: int | None = None
    corpus: Path | None = None


# ---- the cases ----------------------------------------------------------------------------------
def build_cases(bed: BenchBed, mails: Sequence[bytes], options: Options) -> list[ModeCase]:
    each = options.mails_each
    single = ModeCase("SINGLE", ((None, bed.mailbox, tuple(mails)),))
    multiple = ModeCase(
        "MULTIPLE",
        tuple(
            (number, project_mailbox(number), tuple(mails[(number - 1) * each : number * each]))
            for number in range(1, options.mailboxes + 1)
        ),
    )
    # the empty mailboxes are other mailboxes than MULTIPLE's (numbered after them)
    first = options.mailboxes + 1
    empty = ModeCase(
        "EMPTY",
        tuple((number, project_mailbox(number), ()) for number in range(first, first + options.empty)),
    )
    return [single, multiple] + ([empty] if options.empty else [])


def _mode(case: ModeCase) -> str:
    return "SINGLE" if case.mode == "SINGLE" else "MULTIPLE"


# ---- the database -------------------------------------------------------------------------------
@contextmanager
def fresh_database(
    bed: BenchBed, install: WicboxInstall, backend: str, case: ModeCase, workers: int | None
) -> Iterator[DatabaseTarget]:
    """A new database of ``backend`` configured for ``case``; the install's config points at it."""
    cap = _cap(case)
    if backend == "sqlite":
        path = bed.root / f"wicbox-multi-{uuid.uuid4().hex[:12]}.db"
        target: DatabaseTarget = SqliteTarget(path)
        _configure(target, bed, case, workers)
        write_config(install.config, f"sqlite:///{path}", cap, bed)
        try:
            yield target
        finally:
            for leftover in path.parent.glob(path.name + "*"):
                leftover.unlink()
        return
    name = f"wicbox_multi_{uuid.uuid4().hex[:12]}"
    bed.postgres.create_database(name)
    try:
        target = odbc_target(bed.postgres, name)
        _configure(target, bed, case, workers)
        write_config(install.config, bed.postgres.connection_string(name), cap, bed)
        yield target
    finally:
        _drop(bed, name)


def _cap(case: ModeCase) -> int:
    """WicBoxMaxMailsPerRun and --max-mails: every mail, and at least 1 per mailbox. Since the cap
    is handed out as passes list their mail, an empty mailbox takes none of it; the floor of one per
    mailbox stays so that a revision from before (``--baseline``), which shared the cap before
    knowing which mailboxes are empty, opens every mailbox too."""
    return max(case.mail_count, len(case.mailboxes))


def _drop(bed: BenchBed, name: str, attempts: int = 240) -> None:
    for attempt in range(attempts):  # an autovacuum worker may still be in it (see memory_bench)
        try:
            bed.postgres.drop_database(name)
            return
        except Exception:
            if attempt == attempts - 1:
                raise
            time.sleep(0.5)


def _configure(target: DatabaseTarget, bed: BenchBed, case: ModeCase, workers: int | None) -> None:
    directory = bed.directory
    parameters: dict[str, str | None] = {
        **wicman_parameters(bed),
        "WICBOXACCOUNTMODE": _mode(case),
        "WICBOX_MAILCLIENT_CLIENTID": directory.confidential_client_id,
        "WICBOX_MAILCLIENT_CLIENTSECRET": directory.confidential_client_secret,
        "WICBOX_MAILCLIENT_PASSWORD": None,
        "WICBOX_MAILCLIENT_SCOPE": "https://outlook.office365.com/.default",
        "WICBOX_MAILCLIENT_WORKERS": None if workers is None else str(workers),
    }
    with open_store(target) as store:
        init_schema(store)
        for name, value in parameters.items():
            set_parameter(store, name, value)
        for project, mailbox, _mails in case.mailboxes:
            if project is not None:
                store.execute(
                    _INSERT_PROJECT, (project, f"P{project:03d}", f"Project {project:03d}", mailbox)
                )


def _filed(target: DatabaseTarget) -> int:
    with open_store(target) as store:
        return int(store.query("SELECT COUNT(*) FROM WICBOX_MAIL WHERE STATUS = 'FILED'")[0][0])


# ---- one run ------------------------------------------------------------------------------------
def export_tree(bed: BenchBed, revision: str) -> Tree:
    """``git archive`` of ``revision`` into the bed's directory, adapters/ mounted as the installed
    package mounts it (wicbox_bridge.adapters)."""
    root = bed.root / f"tree-{uuid.uuid4().hex[:8]}"
    root.mkdir()
    archive = subprocess.run(
        ["git", "-C", str(REPO_ROOT), "archive", revision], check=True, capture_output=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(root)], input=archive, check=True)
    (root / "wicbox_bridge" / "adapters").symlink_to(root / "adapters", target_is_directory=True)
    return Tree(revision, root)


def run_wicbox(
    install: WicboxInstall, tree: Tree, max_mails: int, profile_to: Path | None = None
) -> ChildRun:
    env = {**os.environ, "WICBOX_HOME": str(install.home)}
    env.pop("WICBOX_CONFIG", None)
    first = [] if tree.path is None else [str(tree.path)]
    env["PYTHONPATH"] = os.pathsep.join([*first, str(REPO_ROOT)])  # REPO_ROOT: tools.bench
    profiled = ["tools.bench.thread_profile", str(profile_to)] if profile_to else []
    program = [*profiled, "wicbox_bridge"]
    argv = [
        sys.executable, "-m", *program, "--config", str(install.config),
        "run", "--max-mails", str(max_mails), "--json",
    ]  # fmt: skip
    return run_child(argv, env=env, cwd=install.work)


def timed_run(
    bed: BenchBed,
    install: WicboxInstall,
    tree: Tree,
    backend: str,
    case: ModeCase,
    options: Options,
    profile_to: Path | None = None,
) -> tuple[float, Cpu]:
    """One checked ``wicbox run`` of the case into a fresh database; its wall time and CPU."""
    with fresh_database(bed, install, backend, case, options.workers) as target:
        _expect(restore_inboxes(bed, case) if case.mail_count else 0, case.mail_count, "the mailboxes hold")
        what = f"wicbox run ({tree.label}, {backend}, {case.mode})"
        before = _cpu_now(bed)
        child = run_wicbox(install, tree, _cap(case), profile_to).require_success(what)
        after = _cpu_now(bed)
        report = json.loads(child.stdout)
        _expect(report["counts"]["failed_mailboxes"], 0, f"{what} failed in")
        _expect(report["counts"]["mailboxes"], len(case.mailboxes), f"{what} read")
        _expect(report["counts"]["filed"], case.mail_count, f"{what} filed")
        _expect(_filed(target), case.mail_count, "the database holds")
        if case.mail_count:
            _expect(mails_left(bed, case), 0, "the INBOXes still hold")
    return child.seconds, Cpu(
        child.cpu_seconds, *(end - start for start, end in zip(before, after, strict=True))
    )


def _expect(actual: int, expected: int, what: str) -> None:
    if actual != expected:
        raise RuntimeError(f"{what} {actual}, expected {expected}: the measurement is void")


def measure(
    bed: BenchBed, tree: Tree, backend: str, case: ModeCase, options: Options, progress: Progress
) -> Row:
    install = new_install(bed)
    progress(f"{tree.label} {backend} {case.mode}: cold run")
    timed_run(bed, install, tree, backend, case, options)
    warm: list[float] = []
    cpu: list[Cpu] = []
    for number in range(1, options.repeats + 1):
        progress(f"{tree.label} {backend} {case.mode}: warm run {number} of {options.repeats}")
        seconds, used = timed_run(bed, install, tree, backend, case, options)
        warm.append(seconds)
        cpu.append(used)
    return Row(backend, tree.label, case.mode, len(case.mailboxes), case.mail_count, tuple(warm), tuple(cpu))


# ---- report -------------------------------------------------------------------------------------
def report_lines(rows: Sequence[Row], options: Options) -> list[str]:
    workers = options.workers if options.workers is not None else "not set (default)"
    lines = [
        f"== MULTIPLE per-mailbox cost: application permissions, WICBOX_MAILCLIENT_WORKERS {workers}, "
        f"median of {options.repeats} warm run(s)",
        f"{'tree':12} {'backend':10} {'case':9} {'mailboxes':>9} {'mails':>6} "
        f"{'warm s (range)':>20} {'vs SINGLE':>9}   "
        f"CPU s: {'wicbox':>6} {'Dovecot':>7} {'PgSQL':>6} {'bed':>5}",
    ]
    verdicts: list[str] = []
    for (tree, backend), group in sorted(
        _groups(rows).items(), key=lambda item: (item[0][1], item[0][0] != rows[0].tree)
    ):
        single = next((row for row in group if row.case == "SINGLE"), None)
        for row in group:
            spread = f"{row.measured:.2f} ({min(row.warm):.2f}-{max(row.warm):.2f})"
            ratio = "" if single is None or row.case == "EMPTY" else f"{row.measured / single.measured:8.2f}x"
            lines.append(
                f"{tree:12} {backend:10} {row.case:9} {row.mailboxes:9} {row.mails:6} {spread:>20} {ratio:>9}"
                + _cpu_columns(row)
            )
        verdicts += _verdicts(tree, backend, group, single)
    return [*lines, "targets:", *verdicts]


def _cpu_columns(row: Row) -> str:
    if not row.cpu:
        return ""
    cpu = Cpu.median(row.cpu)
    return f"          {cpu.product:6.2f} {cpu.dovecot:7.2f} {cpu.postgres:6.2f} {cpu.bed:5.2f}"


def _groups(rows: Sequence[Row]) -> dict[tuple[str, str], list[Row]]:
    groups: dict[tuple[str, str], list[Row]] = {}
    for row in rows:
        groups.setdefault((row.tree, row.backend), []).append(row)
    return groups


def _verdicts(tree: str, backend: str, group: Sequence[Row], single: Row | None) -> list[str]:
    found = []
    for row in group:
        if row.case == "MULTIPLE" and single is not None:
            ratio = row.measured / single.measured
            verdict = "PASS" if ratio <= MAX_RATIO else "MISS"
            found.append(
                f"  {verdict}  {tree} {backend}: MULTIPLE at most {MAX_RATIO:g}x of SINGLE: {ratio:.2f}x"
            )
        if row.case == "EMPTY":
            verdict = "PASS" if row.measured < MAX_EMPTY_SECONDS else "MISS"
            found.append(
                f"  {verdict}  {tree} {backend}: {row.mailboxes} mailboxes without new mail under "
                f"{MAX_EMPTY_SECONDS:g} s: {row.measured:.2f} s"
            )
    return found


# ---- main ---------------------------------------------------------------------------------------
def run_multiple(options: Options, progress: Progress) -> list[str]:
    progress("generating mails")
    mails = benchmark_mails(options.mailboxes * options.mails_each, corpus_root(options.corpus))
    progress("starting the test bed (identity platform, Dovecot, PostgreSQL)")
    rows: list[Row] = []
    with running_bed() as bed:
        trees = [Tree("working tree") if options.revision is None else export_tree(bed, options.revision)]
        if options.baseline is not None:
            trees.insert(0, export_tree(bed, options.baseline))
        cases = build_cases(bed, mails, options)
        for case in cases:
            progress(f"seeding {case.mode}: {len(case.mailboxes)} mailbox(es), {case.mail_count} mails")
            seed_templates(bed, case)
        for backend in options.backends:  # each case before and after back to back: the same load
            rows += [measure(bed, tree, backend, case, options, progress) for case in cases for tree in trees]
        profiles = [] if options.profile is None else profile_runs(bed, trees[-1], cases, options, progress)
        progress("stopping the test bed")
    return report_lines(rows, options) + profiles


def profile_runs(
    bed: BenchBed, tree: Tree, cases: Sequence[ModeCase], options: Options, progress: Progress
) -> list[str]:
    """One untimed warm run of MULTIPLE and EMPTY per backend under cProfile; the top functions."""
    assert options.profile is not None
    options.profile.mkdir(parents=True, exist_ok=True)
    lines: list[str] = []
    for backend in options.backends:
        for case in (case for case in cases if case.mode != "SINGLE"):
            install = new_install(bed)
            timed_run(bed, install, tree, backend, case, options)  # the token into the cache
            out = options.profile / f"{backend}-{case.mode.lower()}.pstats"
            progress(f"profiling {tree.label} {backend} {case.mode} into {out}")
            timed_run(bed, install, tree, backend, case, options, out)
            text = io.StringIO()
            pstats.Stats(str(out), stream=text).sort_stats("cumulative").print_stats(30)
            lines += [f"== profile {backend} {case.mode} ({out})", *text.getvalue().splitlines()[6:]]
    return lines


def progress_to_stderr(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def main_with(options: Options) -> int:
    """Run and print; 130 when interrupted (everything started is stopped and removed)."""
    load_before = os.getloadavg()[0]
    started = time.monotonic()
    try:
        lines = run_multiple(options, progress_to_stderr)
    except KeyboardInterrupt:
        progress_to_stderr("interrupted; the test bed is stopped and its files removed")
        return 130
    for line in lines:
        print(line)
    print(
        f"machine: {os.cpu_count()} CPUs; 1-minute load average {load_before:.2f} before, "
        f"{os.getloadavg()[0]:.2f} after; total {time.monotonic() - started:.0f} s"
    )
    return 0


def _count(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError("not negative")
    return value


def parse_options(argv: list[str] | None) -> Options:
    arguments = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    arguments.add_argument("--backend", choices=(*BACKENDS, "both"), default="both")
    arguments.add_argument("--baseline", help="a git revision measured too, in the same run (before/after)")
    arguments.add_argument("--revision", help="the git revision to measure (default: the working tree)")
    arguments.add_argument("--profile", type=Path, help="also profile MULTIPLE and EMPTY into this directory")
    for name, default in DEFAULTS.items():
        arguments.add_argument(f"--{name.replace('_', '-')}", type=_count, default=default)
    arguments.add_argument("--workers", type=_count, help="WICBOX_MAILCLIENT_WORKERS for every case")
    arguments.add_argument("--corpus", type=Path, help="the test corpus (default: WICBOX_MAIL_CORPUS)")
    parsed = arguments.parse_args(argv)
    backends = BACKENDS if parsed.backend == "both" else (parsed.backend,)
    return Options(
        backends,
        parsed.baseline,
        parsed.revision,
        parsed.profile,
        parsed.mailboxes,
        parsed.mails_each,
        parsed.empty,
        max(1, parsed.repeats),
        parsed.workers,
        parsed.corpus,
    )


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    options = parse_options(argv)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _interrupt)
    return main_with(options)


if __name__ == "__main__":
    sys.exit(main())
