"""Questions about the database's own structure, one small query per dialect.

Table and column names are compared case-insensitively (PostgreSQL folds unquoted names to lower
case, SQL Server usually compares case-insensitively); names come back upper-cased.
"""

from __future__ import annotations

from typing import Final

from wicbox_bridge.store.base import Dialect, Store

_TABLE_EXISTS: Final[dict[Dialect, str]] = {
    "sqlite": "SELECT 1 FROM sqlite_master WHERE type = 'table' AND UPPER(name) = UPPER(?)",
    "postgresql": (
        "SELECT 1 FROM information_schema.tables "
        "WHERE table_schema = current_schema() AND UPPER(table_name) = UPPER(?)"
    ),
    "mssql": "SELECT 1 WHERE OBJECT_ID(?, N'U') IS NOT NULL",
}

_TABLE_COLUMNS: Final[dict[Dialect, str]] = {
    "sqlite": "SELECT name FROM pragma_table_info(?) ORDER BY cid",
    "postgresql": (
        "SELECT column_name FROM information_schema.columns "
        "WHERE table_schema = current_schema() AND UPPER(table_name) = UPPER(?) ORDER BY ordinal_position"
    ),
    "mssql": "SELECT name FROM sys.columns WHERE object_id = OBJECT_ID(?, N'U') ORDER BY column_id",
}


def table_exists(store: Store, table: str) -> bool:
    return store.query_one(_TABLE_EXISTS[store.dialect], (table,)) is not None


def table_columns(store: Store, table: str) -> list[str]:
    """The table's column names, upper-cased, in table order (empty when there is no such table)."""
    return [str(row[0]).upper() for row in store.query(_TABLE_COLUMNS[store.dialect], (table,))]
