"""Where the WIC database is: the result of parsing WicGlobal.config's connection string."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from wicbox_bridge.secret import Secret

OdbcDialect = Literal["mssql", "postgresql", "other"]


@dataclass(frozen=True)
class SqliteTarget:
    """A SQLite database file; ``embedded`` when it is the per-user default (no connection string)."""

    path: Path
    embedded: bool = False

    def describe(self) -> str:
        kind = "embedded SQLite default" if self.embedded else "SQLite"
        return f"{kind} at {self.path}"


@dataclass(frozen=True)
class OdbcTarget:
    """An ODBC connection. ``connection_string`` holds the password; ``description`` is safe to show."""

    connection_string: Secret
    dialect: OdbcDialect
    description: str
    unencrypted: bool = False  # SQL Server with Encrypt=no/false/optional (or .NET's default: no)

    def describe(self) -> str:
        return f"ODBC ({self.dialect}): {self.description}"


DatabaseTarget = SqliteTarget | OdbcTarget
