"""Running ``wicbox`` in-process for tests, with an isolated home and working directory."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from click.testing import CliRunner, Result

from tools.testbed.wic_config import write_config as write_config  # used by many tests
from wicbox_bridge.cli import cli


@dataclass(frozen=True)
class WicboxCli:
    """Invokes the CLI with WICBOX_HOME and the working directory inside a test's temp dir."""

    home: Path
    cwd: Path

    def __call__(self, *args: str, config: Path | None = None, input: str | None = None) -> Result:
        argv = ["--config", str(config), *args] if config else list(args)
        runner = CliRunner()
        env = {"WICBOX_HOME": str(self.home), "WICBOX_CONFIG": None}
        with working_directory(self.cwd):
            return runner.invoke(cli, argv, env=env, input=input, catch_exceptions=False)


@contextlib.contextmanager
def working_directory(path: Path) -> Iterator[None]:
    """Runs the block in ``path`` (tests that look up files relative to the working directory)."""
    previous = Path.cwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(previous)
