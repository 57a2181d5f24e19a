"""Run one contender as a child process and measure its wall time and peak resident memory.

The command runs under :mod:`tools.bench.rss_probe`, a small launcher that times it and reads
its peak RSS (the larger of ``wait4``'s ``ru_maxrss`` and the largest sum over the command's
process tree, sampled from ``/proc``) and its CPU time (user plus system, its own and that of
every descendant it waited for), so neither the servers nor the benchmark's own memory count.
The launcher gets its own process group; if the benchmark is interrupted or the command overruns
its time limit, that group is killed before the error goes on.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

PROBE = Path(__file__).with_name("rss_probe.py")
DEFAULT_TIMEOUT_S = 600.0


@dataclass(frozen=True)
class ChildRun:
    """How one child process ended and what it cost."""

    argv: tuple[str, ...]
    exit_code: int
    seconds: float
    peak_rss_mb: float
    stdout: str
    stderr: str
    cpu_seconds: float = 0.0

    def require_success(self, what: str) -> ChildRun:
        if self.exit_code != 0:
            tail = "\n".join((self.stdout + self.stderr).strip().splitlines()[-15:])
            raise RuntimeError(f"{what} exited with code {self.exit_code}:\n{tail}")
        return self


def run_child(
    argv: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    timeout_s: float = DEFAULT_TIMEOUT_S,
) -> ChildRun:
    """Run ``argv`` to its end; its exit code, wall time and peak RSS (MB)."""
    with (
        tempfile.TemporaryFile() as stdout,
        tempfile.TemporaryFile() as stderr,
        tempfile.TemporaryDirectory(prefix="wicbox-probe-") as scratch,
    ):
        report = Path(scratch) / "figures.json"
        process = subprocess.Popen(
            [sys.executable, "-I", str(PROBE), str(report), *argv],
            stdin=subprocess.DEVNULL, stdout=stdout, stderr=stderr,
            env=dict(env) if env is not None else None, cwd=cwd, start_new_session=True,
        )  # fmt: skip
        try:
            process.wait(timeout=timeout_s)
        finally:
            _kill_group(process)  # anything the command left behind in its group
        figures = json.loads(report.read_text(encoding="utf-8"))
        return ChildRun(
            tuple(argv), int(figures["exit_code"]), float(figures["seconds"]),
            int(figures["max_rss_kb"]) / 1024, _read(stdout), _read(stderr), float(figures["cpu_seconds"]),
        )  # fmt: skip


def _kill_group(process: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
    with contextlib.suppress(ChildProcessError):
        process.wait(timeout=10)


def _read(stream: IO[bytes]) -> str:
    stream.seek(0)
    return stream.read().decode("utf-8", "replace")
