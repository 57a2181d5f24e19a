"""`wicbox serve` benchmark (not a test; prints a table): arrival-to-filed latency and idle cost.

    python -m tools.bench.serve_bench [--mails N] [--mailboxes M] [--idle-seconds S] [--corpus DIR]

Latency: `wicbox serve` runs against Dovecot (SINGLE mode, IMAP IDLE, PostgreSQL over ODBC); N mails
(default 200, the benchmark's mixed set) are appended to INBOX one by one, each once the one before
is filed. A mail's latency runs from the moment its APPEND returned to the moment its row is in
WICBOX_MAIL (the database is polled every 5 ms); p50/p95/max are printed.

Idle cost: `wicbox serve` with M project mailboxes (default 100, MULTIPLE, application permissions)
and no mail: once every mailbox is watched (the heartbeat says IDLE for all), the process's CPU time
(user + system, /proc) and RSS are read over S seconds (default 60). Targets: under 2% of a core and
under 300 MB.
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
from tools.bench.bench_mails import benchmark_mails, corpus_root
from tools.bench.contenders import WicboxInstall, filed_count, new_install, odbc_target, prepare_database
from tools.testbed.dovecot import append_message
from wicbox_bridge.config.paths import machine_state_dir_for
from wicbox_bridge.serve.heartbeat import HEARTBEAT_FILE_NAME
from wicbox_bridge.store import open_store
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


def start_serve(install: WicboxInstall) -> ServeProcess:
    env = {**os.environ, "WICBOX_HOME": str(install.home)}
    env.pop("WICBOX_CONFIG", None)
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
def measure_latency(bed: BenchBed, mails: Sequence[bytes], progress: Progress) -> list[float]:
    install = new_install(bed)
    database = prepare_database(bed, install, len(mails))
    serve = start_serve(install)
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
                    progress(f"latency: {number} of {len(mails)} mails filed")
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


def configure_multiple(bed: BenchBed, install: WicboxInstall, mailboxes: int) -> str:
    database = prepare_database(bed, install, 100)
    directory = bed.directory
    parameters: dict[str, str | None] = {
        "WICBOXACCOUNTMODE": "MULTIPLE",
        "WICBOX_MAILCLIENT_CLIENTID": directory.confidential_client_id,
        "WICBOX_MAILCLIENT_CLIENTSECRET": directory.confidential_client_secret,
        "WICBOX_MAILCLIENT_PASSWORD": None,
        "WICBOX_MAILCLIENT_SCOPE": "https://outlook.office365.com/.default",
    }
    with open_store(odbc_target(bed.postgres, database)) as store:
        for name, value in parameters.items():
            set_parameter(store, name, value)
        for project in range(1, mailboxes + 1):
            mailbox = project_mailbox(project)
            bed.dovecot.add_mailbox(mailbox)
            bed.dovecot.grant_app_access(directory.confidential_client_sp_id, mailbox)
            store.execute(_INSERT_PROJECT, (project, f"I{project:03d}", f"Idle {project:03d}", mailbox))
    return database


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


def measure_idle(bed: BenchBed, mailboxes: int, seconds: float, progress: Progress) -> IdleCost:
    install = new_install(bed)
    progress(f"idle: {mailboxes} project mailboxes")
    database = configure_multiple(bed, install, mailboxes)
    serve = start_serve(install)
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
        bed.postgres.drop_database(database)
    return IdleCost(
        mailboxes, elapsed, 100.0 * cpu / elapsed, statistics.fmean(samples), max(samples), threads
    )


def _expect(actual: int, expected: int, what: str) -> None:
    if actual != expected:
        raise RuntimeError(f"{what} {actual} mails, expected {expected}: the measurement is void")


# ---- report ---------------------------------------------------------------------------------------
def _percentile(values: Sequence[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def report_lines(latencies: Sequence[float], idle: IdleCost) -> list[str]:
    p50, p95 = _percentile(latencies, 0.5), _percentile(latencies, 0.95)
    cpu_ok = "PASS" if idle.cpu_percent < MAX_CPU_PERCENT else "MISS"
    rss_ok = "PASS" if idle.rss_mb_peak < MAX_RSS_MB else "MISS"
    return [
        f"== wicbox serve: {len(latencies)} mails appended one by one (IMAP IDLE, Dovecot, PostgreSQL/ODBC)",
        f"arrival-to-filed: p50 {p50:.3f} s, p95 {p95:.3f} s, max {max(latencies):.3f} s, "
        f"mean {statistics.fmean(latencies):.3f} s",
        f"== idle: {idle.mailboxes} project mailboxes (MULTIPLE, IDLE each), no mail, {idle.seconds:.0f} s",
        f"CPU {idle.cpu_percent:.2f}% of a core; RSS mean {idle.rss_mb_mean:.0f} MB, "
        f"peak {idle.rss_mb_peak:.0f} MB; {idle.threads} threads",
        "targets:",
        f"  {cpu_ok}  idle CPU under {MAX_CPU_PERCENT:g}% of a core",
        f"  {rss_ok}  idle RSS under {MAX_RSS_MB:g} MB",
    ]


@dataclass(frozen=True)
class ServeOptions:
    mails: int = DEFAULT_MAILS
    mailboxes: int = DEFAULT_MAILBOXES
    idle_seconds: float = DEFAULT_IDLE_SECONDS
    corpus: Path | None = None


def run_serve_bench(options: ServeOptions, progress: Progress) -> list[str]:
    progress("generating mails")
    mails = benchmark_mails(options.mails, corpus_root(options.corpus))
    progress("starting the test bed (identity platform, Dovecot, PostgreSQL)")
    with running_bed() as bed:
        latencies = measure_latency(bed, mails, progress)
        idle = measure_idle(bed, options.mailboxes, options.idle_seconds, progress)
        progress("stopping the test bed")
    return report_lines(latencies, idle)


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
    parsed = arguments.parse_args(argv)
    if parsed.mails < 1 or parsed.mailboxes < 1 or parsed.idle_seconds <= 0:
        arguments.error("--mails and --mailboxes at least 1, --idle-seconds above 0")
    return ServeOptions(parsed.mails, parsed.mailboxes, parsed.idle_seconds, parsed.corpus)


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
