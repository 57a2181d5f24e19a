"""The long-running commands fix glibc's mmap threshold (issue 18), and skip it cleanly elsewhere.

The setting is read back from the allocator's behaviour in a real ``wicbox`` process: after a
5 MiB block is freed, glibc raises its threshold above 1 MiB unless it was fixed, so a 1 MiB
allocation is served by mmap (one more mapped block in ``mallinfo2``) only when the command fixed it.
"""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

import pytest

from wicbox_bridge.run.allocator import AllocatorSetting, limit_retained_memory

linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's allocator: Linux")

# Runs the real CLI in this interpreter (its exit is caught), then asks the allocator where a
# 1 MiB block comes from after a 5 MiB one was freed.
PROBE = """
import ctypes, sys
from wicbox_bridge.cli import cli

class MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks",
        "keepcost")]

if sys.argv[1:]:
    try:
        cli.main(sys.argv[1:], prog_name="wicbox", standalone_mode=False)
    except BaseException:
        pass
libc = ctypes.CDLL(None)
libc.mallinfo2.restype = MallInfo2
freed = bytearray(5 * 1024 * 1024)
del freed
before = libc.mallinfo2().hblks
held = bytearray(1024 * 1024)
print("MAPPED", libc.mallinfo2().hblks - before)
"""


def _mapped_after_command(tmp_path: Path, *args: str) -> int:
    """1 when a 1 MiB block was mmapped after ``wicbox ARGS`` ran in the same process, else 0."""
    command = ("--config", str(tmp_path / "missing" / "WicGlobal.config"), *args) if args else ()
    env = {"WICBOX_HOME": str(tmp_path / "home"), "PATH": "/usr/bin:/bin"}
    done = subprocess.run(
        [sys.executable, "-c", PROBE, *command],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    line = next(line for line in done.stdout.splitlines() if line.startswith("MAPPED "))
    return int(line.split()[1])


@linux_only
def test_without_the_setting_a_freed_large_block_raises_the_threshold(tmp_path: Path) -> None:
    """The control: the probe sees glibc's moving threshold when no command fixed it."""
    assert _mapped_after_command(tmp_path) == 0


@linux_only
@pytest.mark.parametrize("command", [("run",), ("serve",), ("relay",)])
def test_the_long_running_commands_fix_the_mmap_threshold(tmp_path: Path, command: tuple[str, ...]) -> None:
    assert _mapped_after_command(tmp_path, *command) == 1


@linux_only
def test_a_short_command_leaves_the_allocator_alone(tmp_path: Path) -> None:
    assert _mapped_after_command(tmp_path, "status") == 0


def test_nothing_is_set_outside_linux() -> None:
    for platform in ("win32", "darwin"):
        assert limit_retained_memory(platform=platform) is AllocatorSetting.NOT_LINUX


@linux_only
def test_a_c_library_without_glibc_symbols_is_skipped_and_noted(caplog: pytest.LogCaptureFixture) -> None:
    """The dynamic loader is a C library file with neither gnu_get_libc_version nor mallopt, like musl
    lacks the first; a library that cannot be loaded at all is skipped the same way."""
    loader = _dynamic_loader()
    with caplog.at_level(logging.DEBUG, logger="wicbox.allocator"):
        assert limit_retained_memory(libc_path=loader) is AllocatorSetting.NOT_GLIBC
        assert limit_retained_memory(libc_path="libc-that-is-not-here.so") is AllocatorSetting.NOT_GLIBC
    assert [record.levelno for record in caplog.records] == [logging.DEBUG, logging.DEBUG]
    assert all("not glibc" in record.getMessage() for record in caplog.records)


def _dynamic_loader() -> str:
    """The dynamic loader this process was started by (ld-linux-*.so.*), from its memory map."""
    for line in Path("/proc/self/maps").read_text(encoding="utf-8").splitlines():
        path = line.split()[-1]
        if Path(path).name.startswith("ld-linux"):
            return path
    raise AssertionError("no ld-linux in /proc/self/maps")
