"""Keep freed mail buffers from piling up in per-thread arenas on Linux with glibc (issue 18).

Why: a run holds a mail of up to a few MB at a time, in several threads (MULTIPLE: four passes and
their fetchers). glibc gives each new thread an arena of its own (up to 8 per core), and what a
thread frees stays in its arena for that thread's next allocations, so every thread keeps about
the largest mails it has seen: MULTIPLE over 50 mails of 2-5 MB peaked at 134-138 MB against its
limit of 3x the largest mail + 80 MB (95 MB). With one arena for the process (``M_ARENA_MAX`` 1)
the threads reuse each other's freed blocks: 83-89 MB, at the same CPU time (docs/performance.md,
"The database part of issue 18"). The interpreter lock already serialises the threads, so one
arena costs no contention. (Fixing the mmap threshold instead also met the limit, but mapping and
zeroing every large block afresh cost 25-50 % more CPU on those mails.)

Only the long-running commands (``wicbox run``, ``serve``, ``relay``) call :func:`limit_retained_memory`,
once, at their start, before their threads allocate. Nothing is done elsewhere: Windows' heap is a
different allocator, and musl and macOS have no such setting. It never fails a command: a library
without the symbols is noted in the debug log and the command goes on.
"""

from __future__ import annotations

import ctypes
import enum
import gc
import logging
import sys

log = logging.getLogger("wicbox.allocator")

M_ARENA_MAX = -8  # glibc's malloc.h
ONE_ARENA = 1


class AllocatorSetting(enum.Enum):
    """What :func:`limit_retained_memory` did."""

    APPLIED = "one malloc arena for every thread"
    NOT_LINUX = "not Linux: nothing to set"
    NOT_GLIBC = "not glibc (musl or another C library): nothing to set"
    REFUSED = "glibc refused the arena limit"


def limit_retained_memory(platform: str = sys.platform, libc_path: str | None = None) -> AllocatorSetting:
    """One glibc malloc arena for the whole process on Linux; do nothing elsewhere. Never raises.

    ``libc_path`` names the C library to use (default: the one this process runs on); ``platform``
    is ``sys.platform``. Both are parameters so that a test can see the other cases on one machine.
    """
    if not platform.startswith("linux"):
        return _noted(AllocatorSetting.NOT_LINUX)
    try:
        libc = ctypes.CDLL(libc_path)
        libc.gnu_get_libc_version  # noqa: B018 - only glibc has it (musl has a mallopt that does nothing)
        mallopt = libc.mallopt
    except (OSError, AttributeError) as missing:
        log.debug("allocator: %s (%s)", AllocatorSetting.NOT_GLIBC.value, missing)
        return AllocatorSetting.NOT_GLIBC
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    if mallopt(M_ARENA_MAX, ONE_ARENA) != 1:
        return _noted(AllocatorSetting.REFUSED)
    return _noted(AllocatorSetting.APPLIED)


def _noted(setting: AllocatorSetting) -> AllocatorSetting:
    log.debug("allocator: %s", setting.value)
    return setting


def freeze_startup_objects() -> int:
    """Leave every object that exists now (modules, classes, compiled expressions: start-up's
    hundreds of thousands) out of the garbage collector's work for the rest of the process; how
    many were frozen.

    Why: the collector walks every tracked object at each full collection and once more when the
    interpreter shuts down; start-up's objects live as long as the process anyway. Frozen, they
    cost neither (about 0.07 CPU seconds less per ``wicbox run``, see docs/performance.md). Called
    by ``run``, ``serve`` and ``relay`` once their command is loaded, before their threads start.
    """
    gc.freeze()
    return gc.get_freeze_count()
