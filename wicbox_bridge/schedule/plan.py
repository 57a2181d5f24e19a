"""What ``install`` would do: the files with their destination and the commands (pure).

``show`` prints a plan; ``install`` carries the same plan out.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from wicbox_bridge.schedule.commandline import CommandLine
from wicbox_bridge.schedule.cron import cron_line, cron_notes
from wicbox_bridge.schedule.relay import RelaySpec, relay_task_name
from wicbox_bridge.schedule.serve import ServeSpec
from wicbox_bridge.schedule.spec import Logon, Platform, ScheduleSpec
from wicbox_bridge.schedule.systemd import (
    SERVICE_HOME,
    daemon_reload,
    enable_relay,
    enable_serve,
    enable_timer,
    relay_unit,
    relay_unit_name,
    restart_relay,
    restart_serve,
    serve_unit,
    service_unit,
    timer_unit,
    unit_base,
)
from wicbox_bridge.schedule.windows import (
    icacls_grant,
    schtasks_create,
    schtasks_end,
    schtasks_run,
    task_xml,
    task_xml_bytes,
)
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
    relay: RelaySpec | None = None
    warnings: tuple[str, ...] = ()  # least privilege: see schedule.privilege
    serve: ServeSpec | None = None  # the entry starts `wicbox serve` (a service) instead of runs

    @property
    def relay_argv(self) -> tuple[str, ...]:
        """The relay service's command line (empty without ``--relay``)."""
        return self.spec.program.argv(self.spec.config_path, self.relay.arguments) if self.relay else ()


def windows_plan(
    spec: ScheduleSpec,
    state_dir: Path,
    *,
    force: bool = False,
    relay: RelaySpec | None = None,
    serve: ServeSpec | None = None,
) -> SchedulePlan:
    """The task's XML, the grant on the configuration's machine-wide directory (run lock, pause,
    log) for the task's account, and the schtasks command that registers it; with ``relay``, also
    the relay's task, registered as the same account and started at once; with ``serve``, the task
    starts `wicbox serve` at boot and again when it fails (and at once) instead of runs."""
    xml = PlannedFile(
        TEMPORARY_FILE,
        task_xml(spec, serve),
        task_xml_bytes(spec, serve),
        f'the definition of the task "{spec.name}" (UTF-16; removed once schtasks has read it)',
    )
    files: tuple[PlannedFile, ...] = (xml,)
    commands = [
        *((schtasks_end(spec.name),) if force and serve else ()),
        schtasks_create(spec, TEMPORARY_FILE, Secret("prompted"), force=force),
        *((schtasks_run(spec.name),) if serve else ()),
    ]
    if spec.logon is not Logon.SYSTEM and spec.run_as:  # LocalSystem already has full control there
        commands.insert(0, icacls_grant(str(state_dir), spec.run_as))
    if relay is not None:
        files += (_relay_task_file(spec, relay),)
        commands += _relay_task_commands(spec, force=force)
    return SchedulePlan(
        Platform.WINDOWS, spec, files, tuple(commands), notes=_windows_notes(spec), relay=relay, serve=serve
    )


def _relay_task_file(spec: ScheduleSpec, relay: RelaySpec) -> PlannedFile:
    name = relay_task_name(spec.name)
    return PlannedFile(
        TEMPORARY_FILE,
        task_xml(spec, relay),
        task_xml_bytes(spec, relay),
        f'the definition of the relay\'s task "{name}" (UTF-16; removed once schtasks has read it)',
    )


def _relay_task_commands(spec: ScheduleSpec, *, force: bool) -> list[CommandLine]:
    """Registers the relay's task and starts it; with ``force`` the running relay is ended first, so
    that it starts again with the new options (IgnoreNew would leave the old one running)."""
    name = relay_task_name(spec.name)
    create = schtasks_create(spec, TEMPORARY_FILE, Secret("prompted"), force=force, name=name)
    return [*((schtasks_end(name),) if force else ()), create, schtasks_run(name)]


def _windows_notes(spec: ScheduleSpec) -> tuple[str, ...]:
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
    return notes


def systemd_plan(
    spec: ScheduleSpec,
    unit_dir: Path,
    *,
    user_units: bool,
    relay: RelaySpec | None = None,
    serve: ServeSpec | None = None,
) -> SchedulePlan:
    """The service and the timer, then the timer enabled; with ``relay``, also the relay's service,
    enabled for boot and (re)started; with ``serve``, the service runs `wicbox serve` (no timer),
    enabled for boot and (re)started."""
    base = unit_base(spec.name)
    files: tuple[PlannedFile, ...]
    commands: tuple[CommandLine, ...]
    if serve is not None:
        service = serve_unit(spec, serve, user_units=user_units)
        about = "the service running `wicbox serve`"
        files = (PlannedFile(str(unit_dir / f"{base}.service"), service, service.encode("utf-8"), about),)
        commands = (
            daemon_reload(user_units=user_units),
            enable_serve(spec.name, user_units=user_units),
            restart_serve(spec.name, user_units=user_units),
        )
    else:
        service, timer = service_unit(spec, user_units=user_units), timer_unit(spec)
        files = (
            PlannedFile(str(unit_dir / f"{base}.service"), service, service.encode("utf-8"), "the service"),
            PlannedFile(str(unit_dir / f"{base}.timer"), timer, timer.encode("utf-8"), "the timer"),
        )
        commands = (daemon_reload(user_units=user_units), enable_timer(spec.name, user_units=user_units))
    if relay is not None:
        text = relay_unit(spec, relay, user_units=user_units)
        path = str(unit_dir / relay_unit_name(spec.name))
        files += (PlannedFile(path, text, text.encode("utf-8"), "the relay's service"),)
        commands += (
            enable_relay(spec.name, user_units=user_units),
            restart_relay(spec.name, user_units=user_units),
        )
    notes: tuple[str, ...] = ()
    if user_units:
        notes = (
            "user units run only while the account has a session; `loginctl enable-linger` makes them "
            "run after a reboot without a login",
        )
    elif spec.wicbox_home == SERVICE_HOME:
        notes = (
            f"the services keep their state (token cache, run lock, pause, logs) in {SERVICE_HOME} "
            "(WICBOX_HOME; systemd creates it for the service's account, 0700): run `wicbox signin`, "
            f"`check` and `schedule stop` as that account with WICBOX_HOME={SERVICE_HOME}",
        )
    return SchedulePlan(Platform.SYSTEMD, spec, files, commands, notes=notes, relay=relay, serve=serve)


OUTBOX_NOTE = (
    "each run also delivers WIC's outgoing mail: after reading, `wicbox run` sends the due mails of "
    "WICBOX_OUTBOX (as `wicbox send` does; nothing is signed in to when none are due)"
)


SERVE_NOTE = (
    "serve delivers WIC's outgoing mail every 15 seconds and works a mailbox only while it holds the "
    "mailbox's lease in the WIC database: a `wicbox run` of this configuration beside it (another "
    "scheduled task, by hand, serve on a second host) shares the mailboxes with it; `wicbox schedule "
    "install` without --serve goes back to scheduled runs"
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
        f"# {plan.platform} schedule {spec.name!r} for {spec.describe}: every {spec.every_minutes} "
        f"minutes, a run may take at most {spec.time_limit_minutes} minutes",
    ]
    if plan.serve is not None:
        serve = CommandLine(spec.program.argv(spec.config_path, plan.serve.arguments)).display()
        lines = [
            f"# {plan.platform} schedule {spec.name!r} for {spec.describe}: `wicbox serve`, started at "
            f"boot and again when it fails, instead of scheduled runs: {serve}"
        ]
    if plan.relay is not None:
        relay = CommandLine(plan.relay_argv).display()
        lines.append(f"# and the relay service, started at boot and again when it fails: {relay}")
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
    lines += [f"# note: {note}" for note in (SERVE_NOTE if plan.serve else OUTBOX_NOTE, *plan.notes)]
    lines += [f"# warning: {warning}" for warning in plan.warnings]
    return lines


def plan_json(plan: SchedulePlan) -> dict[str, Any]:
    spec = plan.spec
    return {
        "platform": plan.platform.value,
        "name": spec.name,
        "config": spec.config_path,
        "data_dir": spec.data_dir,
        "every_minutes": spec.every_minutes,
        "time_limit_minutes": spec.time_limit_minutes,
        "files": [{"path": f.path, "about": f.about, "content": f.text} for f in plan.files],
        "commands": [command.display() for command in plan.commands],
        "cron_line": plan.cron_line,
        "relay_command": list(plan.relay_argv) or None,
        "serve_command": list(spec.program.argv(spec.config_path, plan.serve.arguments))
        if plan.serve
        else None,
        "notes": [SERVE_NOTE if plan.serve else OUTBOX_NOTE, *plan.notes],
        "warnings": list(plan.warnings),
    }
