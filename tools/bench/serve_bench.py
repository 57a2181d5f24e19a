"""`wicbox serve` benchmark (not a test; prints a table): arrival-to-filed latency and idle cost.

    python -m tools.bench.serve_bench [--mails N] [--mailboxes M] [--idle-seconds S] [--corpus DIR]
        [--backend sqlite|postgresql|both] [--baseline REV] [--repeats K] [--skip-latency]

Latency: `wicbox serve` runs against Dovecot (SINGLE mode, IMAP IDLE, PostgreSQL over ODBC); N mails
(default 200, the benchmark's mixed set) are appended to INBOX one by one, each once the one before
is filed. A mail's latency runs from the moment its APPEND returned to the moment its row is in
WICBOX_MAIL (the database is polled every 5 ms); p50/p95/max are printed.

Idle cost: `wicbox serve` with M project mailboxes (default 100, MULTIPLE, application permissions)
and no mail: once every mailbox is watched (the heartbeat says IDLE for all), the process's CPU time
(user + system, /proc) and RSS are read over S seconds (default 60). Targets: under 2% of a core and
under 300 MB. Idle runs on each ``--backend`` (default both).

``--baseline REV`` measures the source tree of git revision REV too, in the same run, each case
before and after back to back; ``--repeats K`` repeats every measurement (medians and ranges).
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

from tools.bench.bench_bed import BenchBed, running_bed
from tools.bench.bench_mails import REPO_ROOT, benchmark_mails, corpus_root
from tools.bench.contenders import (
    WicboxInstall,
    filed_count,
    new_install,
    odbc_target,
    prepare_database,
    wicman_parameters,
    write_config,
)
from tools.bench.multiple_bench import Tree, export_tree
from tools.testbed.dovecot import append_message
from wicbox_bridge.config.dbtarget import DatabaseTarget, SqliteTarget
from wicbox_bridge.config.paths import machine_state_dir_for
from wicbox_bridge.serve.heartbeat import HEARTBEAT_FILE_NAME
from wicbox_bridge.store import init_schema, open_store
from wicbox_bridge.store.parameters import set_parameter

DEFAULT_MAILS = 200
DEFAULT_MAILBOXES = 100
DEFAULT_IDLE_SECONDS = 60.0
MAX_CPU_PERCENT = 2.0
MAX_RSS_MB = 300.0
POLL_S = 0.005
START_TIMEOUT_S = 300.0
FILED_TIMEOUT_S = 60.0
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PAGE_KB = os.sysconf("SC_PAGE_SIZE") // 1024
BACKENDS = ("sqlite", "postgresql")
CURRENT = Tree("working tree")
_INSERT_PROJECT = (
    "INSERT INTO WIC_PROJECT (PROJECT_ID, CODE, NAME, ACTIVE, WICBOX_MAILBOX) VALUES (?, ?, ?, 1, ?)"
)

Progress = Callable[[str], None]


# ---- the serve process ------------------------------------------------------------------------------
@dataclass
class ServeProcess:
    install: WicboxInstall
    process: subprocess.Popen[bytes]
    log: Path

    def output(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")

    def heartbeat(self) -> dict[str, object] | None:
        env = {"WICBOX_HOME": str(self.install.home)}
        path = machine_state_dir_for(self.install.config, env=env) / HEARTBEAT_FILE_NAME
        try:
            document = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return document if isinstance(document, dict) else None

    def watched(self) -> int:
        """How many mailboxes the heartbeat shows watched by IDLE."""
        beat = self.heartbeat() or {}
        entries = beat.get("mailboxes", [])
        listed = entries if isinstance(entries, list) else []
        return sum(1 for entry in listed if isinstance(entry, dict) and entry.get("how") == "IDLE")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(30)


def start_serve(install: WicboxInstall, tree: Tree = CURRENT) -> ServeProcess:
    env = {**os.environ, "WICBOX_HOME": str(install.home)}
    env.pop("WICBOX_CONFIG", None)
    first = [] if tree.path is None else [str(tree.path)]
    env["PYTHONPATH"] = os.pathsep.join([*first, str(REPO_ROOT)])
    log = install.root / "serve.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "wicbox_bridge", "--config", str(install.config), "serve"],
            env=env,
            cwd=install.work,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    return ServeProcess(install, process, log)


def wait_for(condition: Callable[[], bool], what: str, serve: ServeProcess, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if serve.process.poll() is not None:
            raise RuntimeError(f"wicbox serve ended while waiting for {what}:\n{serve.output()[-3000:]}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}:\n{serve.output()[-3000:]}")
        time.sleep(POLL_S)


# ---- latency --------------------------------------------------------------------------------------
def measure_latency(
    bed: BenchBed, mails: Sequence[bytes], progress: Progress, tree: Tree = CURRENT
) -> list[float]:
    install = new_install(bed)
    database = prepare_database(bed, install, len(mails))
    serve = start_serve(install, tree)
    try:
        wait_for(lambda: serve.watched() == 1, "the IDLE watch", serve, START_TIMEOUT_S)
        latencies = []
        with bed.dovecot.admin_session(bed.mailbox) as client:
            for number, raw in enumerate(mails, start=1):
                appended = time.perf_counter()
                append_message(client, "INBOX", raw)
                filed = functools.partial(_filed_at_least, bed, database, number)
                wait_for(filed, f"mail {number} filed", serve, FILED_TIMEOUT_S)
                latencies.append(time.perf_counter() - appended)
                if number % 50 == 0:
                    progress(f"latency ({tree.label}): {number} of {len(mails)} mails filed")
        _expect(filed_count(bed, database), len(mails), "the database holds")
    finally:
        serve.stop()
        bed.postgres.drop_database(database)
    return latencies


def _filed_at_least(bed: BenchBed, database: str, count: int) -> bool:
    return filed_count(bed, database) >= count


# ---- idle cost ------------------------------------------------------------------------------------
def project_mailbox(project_id: int) -> str:
    return f"idle-{project_id:03d}@klant.example"


def configure_multiple(bed: BenchBed, install: WicboxInstall, mailboxes: int, backend: str) -> DatabaseTarget:
    """A new database of ``backend`` in MULTIPLE mode with ``mailboxes`` project mailboxes (each a
    Dovecot user the app may read); the install's config points at it."""
    if backend == "postgresql":
        name = prepare_database(bed, install, 100)
        target: DatabaseTarget = odbc_target(bed.postgres, name)
    else:
        target = SqliteTarget(bed.root / f"wicbox-idle-{install.root.name}.db")
        with open_store(target) as store:
            init_schema(store)
            for parameter, value in wicman_parameters(bed).items():
                set_parameter(store, parameter, value)
        write_config(install.config, f"sqlite:///{target.path}", 100, bed)
    directory = bed.directory
    parameters: dict[str, str | None] = {
        "WICBOXACCOUNTMODE": "MULTIPLE",
        "WICBOX_MAILCLIENT_CLIENTID": directory.confidential_client_id,
        "WICBOX_MAILCLIENT_CLIENTSECRET": directory.confidential_client_secret,
        "WICBOX_MAILCLIENT_PASSWORD": None,
        "WICBOX_MAILCLIENT_SCOPE": "https://outlook.office365.com/.default",
    }
    with open_store(target) as store:
        for name, value in parameters.items():
            set_parameter(store, name, value)
        for project in range(1, mailboxes + 1):
            mailbox = project_mailbox(project)
            bed.dovecot.add_mailbox(mailbox)
            bed.dovecot.grant_app_access(directory.confidential_client_sp_id, mailbox)
            store.execute(_INSERT_PROJECT, (project, f"I{project:03d}", f"Idle {project:03d}", mailbox))
    return target


def _drop(bed: BenchBed, target: DatabaseTarget) -> None:
    if isinstance(target, SqliteTarget):
        for leftover in target.path.parent.glob(target.path.name + "*"):
            leftover.unlink()
    else:
        bed.postgres.drop_database(_database_name(target))


def _database_name(target: DatabaseTarget) -> str:
    return target.describe().rpartition(" ")[2]


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text(encoding="ascii").rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime, stime


def _rss_mb(pid: int) -> float:
    return int(Path(f"/proc/{pid}/statm").read_bytes().split()[1]) * PAGE_KB / 1024


@dataclass(frozen=True)
class IdleCost:
    mailboxes: int
    seconds: float
    cpu_percent: float
    rss_mb_mean: float
    rss_mb_peak: float
    threads: int
    backend: str = "postgresql"
    tree: str = CURRENT.label


def measure_idle(
    bed: BenchBed,
    mailboxes: int,
    seconds: float,
    progress: Progress,
    backend: str = "postgresql",
    tree: Tree = CURRENT,
) -> IdleCost:
    install = new_install(bed)
    progress(f"idle ({tree.label}, {backend}): {mailboxes} project mailboxes")
    target = configure_multiple(bed, install, mailboxes, backend)
    serve = start_serve(install, tree)
    try:
        wait_for(lambda: serve.watched() == mailboxes, f"{mailboxes} IDLE watches", serve, START_TIMEOUT_S)
        progress(f"idle: every mailbox watched; measuring for {seconds:.0f} s")
        pid = serve.process.pid
        time.sleep(5.0)  # the first passes' allocations settle
        cpu_before, started = _cpu_seconds(pid), time.monotonic()
        samples = []
        while time.monotonic() - started < seconds:
            samples.append(_rss_mb(pid))
            time.sleep(1.0)
        cpu = _cpu_seconds(pid) - cpu_before
        elapsed = time.monotonic() - started
        threads = len(list(Path(f"/proc/{pid}/task").iterdir()))
    finally:
        serve.stop()
        _drop(bed, target)
    return IdleCost(
        mailboxes,
        elapsed,
        100.0 * cpu / elapsed,
        statistics.fmean(samples),
        max(samples),
        threads,
        backend,
        tree.label,
    )


def _expect(actual: int, expected: int, what: str) -> None:
    if actual != expected:
        raise RuntimeError(f"{what} {actual} mails, expected {expected}: the measurement is void")


# ---- report ---------------------------------------------------------------------------------------
def _percentile(values: Sequence[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def _spread(values: Sequence[float], unit: str, digits: int) -> str:
    """The median and, for several values, their range."""
    median = f"{statistics.median(values):.{digits}f}{unit}"
    if len(values) < 2:
        return median
    return f"{median} (range {min(values):.{digits}f}-{max(values):.{digits}f}{unit})"


def latency_lines(tree: str, runs: Sequence[Sequence[float]]) -> list[str]:
    p50 = [_percentile(latencies, 0.5) for latencies in runs]
    p95 = [_percentile(latencies, 0.95) for latencies in runs]
    worst = max(max(latencies) for latencies in runs)
    mean = statistics.fmean([value for latencies in runs for value in latencies])
    return [
        f"== wicbox serve ({tree}): {len(runs[0])} mails appended one by one, {len(runs)} run(s) "
        "(IMAP IDLE, Dovecot, PostgreSQL/ODBC)",
        f"arrival-to-filed: p50 {_spread(p50, ' s', 3)}, p95 {_spread(p95, ' s', 3)}, max {worst:.3f} s, "
        f"mean {mean:.3f} s",
    ]


def idle_lines(runs: Sequence[IdleCost]) -> list[str]:
    first = runs[0]
    cpu = [run.cpu_percent for run in runs]
    peak = [run.rss_mb_peak for run in runs]
    lines = [
        f"== idle ({first.tree}, {first.backend}): {first.mailboxes} project mailboxes "
        f"(MULTIPLE, IDLE each), no mail, {first.seconds:.0f} s, {len(runs)} run(s)",
        f"CPU {_spread(cpu, '%', 2)} of a core; RSS peak {_spread(peak, ' MB', 0)}; {first.threads} threads",
    ]
    cpu_ok = "PASS" if statistics.median(cpu) < MAX_CPU_PERCENT else "MISS"
    rss_ok = "PASS" if max(peak) < MAX_RSS_MB else "MISS"
    lines += [
        f"  {cpu_ok}  idle CPU under {MAX_CPU_PERCENT:g}% of a core",
        f"  {rss_ok}  idle RSS under {MAX_RSS_MB:g} MB",
    ]
    return lines


def report_lines(latencies: Sequence[float], idle: IdleCost) -> list[str]:
    return latency_lines(CURRENT.label, [latencies]) + idle_lines([idle])


@dataclass(frozen=True)
class ServeOptions:
    mails: int = DEFAULT_MAILS
    mailboxes: int = DEFAULT_MAILBOXES
    idle_seconds: float = DEFAULT_IDLE_SECONDS
    corpus: Path | None = None
    backends: tuple[str, ...] = BACKENDS
    baseline: str | None = None
    repeats: int = 1
    latency: bool = True


def run_serve_bench(options: ServeOptions, progress: Progress) -> list[str]:
    progress("generating mails")
    mails = benchmark_mails(options.mails, corpus_root(options.corpus))
    progress("starting the test bed (identity platform, Dovecot, PostgreSQL)")
    lines = [f"load average at the start: {' '.join(f'{load:.2f}' for load in os.getloadavg())}"]
    with running_bed() as bed:
        trees = [CURRENT] if options.baseline is None else [export_tree(bed, options.baseline), CURRENT]
        latencies: dict[str, list[list[float]]] = {tree.label: [] for tree in trees}
        idle: dict[tuple[str, str], list[IdleCost]] = {}
        for _ in range(options.repeats):  # before and after back to back: the same load
            for tree in trees if options.latency else []:
                latencies[tree.label].append(measure_latency(bed, mails, progress, tree))
            for backend in options.backends:
                for tree in trees:
                    cost = measure_idle(bed, options.mailboxes, options.idle_seconds, progress, backend, tree)
                    idle.setdefault((tree.label, backend), []).append(cost)
        progress("stopping the test bed")
    for label, runs in latencies.items():
        lines += latency_lines(label, runs) if runs else []
    for costs in idle.values():
        lines += idle_lines(costs)
    lines.append(f"load average at the end: {' '.join(f'{load:.2f}' for load in os.getloadavg())}")
    return lines


def progress_to_stderr(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def parse_options(argv: list[str] | None) -> ServeOptions:
    arguments = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    arguments.add_argument("--mails", type=int, default=DEFAULT_MAILS)
    arguments.add_argument("--mailboxes", type=int, default=DEFAULT_MAILBOXES)
    arguments.add_argument("--idle-seconds", type=float, default=DEFAULT_IDLE_SECONDS)
    arguments.add_argument("--corpus", type=Path, help="the test corpus (default: WICBOX_MAIL_CORPUS)")
    arguments.add_argument("--backend", choices=(*BACKENDS, "both"), default="both", help="for the idle case")
    arguments.add_argument("--baseline", help="a git revision measured too, in the same run (before/after)")
    arguments.add_argument("--repeats", type=int, default=1)
    arguments.add_argument("--skip-latency", action="store_true")
    parsed = arguments.parse_args(argv)
    if parsed.mails < 1 or parsed.mailboxes < 1 or parsed.idle_seconds <= 0 or parsed.repeats < 1:
        arguments.error("--mails, --mailboxes and --repeats at least 1, --idle-seconds above 0")
    backends = BACKENDS if parsed.backend == "both" else (parsed.backend,)
    return ServeOptions(
        parsed.mails,
        parsed.mailboxes,
        parsed.idle_seconds,
        parsed.corpus,
        backends,
        parsed.baseline,
        parsed.repeats,
        not parsed.skip_latency,
    )


def main(argv: list[str] | None = None) -> int:
    options = parse_options(argv)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        lines = run_serve_bench(options, progress_to_stderr)
    except KeyboardInterrupt:
        progress_to_stderr("interrupted; the test bed is stopped and its files removed")
        return 130
    for line in lines:
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
