"""The one small interface every database backend implements.

SQL handed to a store uses ``?`` placeholders (sqlite3 and pyodbc both take qmark) and is never
built from data. A store runs each statement on its own (autocommit) unless inside
:meth:`Store.transaction`. Every error a backend raises leaves the store as a
:class:`~wicbox_bridge.errors.DatabaseError`.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from typing import Any, Literal, Protocol

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
