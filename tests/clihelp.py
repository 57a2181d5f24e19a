"""Running ``wicbox`` in-process for tests, with an isolated home and working directory."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from xml.sax.saxutils import quoteattr

from click.testing import CliRunner, Result

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


def write_config(path: Path, connection_string: str | None, *, max_mails: str | None = None) -> Path:
    """A WicGlobal.config as KPD deploys it, with the WIC connection string and the mail cap."""
    connection = (
        f'<connectionStrings><add name="WIC" connectionString={quoteattr(connection_string)} '
        'providerName="System.Data.SqlClient"/></connectionStrings>'
        if connection_string is not None
        else ""
    )
    settings = (
        f'<appSettings><add key="WicBoxMaxMailsPerRun" value="{max_mails}"/></appSettings>'
        if max_mails
        else ""
    )
    path.write_text(
        '<?xml version="1.0" encoding="utf-8"?>\n'
        f"<configuration>\n{connection}\n{settings}\n</configuration>\n",
        encoding="utf-8",
    )
    return path
