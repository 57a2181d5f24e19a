"""Give freed mail buffers back to the system on Linux with glibc: a fixed mmap threshold (issue 18).

Why: a run holds a mail of up to a few MB at a time, in several threads (MULTIPLE: four passes and
their fetchers). glibc serves a block over its mmap threshold (128 KiB at first) with mmap and
returns it on free, but after the first such free it raises the threshold to that block's size
(up to 32 MiB), so the next 2-5 MB mails come from the threads' own arenas, and what an arena frees
stays in the process. MULTIPLE over 50 mails of 2-5 MB peaked at 152 MB that way, against its
limit of 3x the largest mail + 80 MB (95 MB); with the threshold fixed at 128 KiB it peaks at
85 MB (docs/performance.md, "The database part of issue 18"). Setting the threshold with
``mallopt`` also stops glibc from moving it.

Only the long-running commands (``wicbox run``, ``serve``, ``relay``) call :func:`limit_retained_memory`,
once, at their start. Nothing is done elsewhere: Windows' heap returns blocks of this size to the
system on free, and musl and macOS have no such threshold to set. It never fails a command: a
library without the symbols is noted in the debug log and the command goes on.
"""

from __future__ import annotations

import ctypes
import enum
import logging
import sys

log = logging.getLogger("wicbox.allocator")

M_MMAP_THRESHOLD = -3  # glibc's malloc.h
MMAP_THRESHOLD_BYTES = 128 * 1024  # glibc's own starting value, kept fixed


class AllocatorSetting(enum.Enum):
    """What :func:`limit_retained_memory` did."""

    APPLIED = "the mmap threshold is fixed at 128 KiB"
    NOT_LINUX = "not Linux: nothing to set"
    NOT_GLIBC = "not glibc (musl or another C library): nothing to set"
    REFUSED = "glibc refused the mmap threshold"


def limit_retained_memory(platform: str = sys.platform, libc_path: str | None = None) -> AllocatorSetting:
    """Fix glibc's mmap threshold at 128 KiB on Linux; do nothing elsewhere. Never raises.

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
    if mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES) != 1:
        return _noted(AllocatorSetting.REFUSED)
    return _noted(AllocatorSetting.APPLIED)


def _noted(setting: AllocatorSetting) -> AllocatorSetting:
    log.debug("allocator: %s", setting.value)
    return setting
