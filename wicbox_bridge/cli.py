"""The ``wicbox`` command line. Thin: it parses options, builds the runtime and prints results.

Exit codes (also in docs): 0 ok, 1 partial failure, 2 configuration error, 3 authentication error,
4 connection error, 5 already running.

Start-up: ``wicbox --version`` and ``wicbox --help`` load click and this module, nothing else. Each
command's module (and with it msal, requests, imapclient, aiosmtplib, pyodbc) is imported only
when the command runs: :data:`COMMANDS` names where each command lives and keeps its short help
for the top-level ``--help`` (a test holds it equal to the command's own docstring).
"""

from __future__ import annotations

import importlib
import logging
import os
import shlex
import sys
import traceback
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import click

from wicbox_bridge import __version__
from wicbox_bridge.errors import BridgeError, ExitCode, error_lines, with_fix
from wicbox_bridge.helpformat import WholeSummaryGroup
from wicbox_bridge.logs.escape import escape_controls
from wicbox_bridge.logs.levels import DEFAULT_FILE_LEVEL, FILE_LEVELS, FILE_ONLY, LOGGER_NAME
from wicbox_bridge.logs.redact import Redactor

if TYPE_CHECKING:
    from wicbox_bridge.runtime import Runtime

log = logging.getLogger(LOGGER_NAME)

PRIVATE_UMASK = 0o077
"""The umask of every command (:data:`wicbox_bridge.config.footprint.PRIVATE_UMASK`, kept here so
``--version`` does not load the footprint module; a test holds the two equal)."""

CLOSED_OUTPUT = 141
"""The exit code when the reader of the output went away early (``wicbox status | head``): 128 +
SIGPIPE, what a shell reports for any tool a closed pipe stopped (``ls | head`` under ``set -o
pipefail``). Not 0: the command did not finish its output, and a monitor reading ``status`` must
not take a cut-off report for "mail is flowing"; not 1-5, which name the bridge's own outcomes."""


@dataclass(frozen=True)
class CommandEntry:
    """Where one top-level command lives, and its short help for ``wicbox --help``.

    ``summary`` is the first paragraph of the command's docstring, whitespace collapsed: click
    makes the short help from it exactly as from the loaded command's help.
    """

    module: str
    attribute: str
    summary: str


COMMANDS: Mapping[str, CommandEntry] = {
    "cert": CommandEntry(
        "wicbox_bridge.commands.cert",
        "cert_group",
        "Certificates for application permissions (instead of a client secret).",
    ),
    "check": CommandEntry(
        "wicbox_bridge.commands.check",
        "check_command",
        "Check the configuration, the database, the parameters and each mail account.",
    ),
    "db": CommandEntry(
        "wicbox_bridge.commands.db",
        "db_group",
        "Create or upgrade wicbox-bridge's tables in the WIC database (idempotent).",
    ),
    "params": CommandEntry(
        "wicbox_bridge.commands.params",
        "params_group",
        "Show and change the WICMan parameters that wicbox-bridge reads.",
    ),
    "relay": CommandEntry(
        "wicbox_bridge.commands.relay",
        "relay_group",
        "Run an SMTP relay for applications that still send with a password (WIC before 4.9.9).",
    ),
    "run": CommandEntry(
        "wicbox_bridge.commands.run",
        "run_command",
        "Read the configured mailboxes and file every mail into the WIC database; then deliver the outbox.",
    ),
    "schedule": CommandEntry(
        "wicbox_bridge.commands.schedule",
        "schedule_group",
        "Install, show, remove, stop and start the scheduled task that runs `wicbox run`.",
    ),
    "send": CommandEntry(
        "wicbox_bridge.commands.send",
        "send_command",
        "Deliver the mails WIC put in WICBOX_OUTBOX.",
    ),
    "send-test": CommandEntry(
        "wicbox_bridge.commands.send",
        "send_test_command",
        "Send one test mail with the configured account and permission type, step by step.",
    ),
    "serve": CommandEntry(
        "wicbox_bridge.commands.serve",
        "serve_command",
        "Watch every mailbox and file new mail within seconds; deliver the outbox; until stopped.",
    ),
    "signin": CommandEntry(
        "wicbox_bridge.commands.signin",
        "signin_command",
        "Sign the mailbox account in once, in a browser, and keep the sign-in for the runs.",
    ),
    "status": CommandEntry(
        "wicbox_bridge.commands.status",
        "status_command",
        "Show whether mail is flowing: the last runs, per mailbox what was filed in the last 24 hours, "
        "the backlog and its oldest mail, quarantined mails, and the credentials' expiry and failures.",
    ),
    "token": CommandEntry(
        "wicbox_bridge.commands.token",
        "token_command",
        "Acquire a token as a run would and print its account, permissions, claims and expiry.",
    ),
}


def load_command(name: str, entry: CommandEntry) -> click.Command:
    """Imports the command's module and returns the command; a registry that lies fails loudly."""
    command = getattr(importlib.import_module(entry.module), entry.attribute)
    if not isinstance(command, click.Command) or command.name != name:
        raise TypeError(f"{entry.module}.{entry.attribute} is not the click command {name!r}")
    return command


class LazyGroup(WholeSummaryGroup):
    """A group whose commands are imported on first use (click's lazy-loading pattern).

    ``--help`` lists every command from the registry's summaries without importing any of them.
    """

    def __init__(self, *args: object, lazy_commands: Mapping[str, CommandEntry], **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.lazy_commands = lazy_commands

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*self.commands, *self.lazy_commands})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        command = self.commands.get(cmd_name)
        entry = self.lazy_commands.get(cmd_name)
        if command is None and entry is not None:
            command = load_command(cmd_name, entry)
            self.add_command(command)
        return command

    def listed_command(self, ctx: click.Context, name: str) -> click.Command:
        """The loaded command, else a stand-in carrying the registry's summary as its help."""
        command = self.commands.get(name)
        if command is not None:
            return command
        return click.Command(name, help=self.lazy_commands[name].summary)


class HintedUsageError(click.UsageError):
    """click's own usage error (an unknown option or command, a missing argument, a value out of
    range) in the CLI's one format: the usage line, ``wicbox: error: ...``, then a fix line naming
    the help to read. Exit code 2, as click's."""

    def __init__(self, error: click.UsageError) -> None:
        super().__init__(error.format_message(), error.ctx)

    def show(self, file: IO[Any] | None = None) -> None:
        ctx = self.ctx
        command = "wicbox" if ctx is None else shlex.join(["wicbox", *ctx.command_path.split()[1:]])
        if ctx is not None:
            click.echo(ctx.get_usage(), file=file, err=True, color=ctx.color)
        what = "its commands" if ctx is None or isinstance(ctx.command, click.Group) else "its options"
        fix = f"run `{command} --help` for {what} and examples"
        for line in error_lines(escape_controls(self.format_message()), fix):
            click.echo(line, file=file, err=True)


def _hinted(error: click.UsageError) -> click.UsageError:
    """``error`` in the one format; click's "no arguments: show the help" stays as it is."""
    if isinstance(error, (HintedUsageError, click.exceptions.NoArgsIsHelpError)):
        return error
    return HintedUsageError(error)


class WicboxGroup(LazyGroup):
    """Turns the project's errors into their message, fix and documented exit code."""

    def make_context(
        self, info_name: str | None, args: list[str], parent: click.Context | None = None, **extra: Any
    ) -> click.Context:
        try:
            return super().make_context(info_name, args, parent, **extra)
        except click.UsageError as error:  # the top level's own options (`wicbox --confg x`)
            raise _hinted(error) from error

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except click.UsageError as error:  # a command's options and arguments, an unknown command
            raise _hinted(error) from error
        except BridgeError as error:
            log.debug("command failed", exc_info=True)
            report_error(error)
            _log_end(ctx, int(error.exit_code), error)
            ctx.exit(int(error.exit_code))
        except (click.exceptions.Exit, click.exceptions.Abort, click.ClickException):
            raise
        except BrokenPipeError:
            # The reader closed its end (`| head`): nothing more can reach it, and a traceback
            # would only add noise where the pipe's reader already has what it asked for.
            _silence_closed_output()
            log.info("the reader closed the output early", extra=FILE_ONLY)
            _log_end(ctx, CLOSED_OUTPUT)
            ctx.exit(CLOSED_OUTPUT)
        except Exception as unexpected:
            # Never Python's own traceback on the terminal: it would show secrets unredacted.
            log.critical("wicbox stopped on an unexpected error", exc_info=True, extra=FILE_ONLY)
            from wicbox_bridge.runtime import Runtime  # noqa: PLC0415 - loaded once a command runs

            runtime = ctx.find_object(Runtime)
            redactor = runtime.redactor if runtime is not None else Redactor()
            report_unexpected(unexpected, redactor)
            _log_end(ctx, int(ExitCode.PARTIAL))
            ctx.exit(int(ExitCode.PARTIAL))


def _silence_closed_output() -> None:
    """Point stdout and stderr at the null device, so the interpreter's last flush of what is still
    buffered for the closed pipe fails neither with a second BrokenPipeError nor an "Exception
    ignored" line. A stream without a file descriptor (a test runner's buffer) is left alone."""
    for stream in (sys.stdout, sys.stderr):
        try:
            descriptor = stream.fileno()
        except (AttributeError, OSError, ValueError):
            continue
        null = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(null, descriptor)
        finally:
            os.close(null)


def report_error(error: BridgeError) -> None:
    """One clear message on stderr: what is wrong, then the fix."""
    fix = escape_controls(error.fix) if error.fix else None
    for line in error_lines(escape_controls(error.message), fix):
        click.echo(line, err=True)


def report_unexpected(error: BaseException, redactor: Redactor) -> None:
    """An error the project did not foresee: its traceback, redacted and escaped, and what to do."""
    trace = "".join(traceback.format_exception(type(error), error, error.__traceback__))
    click.echo(escape_controls(redactor.redact(trace), keep_newlines=True).rstrip("\n"), err=True)
    for line in error_lines(
        "wicbox stopped on an unexpected error (the traceback above, secrets masked)",
        "report it to the vendor with the log file (`wicbox check` shows where)",
    ):
        click.echo(line, err=True)


@click.group(
    cls=WicboxGroup,
    lazy_commands=COMMANDS,
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
    # Loaded here, not at the top: --version and --help never reach this callback.
    from wicbox_bridge.logs.setup import (  # noqa: PLC0415
        LogSettings,
        configure_logging,
        install_exception_hooks,
    )
    from wicbox_bridge.runtime import Invocation, Runtime  # noqa: PLC0415

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
        run_command = cli.get_command(ctx, "run")
        assert run_command is not None  # the registry has it
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
        log.error("%s", with_fix(error.message, error.fix), extra=FILE_ONLY)
    command = ctx.invoked_subcommand or "run"
    log.info("wicbox %s ended with exit code %d", command, exit_code, extra=FILE_ONLY)


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
