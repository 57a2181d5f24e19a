"""What ``install`` would do: the files with their destination and the commands (pure).

``show`` prints a plan; ``install`` carries the same plan out.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from wicbox_bridge.schedule.commandline import CommandLine
from wicbox_bridge.schedule.cron import cron_line, cron_notes
from wicbox_bridge.schedule.spec import Logon, Platform, ScheduleSpec
from wicbox_bridge.schedule.systemd import (
    daemon_reload,
    enable_timer,
    service_unit,
    timer_unit,
    unit_base,
)
from wicbox_bridge.schedule.windows import icacls_grant, schtasks_create, task_xml, task_xml_bytes
from wicbox_bridge.secret import Secret

TEMPORARY_FILE = "<temporary file>"


@dataclass(frozen=True)
class PlannedFile:
    """A file ``install`` writes: ``text`` is shown, ``data`` is written."""

    path: str
    text: str
    data: bytes
    about: str


@dataclass(frozen=True)
class SchedulePlan:
    platform: Platform
    spec: ScheduleSpec
    files: tuple[PlannedFile, ...] = ()
    commands: tuple[CommandLine, ...] = ()
    cron_line: str | None = None
    notes: tuple[str, ...] = field(default=())


def windows_plan(spec: ScheduleSpec, state_dir: Path, *, force: bool = False) -> SchedulePlan:
    """The task's XML, the grant on the configuration's machine-wide directory (run lock, pause,
    log) for the task's account, and the schtasks command that registers it."""
    xml = PlannedFile(
        TEMPORARY_FILE,
        task_xml(spec),
        task_xml_bytes(spec),
        f'the definition of the task "{spec.name}" (UTF-16; removed once schtasks has read it)',
    )
    notes: tuple[str, ...] = ()
    if spec.logon is Logon.PASSWORD:
        notes = (
            f"install asks for the password of {spec.run_as} (not echoed) and answers schtasks' own "
            "prompt with it, never in a command line; Task Scheduler keeps it to run the task while "
            "nobody is logged on",
        )
    elif spec.logon is Logon.S4U:
        notes = (
            "S4U stores no password, but the run has no network credentials: SQL Server with Windows "
            "authentication and the token cache's protection (DPAPI) may not work; prefer a password",
        )
    if spec.wicbox_home:
        notes += (
            f"WICBOX_HOME is set here ({spec.wicbox_home}) but a task cannot pass it on: set it as a "
            "system environment variable so that the task's runs and `wicbox schedule stop` share state",
        )
    create = schtasks_create(spec, TEMPORARY_FILE, Secret("prompted"), force=force)
    if spec.logon is Logon.SYSTEM or not spec.run_as:  # LocalSystem already has full control there
        return SchedulePlan(Platform.WINDOWS, spec, (xml,), (create,), notes=notes)
    grant = icacls_grant(str(state_dir), spec.run_as)
    return SchedulePlan(Platform.WINDOWS, spec, (xml,), (grant, create), notes=notes)


def systemd_plan(spec: ScheduleSpec, unit_dir: Path, *, user_units: bool) -> SchedulePlan:
    base = unit_base(spec.name)
    service, timer = service_unit(spec, user_units=user_units), timer_unit(spec)
    files = (
        PlannedFile(str(unit_dir / f"{base}.service"), service, service.encode("utf-8"), "the service"),
        PlannedFile(str(unit_dir / f"{base}.timer"), timer, timer.encode("utf-8"), "the timer"),
    )
    commands = (daemon_reload(user_units=user_units), enable_timer(spec.name, user_units=user_units))
    notes: tuple[str, ...] = ()
    if user_units:
        notes = (
            "user units run only while the account has a session; `loginctl enable-linger` makes them "
            "run after a reboot without a login",
        )
    elif not spec.run_as:
        notes = ("the service runs as root; --run-as ACCOUNT runs it as a service account",)
    return SchedulePlan(Platform.SYSTEMD, spec, files, commands, notes=notes)


OUTBOX_NOTE = (
    "each run also delivers WIC's outgoing mail: after reading, `wicbox run` sends the due mails of "
    "WICBOX_OUTBOX (as `wicbox send` does; nothing is signed in to when none are due)"
)


def cron_plan(spec: ScheduleSpec, log_file: Path) -> SchedulePlan:
    notes = (
        *cron_notes(spec),
        "a run that finds another one busy exits at once with code 5 (the run lock): runs never overlap",
    )
    return SchedulePlan(Platform.CRON, spec, cron_line=cron_line(spec, str(log_file)), notes=notes)


def plan_text(plan: SchedulePlan) -> list[str]:
    """``show``'s output: each file under a header saying where it goes, then the commands."""
    spec = plan.spec
    lines = [
        f"# {plan.platform} schedule {spec.name!r} for {spec.config_path}: every {spec.every_minutes} "
        f"minutes, a run may take at most {spec.time_limit_minutes} minutes",
    ]
    for planned in plan.files:
        lines += ["", f"# --- {planned.path}: {planned.about}", planned.text.rstrip("\n")]
    if plan.cron_line is not None:
        lines += [
            "",
            "# --- crontab line: add it with `crontab -e` as the account that runs wicbox",
            plan.cron_line,
        ]
    if plan.commands:
        lines += ["", "# --- install runs:", *(command.display() for command in plan.commands)]
    lines += [f"# note: {note}" for note in (OUTBOX_NOTE, *plan.notes)]
    return lines


def plan_json(plan: SchedulePlan) -> dict[str, Any]:
    spec = plan.spec
    return {
        "platform": plan.platform.value,
        "name": spec.name,
        "config": spec.config_path,
        "every_minutes": spec.every_minutes,
        "time_limit_minutes": spec.time_limit_minutes,
        "files": [{"path": f.path, "about": f.about, "content": f.text} for f in plan.files],
        "commands": [command.display() for command in plan.commands],
        "cron_line": plan.cron_line,
        "notes": [OUTBOX_NOTE, *plan.notes],
    }
