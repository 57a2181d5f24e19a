"""The face: the ``wicbox`` subcommands, one module per command group.

The only part that builds concrete adapters from the configuration (``_build.py``) and hands them
to the core; commands parse options, call one part, and render its answer and exit code.
May use: every part, and the concrete adapters.
"""

from __future__ import annotations

import click

from wicbox_bridge.runtime import Runtime

pass_runtime = click.make_pass_decorator(Runtime)

_ALIGNED = 44  # commands longer than this get their comment on the line above


def examples(*pairs: tuple[str, str]) -> str:
    """A command's help epilog: ``Examples:`` and one line per example with its comment.

    The ``\\b`` keeps click from rewrapping the lines.
    """
    width = max((len(command) for command, _ in pairs if len(command) <= _ALIGNED), default=0)
    lines = ["\b", "Examples:"]
    for command, comment in pairs:
        if not comment:
            lines.append(f"  {command}")
        elif len(command) <= _ALIGNED:
            lines.append(f"  {command.ljust(width)}  # {comment}")
        else:
            lines += [f"  # {comment}", f"  {command}"]
    return "\n".join(lines)
