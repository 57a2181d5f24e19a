"""``wicbox check``: one line per check with OK/FAIL and the fix; exit 0 only when all pass."""

from __future__ import annotations

import click

from wicbox_bridge.checks import overall_exit_code
from wicbox_bridge.commands import pass_runtime
from wicbox_bridge.diagnostics import run_checks
from wicbox_bridge.runtime import Runtime


@click.command("check")
@pass_runtime
def check_command(runtime: Runtime) -> int:
    """Check the configuration, the database, the parameters and each mail account.

    Run it right after following the Azure steps of the guide: the first FAIL line says what to
    change. Nothing is read from or sent to any mailbox.
    """
    results = run_checks(runtime, account_checks=[])
    for result in results:
        click.echo(result.render())
    code = overall_exit_code(results)
    click.echo("All checks passed." if code == 0 else "Some checks failed: fix the first FAIL above.")
    return code
