"""What ``install``, ``uninstall``, ``stop`` and ``start`` do on each platform.

The scheduler entry is found by its name (``--name`` or the default derived from the configuration),
the pause marker and the run lock by the configuration's machine-wide state directory. The relay's
service, where ``install --relay`` installed it, goes along: ``stop`` stops it, ``start`` starts it,
``uninstall`` removes it.
"""

from __future__ import annotations

import datetime as dt
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from wicbox_bridge.config.footprint import default_windows_security, make_private_dir
from wicbox_bridge.errors import warning_line
from wicbox_bridge.schedule.commandline import (
    CommandLine,
    SchedulerError,
    run_tool,
    tool_answer,
    tool_succeeds,
)
from wicbox_bridge.schedule.files import remove_files, write_then_run
from wicbox_bridge.schedule.host import who_and_where
from wicbox_bridge.schedule.lockwait import RunStillBusy, wait_until_idle
from wicbox_bridge.schedule.pause import pause_runs, read_pause, resume_runs
from wicbox_bridge.schedule.plan import SchedulePlan
from wicbox_bridge.schedule.relay import relay_task_name
from wicbox_bridge.schedule.serve import SERVE_MARKER, is_serve_command
from wicbox_bridge.schedule.spec import Logon, Platform
from wicbox_bridge.schedule.systemd import (
    daemon_reload,
    disable_timer,
    enable_timer,
    relay_is_active,
    relay_unit_name,
    start_relay,
    start_serve,
    stop_relay,
    stop_serve,
    stop_service,
    unit_base,
)
from wicbox_bridge.schedule.windows import (
    installed_task,
    schtasks_create,
    schtasks_delete,
    schtasks_disable,
    schtasks_enable,
    schtasks_end,
    schtasks_query,
    schtasks_query_xml,
    schtasks_run,
)
from wicbox_bridge.secret import Secret

Say = Callable[[str], None]
"""Where a line of progress goes (the command's stdout)."""
PasswordPrompt = Callable[[str], Secret]


@dataclass(frozen=True)
class Target:
    """One configuration's scheduler entry and its state directory."""

    platform: Platform
    name: str
    state_dir: Path
    unit_dir: Path
    user_units: bool = False

    @property
    def unit_files(self) -> tuple[Path, Path]:
        base = unit_base(self.name)
        return self.unit_dir / f"{base}.service", self.unit_dir / f"{base}.timer"

    @property
    def relay_name(self) -> str:
        return relay_task_name(self.name)

    @property
    def relay_unit(self) -> Path:
        return self.unit_dir / relay_unit_name(self.name)

    def serves(self) -> bool:
        """Whether the installed entry runs `wicbox serve` (``install --serve``) instead of runs."""
        if self.platform is Platform.SYSTEMD:
            try:
                return SERVE_MARKER in self.unit_files[0].read_text(encoding="utf-8").splitlines()
            except OSError:
                return False
        if self.platform is Platform.WINDOWS:
            task = installed_task(tool_answer(schtasks_query_xml(self.name)))
            return task is not None and is_serve_command(task.command)
        return False

    def describe(self) -> str:
        if self.platform is Platform.WINDOWS:
            return f'the task "{self.name}"'
        if self.platform is Platform.SYSTEMD:
            if self.serves():
                return f"the service {unit_base(self.name)}.service (wicbox serve)"
            return f"the timer {unit_base(self.name)}.timer"
        return "the crontab line"

    def describe_relay(self) -> str:
        if self.platform is Platform.WINDOWS:
            return f'the relay\'s task "{self.relay_name}"'
        return f"the relay's service {relay_unit_name(self.name)}"


# --------------------------------------------------------------------------- install / uninstall


def warn_through(say: Say) -> Say:
    """Warnings in the CLI's one format (``wicbox: warning: ...``) through ``say``, for a caller
    that keeps a single stream (the commands pass their own ``warn``, which writes to stderr)."""
    return lambda text: say(warning_line(text))


def install(
    plan: SchedulePlan,
    target: Target,
    *,
    force: bool,
    prompt: PasswordPrompt,
    say: Say,
    warn: Say | None = None,
    again: str = "wicbox schedule install",
) -> None:
    """Installs the plan; ``again`` is the command that was run, which a fix line names."""
    if plan.platform is Platform.WINDOWS:
        _install_task(plan, target, force=force, prompt=prompt, say=say, again=again)
    elif plan.platform is Platform.SYSTEMD:
        _install_units(plan, target, force=force, again=again)
        written = ", ".join(planned.path for planned in plan.files)
        unit = (
            f"{unit_base(plan.spec.name)}.service (wicbox serve)"
            if plan.serve
            else f"{unit_base(plan.spec.name)}.timer"
        )
        say(f"installed and started {unit} ({written})")
    else:
        say("cron: nothing was changed. Add this line with `crontab -e` as the account that runs wicbox:")
        say(plan.cron_line or "")
    if plan.relay is not None:
        say(f"installed and started {target.describe_relay()}: {CommandLine(plan.relay_argv).display()}")
    for note in plan.notes:
        say(f"note: {note}")
    for warning in plan.warnings:
        (warn or warn_through(say))(warning)
    _mention_pause(target, say)


def _install_task(
    plan: SchedulePlan, target: Target, *, force: bool, prompt: PasswordPrompt, say: Say, again: str
) -> None:
    spec = plan.spec
    names = (spec.name, *((target.relay_name,) if plan.relay else ()))
    existing = [] if force else [name for name in names if tool_succeeds(schtasks_query(name))]
    if existing:
        raise SchedulerError(
            f'a task named "{existing[0]}" already exists',
            fix=f"add --force to replace it (`{again} --force`), or remove it first with "
            "`wicbox schedule uninstall`",
        )
    password = prompt(spec.run_as or "") if spec.logon is Logon.PASSWORD else None
    if force and (plan.serve is not None or target.serves()):
        tool_succeeds(schtasks_end(spec.name))  # a serve still running would keep its old options
    for grant in (command for command in plan.commands if command.argv[0] == "icacls"):
        _grant_state_dir(grant, target, again)  # before the task exists, so its first run can write there
    for name, planned in zip(names, plan.files, strict=True):
        if name != spec.name and force:
            tool_succeeds(schtasks_end(name))  # a relay still running would keep its old options
        with tempfile.TemporaryDirectory(prefix="wicbox-schedule-") as folder:
            xml_file = Path(folder) / f"{name}.xml"
            xml_file.write_bytes(planned.data)
            run_tool(
                schtasks_create(spec, str(xml_file), password, force=force, name=name),
                fix=f"run `{again}` from an elevated prompt (Run as administrator), check the account's "
                "name and password, and that the account has the right to log on as a batch job",
            )
        if name == spec.name and plan.serve is not None:
            run_tool(schtasks_run(spec.name), fix=_SCHTASKS_FIX)
            serve = " ".join(spec.program.argv(spec.config_path, plan.serve.arguments))
            say(f'installed and started the task "{name}": {serve}, at boot and again when it fails')
        elif name == spec.name:
            say(f'installed the task "{name}": {" ".join(spec.argv)} every {spec.every_minutes} minutes')
    if plan.relay is not None:
        run_tool(schtasks_run(target.relay_name), fix=_SCHTASKS_FIX)


def _grant_state_dir(grant: CommandLine, target: Target, again: str) -> None:
    try:
        make_private_dir(target.state_dir, windows=default_windows_security())
    except OSError as exc:
        raise SchedulerError(
            f"cannot create {target.state_dir}: {exc.strerror or exc}",
            fix=f"run `{again}` from an elevated prompt (Run as administrator)",
        ) from exc
    run_tool(
        grant,
        fix=f"run `{again}` from an elevated prompt (Run as administrator) and check the account's "
        "name (DOMAIN\\user)",
    )


def _install_units(plan: SchedulePlan, target: Target, *, force: bool, again: str) -> None:
    units = (*target.unit_files, *((target.relay_unit,) if plan.relay else ()))
    present = [path for path in units if path.exists()]
    if present and not force:
        raise SchedulerError(
            f"{present[0]} already exists",
            fix=f"add --force to replace the units (`{again} --force`), or remove them first with "
            "`wicbox schedule uninstall`",
        )
    if present:
        _leave_the_other_kind(plan, target)
    write_then_run(
        [(Path(planned.path), planned.data) for planned in plan.files],
        plan.commands,
        fix="read systemctl's message above; `systemctl status` and `journalctl -xe` say more. "
        "Nothing was left installed",
        after_undo=(daemon_reload(user_units=target.user_units),),
    )


def _leave_the_other_kind(plan: SchedulePlan, target: Target) -> None:
    """``--force`` from runs to serve: the timer goes (it would start runs beside serve); from serve
    to runs: serve stops first (a running service keeps its old command line)."""
    timer = target.unit_files[1]
    if plan.serve is not None and timer.exists():
        run_tool(disable_timer(target.name, user_units=target.user_units), fix=_SYSTEMCTL_FIX)
        remove_files((timer,))
    elif plan.serve is None and target.serves():
        run_tool(stop_serve(target.name, user_units=target.user_units), fix=_SYSTEMCTL_FIX)


def uninstall(target: Target, *, cron_runs: str, say: Say) -> None:
    """Removes the entry and the relay's; one that is not there is reported and is not an error."""
    if target.platform is not Platform.CRON and _relay_installed(target):
        _remove_relay(target)
        say(f"removed {target.describe_relay()}")
    if target.platform is Platform.WINDOWS:
        if not tool_succeeds(schtasks_query(target.name)):
            say(f'nothing to remove: there is no task named "{target.name}"')
            return
        if target.serves():
            tool_succeeds(schtasks_end(target.name))  # a task's running instance outlives its deletion
        run_tool(schtasks_delete(target.name), fix=_SCHTASKS_FIX)
        say(f'removed the task "{target.name}"')
    elif target.platform is Platform.SYSTEMD:
        if not any(path.exists() for path in target.unit_files):
            say(f"nothing to remove: {target.unit_files[0]} and {target.unit_files[1]} do not exist")
            return
        disable = stop_serve if target.serves() else disable_timer
        run_tool(disable(target.name, user_units=target.user_units), fix=_SYSTEMCTL_FIX)
        removed = remove_files(target.unit_files)
        run_tool(daemon_reload(user_units=target.user_units), fix=_SYSTEMCTL_FIX)
        say(f"removed {', '.join(str(path) for path in removed)}")
    else:
        say(f"cron: nothing was changed. Remove the line that runs `{cron_runs}` with `crontab -e`")
    _mention_pause(target, say)


_SYSTEMCTL_FIX = "run it as root for system units (or with --user for your own); `systemctl status` says more"
_SCHTASKS_FIX = "run it from an elevated prompt (Run as administrator)"


def _remove_relay(target: Target) -> None:
    """Stops the relay (a task's running instance outlives its deletion) and removes its entry."""
    if target.platform is Platform.WINDOWS:
        tool_succeeds(schtasks_end(target.relay_name))  # fails when it is not running: nothing to end
        run_tool(schtasks_delete(target.relay_name), fix=_SCHTASKS_FIX)
        return
    run_tool(stop_relay(target.name, user_units=target.user_units), fix=_SYSTEMCTL_FIX)
    remove_files((target.relay_unit,))
    run_tool(daemon_reload(user_units=target.user_units), fix=_SYSTEMCTL_FIX)


# --------------------------------------------------------------------------- the relay's state


@dataclass(frozen=True)
class RelayState:
    """What ``show`` says about the installed relay: its command line and, where told, its state."""

    service: str
    installed: bool
    state: str | None = None
    command: str | None = None

    def line(self) -> str:
        if not self.installed:
            return f"{self.service} is not installed (`wicbox schedule install --relay` installs it)"
        return f"{self.service} is installed, {self.state or 'state unknown'}: {self.command or '?'}"


def relay_state(target: Target) -> RelayState:
    """The relay's entry as the scheduler of this computer has it (not for cron)."""
    service = target.describe_relay()
    if not _relay_installed(target):
        return RelayState(service, installed=False)
    if target.platform is Platform.WINDOWS:
        task = installed_task(tool_answer(schtasks_query_xml(target.relay_name)))
        if task is None:  # not allowed to read it, for one
            return RelayState(service, installed=True)
        return RelayState(service, True, "enabled" if task.enabled else "disabled", task.command)
    state = tool_answer(relay_is_active(target.name, user_units=target.user_units)) or None
    return RelayState(service, True, state, _exec_start(target.relay_unit))


def _exec_start(unit: Path) -> str | None:
    try:
        lines = unit.read_text(encoding="utf-8").splitlines()
    except OSError:
        return None
    return next((line.removeprefix("ExecStart=") for line in lines if line.startswith("ExecStart=")), None)


# --------------------------------------------------------------------------- stop / start


# How long `wicbox schedule stop` gives a serve task on Windows to end by itself once paused (it
# looks at the pause marker with every heartbeat, 5 s, and ends within 10 s), before ending the task.
SERVE_GRACE_SECONDS = 30.0


def stop(
    target: Target,
    *,
    timeout: float,
    env: Mapping[str, str],
    say: Say,
    warn: Say | None = None,
    serve_grace: float = SERVE_GRACE_SECONDS,
) -> None:
    """Disables the entry, stops the relay, pauses runs, then waits for a busy run (RunStillBusy
    after ``timeout``). A serve task on Windows is not ended at once: the pause marker stops it
    cleanly, and only one still busy after ``serve_grace`` seconds is ended (as systemd's stop
    sends serve SIGTERM, which stops it cleanly too)."""
    warn = warn or warn_through(say)
    serves = _disable_entry(target, say, warn)
    _stop_relay(target, say, warn)
    marker = pause_runs(
        target.state_dir, at=dt.datetime.now().astimezone(), by=who_and_where(env, target.platform)
    )
    say(
        f"paused: until `wicbox schedule start`, each `wicbox run` of this configuration ends at once "
        f"({marker})"
    )
    if target.platform is Platform.WINDOWS and serves:
        _let_serve_end(target, grace=min(timeout, serve_grace), say=say, warn=warn)
    waited = wait_until_idle(target.state_dir, timeout=timeout, on_wait=say, end_hint=_end_hint(target))
    say(
        ("the busy run has finished; " if waited else "no run is busy; ")
        + "wicbox is stopped and may be upgraded. `wicbox schedule start` resumes"
    )


def _let_serve_end(target: Target, *, grace: float, say: Say, warn: Say) -> None:
    """Waits up to ``grace`` seconds for the paused serve to end by itself, then ends its task."""
    try:
        wait_until_idle(target.state_dir, timeout=grace, on_wait=say, end_hint=_end_hint(target))
    except RunStillBusy:
        tool_succeeds(schtasks_end(target.name))  # fails when it ended meanwhile: nothing to end
        warn(
            f"wicbox serve did not end within {grace:g} s of the pause: its task was ended "
            "(no mail is lost: a mail it was filing stays on the server and is filed after "
            "`wicbox schedule start`)"
        )


def start(target: Target, *, say: Say) -> None:
    """Removes the pause marker and enables the entry again."""
    was_paused = resume_runs(target.state_dir)
    say("resumed: the pause marker is removed" if was_paused else "runs were not paused")
    _enable_entry(target, say)
    _start_relay(target, say)


def _stop_relay(target: Target, say: Say, warn: Say) -> None:
    """The relay keeps the wicbox executable in use: an upgrade needs it stopped, and disabled so that
    neither a boot nor its restart trigger starts it before `wicbox schedule start`."""
    if target.platform is Platform.CRON or not _relay_installed(target):
        return
    try:
        if target.platform is Platform.WINDOWS:
            run_tool(schtasks_disable(target.relay_name), fix=_SCHTASKS_FIX)
            tool_succeeds(schtasks_end(target.relay_name))  # fails when it is not running
        else:
            run_tool(stop_relay(target.name, user_units=target.user_units), fix=_SYSTEMCTL_FIX)
    except SchedulerError as error:
        warn(f"could not stop {target.describe_relay()}: {error.message}")
        return
    say(f"stopped and disabled {target.describe_relay()}")


def _start_relay(target: Target, say: Say) -> None:
    if target.platform is Platform.CRON or not _relay_installed(target):
        return
    if target.platform is Platform.WINDOWS:
        run_tool(schtasks_enable(target.relay_name), fix=_SCHTASKS_FIX)
        run_tool(schtasks_run(target.relay_name), fix=_SCHTASKS_FIX)
    else:
        run_tool(start_relay(target.name, user_units=target.user_units), fix=_SYSTEMCTL_FIX)
    say(f"enabled and started {target.describe_relay()}")


def _relay_installed(target: Target) -> bool:
    if target.platform is Platform.WINDOWS:
        return tool_succeeds(schtasks_query(target.relay_name))
    return target.relay_unit.exists()


def _disable_entry(target: Target, say: Say, warn: Say) -> bool:
    """Disables the entry; whether it is a serve entry (False when there is none to disable)."""
    if target.platform is Platform.CRON:
        say("cron: comment out the wicbox line with `crontab -e`; until then each run ends at once (paused)")
        return False
    if not _entry_exists(target):
        say(f"{target.describe()} is not installed: nothing to disable")
        return False
    try:
        serves = _run_entry_command(target, enable=False)
    except SchedulerError as error:
        warn(
            f"could not disable {target.describe()}: {error.message}; runs are held off by the pause "
            "marker all the same"
        )
        return False
    say(f"disabled {target.describe()}")
    return serves


def _enable_entry(target: Target, say: Say) -> None:
    if target.platform is Platform.CRON:
        say("cron: remove the comment from the wicbox line with `crontab -e` if you commented it out")
        return
    if not _entry_exists(target):
        say(f"{target.describe()} is not installed: `wicbox schedule install` installs it")
        return
    _run_entry_command(target, enable=True)
    say(f"enabled {target.describe()}")


def _entry_exists(target: Target) -> bool:
    if target.platform is Platform.WINDOWS:
        return tool_succeeds(schtasks_query(target.name))
    return all(path.exists() for path in target.unit_files) or target.serves()


def _run_entry_command(target: Target, *, enable: bool) -> bool:
    """Enables or disables the entry; serve is also started, or on systemd stopped (on Windows the
    pause marker stops it: :func:`_let_serve_end`). Whether the entry is a serve entry."""
    serves = target.serves()
    if target.platform is Platform.WINDOWS:
        command = schtasks_enable(target.name) if enable else schtasks_disable(target.name)
        run_tool(command, fix=_SCHTASKS_FIX)
        if serves and enable:
            run_tool(schtasks_run(target.name), fix=_SCHTASKS_FIX)
        return serves
    toggles = {(True, True): start_serve, (True, False): stop_serve, (False, True): enable_timer}
    toggle = toggles.get((serves, enable), disable_timer)
    run_tool(toggle(target.name, user_units=target.user_units), fix=_SYSTEMCTL_FIX)
    return serves


def _end_hint(target: Target) -> str:
    if target.platform is Platform.WINDOWS:
        return f"`{schtasks_end(target.name).display()}`"
    if target.platform is Platform.SYSTEMD:
        return f"`{stop_service(target.name, user_units=target.user_units).display()}`"
    return "`kill PID` with the process number above"


def _mention_pause(target: Target, say: Say) -> None:
    marker = read_pause(target.state_dir)
    if marker is not None:
        say(f"note: runs are paused since {marker.at} by {marker.by}; `wicbox schedule start` resumes them")
