"""Run a command and report its wall time and peak RSS (a tiny launcher, standard library only).

    python rss_probe.py REPORT_FILE COMMAND [ARG ...]

Linux counts a process's peak RSS from before its ``exec``: a child forked straight from the
benchmark (which holds every seeded mail) would inherit the benchmark's own peak. Started from
this small launcher instead, the command's ``ru_maxrss`` is its own (or the launcher's few MB,
whichever is larger). The launcher writes ``{"exit_code", "seconds", "max_rss_kb"}`` as JSON to
REPORT_FILE and exits with the command's exit code; the command inherits stdin/stdout/stderr.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path


def main(argv: list[str]) -> int:
    report, command = Path(argv[0]), argv[1:]
    started = time.perf_counter()
    process = subprocess.Popen(command)
    _pid, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - started
    process.returncode = exit_code = os.waitstatus_to_exitcode(status)
    figures = {"exit_code": exit_code, "seconds": seconds, "max_rss_kb": usage.ru_maxrss}
    report.write_text(json.dumps(figures), encoding="utf-8")
    return exit_code if exit_code >= 0 else 128 - exit_code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
