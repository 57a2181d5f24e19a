"""Counting the statements a store sends: a wrapper around the store's real DB-API connection
(sqlite3 or pyodbc) that records each statement's SQL and passes everything on unchanged."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from wicbox_bridge.store import DbApiStore

_OWN = frozenset({"_connection", "statements"})


class CountingConnection:
    """The real connection, with every ``execute``, ``commit`` and ``rollback`` recorded in order."""

    def __init__(self, connection: Any) -> None:
        self._connection = connection
        self.statements: list[str] = []

    def execute(self, sql: str, *params: Any) -> Any:
        self.statements.append(" ".join(sql.split())[:100])
        return self._connection.execute(sql, *params)

    def commit(self) -> None:
        self.statements.append("COMMIT")
        self._connection.commit()

    def rollback(self) -> None:
        self.statements.append("ROLLBACK")
        self._connection.rollback()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._connection, name)

    def __setattr__(self, name: str, value: Any) -> None:
        if name in _OWN:
            object.__setattr__(self, name, value)
        else:  # pyodbc's autocommit switch, for one
            setattr(self._connection, name, value)


@contextmanager
def counted_statements(store: DbApiStore) -> Iterator[list[str]]:
    """The statements ``store`` sends inside the block, as a list filled while it runs."""
    real = store._connection  # type: ignore[attr-defined]  # both stores keep it there
    counting = CountingConnection(real)
    store._connection = counting  # type: ignore[attr-defined]
    try:
        yield counting.statements
    finally:
        store._connection = real  # type: ignore[attr-defined]
