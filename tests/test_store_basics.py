"""The store interface on both backends: statements, transactions, and errors in the project's tree."""

from __future__ import annotations

import secrets
import socket
import sqlite3
import traceback
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlglot

from tests.plugins.postgres import PgDatabase
from tools.testbed.postgres import PostgresServer, free_loopback_port, odbc_connection_string
from wicbox_bridge.config.dbtarget import DatabaseTarget, OdbcDialect, OdbcTarget, SqliteTarget
from wicbox_bridge.errors import DatabaseError, DataRejected, SchemaError
from wicbox_bridge.secret import Secret
from wicbox_bridge.store import DbApiStore, atomic, open_store
from wicbox_bridge.store.base import insert_returning_identity, returning_identity_sql, savepoint
from wicbox_bridge.store.mail_insert import _ATTACHMENT_COLUMNS, _ATTACHMENT_ROW
from wicbox_bridge.store.mails import INSERT_MAIL_COLUMNS, MAIL_ROW
from wicbox_bridge.store.odbc import connection_attributes
from wicbox_bridge.store.outbox import _INSERT as _OUTBOX_INSERT

CREATE_NOTE = "CREATE TABLE NOTE (ID integer PRIMARY KEY, BODY varchar(100) NOT NULL)"


@pytest.fixture
def store(database_target: DatabaseTarget) -> Iterator[DbApiStore]:
    opened = open_store(database_target, timeout_s=10)
    opened.execute(CREATE_NOTE)
    yield opened
    opened.close()


def _bodies(store: DbApiStore) -> list[str]:
    return [row[0] for row in store.query("SELECT BODY FROM NOTE ORDER BY ID")]


def test_execute_query_and_query_one(store: DbApiStore) -> None:
    assert store.execute("INSERT INTO NOTE (ID, BODY) VALUES (?, ?)", (1, "één € ✓")) == 1
    assert store.execute("INSERT INTO NOTE (ID, BODY) VALUES (?, ?)", (2, "two")) == 1

    assert store.execute("UPDATE NOTE SET BODY = BODY WHERE ID > ?", (0,)) == 2
    assert store.query("SELECT ID, BODY FROM NOTE ORDER BY ID") == [(1, "één € ✓"), (2, "two")]
    assert store.query_one("SELECT BODY FROM NOTE WHERE ID = ?", (2,)) == ("two",)
    assert store.query_one("SELECT BODY FROM NOTE WHERE ID = ?", (3,)) is None


def test_placeholders_carry_data_not_sql(store: DbApiStore) -> None:
    hostile = "x'); DROP TABLE NOTE; --"
    store.execute("INSERT INTO NOTE (ID, BODY) VALUES (?, ?)", (1, hostile))
    assert _bodies(store) == [hostile]


def test_transaction_commits_on_success(store: DbApiStore) -> None:
    with store.transaction():
        inside = store.in_transaction
        store.execute("INSERT INTO NOTE (ID, BODY) VALUES (?, ?)", (1, "kept"))
    assert inside
    assert not store.in_transaction
    assert _bodies(store) == ["kept"]


def test_transaction_rolls_back_on_exception(store: DbApiStore) -> None:
    with pytest.raises(ValueError, match="stop"), store.transaction():
        store.execute("INSERT INTO NOTE (ID, BODY) VALUES (?, ?)", (1, "lost"))
        raise ValueError("stop")
    assert not store.in_transaction
    assert _bodies(store) == []


def test_transaction_rolls_back_after_a_failed_statement(store: DbApiStore) -> None:
    with pytest.raises(DatabaseError), store.transaction():
        store.execute("INSERT INTO NOTE (ID, BODY) VALUES (?, ?)", (1, "lost"))
        store.execute("INSERT INTO NOTE (ID, BODY) VALUES (?, ?)", (1, "duplicate key"))
    assert _bodies(store) == []
    store.execute("INSERT INTO NOTE (ID, BODY) VALUES (?, ?)", (1, "usable again"))
    assert _bodies(store) == ["usable again"]


def test_nested_transactions_are_refused(store: DbApiStore) -> None:
    with store.transaction():
        store.execute("INSERT INTO NOTE (ID, BODY) VALUES (?, ?)", (1, "outer"))
        with pytest.raises(RuntimeError, match="do not nest"), store.transaction():
            pass
    assert _bodies(store) == ["outer"]


def test_atomic_joins_the_open_transaction(store: DbApiStore) -> None:
    with pytest.raises(ValueError, match="outer fails"), store.transaction():
        with atomic(store):
            store.execute("INSERT INTO NOTE (ID, BODY) VALUES (?, ?)", (1, "inner"))
        raise ValueError("outer fails")
    assert _bodies(store) == []
    with atomic(store):
        store.execute("INSERT INTO NOTE (ID, BODY) VALUES (?, ?)", (2, "own transaction"))
    assert _bodies(store) == ["own transaction"]


def test_statement_errors_are_database_errors_naming_the_statement(store: DbApiStore) -> None:
    with pytest.raises(DatabaseError, match="SELEKT 1") as raised:
        store.execute("SELEKT 1")
    assert not isinstance(raised.value, SchemaError)
    assert isinstance(raised.value.__cause__, Exception)


def test_a_missing_table_is_a_schema_error(store: DbApiStore) -> None:
    with pytest.raises(SchemaError, match="wicbox db init"):
        store.query("SELECT NAME FROM WICMAN_PARAMETER")


def test_a_closed_store_raises_database_errors(database_target: DatabaseTarget) -> None:
    store = open_store(database_target)
    store.close()
    store.close()
    with pytest.raises(DatabaseError):
        store.query("SELECT 1")


# -- SQLite ----------------------------------------------------------------------------------------


def test_sqlite_creates_the_directory_and_sets_wal_and_foreign_keys(sqlite_target: SqliteTarget) -> None:
    assert not sqlite_target.path.parent.exists()
    with open_store(sqlite_target) as store:
        assert store.dialect == "sqlite"
        assert store.query_one("PRAGMA journal_mode") == ("wal",)
        assert store.query_one("PRAGMA foreign_keys") == (1,)
    assert sqlite_target.path.is_file()


def test_sqlite_waits_for_a_writer_then_names_the_lock(sqlite_target: SqliteTarget) -> None:
    with open_store(sqlite_target) as store:
        store.execute(CREATE_NOTE)
    other = sqlite3.connect(sqlite_target.path, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")
        with open_store(sqlite_target, timeout_s=0.2) as store:
            with pytest.raises(DatabaseError, match="locked by another process") as raised:
                store.execute("INSERT INTO NOTE (ID, BODY) VALUES (?, ?)", (1, "x"))
            assert raised.value.fix
    finally:
        other.close()


def test_sqlite_directory_that_cannot_be_created(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(DatabaseError, match="cannot create the directory") as raised:
        open_store(SqliteTarget(blocker / "sub" / "wicbox.db"))
    assert str(blocker / "sub") in str(raised.value)


def test_sqlite_file_that_is_not_a_database(tmp_path: Path) -> None:
    path = tmp_path / "wicbox.db"
    path.write_bytes(b"this is not a SQLite database, it is just text" * 40)
    with pytest.raises(DatabaseError, match="not a SQLite database") as raised:
        open_store(SqliteTarget(path))
    assert str(path) in str(raised.value)


# -- ODBC ------------------------------------------------------------------------------------------


def _target(connection_string: str, dialect: OdbcDialect = "postgresql") -> OdbcTarget:
    return OdbcTarget(Secret(connection_string), dialect, "the test database")


def _everything_shown(error: BaseException) -> str:
    """Message, fix, repr and the whole chained traceback: where a password must not appear."""
    return "".join(traceback.format_exception(error)) + repr(error) + str(getattr(error, "fix", ""))


def test_odbc_store_detects_the_dialect_from_the_server(pg_database: PgDatabase) -> None:
    with open_store(_target(pg_database.connection_string, dialect="other")) as store:
        assert store.dialect == "postgresql"
        assert store.query_one("SELECT 1") == (1,)
        assert pg_database.server.password not in repr(store)


def test_odbc_wrong_port_names_server_and_database_but_not_the_password(postgres: PostgresServer) -> None:
    port = free_loopback_port()
    password = postgres.password
    target = _target(odbc_connection_string("127.0.0.1", port, "wic_prod", postgres.role, password))

    with pytest.raises(DatabaseError, match="Cannot reach the database server") as raised:
        open_store(target, timeout_s=5)

    shown = _everything_shown(raised.value)
    assert f"the database server 127.0.0.1:{port}: the connection was refused" in str(raised.value)
    assert "database wic_prod" in str(raised.value)
    assert "Connection refused" in str(raised.value)
    assert raised.value.fix
    assert password not in shown


def test_odbc_wrong_password_is_a_refused_login(pg_database: PgDatabase) -> None:
    wrong = "Wr0ng-" + pg_database.server.password
    connection_string = pg_database.connection_string.replace(
        f"PWD={pg_database.server.password}", f"PWD={{{wrong}}}"
    )
    with pytest.raises(DatabaseError, match="refused the login") as raised:
        open_store(_target(connection_string), timeout_s=5)
    assert "UID and PWD" in str(raised.value)
    shown = _everything_shown(raised.value)
    assert wrong not in shown
    assert pg_database.server.password not in shown


def test_odbc_missing_driver_lists_the_installed_drivers() -> None:
    password = secrets.token_urlsafe(12)
    target = _target(
        f"DRIVER={{ODBC Driver 18 for SQL Server}};SERVER=sql01;DATABASE=WIC;UID=wic;PWD={password}", "mssql"
    )
    with pytest.raises(DatabaseError, match="'ODBC Driver 18 for SQL Server' is not installed") as raised:
        open_store(target)
    assert "PostgreSQL Unicode" in str(raised.value)
    assert password not in _everything_shown(raised.value)


def test_odbc_missing_data_source_is_named() -> None:
    password = secrets.token_urlsafe(12)
    with pytest.raises(DatabaseError, match="data source 'WIC_NOT_THERE' is not defined") as raised:
        open_store(_target(f"DSN=WIC_NOT_THERE;UID=wic;PWD={password}", "mssql"))
    assert password not in _everything_shown(raised.value)


def test_odbc_refuses_a_server_that_is_not_sql_server_or_postgresql(tmp_path: Path) -> None:
    path = tmp_path / "other.db"
    sqlite3.connect(path).close()
    with pytest.raises(DatabaseError, match="works with Microsoft SQL Server"):
        open_store(_target(f"DRIVER={{SQLite3}};DATABASE={path}", "other"))


@pytest.mark.parametrize(
    ("connection_string", "expected"),
    [
        ("DRIVER={ODBC Driver 18 for SQL Server};SERVER=sql01,1433;DATABASE=WIC",
         {"DRIVER": "ODBC Driver 18 for SQL Server", "SERVER": "sql01,1433", "DATABASE": "WIC"}),
        ("Server = sql01 ; Pwd={a;b}}c} ;", {"SERVER": "sql01", "PWD": "a;b}c"}),
        ("DSN=WIC;UID=wic;PWD=p=w", {"DSN": "WIC", "UID": "wic", "PWD": "p=w"}),
        (";;Initial Catalog=WIC", {"INITIAL CATALOG": "WIC"}),
        ("", {}),
    ],
)  # fmt: skip
def test_connection_attributes(connection_string: str, expected: dict[str, str]) -> None:
    assert connection_attributes(connection_string) == expected


def test_free_port_is_really_closed() -> None:
    port = free_loopback_port()
    with socket.socket() as probe:
        assert probe.connect_ex(("127.0.0.1", port)) != 0


def test_savepoint_undoes_only_its_block(store: DbApiStore) -> None:
    with store.transaction():
        store.execute("INSERT INTO NOTE (ID, BODY) VALUES (?, ?)", (1, "before"))
        with pytest.raises(DataRejected), savepoint(store, "refused"):
            store.execute("INSERT INTO NOTE (ID, BODY) VALUES (?, ?)", (2, "inside"))
            store.execute("INSERT INTO NOTE (ID, BODY) VALUES (?, ?)", (1, "duplicate key"))
        with savepoint(store, "kept"):
            store.execute("INSERT INTO NOTE (ID, BODY) VALUES (?, ?)", (3, "after"))
    assert _bodies(store) == ["before", "after"]


def test_savepoint_needs_a_transaction_and_a_plain_name(store: DbApiStore) -> None:
    with pytest.raises(RuntimeError, match="transaction"), savepoint(store, "x"):
        pass
    with store.transaction(), pytest.raises(ValueError, match="savepoint name"), savepoint(store, "x; DROP"):
        pass


def test_the_insert_hands_back_its_own_key(store: DbApiStore) -> None:
    store.execute(
        "CREATE TABLE COUNTED (ID integer PRIMARY KEY, BODY varchar(10))"
        if store.dialect == "sqlite"
        else "CREATE TABLE COUNTED (ID integer GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, "
        "BODY varchar(10))"
    )
    with store.transaction():
        first = insert_returning_identity(store, "INSERT INTO COUNTED (BODY) VALUES (?)", ("a",), "ID")
        second = insert_returning_identity(store, "INSERT INTO COUNTED (BODY) VALUES (?)", ("b",), "ID")
    assert second == first + 1
    assert store.query_one("SELECT BODY FROM COUNTED WHERE ID = ?", (second,)) == ("b",)


def test_sql_server_gets_its_key_from_the_insert_itself_through_a_table_variable() -> None:
    sql = returning_identity_sql("mssql", "INSERT INTO COUNTED (BODY) VALUES (?)", "ID")
    assert sql == (
        "SET NOCOUNT ON; DECLARE @keys TABLE (ID BIGINT); "
        "INSERT INTO COUNTED (BODY) OUTPUT INSERTED.ID INTO @keys VALUES (?); SELECT ID FROM @keys"
    )
    assert "@@IDENTITY" not in sql and "SCOPE_IDENTITY" not in sql
    with pytest.raises(ValueError):
        returning_identity_sql("mssql", "INSERT INTO COUNTED SELECT 1", "ID")


@pytest.mark.parametrize(
    ("insert", "column"),
    [
        (f"{INSERT_MAIL_COLUMNS} VALUES {MAIL_ROW}", "MAIL_ID"),
        (f"{_ATTACHMENT_COLUMNS} VALUES {_ATTACHMENT_ROW}", "ATTACHMENT_ID"),
        (_OUTBOX_INSERT, "OUTBOX_ID"),
    ],
)
def test_every_key_returning_insert_is_valid_t_sql(insert: str, column: str) -> None:
    statements = sqlglot.parse(returning_identity_sql("mssql", insert, column), read="tsql")
    assert [type(statement).__name__ for statement in statements] == ["Set", "Declare", "Insert", "Select"]
    assert f"OUTPUT INSERTED.{column} INTO @keys" in statements[2].sql("tsql")
