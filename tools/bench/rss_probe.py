"""Run a command and report its wall time, CPU time and peak RSS (a tiny launcher, standard library only).

    python rss_probe.py REPORT_FILE COMMAND [ARG ...]

Linux counts a process's peak RSS from before its ``exec``: a child forked straight from the
benchmark (which holds every seeded mail) would inherit the benchmark's own peak. Started from
this small launcher instead, the command's ``ru_maxrss`` is its own (or the launcher's few MB,
whichever is larger).

``ru_maxrss`` is the peak of the largest single process, not of the processes together. A
command that starts helper processes (worker processes for parsing, say) is therefore also
sampled every 10 ms while it runs: the resident memory of the command and every process below
it (looked up every 100 ms) is summed from ``/proc`` and the largest sum kept. The report gives
the larger of the two figures, so a multi-process command is charged for all of its processes.

The launcher writes ``{"exit_code", "seconds", "max_rss_kb", "tree_rss_kb", "cpu_seconds",
"processes"}`` as JSON to REPORT_FILE and exits with the command's exit code; the command inherits
stdin/stdout/stderr. ``cpu_seconds`` is user plus system time of the command and of every
descendant it waited for; ``processes`` how many distinct processes the sampling saw.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

SAMPLE_INTERVAL_S = 0.01
# Finding the descendants reads every process's /proc/PID/stat: about 3 ms of CPU with a hundred
# processes on the machine. Done every sample, the launcher took some 40% of a core from the
# command it measures (on 2 cores); the known processes' resident sizes are read every sample
# (microseconds), the process tree only this often.
TREE_INTERVAL_S = 0.1
PAGE_KB = os.sysconf("SC_PAGE_SIZE") // 1024 if hasattr(os, "sysconf") else 4


def _children_of() -> dict[int, list[int]]:
    """Every process's children, from ``/proc/*/stat`` (parent id is its fourth field)."""
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            fields = Path(f"/proc/{entry.name}/stat").read_bytes().rsplit(b")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(entry.name))
    return children


def _tree(root: int) -> list[int]:
    children = _children_of()
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, ()))
    return found


def _resident_kb(pid: int) -> int:
    try:
        return int(Path(f"/proc/{pid}/statm").read_bytes().split()[1]) * PAGE_KB
    except (OSError, IndexError, ValueError):
        return 0


class TreeSampler(threading.Thread):
    """Samples the summed RSS of a process and its descendants until stopped (Linux only)."""

    def __init__(self, root: int) -> None:
        super().__init__(daemon=True)
        self.root = root
        self.peak_kb = 0
        self.seen: set[int] = set()
        self._stop_event = threading.Event()

    def run(self) -> None:
        if not Path("/proc").is_dir():
            return
        pids, next_scan = [self.root], 0.0
        while not self._stop_event.is_set():
            if time.monotonic() >= next_scan:
                pids, next_scan = _tree(self.root), time.monotonic() + TREE_INTERVAL_S
                self.seen.update(pids)
            self.peak_kb = max(self.peak_kb, sum(_resident_kb(pid) for pid in pids))
            self._stop_event.wait(SAMPLE_INTERVAL_S)

    def stop(self) -> None:
        self._stop_event.set()
        self.join()


def main(argv: list[str]) -> int:
    report, command = Path(argv[0]), argv[1:]
    started = time.perf_counter()
    process = subprocess.Popen(command)
    sampler = TreeSampler(process.pid)
    sampler.start()
    _pid, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - started
    sampler.stop()
    process.returncode = exit_code = os.waitstatus_to_exitcode(status)
    figures = {
        "exit_code": exit_code,
        "seconds": seconds,
        "max_rss_kb": max(usage.ru_maxrss, sampler.peak_kb),
        "tree_rss_kb": sampler.peak_kb,
        "cpu_seconds": usage.ru_utime + usage.ru_stime,
        "processes": len(sampler.seen),
    }
    report.write_text(json.dumps(figures), encoding="utf-8")
    return exit_code if exit_code >= 0 else 128 - exit_code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
