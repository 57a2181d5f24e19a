"""Creating and upgrading the database schema wicbox-bridge needs.

The schema is versioned in the table WICBOX_SCHEMA_VERSION, one row per applied script
(``sql/<dialect>/NNNN_name.sql``). Each missing version is applied in its own transaction that
first takes a schema lock (SQLite: the write lock of ``BEGIN IMMEDIATE``; PostgreSQL: a
transaction-level advisory lock; SQL Server: ``sp_getapplock``), then re-reads the version: of two
processes racing, the second waits and then finds nothing left to do. Every script is written to
be safe on a database where WIC's own tables (WICMAN_PARAMETER, WIC_PROJECT) already exist: it
creates what is missing and never drops or rewrites anything of WIC's.
"""

from __future__ import annotations

from typing import Final

from wicbox_bridge.errors import DatabaseError, SchemaError
from wicbox_bridge.store.base import Dialect, Store
from wicbox_bridge.store.catalog import table_exists
from wicbox_bridge.store.scripts import SqlScript, run_script, schema_scripts

LATEST_VERSION: Final = 7
"""The newest schema version this release knows: the highest script number of every dialect."""
VERSION_TABLE: Final = "WICBOX_SCHEMA_VERSION"
INIT_FIX: Final = "run `wicbox db init` (it creates or upgrades the wicbox-bridge tables; WIC's data is kept)"

_SCHEMA_LOCK: Final[dict[Dialect, tuple[str, ...]]] = {
    "sqlite": (),  # BEGIN IMMEDIATE already holds the database's only write lock
    "postgresql": (
        "SET LOCAL lock_timeout = '120s'",
        "SELECT pg_advisory_xact_lock(1464419138)",  # 0x57494342, "WICB"
    ),
    "mssql": (
        # Manual-commit ODBC opens transactions implicitly, but not for DECLARE/EXEC: open it here.
        "IF @@TRANCOUNT = 0 BEGIN TRANSACTION; "
        "DECLARE @granted int; "
        "EXEC @granted = sp_getapplock @Resource = N'wicbox-bridge schema', @LockMode = N'Exclusive', "
        "@LockOwner = N'Transaction', @LockTimeout = 120000; "
        "IF @granted < 0 THROW 50001, N'wicbox-bridge: the schema lock was not granted within 120 s', 1;",
    ),
}
_READ_VERSION: Final = "SELECT MAX(VERSION) FROM WICBOX_SCHEMA_VERSION"
_RECORD_VERSION: Final = "INSERT INTO WICBOX_SCHEMA_VERSION (VERSION, DESCRIPTION) VALUES (?, ?)"


def schema_version(store: Store) -> int | None:
    """The database's schema version; ``None`` when wicbox-bridge's schema has never been created."""
    if not table_exists(store, VERSION_TABLE):
        return None
    row = store.query_one(_READ_VERSION)
    return None if row is None or row[0] is None else int(row[0])


def require_schema(store: Store) -> int:
    """The schema version, when it is exactly what this release needs; else SchemaError with the fix."""
    version = schema_version(store)
    supported = LATEST_VERSION
    if version is None:
        raise SchemaError(f"{store.description} has no wicbox-bridge schema yet", fix=INIT_FIX)
    _refuse_newer(store, version, supported)
    if version < supported:
        raise SchemaError(
            f"{store.description} has wicbox-bridge schema version {version}; this release needs {supported}",
            fix=INIT_FIX,
        )
    return version


def init_schema(store: Store) -> list[int]:
    """Create the schema or apply missing versions; the versions applied (empty: already current)."""
    return _apply_missing(store)


def upgrade_schema(store: Store) -> list[int]:
    """Apply the missing versions to an existing schema; the versions applied (empty: current)."""
    if schema_version(store) is None:
        raise SchemaError(f"{store.description} has no wicbox-bridge schema to upgrade", fix=INIT_FIX)
    return _apply_missing(store)


def _apply_missing(store: Store) -> list[int]:
    if store.in_transaction:
        raise RuntimeError("schema changes run in transactions of their own; call this outside one")
    scripts = [script for script in schema_scripts(store.dialect) if script.number <= LATEST_VERSION]
    return [script.number for script in scripts if _apply_if_missing(store, script, LATEST_VERSION)]


def _apply_if_missing(store: Store, script: SqlScript, supported: int) -> bool:
    with store.transaction():
        for statement in _SCHEMA_LOCK[store.dialect]:
            store.execute(statement)
        current = schema_version(store)
        if current is not None:
            _refuse_newer(store, current, supported)
            if current >= script.number:
                return False
        try:
            run_script(store, script)
        except DatabaseError as exc:
            raise DatabaseError(
                f"schema version {script.number} ({script.name}) could not be applied: {exc.message}",
                fix=exc.fix or "see the database's message; nothing of this version was kept (rolled back)",
            ) from exc
        store.execute(_RECORD_VERSION, (script.number, script.name))
    return True


def _refuse_newer(store: Store, version: int, supported: int) -> None:
    if version > supported:
        raise SchemaError(
            f"{store.description} has wicbox-bridge schema version {version}, newer than this release "
            f"understands ({supported})",
            fix="install the wicbox-bridge release that created it (or a newer one)",
        )
