"""Real ``wicbox`` processes started by tests: started like the in-process CLI (``--config`` and
``WICBOX_HOME``), their output in a file (a full pipe never blocks one), killed with SIGKILL."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tests.helpers.waiting import wait_until
from tests.plugins.wic import WicInstallation

RUN_TIMEOUT_S = 120.0


def wicbox_command(installation: WicInstallation, args: Sequence[str]) -> list[str]:
    return [sys.executable, "-m", "wicbox_bridge", "--config", str(installation.config), *args]


def wicbox_environment(installation: WicInstallation) -> dict[str, str]:
    env = {name: value for name, value in os.environ.items() if name != "WICBOX_CONFIG"}
    env["WICBOX_HOME"] = str(installation.cli_runner.home)
    return env


@dataclass
class WicboxProcess:
    """A ``wicbox`` process started by a test; its output goes to a file (a full pipe never blocks it)."""

    process: subprocess.Popen[bytes]
    output_path: Path
    started: float = field(default_factory=time.monotonic)

    def output(self) -> str:
        return self.output_path.read_text(encoding="utf-8", errors="replace")

    def kill(self) -> bool:
        """SIGKILL; whether the process was still running when it came."""
        alive = self.process.poll() is None
        self.process.kill()
        self.process.wait(timeout=RUN_TIMEOUT_S)
        return alive

    def wait(self, timeout_s: float = RUN_TIMEOUT_S) -> int:
        try:
            return self.process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.kill()
            raise


def start_wicbox(installation: WicInstallation, *args: str, name: str = "run") -> WicboxProcess:
    """``python -m wicbox_bridge --config ... ARGS`` with WICBOX_HOME set like the in-process CLI."""
    work = installation.cli_runner.cwd
    output_path = work / f"{name}-{time.monotonic_ns()}.log"
    with output_path.open("wb") as output:
        process = subprocess.Popen(
            wicbox_command(installation, args),
            cwd=work,
            env=wicbox_environment(installation),
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    return WicboxProcess(process, output_path)


def run_wicbox(installation: WicInstallation, *args: str) -> tuple[int, str]:
    """One complete ``wicbox`` process: its exit code and output."""
    started = start_wicbox(installation, *args)
    code = started.wait()
    return code, started.output()


def wait_for_line(process: WicboxProcess, marker: str, timeout_s: float = RUN_TIMEOUT_S) -> float | None:
    """Seconds from the process start until ``marker`` is in the output; None when it ends without."""
    wait_until(
        lambda: marker in process.output() or process.process.poll() is not None,
        f"{marker!r} in the output:\n{process.output()}",
        timeout_s,
    )
    if marker in process.output():
        return time.monotonic() - process.started
    return None
