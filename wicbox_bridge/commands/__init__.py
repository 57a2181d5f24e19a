"""The face: the ``wicbox`` subcommands, one module per command group.

The only part that builds concrete adapters from the configuration (``_build.py``) and hands them
to the core; commands parse options, call one part, and render its answer and exit code.
May use: every part, and the concrete adapters.
"""

from __future__ import annotations

import click

from wicbox_bridge.runtime import Runtime

pass_runtime = click.make_pass_decorator(Runtime)
