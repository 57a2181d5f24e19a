"""The benchmark's launcher charges a command for the memory of all its processes together."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tools.bench import rss_probe

HOLD = """
import subprocess, sys, time
block = bytearray(60 * 1024 * 1024)
for i in range(0, len(block), 4096):
    block[i] = 1
if len(sys.argv) > 1:
    child = subprocess.Popen([sys.executable, "-c", __doc__])
    time.sleep(1.0)  # the measured program holds its memory long enough for the probe to sample it
    child.wait()
else:
    time.sleep(1.0)  # the same, in the child
"""


def probe(tmp_path: Path, *command: str) -> dict[str, float]:
    report = tmp_path / "figures.json"
    subprocess.run([sys.executable, rss_probe.__file__, str(report), *command], check=True, timeout=60)
    figures: dict[str, float] = json.loads(report.read_text(encoding="utf-8"))
    return figures


def test_a_command_with_a_child_is_charged_for_both(tmp_path: Path) -> None:
    script = f'"""{HOLD}"""\nexec(__doc__)'
    alone = probe(tmp_path, sys.executable, "-c", script)
    with_child = probe(tmp_path, sys.executable, "-c", script, "with-child")

    assert 60 * 1024 <= alone["max_rss_kb"] < 100 * 1024
    assert with_child["processes"] >= 2
    assert with_child["tree_rss_kb"] >= 120 * 1024  # two processes of 60 MB each
    assert with_child["max_rss_kb"] == with_child["tree_rss_kb"]
    assert with_child["cpu_seconds"] > 0
    assert with_child["exit_code"] == 0
