"""How ``--help`` lists a group's commands: each summary whole, wrapped in its column.

click cuts a summary that does not fit the line with "..."; a newcomer then reads half a sentence.
Pure formatting on click alone, so the light CLI entry point and every command group share it.
"""

from __future__ import annotations

import click

UNCUT = 1000
"""A short-help limit no summary reaches: the listing shows each first sentence whole."""


class WholeSummaryGroup(click.Group):
    """A click group whose ``--help`` lists every command's first sentence whole."""

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, self.listed_command(ctx, name)) for name in self.list_commands(ctx)]
        shown = [(name, command) for name, command in rows if command is not None and not command.hidden]
        if not shown:
            return
        with formatter.section("Commands"):
            formatter.write_dl([(name, command.get_short_help_str(UNCUT)) for name, command in shown])

    def listed_command(self, ctx: click.Context, name: str) -> click.Command | None:
        """The command as the listing shows it (a lazy group lists without importing)."""
        return self.get_command(ctx, name)
