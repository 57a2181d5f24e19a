"""The ``wicbox`` subcommands, one module per command group."""

from __future__ import annotations

import click

from wicbox_bridge.runtime import Runtime

pass_runtime = click.make_pass_decorator(Runtime)
