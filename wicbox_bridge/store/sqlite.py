"""The embedded store: a SQLite file through the standard library's sqlite3.

The connection runs in autocommit mode; :meth:`SqliteStore.transaction` starts with
``BEGIN IMMEDIATE`` so a transaction takes the write lock up front and concurrent writers wait
(up to the busy timeout) instead of failing halfway. WAL journal, foreign keys on.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
import time
from pathlib import Path

from wicbox_bridge.config.dbtarget import SqliteTarget
from wicbox_bridge.config.footprint import default_windows_security, make_private_dir, touch_private
from wicbox_bridge.errors import DatabaseError, DataRejected, SchemaError
from wicbox_bridge.store.base import SqlParams
from wicbox_bridge.store.dbapi import Cursor, DbApiStore


class SqliteStore(DbApiStore):
    def __init__(self, connection: sqlite3.Connection, target: SqliteTarget, timeout_s: float) -> None:
        super().__init__("sqlite", target.describe())
        self._connection = connection
        self._path = target.path
        self._timeout_s = timeout_s

    @property
    def _driver_errors(self) -> tuple[type[Exception], ...]:
        return (sqlite3.Error,)

    def _cursor_for(self, sql: str, params: SqlParams) -> Cursor:
        return self._connection.execute(sql, tuple(_sqlite_value(value) for value in params))

    def _begin(self) -> None:
        self._connection.execute("BEGIN IMMEDIATE")

    def _commit(self) -> None:
        self._connection.execute("COMMIT")

    def _rollback(self) -> None:
        if self._connection.in_transaction:
            self._connection.execute("ROLLBACK")

    def _close(self) -> None:
        self._connection.close()

    def _translate(self, exc: Exception, action: str) -> DatabaseError:
        return translate_sqlite_error(exc, self._path, action, self._timeout_s)


def _sqlite_value(value: object) -> object:
    """Datetimes as ISO 8601 text (UTC, as stored by every dialect); sqlite3's own adapter is deprecated."""
    if isinstance(value, dt.datetime):
        return value.isoformat(sep=" ")
    return value


def translate_sqlite_error(exc: Exception, path: Path, action: str, timeout_s: float) -> DatabaseError:
    text = str(exc)
    where = f"SQLite database {path}"
    if isinstance(exc, (sqlite3.IntegrityError, sqlite3.DataError)) or "too big" in text:
        return DataRejected(f"{where} refused the data: {text} (while running: {action})")
    if text.startswith("no such table"):
        return SchemaError(f"{where}: {text} (while running: {action})", fix="run `wicbox db init`")
    if "locked" in text or "busy" in text:
        return DatabaseError(
            f"{where} stayed locked by another process for {timeout_s:g} s (while running: {action})",
            fix="wait for the other wicbox process to finish, or stop it, and retry",
        )
    if "unable to open" in text or "readonly" in text or "disk I/O" in text:
        return DatabaseError(
            f"{where} cannot be opened for writing: {text}",
            fix="check that the directory exists, is writable for this account and is not on a full disk",
        )
    if isinstance(exc, sqlite3.DatabaseError) and "not a database" in text:
        return DatabaseError(
            f"{where} is not a SQLite database: {text}", fix="point the configuration at the right file"
        )
    return DatabaseError(f"{where}: {text} (while running: {action})")


def open_sqlite(target: SqliteTarget, timeout_s: float) -> SqliteStore:
    """Open (creating the directory and the file when missing) with WAL and foreign keys.

    A new folder is 0700 and a new file 0600 (SQLite gives its -wal and -shm files the database
    file's mode); a folder or file that is a link is refused (:mod:`wicbox_bridge.config.footprint`).

    ``timeout_s`` is sqlite3's busy timeout: how long a statement waits for another writer.
    """
    windows = default_windows_security()
    try:
        make_private_dir(target.path.parent, windows=windows)
        touch_private(target.path, windows=windows)  # 0600 before SQLite opens it; never a link
    except OSError as exc:
        raise DatabaseError(
            f"cannot create the directory {target.path.parent} for the SQLite database: {exc.strerror}",
            fix="create it, or give this account write access to its parent",
        ) from exc
    try:
        # A store is used by one thread at a time, but a run may close it from another one.
        connection = sqlite3.connect(
            target.path,
            timeout=timeout_s,
            isolation_level=None,
            check_same_thread=False,
            # No statement cache: a cached statement keeps its last bound values (sqlite3_reset
            # does not clear them), and the multi-row INSERTs of a run come in many shapes of up to
            # 1 MiB of mail each, so the cache held up to 128 MiB of old mails (a 1000-mail run
            # 122 MB instead of 91 MB). Preparing a statement again costs microseconds.
            cached_statements=0,
        )
    except sqlite3.Error as exc:
        raise translate_sqlite_error(exc, target.path, "open", timeout_s) from exc
    store = SqliteStore(connection, target, timeout_s)
    try:
        _use_wal(connection, target.path, timeout_s)
        store.execute("PRAGMA foreign_keys = ON")
    except DatabaseError:
        store.close()
        raise
    return store


_WAL_RETRY_S = 0.05


def _use_wal(connection: sqlite3.Connection, path: Path, timeout_s: float) -> None:
    """Switch a new database to WAL. Switching needs the file to itself and SQLite does not wait
    for that with its busy timeout, so a process that opens the file while another one does gets
    "database is locked" at once: retry until the timeout (WAL, once set, stays set)."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            connection.execute("PRAGMA journal_mode = WAL").close()
            return
        except sqlite3.Error as exc:
            text = str(exc)
            busy = isinstance(exc, sqlite3.OperationalError) and ("locked" in text or "busy" in text)
            if not busy or time.monotonic() >= deadline:
                raise translate_sqlite_error(exc, path, "PRAGMA journal_mode = WAL", timeout_s) from exc
            time.sleep(_WAL_RETRY_S)
