"""IMAP benchmark of ``wicbox run`` against its floor and getmail6 (not a test; prints a table).

    python -m tools.bench.run_bench [--mails N] [--no-large] [--no-getmail] [--corpus DIR]
                                    [--profile FILE.pstats | FILE.folded]
    python -m tools.bench.run_bench --modes [--corpus DIR]
    python -m tools.bench.run_bench --graph [--mails N] [--corpus DIR]
    python -m tools.bench.run_bench --memory

Starts the loopback test bed (identity-platform emulator, Dovecot over IMAPS with XOAUTH2, a
private PostgreSQL over ODBC), seeds N mails (default 1000: up to a fifth from the test corpus,
the rest generated at 20-200 KB) and measures, on the same Dovecot and the same mails:

* the floor: one IMAPS connection, XOAUTH2, ``UID FETCH BODY.PEEK[]`` in batches of 200 with
  imapclient, bytes discarded; once as imapclient comes, once with imaplib's protocol trace off
  as ``wicbox run`` has it (:mod:`tools.bench.floor_fetch`);
* ``wicbox run`` end to end into PostgreSQL via ODBC, with MOVE to WICBOX/Processed: once on a
  fresh state directory (the token comes from the identity platform) and once warm (the token
  from the cache, as in every later scheduled run; this is the measured one);
* getmail6 reading the same mails over XOAUTH2 into a Maildir.

Then the same again with one of the N mails replaced by a 30 MB mail (``--no-large`` skips it).
Every contender is a child process: wall time and peak RSS are those of the whole command.
``--profile`` adds one more (untimed) warm ``wicbox run`` of the mixed set: ``FILE.pstats`` under
cProfile in every thread with CPU time as the clock (:mod:`tools.bench.thread_profile`; the
functions with the most own time are printed), ``FILE.folded`` sampled with ``py-spy record
--gil`` (folded stacks; py-spy must be installed). Targets: issue 18's (2.5x the floor, 5x faster
than getmail6, memory under 3x the largest mail + 80 MB). Everything started is
stopped and removed at the end, also on Ctrl-C.

``--modes`` runs the account-mode case instead (:mod:`tools.bench.modes_bench`): one MULTIPLE run
over 100 project mailboxes of 5 mails each against SINGLE with the same 500 mails in one mailbox.

``--multiple`` runs the MULTIPLE per-mailbox cost case instead (:mod:`tools.bench.multiple_bench`):
100 project mailboxes x 5 mails against one mailbox x 500 and 500 mailboxes without new mail, on
SQLite and PostgreSQL.

``--memory`` runs the memory case instead (:mod:`tools.bench.memory_bench`): peak RSS of ``wicbox
run`` at run sizes 100, 500 and 1000 of 20-200 KB mails and 200 mails of 2-5 MB, on SQLite and
PostgreSQL.

``--graph`` runs the Microsoft Graph case instead (:mod:`tools.bench.graph_bench`): the same mixed
mails in the Graph emulator, ``wicbox run`` over Graph against a plain requests floor, and the
IMAP floor and ``wicbox run`` on the same mails for comparison.
"""

from __future__ import annotations

import argparse
import os
import pstats
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

from tools.bench.bench_bed import BenchBed, delegated_token, running_bed, seed_template
from tools.bench.bench_mails import benchmark_mails, corpus_root, with_large_mail
from tools.bench.bench_report import CaseResult, report_lines
from tools.bench.contenders import (
    WicboxInstall,
    measure_floor,
    measure_getmail,
    measure_wicbox,
    new_install,
)
from tools.bench.graph_bench import GraphOptions
from tools.bench.graph_bench import main_with as graph_main_with
from tools.bench.memory_bench import MemoryOptions
from tools.bench.memory_bench import main_with as memory_main_with
from tools.bench.modes_bench import ModesOptions, main_with
from tools.bench.multiple_bench import Options as MultipleOptions
from tools.bench.multiple_bench import main_with as multiple_main_with
from wicbox_bridge.commands.run import MAX_MAILS_LIMIT


def progress(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def measure_case(
    bed: BenchBed,
    install: WicboxInstall,
    title: str,
    mails: Sequence[bytes],
    *,
    with_getmail: bool,
    first_run: bool,
) -> CaseResult:
    """Seed ``mails`` and measure every contender on them."""
    count = len(mails)
    progress(f"{title}: seeding {count} mails ({sum(map(len, mails)) / 2**20:.1f} MB)")
    seed_template(bed, mails)
    token = delegated_token(bed)
    token_file = bed.root / "floor-token"
    token_file.write_text(token, encoding="ascii")
    token_file.chmod(0o600)
    progress(f"{title}: floor")
    floor = measure_floor(bed, token_file, count)
    progress(f"{title}: floor, imaplib trace off")
    others = [measure_floor(bed, token_file, count, trace_off=True)]
    if first_run:
        progress(f"{title}: wicbox run, first run (token from the identity platform)")
        others.append(measure_wicbox(bed, install, "wicbox run, first (new token)", count))
    progress(f"{title}: wicbox run, warm")
    wicbox = measure_wicbox(bed, install, "wicbox run, warm (measured)", count)
    getmail = None
    if with_getmail:
        progress(f"{title}: getmail6")
        getmail = measure_getmail(bed, token, count)
    return CaseResult(
        title, count, sum(map(len, mails)), max(map(len, mails)), floor, wicbox, getmail, tuple(others)
    )


def run(options: argparse.Namespace) -> list[CaseResult]:
    progress("generating mails")
    standard = benchmark_mails(options.mails, corpus_root(options.corpus))
    progress("starting the test bed (identity platform, Dovecot, PostgreSQL)")
    cases: list[CaseResult] = []
    with running_bed() as bed:
        install = new_install(bed)
        cases.append(
            measure_case(bed, install, "mixed mails", standard, with_getmail=options.getmail, first_run=True)
        )
        if options.profile is not None:
            progress(f"mixed mails: wicbox run profiled into {options.profile}")
            measure_wicbox(bed, install, "profiled", len(standard), profile_to=options.profile.resolve())
        if options.large:
            large = with_large_mail(standard)
            cases.append(
                measure_case(
                    bed, install, "with one 30 MB mail", large, with_getmail=options.getmail, first_run=False
                )
            )
        progress("stopping the test bed")
    return cases


def print_profile(path: Path, lines: int = 30) -> None:
    if path.suffix == ".folded":
        print(f"\n== py-spy samples of one warm wicbox run (mixed mails) in {path} (folded stacks)")
        return
    print(f"\n== cProfile of one warm wicbox run (mixed mails, every thread), saved in {path}")
    pstats.Stats(str(path), stream=sys.stdout).sort_stats("tottime").print_stats(lines)
    collections = Path(f"{path}.gc.txt")
    if collections.exists():
        print(collections.read_text(encoding="utf-8"))


def mail_count(text: str) -> int:
    value = int(text)
    if not 2 <= value <= MAX_MAILS_LIMIT:
        raise argparse.ArgumentTypeError(f"between 2 and {MAX_MAILS_LIMIT} (the cap of one wicbox run)")
    return value


def parse_options(argv: list[str] | None) -> argparse.Namespace:
    arguments = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    arguments.add_argument("--mails", type=mail_count, default=1000, help="mails per set (default 1000)")
    arguments.add_argument("--no-large", dest="large", action="store_false", help="skip the 30 MB mail set")
    arguments.add_argument("--no-getmail", dest="getmail", action="store_false", help="skip getmail6")
    arguments.add_argument(
        "--profile",
        type=Path,
        help="also profile one wicbox run into this .pstats file (cProfile in every thread, CPU time) "
        "or, named *.folded, sample it with py-spy --gil (folded stacks)",
    )
    arguments.add_argument("--corpus", type=Path, help="the test corpus (default: WICBOX_MAIL_CORPUS)")
    arguments.add_argument(
        "--modes", action="store_true", help="run the account-mode case instead (MULTIPLE vs SINGLE)"
    )
    arguments.add_argument(
        "--multiple", action="store_true", help="run the MULTIPLE per-mailbox cost case instead (issue 19)"
    )
    arguments.add_argument(
        "--graph", action="store_true", help="run the Microsoft Graph case instead (wicbox run vs its floor)"
    )
    arguments.add_argument(
        "--memory", action="store_true", help="run the memory case instead (peak RSS per run size)"
    )
    return arguments.parse_args(argv)


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    options = parse_options(argv)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # also when started with SIGINT ignored
    signal.signal(signal.SIGTERM, _interrupt)  # a kill cleans up like Ctrl-C
    if options.modes:
        return main_with(ModesOptions(corpus=options.corpus))
    if options.multiple:
        return multiple_main_with(MultipleOptions(corpus=options.corpus))
    if options.memory:
        return memory_main_with(MemoryOptions())
    if options.graph:
        return graph_main_with(GraphOptions(mails=options.mails, corpus=options.corpus))
    started = time.monotonic()
    load_before = os.getloadavg()[0]
    try:
        cases = run(options)
    except KeyboardInterrupt:
        progress("interrupted; the test bed is stopped and its files removed")
        return 130
    for line in report_lines(cases):
        print(line)
    if options.profile is not None:
        print_profile(options.profile)
    print(
        f"\nmachine: {os.cpu_count()} CPUs; 1-minute load average {load_before:.2f} before, "
        f"{os.getloadavg()[0]:.2f} after; total benchmark time {time.monotonic() - started:.0f} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
