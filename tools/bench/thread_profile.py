"""Run a module under cProfile in every thread and save one merged .pstats file.

    python thread_profile.py OUT.pstats MODULE [ARG ...]

``python -m cProfile`` profiles the main thread alone; ``wicbox run`` fetches and parses in a
helper thread and files in a worker thread, so its profile showed the main thread waiting. Here
every thread started after the launch gets a profiler of its own (through ``threading.setprofile``,
which CPython calls once in each new thread), and the threads' statistics are added together at
exit. The timer is each thread's own CPU time (``time.thread_time``), not the wall clock: with
the wall clock, a thread waiting for the interpreter lock charges the wait to whatever call it
was in (imaplib's bookkeeping, the SHA-256, pyodbc's ``execute``), which hides where the CPU goes.
The timer costs a system call per event, so the totals are larger than an unprofiled run's.
"""

from __future__ import annotations

import cProfile
import gc
import pstats
import runpy
import sys
import threading
import time
from pathlib import Path
from types import FrameType
from typing import Any


class ThreadProfiles:
    """One ``cProfile.Profile`` per thread, merged into a single file at the end."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._profiles: list[cProfile.Profile] = []

    def start_here(self) -> None:
        profile = cProfile.Profile(time.thread_time)  # CPU time: waits for the GIL or I/O not counted
        with self._lock:
            self._profiles.append(profile)
        profile.enable()

    def hook(self, frame: FrameType, event: str, arg: Any) -> None:  # called first in each new thread
        del frame, event, arg
        self.start_here()  # enable() replaces this hook with the profiler for the thread

    def save(self, path: str) -> None:
        for profile in self._profiles:
            profile.disable()
        stats = pstats.Stats(self._profiles[0])
        for profile in self._profiles[1:]:
            stats.add(profile)
        stats.dump_stats(path)


class CollectorTime:
    """The CPU time the cyclic garbage collector takes, per generation (``gc.callbacks``)."""

    def __init__(self) -> None:
        self.seconds = [0.0, 0.0, 0.0]
        self.counts = [0, 0, 0]
        self._started = 0.0

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.thread_time()
            return
        generation = info["generation"]
        self.seconds[generation] += time.thread_time() - self._started
        self.counts[generation] += 1

    def summary(self) -> str:
        pairs = zip(self.counts, self.seconds, strict=True)
        parts = (f"gen{g}: {n} in {s:.3f} s" for g, (n, s) in enumerate(pairs))
        return "garbage collections (CPU of the collecting thread): " + ", ".join(parts)


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    out, module, *rest = argv
    profiles = ThreadProfiles()
    collector = CollectorTime()
    gc.callbacks.append(collector)
    threading.setprofile(profiles.hook)
    profiles.start_here()
    sys.argv = [module, *rest]
    code = 0
    try:
        runpy.run_module(module, run_name="__main__", alter_sys=True)
    except SystemExit as exit_:
        code = exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
    finally:
        threading.setprofile(None)  # type: ignore[arg-type]
        profiles.save(out)
        Path(out + ".gc.txt").write_text(collector.summary() + "\n", encoding="utf-8")
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
