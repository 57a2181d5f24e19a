"""Creating and upgrading the schema, on SQLite and on PostgreSQL over ODBC."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers.waiting import wait_until
from wicbox_bridge.config.dbtarget import DatabaseTarget, SqliteTarget
from wicbox_bridge.errors import SchemaError
from wicbox_bridge.store import (
    LATEST_VERSION,
    DbApiStore,
    init_schema,
    open_store,
    require_schema,
    schema_version,
    upgrade_schema,
)
from wicbox_bridge.store.catalog import table_columns, table_exists
from wicbox_bridge.store.parameters import read_parameters

ALL_VERSIONS = list(range(1, LATEST_VERSION + 1))
WICBOX_COLUMNS = ["WICBOX_MAILBOX", "WICBOX_USERNAME", "WICBOX_PASSWORD", "WICBOX_ACCOUNTMODE"]
REPO_ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def store(database_target: DatabaseTarget) -> Iterator[DbApiStore]:
    opened = open_store(database_target, timeout_s=10)
    yield opened
    opened.close()


def test_init_creates_the_schema_once(store: DbApiStore) -> None:
    assert schema_version(store) is None

    assert init_schema(store) == ALL_VERSIONS
    assert init_schema(store) == []

    assert schema_version(store) == LATEST_VERSION
    assert require_schema(store) == LATEST_VERSION
    rows = store.query("SELECT VERSION, DESCRIPTION, APPLIED_AT FROM WICBOX_SCHEMA_VERSION ORDER BY VERSION")
    assert [row[0] for row in rows] == ALL_VERSIONS
    assert rows[0][1] == "base"
    assert all(row[2] is not None for row in rows)
    for table in ("WICMAN_PARAMETER", "WIC_PROJECT", "WICBOX_SCHEMA_VERSION"):
        assert table_exists(store, table)
    assert table_columns(store, "WIC_PROJECT")[-4:] == WICBOX_COLUMNS


def test_upgrade_is_a_no_op_on_a_current_schema(store: DbApiStore) -> None:
    init_schema(store)
    assert upgrade_schema(store) == []
    assert schema_version(store) == LATEST_VERSION


def test_missing_schema_is_reported_with_the_fix(store: DbApiStore) -> None:
    with pytest.raises(SchemaError, match="no wicbox-bridge schema") as raised:
        require_schema(store)
    assert "wicbox db init" in str(raised.value)
    with pytest.raises(SchemaError, match="wicbox db init"):
        upgrade_schema(store)


def test_reading_wic_tables_before_init_says_to_run_init(store: DbApiStore) -> None:
    with pytest.raises(SchemaError, match="wicbox db init"):
        read_parameters(store)


def test_a_newer_schema_is_refused(store: DbApiStore) -> None:
    init_schema(store)
    newer = LATEST_VERSION + 1
    store.execute("INSERT INTO WICBOX_SCHEMA_VERSION (VERSION, DESCRIPTION) VALUES (?, ?)", (newer, "next"))

    with pytest.raises(SchemaError, match="newer than this release") as raised:
        require_schema(store)
    assert raised.value.fix
    with pytest.raises(SchemaError, match="newer than this release"):
        init_schema(store)


def test_scripts_reapply_cleanly_over_existing_tables(store: DbApiStore) -> None:
    """A version table that lost its rows: every script runs again over the existing tables."""
    init_schema(store)
    store.execute("INSERT INTO WICMAN_PARAMETER (NAME, VALUE) VALUES (?, ?)", ("WICBOXMETHOD", "OAuth2"))
    store.execute("DELETE FROM WICBOX_SCHEMA_VERSION")

    assert init_schema(store) == ALL_VERSIONS
    assert read_parameters(store) == {"WICBOXMETHOD": "OAuth2"}


WIC_LEGACY_TABLES = [
    "CREATE TABLE WICMAN_PARAMETER (NAME varchar(128) PRIMARY KEY, VALUE varchar(4000) NULL, "
    "REMARK varchar(100))",
    "CREATE TABLE WIC_PROJECT (PROJECT_ID integer PRIMARY KEY, CODE varchar(50) NOT NULL UNIQUE, "
    "NAME varchar(200), ACTIVE integer NOT NULL DEFAULT 1, CREATED_BY varchar(50), "
    "WICBOX_MAILBOX varchar(320) NULL)",
]


def test_init_on_an_existing_wic_database_adds_only_what_is_missing(store: DbApiStore) -> None:
    for statement in WIC_LEGACY_TABLES:
        store.execute(statement)
    store.execute(
        "INSERT INTO WICMAN_PARAMETER (NAME, VALUE, REMARK) VALUES (?, ?, ?)",
        ("ACCOUNTMODE", "MULTIPLE", "wic"),
    )
    store.execute(
        "INSERT INTO WIC_PROJECT (PROJECT_ID, CODE, NAME, ACTIVE, CREATED_BY, WICBOX_MAILBOX) "
        "VALUES (?, ?, ?, ?, ?, ?)",
        (7, "ALPHA", "Project Alpha", 0, "wic-admin", "alpha@klant.example"),
    )

    assert init_schema(store) == ALL_VERSIONS

    assert table_columns(store, "WICMAN_PARAMETER") == ["NAME", "VALUE", "REMARK"]
    assert table_columns(store, "WIC_PROJECT") == [
        "PROJECT_ID", "CODE", "NAME", "ACTIVE", "CREATED_BY", "WICBOX_MAILBOX",
        "WICBOX_USERNAME", "WICBOX_PASSWORD", "WICBOX_ACCOUNTMODE",
    ]  # fmt: skip
    parameters = store.query("SELECT NAME, VALUE, REMARK FROM WICMAN_PARAMETER")
    assert parameters == [("ACCOUNTMODE", "MULTIPLE", "wic")]
    assert store.query("SELECT * FROM WIC_PROJECT") == [
        (7, "ALPHA", "Project Alpha", 0, "wic-admin", "alpha@klant.example", None, None, None)
    ]
    assert init_schema(store) == []


RACER = """
import json, os, time
from pathlib import Path
from wicbox_bridge.config.dbtarget import OdbcTarget, SqliteTarget
from wicbox_bridge.secret import Secret
from wicbox_bridge.store import init_schema, open_store

spec = json.loads(os.environ["WICBOX_TEST_RACE"])
if spec["path"]:
    target = SqliteTarget(Path(spec["path"]))
else:
    target = OdbcTarget(Secret(spec["connection_string"]), "postgresql", "race")
store = open_store(target, timeout_s=30)
Path(spec["go"] + ".ready-" + str(os.getpid())).touch()
while not Path(spec["go"]).exists():
    time.sleep(0.001)  # the racer waits for the test's start signal (a file), connected already
print(json.dumps(init_schema(store)))
store.close()
"""


def _race_init_schema(target: DatabaseTarget) -> list[list[int]]:
    go = Path(tempfile.mkdtemp(prefix="wicbox-race-")) / "go"
    spec = {
        "path": str(target.path) if isinstance(target, SqliteTarget) else None,
        "connection_string": None if isinstance(target, SqliteTarget) else target.connection_string.reveal(),
        "go": str(go),
    }
    environment = {**os.environ, "WICBOX_TEST_RACE": json.dumps(spec)}
    racers = [
        subprocess.Popen(
            [sys.executable, "-c", RACER],
            cwd=REPO_ROOT,
            env=environment,
            text=True,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for _ in range(2)
    ]
    wait_until(
        lambda: len(list(go.parent.glob(go.name + ".ready-*"))) == len(racers), "both racers connected"
    )
    go.touch()
    outputs = [racer.communicate(timeout=60) for racer in racers]
    for racer, (_, stderr) in zip(racers, outputs, strict=True):
        assert racer.returncode == 0, stderr
    return sorted(json.loads(stdout) for stdout, _ in outputs)


@pytest.mark.slow
def test_two_processes_racing_init_schema(database_target: DatabaseTarget) -> None:
    # Each version is applied in a transaction of its own under the schema lock, so the two racers
    # may share the versions between them (one applies 1, the other 2 and 3), but every version is
    # applied exactly once and in order.
    applied = _race_init_schema(database_target)
    assert sorted(version for versions in applied for version in versions) == ALL_VERSIONS
    assert all(versions == sorted(versions) for versions in applied)

    with open_store(database_target) as store:
        assert store.query("SELECT VERSION FROM WICBOX_SCHEMA_VERSION ORDER BY VERSION") == [
            (version,) for version in ALL_VERSIONS
        ]
