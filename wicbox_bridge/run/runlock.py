"""One ``wicbox run`` at a time per configuration, through an operating-system file lock.

The lock is taken on ``run.lock`` in the configuration's state directory. The operating system
releases it when the process ends in any way (exit, crash, SIGKILL, TerminateProcess), so a lock
left by a killed run is recovered automatically: the next run simply gets it. Who holds it (PID,
host, start time) is written next to it for the message a second run prints.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import socket
from pathlib import Path
from types import TracebackType
from typing import Any

import portalocker

from wicbox_bridge.config.footprint import (
    default_windows_security,
    make_private_dir,
    touch_private,
    write_private_text,
)
from wicbox_bridge.errors import AlreadyRunning, ConfigurationError

LOCK_FILE_NAME = "run.lock"
HOLDER_FILE_NAME = "run.lock.holder"


class RunLock:
    """Context manager: ``with RunLock(state_dir):`` or AlreadyRunning (exit code 5)."""

    def __init__(self, state_dir: Path, command: str = "run") -> None:
        self.path = state_dir / LOCK_FILE_NAME
        self.holder_path = state_dir / HOLDER_FILE_NAME
        self.command = command  # "serve": `wicbox serve` holds it for its whole life
        self._lock: portalocker.Lock | None = None

    def acquire(self) -> None:
        windows = default_windows_security()
        try:
            make_private_dir(self.path.parent, windows=windows)
        except OSError as exc:
            raise ConfigurationError(
                f"cannot create the state directory {self.path.parent}: {exc.strerror}",
                fix="make the directory writable for the account that runs wicbox, or set WICBOX_HOME",
            ) from exc
        lock = portalocker.Lock(str(self.path), mode="a", timeout=0, fail_when_locked=True)
        try:
            touch_private(self.path, windows=windows)  # 0600, never a planted link (LinkRefused)
            lock.acquire()
        except portalocker.exceptions.LockException as exc:
            raise self._busy() from exc
        except OSError as exc:  # e.g. a lock file another account created and this one may not write
            raise ConfigurationError(
                f"cannot open the run lock {self.path}: {exc.strerror or exc}",
                fix=f"give the account that runs wicbox write access to {self.path.parent} (on Windows: "
                "Modify on %ProgramData%\\wicbox-bridge for the task's account), or set WICBOX_HOME",
            ) from exc
        self._lock = lock
        self._write_holder()

    def release(self) -> None:
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    def __enter__(self) -> RunLock:
        self.acquire()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()

    def _write_holder(self) -> None:
        holder = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "started": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "command": self.command,
        }
        with contextlib.suppress(OSError):  # only used for the message of a second run
            write_private_text(self.holder_path, json.dumps(holder))

    def _holder_document(self) -> dict[str, Any]:
        try:
            holder = json.loads(self.holder_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return holder if isinstance(holder, dict) else {}

    def _holder(self) -> str:
        holder = self._holder_document()
        if not holder:
            return "holder unknown"
        return f"process {holder.get('pid')} on {holder.get('host')}, started {holder.get('started')}"

    def _busy(self) -> AlreadyRunning:
        who = self._holder()
        if self._holder_document().get("command") == "serve":
            return AlreadyRunning(
                f"`wicbox serve` works the mailboxes of this configuration ({who}): this {self.command} "
                "is not needed and does nothing",
                fix="remove the scheduled run task beside serve (`wicbox schedule uninstall --name NAME`; "
                "`wicbox schedule install --serve` replaces it), or stop serve to go back to scheduled runs",
            )
        return AlreadyRunning(
            f"another wicbox run for this configuration is still busy ({who})",
            fix="wait for it to finish; a scheduled task should not start runs that overlap",
        )


def run_is_busy(state_dir: Path) -> bool:
    """Whether a ``wicbox run`` of this configuration holds its lock, creating nothing.

    The lock file is opened read-only and let go at once; a missing file means no run has been
    busy. Used by ``wicbox schedule stop``, which an administrator runs: taking the real lock would
    create the lock file as the administrator, and another account may not write it then.
    """
    probe = portalocker.Lock(str(state_dir / LOCK_FILE_NAME), mode="r", timeout=0, fail_when_locked=True)
    try:
        probe.acquire()
    except FileNotFoundError:
        return False
    except portalocker.exceptions.LockException:
        return True
    probe.release()
    return False
