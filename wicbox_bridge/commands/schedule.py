"""``wicbox schedule``: install, show, remove, stop and start the scheduled task that runs wicbox."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import shlex
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, TypeVar

import click

from wicbox_bridge.commands import pass_runtime
from wicbox_bridge.commands.run import DEFAULT_LEASE_SECONDS, MAX_LEASE_SECONDS, MIN_LEASE_SECONDS
from wicbox_bridge.config.dbtarget import SqliteTarget
from wicbox_bridge.config.footprint import make_private_dir
from wicbox_bridge.config.paths import machine_state_dir_for, user_data_dir
from wicbox_bridge.config.wicglobal import load_global_config, locate_config
from wicbox_bridge.errors import BridgeError, ConfigurationError, warning_line
from wicbox_bridge.helpformat import WholeSummaryGroup
from wicbox_bridge.runtime import Runtime
from wicbox_bridge.schedule import actions
from wicbox_bridge.schedule.actions import Target
from wicbox_bridge.schedule.cron import CRON_LOG_NAME
from wicbox_bridge.schedule.host import (
    current_account,
    foreign_platform_problem,
    host_platform,
    is_admin,
    is_root,
    refuse_foreign_platform,
)
from wicbox_bridge.schedule.plan import (
    SchedulePlan,
    cron_plan,
    plan_json,
    plan_text,
    systemd_plan,
    windows_plan,
)
from wicbox_bridge.schedule.privilege import privilege_warnings
from wicbox_bridge.schedule.relay import DEFAULT_RELAY_LISTEN, RelaySpec, check_relay_files
from wicbox_bridge.schedule.serve import ServeSpec
from wicbox_bridge.schedule.spec import (
    DEFAULT_EVERY_MINUTES,
    Logon,
    Platform,
    ScheduleSpec,
    check_task_name,
    default_task_name,
    embedded_task_name,
    installed_program,
)
from wicbox_bridge.schedule.systemd import SERVICE_HOME, SYSTEM_UNIT_DIR, user_unit_dir
from wicbox_bridge.secret import Secret

F = TypeVar("F", bound=Callable[..., Any])
DEFAULT_STOP_TIMEOUT = 300


def _target_options(command: F) -> F:
    """--config, --platform, --name and --user: which entry of which configuration."""
    for option in reversed(
        (
            click.option(
                "--config",
                "config_option",
                type=click.Path(path_type=Path, dir_okay=False),
                default=None,
                help="The WicGlobal.config the scheduled runs use (the same as `wicbox --config`). "
                "Default: the one `wicbox` finds ($WICBOX_CONFIG, the working directory, next to "
                "the executable). Stored as an absolute path.",
            ),
            click.option(
                "--platform",
                type=click.Choice(["auto", *(p.value for p in Platform)]),
                default="auto",
                show_default=True,
                help="The scheduler: windows (Task Scheduler), systemd (a service and a timer) or cron "
                "(a crontab line). auto: windows on Windows, systemd where it runs, else cron. Only "
                "`show` works for another computer's platform.",
            ),
            click.option(
                "--name",
                default=None,
                help="The task's name (systemd: the units' name in lower case). Default: WICBOX for the "
                "WicGlobal.config next to the wicbox executable, else WICBOX-<folder>-<6 hex digits> "
                "derived from the configuration's path, so two WIC installations never share a task.",
            ),
            click.option(
                "--user",
                "user_units",
                is_flag=True,
                help="systemd: your own units (~/.config/systemd/user, `systemctl --user`) instead of "
                "the system's (/etc/systemd/system). Implied when not running as root.",
            ),
        )
    ):
        command = option(command)
    return command


def _timing_options(command: F) -> F:
    """--every, --time-limit, --run-as, --logon, --highest and --lease-seconds: what install writes."""
    for option in reversed(
        (
            click.option(
                "--every",
                "every_minutes",
                type=int,
                default=DEFAULT_EVERY_MINUTES,
                show_default=True,
                metavar="MINUTES",
                help="Start a run every MINUTES minutes, 1 to 1440. cron can only do fewer than 60, or "
                "60, 120, 180, 240, 360, 480, 720 or 1440.",
            ),
            click.option(
                "--time-limit",
                "time_limit_minutes",
                type=click.IntRange(1, 1440),
                default=None,
                metavar="MINUTES",
                help="End a run that takes longer than this (it loses nothing: the next run continues). "
                "Default: 4 times --every, at least 10 and at most 120 minutes.",
            ),
            click.option(
                "--run-as",
                default=None,
                metavar="ACCOUNT",
                help="Windows: the account the task runs as (default: you, as DOMAIN\\user). systemd: "
                "User= of the system service (default: root). Not for cron or --user.",
            ),
            click.option(
                "--logon",
                type=click.Choice([logon.value for logon in Logon]),
                default=Logon.PASSWORD.value,
                show_default=True,
                help="Windows: how the task signs in while nobody is logged on. password: the account's "
                "password, asked for at install (not echoed) and kept by Task Scheduler; s4u: no stored "
                "password, but no network credentials; system: the LocalSystem account.",
            ),
            click.option(
                "--highest",
                is_flag=True,
                help="Windows: run with the account's highest privileges (RunLevel HighestAvailable). "
                "wicbox does not need them; the default is LeastPrivilege.",
            ),
            click.option(
                "--lease-seconds",
                type=click.IntRange(MIN_LEASE_SECONDS, MAX_LEASE_SECONDS),
                default=None,
                metavar="SECONDS",
                help="Pass --lease-seconds SECONDS to the scheduled `wicbox run` (how long a run holds "
                f"each mailbox's lease; default: the run's, {DEFAULT_LEASE_SECONDS}).",
            ),
        )
    ):
        command = option(command)
    return command


def _relay_options(command: F) -> F:
    """--relay and its options: the SMTP relay as a service beside the run task."""
    for option in reversed(
        (
            click.option(
                "--relay",
                is_flag=True,
                help="Also the SMTP relay for WIC versions before 4.9.9 (`wicbox relay`), as a "
                "service: Windows: a task started at boot and again when it fails; systemd: a service "
                "(Restart=on-failure). Not for cron.",
            ),
            click.option(
                "--relay-listen",
                default=None,
                metavar="HOST:PORT",
                help=f"Where the relay listens (default {DEFAULT_RELAY_LISTEN}). An address other than "
                "loopback needs --relay-allow-remote and the TLS files.",
            ),
            click.option(
                "--relay-tls-cert",
                default=None,
                metavar="FILE",
                help="The relay's TLS certificate (PEM), with --relay-tls-key.",
            ),
            click.option(
                "--relay-tls-key",
                default=None,
                metavar="FILE",
                help="The private key of --relay-tls-cert (PEM).",
            ),
            click.option(
                "--relay-allow-remote",
                is_flag=True,
                help="Let other computers use the relay (with --relay-listen on their network, over TLS).",
            ),
        )
    ):
        command = option(command)
    return command


@dataclass(frozen=True)
class _RelayOptions:
    """The relay options as given on the command line."""

    relay: bool
    listen: str | None
    tls_cert: str | None
    tls_key: str | None
    allow_remote: bool

    def given(self) -> list[str]:
        return [
            option
            for option, value in (
                ("--relay-listen", self.listen),
                ("--relay-tls-cert", self.tls_cert),
                ("--relay-tls-key", self.tls_key),
                ("--relay-allow-remote", self.allow_remote),
            )
            if value
        ]


@dataclass(frozen=True)
class _Choice:
    """The configuration (None: the embedded default), platforms and entry one command works on."""

    config: Path | None
    host: Platform
    target: Target
    data_dir: Path  # the account's data folder (WICBOX_HOME): the embedded default's database

    @property
    def here(self) -> bool:
        """Whether the chosen scheduler is this computer's (``show`` also describes others)."""
        return foreign_platform_problem(self.target.platform, self.host) is None


def _choose(
    runtime: Runtime, config_option: Path | None, platform: str, name: str | None, user_units: bool
) -> _Choice:
    config = _config_path(runtime, config_option)
    host = host_platform()
    chosen = host if platform == "auto" else Platform(platform)
    env = runtime.invocation.env
    data_dir = user_data_dir(env).absolute()
    if config is None:
        name = name or embedded_task_name(data_dir)
    else:
        name = name or default_task_name(config, Path(installed_program().executable).parent)
    check_task_name(name)
    user_units = user_units or not is_root()
    unit_dir = user_unit_dir(env, Path(env.get("HOME") or Path.home())) if user_units else SYSTEM_UNIT_DIR
    env = _service_env(env, chosen, user_units=user_units, data_dir=None if config else data_dir)
    target = Target(chosen, name, machine_state_dir_for(config, env=env), unit_dir, user_units)
    return _Choice(config, host, target, data_dir)


def _service_env(
    env: Mapping[str, str], platform: Platform, *, user_units: bool, data_dir: Path | None = None
) -> Mapping[str, str]:
    """The environment the scheduled runs see. The embedded default (``data_dir``): WICBOX_HOME is
    that data folder, so the runs find the same database and token cache (systemd and cron; a
    Windows task runs as the same account and finds the same folder). Else system services get
    WICBOX_HOME=/var/lib/wicbox-bridge when none is set (their home folders are read-only to them,
    see schedule.systemd)."""
    if data_dir is not None:
        return env if platform is Platform.WINDOWS else {**env, "WICBOX_HOME": str(data_dir)}
    if platform is Platform.SYSTEMD and not user_units and not env.get("WICBOX_HOME"):
        return {**env, "WICBOX_HOME": SERVICE_HOME}
    return env


def command_run(ctx: click.Context, *, drop: tuple[str, ...] = (), add: tuple[str, ...] = ()) -> str:
    """The command that was run, with the options given on its command line (less ``drop``, plus
    ``add``): what a fix line tells the user to run again."""
    words = ["wicbox", *ctx.command_path.split()[1:]]  # the program's name, also under a test runner
    root = ctx.find_root()
    if root.get_parameter_source("config_path") is click.core.ParameterSource.COMMANDLINE:
        words[1:1] = ["--config", str(root.params["config_path"])]  # given before `schedule`
    for param in ctx.command.params:
        if not isinstance(param, click.Option) or param.name is None or param.opts[0] in drop:
            continue
        if ctx.get_parameter_source(param.name) is not click.core.ParameterSource.COMMANDLINE:
            continue
        value = ctx.params[param.name]
        words += [param.opts[0]] if param.is_flag else [param.opts[0], str(value)]
    return shlex.join([*words, *add])


_EXAMPLE_VALUES: Mapping[str, str] = {"--every": "5", "--time-limit": "20", "--name": "WICBOX-PROD"}


@contextmanager
def _fix_names_the_command() -> Iterator[None]:
    """A refused option's fix ends with the command that was run, that option corrected: the line
    to run next (``--every 0`` gives ``... `wicbox schedule show --every 5```)."""
    try:
        yield
    except ConfigurationError as error:
        option = error.message.split(" ", 1)[0].rstrip(":")
        ctx = click.get_current_context()
        if option in _EXAMPLE_VALUES and error.fix and "`wicbox " not in error.fix:
            example = _EXAMPLE_VALUES[option]
            error.fix = (
                f"{error.fix}; for example `{command_run(ctx, drop=(option,), add=(option, example))}`"
            )
        raise


def _writable_paths(runtime: Runtime, config: Path | None, env: Mapping[str, str]) -> tuple[str, ...]:
    """The folders outside WICBOX_HOME that WicGlobal.config makes the runs write: the log folder
    (WicBoxLogDirectory) and a SQLite database's folder; nothing when it cannot be read (yet), nor
    for the embedded default (all in WICBOX_HOME)."""
    if config is None:
        return ()
    try:
        loaded = load_global_config(config, env=env)
    except BridgeError:
        return ()
    paths = [loaded.log_directory] if loaded.log_directory else []
    if isinstance(loaded.database, SqliteTarget) and not loaded.database.embedded:
        paths.append(loaded.database.path.parent)
    return tuple(str(path) for path in paths)


def _config_path(runtime: Runtime, config_option: Path | None) -> Path | None:
    """The configuration the runs use, absolute; None: none found, the embedded default."""
    invocation = runtime.invocation
    if config_option is not None and invocation.config_option not in (None, config_option):
        raise click.UsageError("give --config once: before `schedule` or after the subcommand, not both")
    location = (
        locate_config(config_option, invocation.env, invocation.cwd, invocation.executable_dir)
        if config_option is not None
        else runtime.location
    )
    return location.path.resolve() if location.path is not None else None


def _spec(
    runtime: Runtime,
    choice: _Choice,
    *,
    every_minutes: int,
    time_limit_minutes: int | None,
    run_as: str | None,
    logon: str,
    highest: bool,
    lease_seconds: int | None = None,
) -> ScheduleSpec:
    platform, env = choice.target.platform, runtime.invocation.env
    if run_as and (platform is Platform.CRON or (platform is Platform.SYSTEMD and choice.target.user_units)):
        raise click.UsageError(
            "--run-as applies to Windows tasks and system units only: for cron, add the line to that "
            "account's crontab; for systemd, run as root without --user"
        )
    if choice.config is None:
        _check_embedded_account(choice, current_account(env, platform), run_as=run_as, logon=Logon(logon))
    if platform is Platform.WINDOWS and Logon(logon) is not Logon.SYSTEM and not run_as:
        run_as = current_account(env, Platform.WINDOWS)
    data_dir = choice.data_dir if choice.config is None else None
    env = _service_env(env, platform, user_units=choice.target.user_units, data_dir=data_dir)
    writable = _writable_paths(runtime, choice.config, env) if platform is Platform.SYSTEMD else ()
    return ScheduleSpec(
        name=choice.target.name,
        config_path=None if choice.config is None else str(choice.config),
        program=installed_program(),
        every_minutes=every_minutes,
        time_limit_minutes=time_limit_minutes or 0,
        run_as=run_as,
        logon=Logon(logon),
        highest=highest,
        start_boundary=dt.datetime.now().replace(second=0, microsecond=0),  # Task Scheduler's local time
        wicbox_home=env.get("WICBOX_HOME") or None,
        author=current_account(env, platform),
        writable_paths=writable,
        data_dir=None if data_dir is None else str(data_dir),
        lease_seconds=lease_seconds,
    )


def _check_embedded_account(choice: _Choice, me: str, *, run_as: str | None, logon: Logon) -> None:
    """The embedded default lives in this account's data folder: the runs must be this account's."""
    other = (run_as and run_as.casefold() != me.casefold()) or (
        choice.target.platform is Platform.WINDOWS and logon is Logon.SYSTEM
    )
    if other:
        ctx = click.get_current_context()
        raise ConfigurationError(
            f"the embedded default (no WicGlobal.config) is the database of this account, in "
            f"{choice.data_dir}; runs as another account ({run_as or 'LocalSystem'}) would not find it",
            fix=f"schedule it as yourself: `{command_run(ctx, drop=('--run-as', '--logon'))}`; or give "
            f"that account a WicGlobal.config: `{command_run(ctx, drop=('--config',))} --config <WIC "
            "folder>/WicGlobal.config`",
        )


def _relay(
    runtime: Runtime, choice: _Choice, options: _RelayOptions, *, installing: bool
) -> RelaySpec | None:
    """The relay service to install, checked as ``wicbox relay`` checks its options; None without --relay."""
    if not options.relay:
        if options.given():
            raise click.UsageError(
                f"{', '.join(options.given())} without --relay: add --relay to install the relay service "
                "with them, or leave them out"
            )
        return None
    cwd = runtime.invocation.cwd

    def absolute(path: str | None) -> str | None:  # the service starts in the configuration's folder
        return str(cwd / path) if path and choice.here else path

    relay = RelaySpec(
        listen=options.listen or DEFAULT_RELAY_LISTEN,
        tls_cert=absolute(options.tls_cert),
        tls_key=absolute(options.tls_key),
        allow_remote=options.allow_remote,
    )
    if installing and choice.here:
        check_relay_files(relay)
    if choice.target.platform is Platform.CRON:
        raise ConfigurationError(
            "--relay: cron cannot keep a service running (start it at boot, restart it when it fails)",
            fix="install it where systemd runs, or run `wicbox relay` under the service manager this "
            "computer has; leave --relay out for the scheduled runs alone",
        )
    return relay


def _plan(
    spec: ScheduleSpec,
    target: Target,
    *,
    force: bool = False,
    relay: RelaySpec | None = None,
    serve: bool = False,
) -> SchedulePlan:
    """The platform's plan, with the warnings of an account that has more rights than needed.
    With ``serve`` the entry runs `wicbox serve`, and the relay (if any) runs inside it."""
    serve_spec = ServeSpec(relay=relay) if serve else None
    if serve_spec is not None:
        relay = None
        if target.platform is Platform.CRON:
            raise ConfigurationError(
                "--serve: cron cannot keep a service running (start it at boot, restart it when it fails)",
                fix="install it where systemd runs, or leave --serve out for scheduled runs",
            )
    if target.platform is Platform.WINDOWS:
        plan = windows_plan(spec, target.state_dir, force=force, relay=relay, serve=serve_spec)
    elif target.platform is Platform.SYSTEMD:
        plan = systemd_plan(
            spec, target.unit_dir, user_units=target.user_units, relay=relay, serve=serve_spec
        )
    else:
        plan = cron_plan(spec, target.state_dir / CRON_LOG_NAME)
    runs_as_me = spec.run_as is None or spec.run_as.casefold() == spec.author.casefold()
    warnings = privilege_warnings(
        spec, target.platform, user_units=target.user_units, account_is_admin=runs_as_me and is_admin()
    )
    return dataclasses.replace(plan, warnings=warnings)


def _prompt_password(account: str) -> Secret:
    return Secret(
        click.prompt(f"Password of {account} (kept by Task Scheduler, not by wicbox)", hide_input=True)
    )


@click.group("schedule", cls=WholeSummaryGroup)
def schedule_group() -> None:
    """Install, show, remove, stop and start the scheduled task that runs `wicbox run`.

    Windows: a Task Scheduler task (runs whether anyone is logged on or not, never two at once,
    ended after a time limit). Linux: a systemd service and timer, or a crontab line where systemd
    does not run. Each WicGlobal.config gets its own task.

    \b
    Examples:
      wicbox schedule show --config D:\\WIC\\WicGlobal.config
      wicbox schedule install --config D:\\WIC\\WicGlobal.config --every 5
      wicbox schedule stop      # before an upgrade: waits for a busy run
      wicbox schedule start     # after the upgrade
      wicbox schedule uninstall
    """


_SERVE_OPTION = click.option(
    "--serve",
    is_flag=True,
    help="The entry runs `wicbox serve` (files mail within seconds) instead of `wicbox run` every few "
    "minutes: started at boot and again when it fails. With --relay the relay runs inside serve.",
)


@schedule_group.command("show")
@_target_options
@_timing_options
@_relay_options
@_SERVE_OPTION
@click.option(
    "--json", "as_json", is_flag=True, help="Print the plan as JSON (files with contents, commands)."
)
@pass_runtime
def show_command(  # noqa: PLR0917 - click hands every option over as an argument
    runtime: Runtime,
    config_option: Path | None,
    platform: str,
    name: str | None,
    user_units: bool,
    every_minutes: int,
    time_limit_minutes: int | None,
    run_as: str | None,
    logon: str,
    highest: bool,
    lease_seconds: int | None,
    relay: bool,
    relay_listen: str | None,
    relay_tls_cert: str | None,
    relay_tls_key: str | None,
    relay_allow_remote: bool,
    serve: bool,
    as_json: bool,
) -> None:
    """Print what `install` would install, without installing anything.

    Each file (the task XML, or the systemd service and timer, or the crontab line; with --relay
    also the relay's task or service) under a header saying where it would go, then the commands
    `install` would run. Works for any platform on any computer; on this computer's own scheduler
    it also says whether the relay service is installed, its command line and its state.

    \b
    Examples:
      wicbox schedule show
      wicbox schedule show --platform windows --every 10 --config /srv/wic/WicGlobal.config
      wicbox schedule show --platform systemd --json
      wicbox schedule show --relay --relay-listen 127.0.0.1:2525
    """
    with _fix_names_the_command():
        choice = _choose(runtime, config_option, platform, name, user_units)
    options = _RelayOptions(relay, relay_listen, relay_tls_cert, relay_tls_key, relay_allow_remote)
    relay_spec = _relay(runtime, choice, options, installing=False)
    with _fix_names_the_command():
        spec = _spec(
            runtime,
            choice,
            every_minutes=every_minutes,
            time_limit_minutes=time_limit_minutes,
            run_as=run_as,
            logon=logon,
            highest=highest,
            lease_seconds=lease_seconds,
        )
        plan = _plan(spec, choice.target, relay=relay_spec, serve=serve)
    state = (
        actions.relay_state(choice.target)
        if choice.here and choice.target.platform is not Platform.CRON
        else None
    )
    if as_json:
        click.echo(json.dumps({**plan_json(plan), "relay_service": state and asdict(state)}, indent=2))
        return
    for line in plan_text(plan):
        click.echo(line)
    if state is not None:
        click.echo(f"# relay: {state.line()}")


@schedule_group.command("install")
@_target_options
@_timing_options
@_relay_options
@_SERVE_OPTION
@click.option("--force", is_flag=True, help="Replace a task (or units) of the same name instead of refusing.")
@pass_runtime
def install_command(  # noqa: PLR0917 - click hands every option over as an argument
    runtime: Runtime,
    config_option: Path | None,
    platform: str,
    name: str | None,
    user_units: bool,
    every_minutes: int,
    time_limit_minutes: int | None,
    run_as: str | None,
    logon: str,
    highest: bool,
    lease_seconds: int | None,
    relay: bool,
    relay_listen: str | None,
    relay_tls_cert: str | None,
    relay_tls_key: str | None,
    relay_allow_remote: bool,
    serve: bool,
    force: bool,
) -> None:
    """Install the scheduled task that runs `wicbox --config <file> run` every few minutes.

    Windows: registers the task with `schtasks /Create /XML` (from an elevated prompt); with
    --logon password it asks for the account's password, which only Task Scheduler keeps.
    systemd: writes the service and timer, reloads systemd and starts the timer; if a step fails,
    nothing stays installed. cron: prints the crontab line to add with `crontab -e` and changes
    nothing. An existing task of the same name is refused unless --force is given.

    With --relay, also the service that keeps `wicbox relay` running (the SMTP relay for WIC versions
    before 4.9.9): Windows: the task <name>-Relay, as the same account, started at boot and again
    when it fails; systemd: <name>-relay.service (Restart=on-failure), enabled and started. `stop`,
    `start` and `uninstall` include it.

    With --serve, the entry runs `wicbox serve` instead of runs: Windows: the task starts at boot and
    again when it fails, without a time limit; systemd: <name>.service with Restart=on-failure and no
    timer. It replaces an installed run entry of the same name only with --force (serve and
    scheduled runs never work the same mailboxes at once); `stop`, `start` and `uninstall` cover it.

    \b
    Examples:
      wicbox schedule install --config D:\\WIC\\WicGlobal.config
      wicbox schedule install --every 10 --run-as KLANT\\svc-wicbox
      wicbox schedule install --logon system --force
      sudo wicbox schedule install --config /srv/wic/WicGlobal.config --run-as wic
      wicbox schedule install --relay --force
      wicbox schedule install --serve --force
    """
    with _fix_names_the_command():
        choice = _choose(runtime, config_option, platform, name, user_units)
    options = _RelayOptions(relay, relay_listen, relay_tls_cert, relay_tls_key, relay_allow_remote)
    relay_spec = _relay(runtime, choice, options, installing=True)
    refuse_foreign_platform(choice.target.platform, choice.host, "install")
    if choice.config is not None:  # a broken file fails now, not at 3 a.m.
        load_global_config(choice.config, env=runtime.invocation.env)
    else:  # the runs start in the data folder: it exists before the first run
        make_private_dir(choice.data_dir)
    with _fix_names_the_command():
        spec = _spec(
            runtime,
            choice,
            every_minutes=every_minutes,
            time_limit_minutes=time_limit_minutes,
            run_as=run_as,
            logon=logon,
            highest=highest,
            lease_seconds=lease_seconds,
        )
        plan = _plan(spec, choice.target, force=force, relay=relay_spec, serve=serve)
    again = command_run(click.get_current_context(), drop=("--force",))
    actions.install(
        plan, choice.target, force=force, prompt=_prompt_password, say=click.echo, warn=_warn, again=again
    )


def _warn(text: str) -> None:
    """A warning of install or stop, on stderr in the CLI's one format (``wicbox: warning: ...``)."""
    click.echo(warning_line(text), err=True)


@schedule_group.command("uninstall")
@_target_options
@pass_runtime
def uninstall_command(
    runtime: Runtime, config_option: Path | None, platform: str, name: str | None, user_units: bool
) -> None:
    """Remove the scheduled task (systemd: stop and disable the timer, delete both units).

    A task that is not installed is reported ("nothing to remove") and is not an error: exit code 0.
    cron: prints the line to remove with `crontab -e`. A pause from `wicbox schedule stop` stays.
    The relay service of `install --relay`, where installed, is stopped and removed too.

    \b
    Examples:
      wicbox schedule uninstall --config D:\\WIC\\WicGlobal.config
      wicbox schedule uninstall --name WICBOX-TEST
    """
    choice = _choose(runtime, config_option, platform, name, user_units)
    refuse_foreign_platform(choice.target.platform, choice.host, "uninstall")
    runs = shlex.join(installed_program().argv(None if choice.config is None else str(choice.config)))
    actions.uninstall(choice.target, cron_runs=runs, say=click.echo)


@schedule_group.command("stop")
@_target_options
@click.option(
    "--timeout",
    type=click.IntRange(0, 86400),
    default=DEFAULT_STOP_TIMEOUT,
    show_default=True,
    metavar="SECONDS",
    help="How long to wait for a busy run to finish before giving up (exit code 5).",
)
@pass_runtime
def stop_command(  # noqa: PLR0917 - click hands every option over as an argument
    runtime: Runtime,
    config_option: Path | None,
    platform: str,
    name: str | None,
    user_units: bool,
    timeout: int,
) -> None:
    """Stop scheduled runs before an upgrade, and wait until no run is busy.

    \b
    1. disables the task (Windows: schtasks /Change /DISABLE; systemd: disable --now
       the timer; cron: tells you to comment out the line);
    2. stops and disables the relay service of `install --relay`, where installed;
    3. pauses this configuration: until `wicbox schedule start`, every `wicbox run`
       ends at once with exit code 0 and a notice, even where the task could not be
       disabled;
    4. waits up to --timeout seconds for a busy run, showing its process, host
       and start.

    When the wait times out, the exit code is 5 and the message says how to end that run (ending it
    loses no mail). The pause and the run lock live in the configuration's machine-wide
    directory (Windows: %ProgramData%\\wicbox-bridge\\state\\<hash>), so any administrator can stop
    the task; on Linux run it as the service's account or with its WICBOX_HOME.

    \b
    Examples:
      wicbox schedule stop
      wicbox schedule stop --timeout 900 --config D:\\WIC\\WicGlobal.config
    """
    choice = _choose(runtime, config_option, platform, name, user_units)
    refuse_foreign_platform(choice.target.platform, choice.host, "stop")
    actions.stop(choice.target, timeout=timeout, env=runtime.invocation.env, say=click.echo, warn=_warn)


@schedule_group.command("start")
@_target_options
@pass_runtime
def start_command(
    runtime: Runtime, config_option: Path | None, platform: str, name: str | None, user_units: bool
) -> None:
    """Resume scheduled runs after `wicbox schedule stop`: ends the pause and enables the task.

    Windows: schtasks /Change /ENABLE; systemd: enable --now the timer; cron: reminds you to remove
    the comment from the line. The relay service of `install --relay`, where installed, is enabled
    and started again.

    \b
    Examples:
      wicbox schedule start
      wicbox schedule start --config D:\\WIC\\WicGlobal.config
    """
    choice = _choose(runtime, config_option, platform, name, user_units)
    refuse_foreign_platform(choice.target.platform, choice.host, "start")
    actions.start(choice.target, say=click.echo)
