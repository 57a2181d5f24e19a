"""Facts about the computer ``wicbox schedule`` runs on: its scheduler and the current account."""

from __future__ import annotations

import contextlib
import getpass
import os
import socket
import sys
from collections.abc import Mapping
from pathlib import Path

from wicbox_bridge.errors import ConfigurationError
from wicbox_bridge.schedule.spec import Platform

SYSTEMD_RUNNING_MARK = Path("/run/systemd/system")


def host_platform(system: str | None = None, systemd_mark: Path = SYSTEMD_RUNNING_MARK) -> Platform:
    """Windows; else systemd when it is the running init system; else cron."""
    if (system or sys.platform) == "win32":
        return Platform.WINDOWS
    return Platform.SYSTEMD if systemd_mark.is_dir() else Platform.CRON


def foreign_platform_problem(requested: Platform, host: Platform) -> str | None:
    """Why ``requested`` cannot be changed from this computer, or None when it can."""
    if requested is host or (requested is Platform.CRON and host is Platform.SYSTEMD):
        return None
    if requested is Platform.WINDOWS:
        return "Windows Task Scheduler tasks can only be changed on Windows"
    if host is Platform.WINDOWS:
        return f"{requested} is not a Windows scheduler"
    return f"systemd is not running on this computer ({SYSTEMD_RUNNING_MARK} is missing)"


def refuse_foreign_platform(requested: Platform, host: Platform, action: str) -> None:
    problem = foreign_platform_problem(requested, host)
    if problem is not None:
        raise ConfigurationError(
            f"cannot {action} a {requested} schedule here: {problem}",
            fix=f"run `wicbox schedule {action}` on the computer that runs wicbox, without --platform; "
            f"`wicbox schedule show --platform {requested}` prints what would be installed",
        )


def is_root() -> bool:
    geteuid = getattr(os, "geteuid", None)
    return bool(geteuid is not None and geteuid() == 0)


def is_admin() -> bool:
    """Whether this process runs as root (POSIX) or elevated by an administrator (Windows)."""
    if sys.platform == "win32":  # pragma: no cover - Windows only
        import ctypes  # noqa: PLC0415

        return bool(ctypes.windll.shell32.IsUserAnAdmin())
    return is_root()


def current_account(env: Mapping[str, str], platform: Platform) -> str:
    """The account running this command (``DOMAIN\\user`` on Windows)."""
    if platform is Platform.WINDOWS and env.get("USERNAME"):
        domain = env.get("USERDOMAIN")
        return f"{domain}\\{env['USERNAME']}" if domain else env["USERNAME"]
    with contextlib.suppress(OSError, KeyError):
        return getpass.getuser()
    return env.get("USER") or env.get("USERNAME") or "unknown"


def who_and_where(env: Mapping[str, str], platform: Platform) -> str:
    """``user on host``, for the pause marker."""
    return f"{current_account(env, platform)} on {socket.gethostname()}"
