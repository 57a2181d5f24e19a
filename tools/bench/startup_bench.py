"""Start-up benchmark of ``wicbox`` (issue 18; not a test, prints a table).

    python -m tools.bench.startup_bench [--repeat N] [--run]

Measures, in one run and on the same machine, the median wall time of N child processes each:

* the bare interpreter, ``python -c pass`` (the floor every figure is divided by);
* ``wicbox --version`` and ``wicbox --help`` (target: under 0.15 s);
* ``python -X importtime``'s total for ``--version``, the import time the CLI itself adds.

``--run`` adds ``wicbox run`` with no new mail against the loopback test bed (identity-platform
emulator, Dovecot over IMAPS with XOAUTH2, PostgreSQL over ODBC): one first run that fetches the
token, then N warm runs (the token from the cache, as every later scheduled run), each against
an empty INBOX; the floor beside it is one IMAPS connection with XOAUTH2 and a ``SELECT INBOX``.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

PYTHON = sys.executable
IMPORT_LINE = re.compile(r"^import time:\s+\d+ \|\s+(\d+) \| (\S.*)$")


@dataclass(frozen=True)
class Figure:
    """The median wall time of one command over its repetitions."""

    label: str
    seconds: float
    runs: int


def progress(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def wall(
    label: str, argv: Sequence[str], env: dict[str, str] | None = None, cwd: Path | None = None
) -> float:
    """Seconds from start to exit of one child (no probe: its sampling would dwarf a start-up)."""
    start = time.perf_counter()
    done = subprocess.run(argv, env=env, cwd=cwd, capture_output=True, timeout=300, check=False)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        tail = (done.stdout + done.stderr).decode(errors="replace").strip().splitlines()[-15:]
        raise RuntimeError(f"{label} exited with code {done.returncode}:\n" + "\n".join(tail))
    return seconds


def median_of(
    label: str, argv: Sequence[str], repeat: int, env: dict[str, str] | None = None, cwd: Path | None = None
) -> Figure:
    """Runs ``argv`` ``repeat`` times (after one unmeasured warm-up); the median wall time."""
    wall(label, argv, env, cwd)
    return Figure(label, statistics.median(wall(label, argv, env, cwd) for _ in range(repeat)), repeat)


def import_time_ms(*args: str) -> float:
    """The summed top-level cumulative import time of ``python -X importtime -m wicbox_bridge ARGS``."""
    done = subprocess.run(
        [PYTHON, "-X", "importtime", "-m", "wicbox_bridge", *args],
        capture_output=True, text=True, check=True, timeout=60,
    )  # fmt: skip
    total = 0
    for line in done.stderr.splitlines():
        match = IMPORT_LINE.match(line)
        if match and not match.group(2).startswith(" "):
            total += int(match.group(1))
    return total / 1000


def cli_figures(repeat: int) -> list[Figure]:
    progress("bare interpreter, wicbox --version, wicbox --help")
    return [
        median_of("python -c pass", [PYTHON, "-c", "pass"], repeat),
        median_of("wicbox --version", [PYTHON, "-m", "wicbox_bridge", "--version"], repeat),
        median_of("wicbox --help", [PYTHON, "-m", "wicbox_bridge", "--help"], repeat),
    ]


def run_figures(repeat: int) -> list[Figure]:
    """``wicbox run`` with no new mail on the test bed, and its floor (sign-in and one SELECT)."""
    # The test bed's modules load msal, requests and imapclient: only for --run.
    from tools.bench.bench_bed import delegated_token, inbox_count, running_bed
    from tools.bench.contenders import new_install, prepare_database

    progress("starting the test bed (identity platform, Dovecot, PostgreSQL)")
    with running_bed() as bed:
        install = new_install(bed)
        assert inbox_count(bed) == 0, "the new mailbox's INBOX should be empty"
        database = prepare_database(bed, install, 1000)
        env = {key: value for key, value in os.environ.items() if key != "WICBOX_CONFIG"}
        env["WICBOX_HOME"] = str(install.home)
        run = [PYTHON, "-m", "wicbox_bridge", "--config", str(install.config), "run", "--json"]
        try:
            progress("wicbox run, first (token from the identity platform)")
            first = Figure("wicbox run, no new mail, first", wall("wicbox run", run, env, install.work), 1)
            progress(f"wicbox run with no new mail, warm, {repeat} times")
            warm = median_of("wicbox run, no new mail, warm", run, repeat, env, install.work)
            token_file = bed.root / "floor-token"
            token_file.write_text(delegated_token(bed), encoding="ascii")
            token_file.chmod(0o600)
            floor_argv = [
                PYTHON, "-m", "tools.bench.floor_fetch", "--host", bed.imap_host,
                "--port", str(bed.imaps_port), "--user", bed.mailbox,
                "--token-file", str(token_file), "--ca", str(bed.pki.ca_cert),
            ]  # fmt: skip
            progress("floor: sign-in and SELECT INBOX")
            floor = median_of("floor: IMAPS + XOAUTH2 + SELECT", floor_argv, repeat)
        finally:
            bed.postgres.drop_database(database)
        progress("stopping the test bed")
    return [first, warm, floor]


def print_table(figures: Sequence[Figure]) -> None:
    bare = figures[0].seconds
    print(f"{'command':<36} {'median s':>9} {'x bare python':>14} {'runs':>5}")
    for figure in figures:
        print(f"{figure.label:<36} {figure.seconds:>9.3f} {figure.seconds / bare:>14.1f} {figure.runs:>5}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.bench.startup_bench", description=__doc__)
    parser.add_argument("--repeat", type=int, default=11, help="runs per command (default 11)")
    parser.add_argument(
        "--run", action="store_true", help="also `wicbox run` with no new mail on the test bed"
    )
    options = parser.parse_args(argv)
    figures = cli_figures(options.repeat)
    if options.run:
        figures += run_figures(options.repeat)
    print_table(figures)
    print(f"import time of `wicbox --version` (python -X importtime, all modules): "
          f"{import_time_ms('--version'):.0f} ms")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
