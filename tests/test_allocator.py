"""The long-running commands keep glibc to one malloc arena (issue 18), and skip it cleanly elsewhere.

The setting is read back from the allocator in a real ``wicbox`` process: after the command ran, a
new thread allocates, and glibc's own ``malloc_stats`` lists the arenas. Without the setting the
thread gets an arena of its own (two listed); with it, the one arena serves it.
"""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

import pytest

from wicbox_bridge.run.allocator import AllocatorSetting, limit_retained_memory

linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's allocator: Linux")

# Runs the real CLI in this interpreter (its exit is caught), then lets a new thread allocate and
# counts the arenas glibc lists on standard error.
PROBE = """
import ctypes, gc, sys, threading
from wicbox_bridge.cli import cli

if sys.argv[1:]:
    try:
        cli.main(sys.argv[1:], prog_name="wicbox", standalone_mode=False)
    except BaseException:
        pass
libc = ctypes.CDLL(None)
libc.malloc.restype = ctypes.c_void_p
libc.malloc.argtypes = (ctypes.c_size_t,)
kept = []
thread = threading.Thread(target=lambda: kept.append(libc.malloc(64 * 1024)))
thread.start()
thread.join()
libc.malloc_stats()
print(gc.get_freeze_count())
"""


def _arenas_after_command(tmp_path: Path, *args: str) -> int:
    """How many malloc arenas glibc lists after ``wicbox ARGS`` ran and a new thread allocated."""
    return _after_command(tmp_path, *args)[0]


def _after_command(tmp_path: Path, *args: str) -> tuple[int, int]:
    """The malloc arenas glibc lists and the objects the garbage collector leaves frozen after
    ``wicbox ARGS`` ran (and a new thread allocated)."""
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
    arenas = sum(line.startswith("Arena ") for line in done.stderr.splitlines())
    return arenas, int(done.stdout.split()[-1])


@linux_only
def test_without_the_setting_a_new_thread_gets_an_arena_of_its_own(tmp_path: Path) -> None:
    """The control: the probe sees glibc's per-thread arenas when no command limited them."""
    assert _arenas_after_command(tmp_path) == 2


@linux_only
@pytest.mark.parametrize("command", [("run",), ("serve",), ("relay",)])
def test_the_long_running_commands_keep_one_arena(tmp_path: Path, command: tuple[str, ...]) -> None:
    assert _arenas_after_command(tmp_path, *command) == 1


@linux_only
def test_a_short_command_leaves_the_allocator_alone(tmp_path: Path) -> None:
    assert _after_command(tmp_path, "status") == (2, 0)  # nor freezes anything


@pytest.mark.parametrize("command", [("run",), ("serve",), ("relay",)])
def test_the_long_running_commands_freeze_the_objects_of_start_up(
    tmp_path: Path, command: tuple[str, ...]
) -> None:
    """The collector leaves start-up's objects alone in run, serve and relay (fewer objects walked
    at every full collection and at shut-down): tens of thousands of them, not a handful."""
    assert _after_command(tmp_path, *command)[1] > 10_000


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
