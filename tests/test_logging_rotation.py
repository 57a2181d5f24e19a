"""Two processes writing the log file at once, across many rotations: no line lost, none mangled."""

from __future__ import annotations

import logging
import re
import subprocess
import sys
import time
from pathlib import Path

from tests.helpers.waiting import wait_until
from wicbox_bridge.logs.logfile import Rotation, open_log_file

ROOT = Path(__file__).resolve().parent.parent
LINES_PER_WRITER = 3000
ROTATION = Rotation(max_bytes=64 * 1024, backups=60)  # ~1 MB in all: ~17 files, none deleted
PADDING = "x" * 100
LINE = re.compile(
    r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}[+-]\d\d:\d\d (?P<pid>\d+) INFO    wicbox\.mail: "
    rf"writer=(?P<writer>[AB]) seq=(?P<seq>\d{{5}}) {PADDING}$"
)


def write_lines(path: str, writer: str, go: str) -> None:
    """One writer process: the project's log-file handler; says it is ready (``go``.ready-WRITER)
    and starts writing when ``go`` exists, so that both write at once."""
    handler = open_log_file(Path(path), ROTATION)
    logger = logging.getLogger("wicbox.mail")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    Path(f"{go}.ready-{writer}").touch()
    while not Path(go).exists():
        time.sleep(0.001)  # the writer process waits for the test's start signal (a file)
    for seq in range(LINES_PER_WRITER):
        logger.info("writer=%s seq=%05d %s", writer, seq, PADDING)
    handler.close()


def _start_writer(path: Path, writer: str, go: Path) -> subprocess.Popen[bytes]:
    call = f"write_lines({str(path)!r}, {writer!r}, {str(go)!r})"
    code = f"from tests.test_logging_rotation import write_lines; {call}"
    return subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, stderr=subprocess.PIPE)


def _oldest_first(file: Path) -> int:
    """wicbox.log.N is older the higher N is; wicbox.log is the newest."""
    suffix = file.name.removeprefix("wicbox.log").lstrip(".")
    return -int(suffix) if suffix else 0


def test_two_processes_across_rotations_lose_no_line_and_mangle_none(tmp_path: Path) -> None:
    path = tmp_path / "logs" / "wicbox.log"
    go = tmp_path / "go"
    writers = [_start_writer(path, name, go) for name in "AB"]
    wait_until(lambda: all(Path(f"{go}.ready-{name}").exists() for name in "AB"), "both writers are ready")
    go.touch()
    for process in writers:
        _, stderr = process.communicate(timeout=120)
        assert process.returncode == 0, stderr.decode()
        assert stderr == b"", stderr.decode()  # no "--- Logging error ---", no warning
    files = sorted(path.parent.glob("wicbox.log*"), key=_oldest_first)
    assert len(files) >= 10, files  # it rotated, many times
    assert len(files) <= ROTATION.backups  # and deleted nothing
    seen: dict[str, list[int]] = {"A": [], "B": []}
    mixed_files = 0
    for file in files:
        writers_in_file = set()
        for line in file.read_text(encoding="utf-8").splitlines():
            match = LINE.match(line)
            assert match is not None, f"mangled line in {file.name}: {line!r}"
            seen[match["writer"]].append(int(match["seq"]))
            writers_in_file.add(match["writer"])
        mixed_files += writers_in_file == {"A", "B"}
    for writer, seqs in seen.items():
        assert sorted(seqs) == list(range(LINES_PER_WRITER)), f"writer {writer} lost or doubled lines"
        assert seqs == sorted(seqs), f"writer {writer}'s lines are out of order across the files"
    assert mixed_files > 0, "the writers never wrote at the same time"
