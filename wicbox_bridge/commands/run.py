"""``wicbox run``: the main job (also what ``wicbox`` without a command does)."""

from __future__ import annotations

import click

from wicbox_bridge.commands import pass_runtime
from wicbox_bridge.errors import ExitCode
from wicbox_bridge.runtime import Runtime


@click.command("run")
@pass_runtime
def run_command(runtime: Runtime) -> int:
    """Read the configured mailboxes and file every mail into the WIC database."""
    store = runtime.open_store()
    try:
        parsed = runtime.load_parameters(store)
    finally:
        store.close()
    for warning in parsed.warnings:
        click.echo(f"warning: {warning}", err=True)
    click.echo(
        "wicbox: configuration and parameters are valid; no mailbox adapter is built in yet.", err=True
    )
    return int(ExitCode.PARTIAL)
