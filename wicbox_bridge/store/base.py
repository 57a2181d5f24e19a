"""The one small interface every database backend implements.

SQL handed to a store uses ``?`` placeholders (sqlite3 and pyodbc both take qmark) and is never
built from data. A store runs each statement on its own (autocommit) unless inside
:meth:`Store.transaction`. Every error a backend raises leaves the store as a
:class:`~wicbox_bridge.errors.DatabaseError`.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, suppress
from typing import Any, Final, Literal, Protocol

from wicbox_bridge.errors import DatabaseError

Dialect = Literal["sqlite", "mssql", "postgresql"]
DIALECTS: tuple[Dialect, ...] = ("sqlite", "mssql", "postgresql")

Row = tuple[Any, ...]
SqlParams = Sequence[object]


class Store(Protocol):
    """An open connection to the WIC database (or the embedded SQLite file)."""

    @property
    def dialect(self) -> Dialect:
        """Which SQL dialect the scripts and snippets for this store are written in."""
        ...

    @property
    def description(self) -> str:
        """Where the database is, safe to show (never contains a password)."""
        ...

    @property
    def in_transaction(self) -> bool: ...

    def execute(self, sql: str, params: SqlParams = ()) -> int:
        """Run one statement (or one T-SQL batch); the number of rows it changed, -1 if unknown."""
        ...

    def query(self, sql: str, params: SqlParams = ()) -> list[Row]: ...

    def query_one(self, sql: str, params: SqlParams = ()) -> Row | None:
        """The first row of the result, or ``None`` when there is none."""
        ...

    def transaction(self) -> AbstractContextManager[None]:
        """Commit on success, roll back on exception. Nesting raises :class:`RuntimeError`."""
        ...

    def close(self) -> None: ...


@contextmanager
def atomic(store: Store) -> Iterator[None]:
    """Run a block in the caller's transaction if there is one, else in a transaction of its own."""
    if store.in_transaction:
        yield
        return
    with store.transaction():
        yield


def insert_returning_identity(store: Store, insert: str, params: SqlParams, column: str) -> int:
    """Run ``insert`` (``INSERT INTO t (...) VALUES (...)``) and return the key it generated, from
    the statement itself: ``RETURNING`` on PostgreSQL and SQLite 3.35+, ``OUTPUT INSERTED ... INTO``
    a table variable on SQL Server (trigger-safe, unlike a bare OUTPUT; ``@@IDENTITY`` would see a
    trigger's insert, and ``SCOPE_IDENTITY()`` in an execute of its own is NULL)."""
    if store.dialect == "sqlite" and not has_returning(store):
        store.execute(insert, params)
        row = store.query_one("SELECT last_insert_rowid()")
    else:
        row = store.query_one(returning_identity_sql(store.dialect, insert, column), params)
    if row is None or row[0] is None:  # pragma: no cover - an INSERT always returns its key
        raise RuntimeError(f"the INSERT returned no {column}")
    return int(row[0])


def returning_identity_sql(dialect: Dialect, insert: str, column: str) -> str:
    """``insert`` rewritten to hand back its generated ``column`` as a one-row result."""
    return returning_sql(dialect, insert, ((column, "BIGINT"),))


def returning_sql(dialect: Dialect, insert: str, columns: Sequence[tuple[str, str]]) -> str:
    """``insert`` (one or many rows) rewritten to hand back ``columns`` of every row it made.

    ``columns`` are (name, T-SQL type) pairs. On SQL Server the rows go through a table variable
    (``OUTPUT INSERTED ... INTO @keys``: a bare OUTPUT clause is refused on a table with triggers)
    and are selected from it in the same batch, so it is still one round trip. The order of the
    rows is not the order of the VALUES: the caller matches them by a column of their own.
    """
    names = ", ".join(name for name, _ in columns)
    if dialect != "mssql":
        return f"{insert} RETURNING {names}"
    head, marker, values = insert.partition(" VALUES ")
    if not marker:
        raise ValueError("an INSERT ... VALUES statement is needed")
    inserted = ", ".join(f"INSERTED.{name}" for name, _ in columns)
    declared = ", ".join(f"{name} {kind}" for name, kind in columns)
    output = f"{head} OUTPUT {inserted} INTO @keys VALUES {values}"
    return f"SET NOCOUNT ON; DECLARE @keys TABLE ({declared}); {output}; SELECT {names} FROM @keys"  # noqa: S608 - code's names


# RETURNING hands back the keys of the rows an INSERT made: PostgreSQL, and SQLite from 3.35.
_SQLITE_RETURNING: Final = (3, 35, 0)


def has_returning(store: Store) -> bool:
    """Whether ``INSERT ... RETURNING`` works on this store (PostgreSQL, SQLite 3.35 and later)."""
    if store.dialect == "sqlite":
        return sqlite3.sqlite_version_info >= _SQLITE_RETURNING
    return store.dialect == "postgresql"


def returns_many_keys(store: Store) -> bool:
    """Whether one INSERT of many rows can hand back each row's keys: RETURNING where
    :func:`has_returning`, ``OUTPUT ... INTO`` a table variable on SQL Server."""
    return store.dialect == "mssql" or has_returning(store)


# The most parameters one statement may carry: SQLite before 3.32 allowed 999, later 32766;
# SQL Server 2100 per request (2000 keeps a margin for what the driver adds); PostgreSQL 65535
# (the byte budget of a statement is reached long before).
_SQLITE_MANY_PARAMETERS: Final = (3, 32, 0)


def most_parameters(dialect: Dialect) -> int:
    """How many ``?`` one statement of this dialect may hold."""
    if dialect == "mssql":
        return 2000
    if dialect == "sqlite":
        return 32766 if sqlite3.sqlite_version_info >= _SQLITE_MANY_PARAMETERS else 999
    return 65535


_SAVEPOINT: dict[Dialect, tuple[str, str, str | None]] = {
    # (create, roll back to, release)
    "sqlite": ("SAVEPOINT {0}", "ROLLBACK TO SAVEPOINT {0}", "RELEASE SAVEPOINT {0}"),
    "postgresql": ("SAVEPOINT {0}", "ROLLBACK TO SAVEPOINT {0}", "RELEASE SAVEPOINT {0}"),
    # With autocommit off the driver opens transactions implicitly, but SAVE TRANSACTION does not
    # start one: open it first when this is the transaction's first statement.
    "mssql": (
        "IF @@TRANCOUNT = 0 BEGIN TRANSACTION; SAVE TRANSACTION {0};",
        "ROLLBACK TRANSACTION {0}",
        None,
    ),
}


@contextmanager
def savepoint(store: Store, name: str) -> Iterator[None]:
    """Inside a transaction: undo only this block's changes when it raises (the error propagates).

    ``name`` must be a plain identifier chosen by the code, never data.
    """
    if not store.in_transaction:
        raise RuntimeError("a savepoint needs an open transaction")
    if not name.isidentifier():
        raise ValueError(f"not a savepoint name: {name!r}")
    create, rollback, release = _SAVEPOINT[store.dialect]
    store.execute(create.format(name))
    try:
        yield
    except BaseException:
        # When the connection itself is gone the rollback fails too; the block's own error is the
        # one to report (the whole transaction is lost then anyway).
        with suppress(DatabaseError):
            store.execute(rollback.format(name))
        raise
    if release is not None:
        store.execute(release.format(name))
