"""Test-bed fixtures for the database: a private PostgreSQL over ODBC, and SQLite files.

- ``postgres`` (session): the running private cluster (:class:`tools.testbed.postgres.PostgresServer`);
- ``pg_database``: a fresh, empty database for one test, dropped afterwards;
- ``sqlite_target``: a SQLite file (not yet created) in the test's temporary directory;
- ``database_target``: parametrised over both backends (ids ``sqlite``, ``postgresql-odbc``);
- ``wic_store``: an open store on ``database_target`` with the schema initialised.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tools.testbed.postgres import PostgresServer, PostgresUnavailable, running_postgres
from wicbox_bridge.config.dbtarget import DatabaseTarget, OdbcTarget, SqliteTarget
from wicbox_bridge.secret import Secret
from wicbox_bridge.store import DbApiStore, init_schema, open_store

BACKENDS = ("sqlite", "postgresql-odbc")


@dataclass(frozen=True)
class PgDatabase:
    """One test's database: its name, its ODBC connection string and a target for the store."""

    server: PostgresServer
    name: str
    connection_string: str
    target: OdbcTarget


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    try:
        with running_postgres() as server:
            yield server
    except PostgresUnavailable as exc:
        pytest.skip(f"PostgreSQL test server unavailable: {exc}")


def odbc_target(server: PostgresServer, database: str) -> OdbcTarget:
    return OdbcTarget(
        connection_string=Secret(server.connection_string(database)),
        dialect="postgresql",
        description=f"PostgreSQL database {database} on {server.host}:{server.port}",
    )


@pytest.fixture
def pg_database(postgres: PostgresServer) -> Iterator[PgDatabase]:
    name = f"wicbox_{uuid.uuid4().hex[:16]}"
    postgres.create_database(name)
    try:
        yield PgDatabase(postgres, name, postgres.connection_string(name), odbc_target(postgres, name))
    finally:
        postgres.drop_database(name)


@pytest.fixture
def sqlite_target(tmp_path: Path) -> SqliteTarget:
    return SqliteTarget(path=tmp_path / "data" / "wicbox.db")


@pytest.fixture(params=BACKENDS)
def database_target(request: pytest.FixtureRequest) -> DatabaseTarget:
    """An empty database of each backend in turn (PostgreSQL starts only when a test needs it)."""
    if request.param == "sqlite":
        target: DatabaseTarget = request.getfixturevalue("sqlite_target")
        return target
    database: PgDatabase = request.getfixturevalue("pg_database")
    return database.target


@pytest.fixture
def wic_store(database_target: DatabaseTarget) -> Iterator[DbApiStore]:
    """An open store with wicbox-bridge's schema (and WIC's tables) created."""
    store = open_store(database_target, timeout_s=10)
    try:
        init_schema(store)
        yield store
    finally:
        store.close()
