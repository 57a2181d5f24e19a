"""``wicbox token``: acquire a token the way a run would and show what it grants (never the token)."""

from __future__ import annotations

import click


@click.command("token")
def token_command() -> int:
    """Acquire a token as a run would and print its account, permissions and expiry."""
    raise click.UsageError("not available yet")
