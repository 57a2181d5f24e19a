"""What the sqlite3 and pyodbc stores share: statement execution, transactions, error translation."""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import Any, Protocol

from wicbox_bridge.errors import DatabaseError
from wicbox_bridge.store.base import Dialect, Row, SqlParams

_STATEMENT_SHOWN_CHARS = 120


class Cursor(Protocol):
    """The part of a DB-API cursor the stores use (sqlite3.Cursor and pyodbc.Cursor both fit)."""

    @property
    def rowcount(self) -> int: ...

    def fetchall(self) -> list[Any]: ...

    def fetchone(self) -> Any: ...

    def close(self) -> None: ...


def statement_summary(sql: str) -> str:
    """The start of a statement on one line without its comments, for error messages.

    SQL never contains data (values travel as parameters), so it is safe to show.
    """
    without_comments = re.sub(r"--[^\n]*", " ", sql)
    one_line = re.sub(r"\s+", " ", without_comments).strip()
    if len(one_line) <= _STATEMENT_SHOWN_CHARS:
        return one_line
    return one_line[: _STATEMENT_SHOWN_CHARS - 3] + "..."


class DbApiStore(ABC):
    """A :class:`~wicbox_bridge.store.base.Store` over a DB-API connection in autocommit mode."""

    def __init__(self, dialect: Dialect, description: str) -> None:
        self._dialect: Dialect = dialect
        self._description = description
        self._in_transaction = False

    # -- what each backend provides ------------------------------------------------------------

    @property
    @abstractmethod
    def _driver_errors(self) -> tuple[type[Exception], ...]: ...

    @abstractmethod
    def _cursor_for(self, sql: str, params: SqlParams) -> Cursor: ...

    @abstractmethod
    def _begin(self) -> None: ...

    @abstractmethod
    def _commit(self) -> None: ...

    @abstractmethod
    def _rollback(self) -> None: ...

    @abstractmethod
    def _close(self) -> None: ...

    @abstractmethod
    def _translate(self, exc: Exception, action: str) -> DatabaseError:
        """A DatabaseError for a driver error; ``action`` says what was being done."""

    # -- the Store interface ---------------------------------------------------------------------

    @property
    def dialect(self) -> Dialect:
        return self._dialect

    @property
    def description(self) -> str:
        return self._description

    @property
    def in_transaction(self) -> bool:
        return self._in_transaction

    def execute(self, sql: str, params: SqlParams = ()) -> int:
        with self._translated(sql):
            cursor = self._cursor_for(sql, params)
            try:
                return cursor.rowcount
            finally:
                cursor.close()

    def query(self, sql: str, params: SqlParams = ()) -> list[Row]:
        with self._translated(sql):
            cursor = self._cursor_for(sql, params)
            try:
                return [tuple(row) for row in cursor.fetchall()]
            finally:
                cursor.close()

    def query_one(self, sql: str, params: SqlParams = ()) -> Row | None:
        with self._translated(sql):
            cursor = self._cursor_for(sql, params)
            try:
                row = cursor.fetchone()
            finally:
                cursor.close()
        return None if row is None else tuple(row)

    @contextmanager
    def transaction(self) -> Iterator[None]:
        if self._in_transaction:
            raise RuntimeError("a transaction is already open on this store; transactions do not nest")
        with self._translated("BEGIN TRANSACTION"):
            self._begin()
        self._in_transaction = True
        try:
            try:
                yield
            except BaseException:
                self._rollback_quietly()
                raise
            try:
                self._commit()
            except self._driver_errors as exc:
                self._rollback_quietly()
                raise self._translate(exc, "COMMIT") from exc
        finally:
            self._in_transaction = False

    def close(self) -> None:
        with suppress(*self._driver_errors):
            self._close()

    def __enter__(self) -> DbApiStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self._description}>"

    # -- helpers ---------------------------------------------------------------------------------

    @contextmanager
    def _translated(self, sql: str) -> Iterator[None]:
        try:
            yield
        except self._driver_errors as exc:
            raise self._translate(exc, statement_summary(sql)) from exc

    def _rollback_quietly(self) -> None:
        with suppress(*self._driver_errors):
            self._rollback()
