"""The ``wicbox`` command line. Thin: it parses options, builds the runtime and prints results.

Exit codes (also in docs): 0 ok, 1 partial failure, 2 configuration error, 3 authentication error,
4 connection error, 5 already running.
"""

from __future__ import annotations

import logging
import os
import traceback
from pathlib import Path

import click

from wicbox_bridge import __version__
from wicbox_bridge.commands.cert import cert_group
from wicbox_bridge.commands.check import check_command
from wicbox_bridge.commands.db import db_group
from wicbox_bridge.commands.params import params_group
from wicbox_bridge.commands.relay import relay_group
from wicbox_bridge.commands.run import run_command
from wicbox_bridge.commands.schedule import schedule_group
from wicbox_bridge.commands.send import send_command, send_test_command
from wicbox_bridge.commands.signin import signin_command
from wicbox_bridge.commands.status import status_command
from wicbox_bridge.commands.token import token_command
from wicbox_bridge.config.footprint import PRIVATE_UMASK
from wicbox_bridge.errors import BridgeError, ExitCode
from wicbox_bridge.logs.escape import escape_controls
from wicbox_bridge.logs.redact import Redactor
from wicbox_bridge.logs.setup import (
    DEFAULT_FILE_LEVEL,
    FILE_LEVELS,
    FILE_ONLY,
    LOGGER_NAME,
    LogSettings,
    configure_logging,
    install_exception_hooks,
)
from wicbox_bridge.runtime import Invocation, Runtime

log = logging.getLogger(LOGGER_NAME)


def _runtime(ctx: click.Context) -> Runtime:
    runtime = ctx.find_object(Runtime)
    if runtime is None:  # pragma: no cover - the group always sets it
        raise click.UsageError("internal error: no runtime")
    return runtime


class WicboxGroup(click.Group):
    """Turns the project's errors into their message, fix and documented exit code."""

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except BridgeError as error:
            log.debug("command failed", exc_info=True)
            report_error(error)
            _log_end(ctx, int(error.exit_code), error)
            ctx.exit(int(error.exit_code))
        except (click.exceptions.Exit, click.exceptions.Abort, click.ClickException):
            raise
        except Exception as unexpected:
            # Never Python's own traceback on the terminal: it would show secrets unredacted.
            log.critical("wicbox stopped on an unexpected error", exc_info=True, extra=FILE_ONLY)
            runtime = ctx.find_object(Runtime)
            redactor = runtime.redactor if runtime is not None else Redactor()
            report_unexpected(unexpected, redactor)
            _log_end(ctx, int(ExitCode.PARTIAL))
            ctx.exit(int(ExitCode.PARTIAL))


def report_error(error: BridgeError) -> None:
    """One clear message on stderr: what is wrong, then the fix."""
    click.echo(f"wicbox: error: {escape_controls(error.message)}", err=True)
    if error.fix:
        click.echo(f"wicbox: fix: {escape_controls(error.fix)}", err=True)


def report_unexpected(error: BaseException, redactor: Redactor) -> None:
    """An error the project did not foresee: its traceback, redacted and escaped, and what to do."""
    trace = "".join(traceback.format_exception(type(error), error, error.__traceback__))
    click.echo(escape_controls(redactor.redact(trace), keep_newlines=True).rstrip("\n"), err=True)
    click.echo(
        "wicbox: error: wicbox stopped on an unexpected error (the traceback above, secrets masked)", err=True
    )
    click.echo(
        "wicbox: fix: report it to the vendor with the log file (`wicbox check` shows where)", err=True
    )


@click.group(
    cls=WicboxGroup,
    invoke_without_command=True,
    context_settings={"help_option_names": ["-h", "--help"]},
)
@click.version_option(__version__, "--version", prog_name="wicbox")
@click.option(
    "--config",
    "config_path",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="WicGlobal.config to use. Default: $WICBOX_CONFIG, else WicGlobal.config in the working "
    "directory, else next to the executable, else the embedded default database.",
)
@click.option("-v", "--verbose", count=True, help="More output: -v progress, -vv debug, -vvv library debug.")
@click.option(
    "--log-level",
    type=click.Choice(list(FILE_LEVELS), case_sensitive=False),
    default=logging.getLevelName(DEFAULT_FILE_LEVEL).lower(),
    show_default=True,
    help="Level of the log file (wicbox.log in the configuration's machine-wide directory, or the "
    "folder WicBoxLogDirectory in WicGlobal.config names); it also keeps what -v shows.",
)
@click.pass_context
def cli(ctx: click.Context, config_path: Path | None, verbose: int, log_level: str) -> int | None:
    """wicbox-bridge: reads the WIC mailboxes with OAuth2 and files every mail into the WIC database.

    Without a command it runs `wicbox run`, so a scheduled task that started the old WICBOX
    executable without arguments keeps working.

    Exit codes: 0 ok, 1 partial failure, 2 configuration error, 3 authentication error,
    4 connection error, 5 already running.

    \b
    Where it keeps its files on Windows (Linux: ~/.local/share/wicbox-bridge):
      %LOCALAPPDATA%\\wicbox-bridge  per account: token cache, embedded database
      %ProgramData%\\wicbox-bridge   per machine: run lock, pause marker of
                                    `wicbox schedule stop`, logs

    WICBOX_HOME replaces both folders: it moves the token cache, the run lock, the pause marker, the
    logs and the embedded database. `wicbox check` prints the log file.
    """
    redactor = Redactor()
    runtime = Runtime(Invocation.from_process(config_path, os.environ), redactor)
    ctx.obj = runtime
    settings = LogSettings(verbose, FILE_LEVELS[log_level.lower()], runtime.log_file)
    ctx.call_on_close(configure_logging(settings, redactor).close)
    ctx.call_on_close(install_exception_hooks())
    log.info(
        "wicbox %s started: wicbox-bridge %s, configuration: %s",
        ctx.invoked_subcommand or "run",
        __version__,
        _configuration(runtime),
    )
    if ctx.invoked_subcommand is None:
        return int(ctx.invoke(run_command))
    return None


@cli.result_callback()
@click.pass_context
def _exit_with_code(ctx: click.Context, /, exit_code: int | None, **_: object) -> None:
    """Commands return their exit code; a plain ``None`` means success."""
    _log_end(ctx, int(exit_code or ExitCode.OK))
    ctx.exit(int(exit_code or ExitCode.OK))


def _configuration(runtime: Runtime) -> str:
    try:
        return runtime.location.describe()
    except BridgeError as error:
        return f"not found ({error.message})"


def _log_end(ctx: click.Context, exit_code: int, error: BridgeError | None = None) -> None:
    """The command's last line in the log file; an error with its fix (already on the terminal)."""
    if error is not None:
        fix = f"; fix: {error.fix}" if error.fix else ""
        log.error("%s%s", error.message, fix, extra=FILE_ONLY)
    command = ctx.invoked_subcommand or "run"
    log.info("wicbox %s ended with exit code %d", command, exit_code, extra=FILE_ONLY)


for command in (
    run_command,
    check_command,
    params_group,
    db_group,
    token_command,
    send_test_command,
    send_command,
    status_command,
    schedule_group,
    cert_group,
    signin_command,
    relay_group,
):
    cli.add_command(command)


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point; exits with the documented exit code.

    The umask 077 comes first: whatever the bridge or a library creates (the database's journal,
    a rotated log, a temporary file) is its owner's alone; the places that create files also pass
    their modes explicitly (:mod:`wicbox_bridge.config.footprint`).
    """
    os.umask(PRIVATE_UMASK)
    cli.main(args=argv, prog_name="wicbox")


if __name__ == "__main__":  # pragma: no cover
    main()
