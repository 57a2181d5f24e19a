"""A reader that closes the output early (``wicbox status | head``): a quiet exit with code 141, no
traceback. The pipes are real: the child process writes into a pipe whose reading end is closed."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from wicbox_bridge.cli import CLOSED_OUTPUT


def _wicbox(home: Path, *args: str, stdout: int | None = None) -> subprocess.CompletedProcess[bytes]:
    env = {key: value for key, value in os.environ.items() if key != "WICBOX_CONFIG"}
    env["WICBOX_HOME"] = str(home)
    return subprocess.run(
        [sys.executable, "-m", "wicbox_bridge", *args],
        stdout=stdout if stdout is not None else subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=home,
        env=env,
        timeout=120,
        check=False,
    )


def _into_closed_pipe(home: Path, *args: str) -> subprocess.CompletedProcess[bytes]:
    """``wicbox ARGS | head`` where head has already read its lines and gone."""
    reading, writing = os.pipe()
    os.close(reading)
    try:
        return _wicbox(home, *args, stdout=writing)
    finally:
        os.close(writing)


@pytest.fixture
def embedded_home(tmp_path: Path) -> Path:
    home = tmp_path / "home"
    home.mkdir()
    created = _wicbox(home, "db", "init")
    assert created.returncode == 0, created.stderr.decode()
    stored = _wicbox(home, "params", "set", "WICBOX_MAILCLIENT_USERNAME", "wic@contoso.example")
    assert stored.returncode == 0, stored.stderr.decode()
    return home


@pytest.mark.parametrize("args", [("status",), ("params", "list"), ("params", "list", "--all")])
def test_a_reader_that_closed_early_ends_the_command_quietly(
    embedded_home: Path, args: tuple[str, ...]
) -> None:
    whole = _wicbox(embedded_home, *args)
    assert whole.stdout, "the command prints something, so a closed pipe is hit"
    cut = _into_closed_pipe(embedded_home, *args)
    assert cut.returncode == CLOSED_OUTPUT
    assert cut.stderr == b""  # no traceback, no "unexpected error", no "Exception ignored"


def test_the_closed_output_is_in_the_log_file(embedded_home: Path) -> None:
    assert _into_closed_pipe(embedded_home, "status").returncode == CLOSED_OUTPUT
    logs = "".join(path.read_text(encoding="utf-8") for path in embedded_home.rglob("wicbox.log"))
    assert "the reader closed the output early" in logs
    assert f"wicbox status ended with exit code {CLOSED_OUTPUT}" in logs
