"""``wicbox send`` as a real process whose output a cell follows line by line, and kills."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from tools.crash.bed import Installation

PROCESS_TIMEOUT_S = 120.0
POLL_S = 0.001


@dataclass
class SendProcess:
    """One ``python -m wicbox_bridge -v send``; its output (stdout and stderr) goes to a file."""

    process: subprocess.Popen[bytes]
    output_path: Path
    _lines: list[str] = field(default_factory=list)
    _offset: int = 0
    _partial: bytes = b""

    def lines(self) -> list[str]:
        """The complete lines written so far (read incrementally)."""
        with self.output_path.open("rb") as output:
            output.seek(self._offset)
            chunk = output.read()
        self._offset += len(chunk)
        *complete, self._partial = (self._partial + chunk).split(b"\n")
        self._lines.extend(line.decode("utf-8", "replace") for line in complete)
        return self._lines

    def count(self, pattern: re.Pattern[str]) -> int:
        return sum(1 for line in self.lines() if pattern.search(line))

    def output(self) -> str:
        return self.output_path.read_text(encoding="utf-8", errors="replace")

    @property
    def running(self) -> bool:
        return self.process.poll() is None

    def wait_for(self, condition: Callable[[], bool], timeout_s: float = PROCESS_TIMEOUT_S) -> bool:
        """Follow the output until ``condition`` holds (True) or the process ended first (False)."""
        deadline = time.monotonic() + timeout_s
        while not condition():
            if not self.running:
                return condition()
            if time.monotonic() > deadline:
                raise AssertionError(f"no progress within {timeout_s:.0f} s:\n{self.output()}")
            time.sleep(POLL_S)
        return True

    def kill(self) -> bool:
        """SIGKILL; whether the process was still running when it came."""
        alive = self.running
        self.process.kill()
        self.process.wait(timeout=PROCESS_TIMEOUT_S)
        return alive

    def wait(self) -> int:
        try:
            return self.process.wait(timeout=PROCESS_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.kill()
            raise


def start_send(installation: Installation, name: str) -> SendProcess:
    """``wicbox --config ... -v send`` with the installation's WICBOX_HOME, in its working directory."""
    env = {key: value for key, value in os.environ.items() if key != "WICBOX_CONFIG"}
    env["WICBOX_HOME"] = str(installation.home)
    output_path = installation.work / f"{name}.log"
    with output_path.open("wb") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "wicbox_bridge", "--config", str(installation.config), "-v", "send"],
            cwd=installation.work,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    return SendProcess(process, output_path)
