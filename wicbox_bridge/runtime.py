"""What one ``wicbox`` invocation works with: where the configuration is, and loading it once.

The CLI builds a :class:`Runtime` from its options and the process environment; commands ask it for
the global configuration, the database and the validated WICMan parameters. Nothing here is global:
tests build their own runtimes with their own environment.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from wicbox_bridge.config.dbtarget import SqliteTarget
from wicbox_bridge.config.params import ParsedParameters, is_secret_parameter, parse_parameters
from wicbox_bridge.config.paths import machine_state_dir_for, state_dir_for, user_data_dir
from wicbox_bridge.config.sealed import Sealer, default_sealer, seal_value, unseal_parameters
from wicbox_bridge.config.wicglobal import (
    ConfigLocation,
    GlobalConfig,
    embedded_default_config,
    load_global_config,
    locate_config,
)
from wicbox_bridge.errors import BridgeError, ConfigurationError
from wicbox_bridge.logs.logfile import LOG_FILE_NAME, default_log_directory
from wicbox_bridge.logs.redact import Redactor
from wicbox_bridge.store import DbApiStore, Store, open_store
from wicbox_bridge.store.parameters import read_parameters
from wicbox_bridge.store.schema import require_schema


@dataclass(frozen=True)
class Invocation:
    """The inputs of one command line: the --config option, the environment, where it runs."""

    config_option: Path | None
    env: Mapping[str, str]
    cwd: Path
    executable_dir: Path

    @classmethod
    def from_process(cls, config_option: Path | None, env: Mapping[str, str]) -> Invocation:
        return cls(
            config_option=config_option,
            env=env,
            cwd=Path.cwd(),
            executable_dir=Path(sys.argv[0]).resolve().parent,
        )


class Runtime:
    """Loads the configuration on first use and remembers it for the rest of the command."""

    def __init__(self, invocation: Invocation, redactor: Redactor) -> None:
        self.invocation = invocation
        self.redactor = redactor

    @functools.cached_property
    def location(self) -> ConfigLocation:
        inv = self.invocation
        return locate_config(inv.config_option, inv.env, inv.cwd, inv.executable_dir)

    @functools.cached_property
    def config(self) -> GlobalConfig:
        if self.location.path is None:
            return embedded_default_config(env=self.invocation.env)
        return load_global_config(self.location.path, env=self.invocation.env, redact=self.redactor.register)

    @property
    def state_dir(self) -> Path:
        """The account's state directory of this configuration: the token cache."""
        return state_dir_for(self.location.path, env=self.invocation.env)

    @property
    def machine_state_dir(self) -> Path:
        """The machine-wide directory of this configuration: run lock, pause marker, log file."""
        return machine_state_dir_for(self.location.path, env=self.invocation.env)

    @property
    def log_file(self) -> Path | None:
        """This configuration's log file (see :mod:`wicbox_bridge.logs.logfile`); ``None``: no file.

        A configuration file that cannot be found has no state directory: nothing is logged to a
        file then. A configuration file that cannot be read logs to its default place; the command
        itself reports what is wrong with it.
        """
        try:
            state_dir = self.machine_state_dir
        except BridgeError:
            return None
        try:
            directory = self.config.log_directory
        except BridgeError:
            directory = None
        return (directory or default_log_directory(state_dir)) / LOG_FILE_NAME

    @functools.cached_property
    def sealer(self) -> Sealer:
        """This account's protection for secrets in the embedded database (DPAPI or its key file)."""
        return default_sealer(user_data_dir(self.invocation.env))

    @property
    def seals_secrets(self) -> bool:
        """Whether ``params set`` stores secrets sealed: in the embedded database only. WIC's own
        database (SQL Server) keeps WICMAN_PARAMETER as WIC writes it: in plain text."""
        database = self.config.database
        return isinstance(database, SqliteTarget) and database.embedded

    def stored_value(self, name: str, value: str) -> str:
        """What ``params set`` writes for a secret parameter: sealed where :attr:`seals_secrets`."""
        return seal_value(name, value, self.sealer) if self.seals_secrets else value

    def read_parameters(self, store: Store) -> dict[str, str | None]:
        """Every WICMan parameter with sealed secrets opened (plain values as stored)."""
        return unseal_parameters(read_parameters(store), self.sealer)

    def open_store(self, *, create: bool = False) -> DbApiStore:
        """The configured database. A SQLite file (the embedded default, or one WicGlobal.config
        names) that does not exist yet is created only with ``create`` (``wicbox db init``): any
        other command names the command that creates it instead of leaving an empty file behind."""
        database = self.config.database
        if not create and isinstance(database, SqliteTarget) and not database.path.exists():
            raise ConfigurationError(
                f"{database.describe()} does not exist yet",
                fix="run `wicbox db init` (it creates the database with the wicbox-bridge tables), "
                "then `wicbox params set NAME VALUE` for the mailbox's parameters",
            )
        return open_store(database)

    def load_parameters(self, store: Store) -> ParsedParameters:
        """Reads and validates the WICMan parameters; registers their secrets for redaction."""
        require_schema(store)
        raw = self.read_parameters(store)
        self.redactor.register(value for name, value in raw.items() if is_secret_parameter(name))
        return parse_parameters(raw, self.config.endpoints)
