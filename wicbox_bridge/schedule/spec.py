"""What a scheduler entry is made of: the platform, the task's name, the program and its timing."""

from __future__ import annotations

import datetime as dt
import enum
import hashlib
import re
import sys
import sysconfig
from dataclasses import dataclass
from pathlib import Path

from wicbox_bridge.errors import ConfigurationError

DEFAULT_TASK_NAME = "WICBOX"
DEFAULT_EVERY_MINUTES = 5
MIN_EVERY_MINUTES = 1
MAX_EVERY_MINUTES = 1440
MAX_TIME_LIMIT_MINUTES = 1440
_NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f]")


class Platform(str, enum.Enum):
    """Which scheduler starts the runs."""

    WINDOWS = "windows"
    SYSTEMD = "systemd"
    CRON = "cron"

    def __str__(self) -> str:
        return self.value


class Logon(str, enum.Enum):
    """How a Windows task signs in when nobody is logged on."""

    PASSWORD = "password"  # noqa: S105 - a logon type; the account's password, stored by Task Scheduler (/RU, the password on schtasks' prompt)
    S4U = "s4u"  # no password stored; local resources only (no network credentials)
    SYSTEM = "system"  # the LocalSystem account

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class Program:
    """How the scheduler starts wicbox: the executable and what goes before wicbox's own arguments."""

    executable: str
    leading_args: tuple[str, ...] = ()

    def argv(self, config_path: str | None, command: tuple[str, ...] = ("run",)) -> tuple[str, ...]:
        """The complete command line of one scheduled run (or of ``command``, such as the relay);
        without ``--config`` for the embedded default (``config_path`` None)."""
        config = ("--config", config_path) if config_path is not None else ()
        return (self.executable, *self.leading_args, *config, *command)


@dataclass(frozen=True)
class ScheduleSpec:
    """Everything the generators need; built once from the command line, never changed."""

    name: str
    config_path: str | None  # None: the embedded default of the account's data folder (data_dir)
    program: Program
    every_minutes: int = DEFAULT_EVERY_MINUTES
    time_limit_minutes: int = 0  # 0: derived from the interval, see default_time_limit
    run_as: str | None = None
    logon: Logon = Logon.PASSWORD
    highest: bool = False
    start_boundary: dt.datetime = dt.datetime(2000, 1, 1)  # local time, as Task Scheduler keeps it
    wicbox_home: str | None = None
    author: str = "wicbox"
    writable_paths: tuple[str, ...] = ()  # systemd: folders outside WICBOX_HOME the runs write (logs)
    data_dir: str | None = None  # the embedded default's data folder (with config_path None)
    lease_seconds: int | None = None  # `run --lease-seconds N`; None: the run's default

    def __post_init__(self) -> None:
        check_every(self.every_minutes)
        check_task_name(self.name)
        if self.config_path is None and self.data_dir is None:
            raise ValueError("a schedule of the embedded default needs its data folder")
        check_path_text(self.config_path or self.data_dir or "", "the configuration path")
        check_path_text(self.program.executable, "the wicbox executable's path")
        if self.wicbox_home is not None:
            check_path_text(self.wicbox_home, "WICBOX_HOME")
        if self.time_limit_minutes == 0:
            object.__setattr__(self, "time_limit_minutes", default_time_limit(self.every_minutes))
        check_time_limit(self.time_limit_minutes)

    @property
    def working_dir(self) -> str:
        """The configuration's folder (the embedded default: its data folder): where the run starts."""
        return _parent(self.config_path) if self.config_path is not None else str(self.data_dir)

    @property
    def describe(self) -> str:
        """What the runs work on: the configuration file, or the embedded default and its folder."""
        if self.config_path is not None:
            return self.config_path
        return f"the embedded default in {self.data_dir}"

    @property
    def run_arguments(self) -> tuple[str, ...]:
        """The scheduled command and its options: ``run``, with ``--lease-seconds N`` when given."""
        if self.lease_seconds is None:
            return ("run",)
        return ("run", "--lease-seconds", str(self.lease_seconds))

    @property
    def argv(self) -> tuple[str, ...]:
        return self.program.argv(self.config_path, self.run_arguments)


def _parent(path: str) -> str:
    """The folder of an absolute path, Windows (``C:\\WIC\\x``) or POSIX (``/srv/x``)."""
    cut = max(path.rfind("/"), path.rfind("\\"))
    if cut <= 0:
        return path[:1] or path
    folder = path[:cut]
    return folder + "\\" if re.fullmatch(r"[A-Za-z]:", folder) else folder


def check_every(minutes: int) -> None:
    if not MIN_EVERY_MINUTES <= minutes <= MAX_EVERY_MINUTES:
        raise ConfigurationError(
            f"--every {minutes}: runs can be {MIN_EVERY_MINUTES} to {MAX_EVERY_MINUTES} minutes apart",
            fix=f"give a number of minutes from {MIN_EVERY_MINUTES} to {MAX_EVERY_MINUTES} "
            f"(one day); {DEFAULT_EVERY_MINUTES} is the usual choice",
        )


def check_time_limit(minutes: int) -> None:
    if not 1 <= minutes <= MAX_TIME_LIMIT_MINUTES:
        raise ConfigurationError(
            f"--time-limit {minutes}: outside 1 to {MAX_TIME_LIMIT_MINUTES} minutes",
            fix="give the longest time one run may take, in minutes (leave it out for 4 times --every, "
            "at least 10 and at most 120)",
        )


def default_time_limit(every_minutes: int) -> int:
    """How long one run may take before the scheduler ends it: 4x the interval, 10 to 120 minutes.

    A run that is ended loses nothing (the next run continues), and the scheduler never starts a
    second run while one is busy, so a limit above the interval is safe.
    """
    return min(max(4 * every_minutes, 10), 120)


def check_task_name(name: str) -> None:
    if not _NAME_PATTERN.fullmatch(name):
        raise ConfigurationError(
            f"--name {name!r}: a task name is 1 to 64 letters, digits, '-', '_' or '.', starting with a "
            "letter or digit (it is also a systemd unit name)",
            fix=f"choose a name such as {DEFAULT_TASK_NAME}-PROD",
        )


def check_path_text(path: str, what: str) -> None:
    if _CONTROL_CHARACTERS.search(path):
        raise ConfigurationError(
            f"{what} contains a control character (a line break or tab), which no scheduler can pass on",
            fix="rename the folder or file so that its path has only printable characters",
        )


def embedded_task_name(data_dir: Path) -> str:
    """``WICBOX-embedded-<6 hex digits of the data folder's hash>``: one task per data folder."""
    digest = hashlib.sha256(str(data_dir).encode("utf-8")).hexdigest()[:6]
    return f"{DEFAULT_TASK_NAME}-embedded-{digest}"


def default_task_name(config_path: Path, executable_dir: Path) -> str:
    """``WICBOX`` for the configuration next to the executable, else a name unique to the path.

    The old WICBOX executable lived next to WicGlobal.config; that layout keeps the vendor's task
    name. Any other configuration gets ``WICBOX-<folder>-<6 hex digits of its path's hash>``, so
    two WIC installations on one server never share a task, and the same path always gives the
    same name (``stop``, ``start`` and ``uninstall`` find the task without ``--name``).
    """
    if config_path.parent == executable_dir:
        return DEFAULT_TASK_NAME
    folder = re.sub(r"[^A-Za-z0-9]+", "-", config_path.parent.name).strip("-")[:24] or "config"
    digest = hashlib.sha256(str(config_path).encode("utf-8")).hexdigest()[:6]
    return f"{DEFAULT_TASK_NAME}-{folder}-{digest}"


def installed_program() -> Program:
    """The ``wicbox`` script of this installation, else ``python -m wicbox_bridge``."""
    script_name = "wicbox.exe" if sys.platform == "win32" else "wicbox"
    script = Path(sysconfig.get_path("scripts")) / script_name
    if script.is_file():
        return Program(str(script))
    return Program(str(Path(sys.executable).absolute()), ("-m", "wicbox_bridge"))
