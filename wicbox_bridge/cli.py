"""The ``wicbox`` command line. Thin: it parses options, builds the runtime and prints results.

Exit codes (also in docs): 0 ok, 1 partial failure, 2 configuration error, 3 authentication error,
4 connection error, 5 already running.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import click

from wicbox_bridge import __version__
from wicbox_bridge.commands.check import check_command
from wicbox_bridge.commands.db import db_group
from wicbox_bridge.commands.params import params_group
from wicbox_bridge.commands.run import run_command
from wicbox_bridge.commands.send import send_command, send_test_command
from wicbox_bridge.commands.token import token_command
from wicbox_bridge.errors import BridgeError, ExitCode
from wicbox_bridge.logsetup import LOGGER_NAME, configure_logging
from wicbox_bridge.redact import Redactor
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
            ctx.exit(int(error.exit_code))


def report_error(error: BridgeError) -> None:
    """One clear message on stderr: what is wrong, then the fix."""
    click.echo(f"wicbox: error: {error.message}", err=True)
    if error.fix:
        click.echo(f"wicbox: fix: {error.fix}", err=True)


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
@click.pass_context
def cli(ctx: click.Context, config_path: Path | None, verbose: int) -> int | None:
    """wicbox-bridge: reads the WIC mailboxes with OAuth2 and files every mail into the WIC database.

    Without a command it runs `wicbox run`, so a scheduled task that started the old WICBOX
    executable without arguments keeps working.
    """
    redactor = Redactor()
    configure_logging(verbose, redactor)
    ctx.obj = Runtime(Invocation.from_process(config_path, os.environ), redactor)
    if ctx.invoked_subcommand is None:
        return int(ctx.invoke(run_command))
    return None


@cli.result_callback()
@click.pass_context
def _exit_with_code(ctx: click.Context, /, exit_code: int | None, **_: object) -> None:
    """Commands return their exit code; a plain ``None`` means success."""
    ctx.exit(int(exit_code or ExitCode.OK))


for command in (
    run_command,
    check_command,
    params_group,
    db_group,
    token_command,
    send_test_command,
    send_command,
):
    cli.add_command(command)


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point; exits with the documented exit code."""
    cli.main(args=argv, prog_name="wicbox")


if __name__ == "__main__":  # pragma: no cover
    main()
