"""Database access behind one small store interface (SQLite embedded, ODBC for SQL Server/PostgreSQL).

with open_store(target) as store:
    require_schema(store)
    parameters = read_parameters(store)

The numbered schema scripts per dialect, WIC's own tables (WICMAN_PARAMETER, WIC_PROJECT) and
wicbox-bridge's (WICBOX_*). Filing takes a batch of parsed mails and gives one answer per mail;
the store never calls back up into the run.
May use: mail (the records it stores), config (the database target), errors, secret.
"""

from __future__ import annotations

from typing import Final

from wicbox_bridge.config.dbtarget import DatabaseTarget, SqliteTarget
from wicbox_bridge.store.base import DIALECTS, Dialect, Row, SqlParams, Store, atomic
from wicbox_bridge.store.dbapi import DbApiStore
from wicbox_bridge.store.odbc import open_odbc
from wicbox_bridge.store.schema import (
    LATEST_VERSION,
    init_schema,
    require_schema,
    schema_version,
    upgrade_schema,
)
from wicbox_bridge.store.sqlite import open_sqlite

DEFAULT_TIMEOUT_S: Final = 30.0

__all__ = [
    "DEFAULT_TIMEOUT_S",
    "DIALECTS",
    "LATEST_VERSION",
    "DbApiStore",
    "Dialect",
    "Row",
    "SqlParams",
    "Store",
    "atomic",
    "init_schema",
    "open_store",
    "require_schema",
    "schema_version",
    "upgrade_schema",
]


def open_store(target: DatabaseTarget, *, timeout_s: float = DEFAULT_TIMEOUT_S) -> DbApiStore:
    """Connect to the database a target names. ``timeout_s``: login timeout (ODBC) or busy timeout
    (SQLite). Raises :class:`~wicbox_bridge.errors.DatabaseError` naming the cause and the fix.
    The store is a context manager that closes it."""
    if isinstance(target, SqliteTarget):
        return open_sqlite(target, timeout_s)
    return open_odbc(target, timeout_s)
