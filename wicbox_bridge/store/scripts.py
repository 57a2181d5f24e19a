"""The SQL scripts shipped in the package, and running one against a store.

- ``sql/<dialect>/NNNN_name.sql``: the numbered schema scripts (see :mod:`.schema`);
- ``sql/parameters-<dialect>/<KPD number>.sql``: the vendor's WICMan parameter scripts, the same
  change :func:`wicbox_bridge.store.wicman_migration.migrate_parameters` makes from Python.

SQLite has no ``ADD COLUMN IF NOT EXISTS``: in SQLite scripts, a statement
``ALTER TABLE t ADD COLUMN c ...`` is skipped when ``t`` already has a column ``c``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources

from wicbox_bridge.store.base import Dialect, Store, atomic
from wicbox_bridge.store.catalog import table_columns
from wicbox_bridge.store.sqlscript import split_statements

_SCHEMA_SCRIPT_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
_PARAMETER_SCRIPT_NAME = re.compile(r"^(\d{8})\.sql$")
_SQLITE_ADD_COLUMN = re.compile(r"^ALTER\s+TABLE\s+(\w+)\s+ADD\s+(?:COLUMN\s+)?(\w+)\b", re.IGNORECASE)


@dataclass(frozen=True)
class SqlScript:
    """One shipped script: its number, a short name, its dialect and its text."""

    number: int
    name: str
    dialect: Dialect
    text: str


def _scripts_in(folder: str, dialect: Dialect, pattern: re.Pattern[str]) -> tuple[SqlScript, ...]:
    scripts = []
    for entry in (resources.files("wicbox_bridge.store") / "sql" / folder).iterdir():
        match = pattern.match(entry.name)
        if match:
            name = match.group(2) if pattern.groups > 1 else entry.name
            text = entry.read_text(encoding="utf-8")
            scripts.append(SqlScript(int(match.group(1)), name, dialect, text))
    return tuple(sorted(scripts, key=lambda script: script.number))


def schema_scripts(dialect: Dialect) -> tuple[SqlScript, ...]:
    """The numbered schema scripts of a dialect, in version order."""
    return _scripts_in(dialect, dialect, _SCHEMA_SCRIPT_NAME)


def parameter_scripts(dialect: Dialect) -> tuple[SqlScript, ...]:
    """The vendor's WICMan parameter scripts of a dialect, in the order they are to run."""
    return _scripts_in(f"parameters-{dialect}", dialect, _PARAMETER_SCRIPT_NAME)


def run_script(store: Store, script: SqlScript) -> int:
    """Execute a script's statements in one transaction (the caller's, if one is open).

    Returns how many statements (batches for T-SQL) were executed.
    """
    if script.dialect != store.dialect:
        raise ValueError(f"a {script.dialect} script cannot run on a {store.dialect} database")
    executed = 0
    with atomic(store):
        for statement in split_statements(script.text, script.dialect):
            if store.dialect == "sqlite" and _column_already_there(store, statement):
                continue
            store.execute(statement)
            executed += 1
    return executed


def _column_already_there(store: Store, statement: str) -> bool:
    match = _SQLITE_ADD_COLUMN.match(_without_leading_comments(statement))
    if match is None:
        return False
    table, column = match.groups()
    return column.upper() in table_columns(store, table)


def _without_leading_comments(statement: str) -> str:
    return re.sub(r"^(?:\s*--[^\n]*\n)*\s*", "", statement)
