"""WICBOX_MAILBOX_STATE and the status queries, on SQLite and on PostgreSQL over ODBC; the
SQL Server script's columns checked against SQLite's."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator

import pytest

from wicbox_bridge.config.dbtarget import DatabaseTarget, SqliteTarget
from wicbox_bridge.store import DbApiStore, init_schema, open_store
from wicbox_bridge.store.activity import recent_runs
from wicbox_bridge.store.catalog import table_columns
from wicbox_bridge.store.mailbox_state import (
    Backlog,
    ErrorKind,
    PassFailure,
    PassRecord,
    mailbox_states,
    record_pass,
)
from wicbox_bridge.store.runs import RunCounts, RunOutcome, finish_run, start_run
from wicbox_bridge.store.scripts import schema_scripts

UTC = dt.timezone.utc
T0 = dt.datetime(2026, 11, 2, 9, 0, 0, tzinfo=UTC)


@pytest.fixture
def store(database_target: DatabaseTarget) -> Iterator[DbApiStore]:
    opened = open_store(database_target, timeout_s=10)
    init_schema(opened)
    yield opened
    opened.close()


def _record(
    at: dt.datetime, failure: PassFailure | None, backlog: Backlog | None, run_id: int = 1
) -> PassRecord:
    return PassRecord(
        mailbox="Wicbox@Klant.example",
        folder="INBOX",
        label="global mailbox",
        project_code=None,
        protocol="imap",
        run_id=run_id,
        attempted_at=at,
        failure=failure,
        backlog=backlog,
    )


DENIED = PassFailure(
    ErrorKind.AUTHENTICATION, "AADSTS50126: invalid username or password", "fix it", "AADSTS50126"
)


def test_one_row_per_mailbox_and_folder_updated_by_every_pass(store: DbApiStore) -> None:
    backlog = Backlog(150, T0 - dt.timedelta(hours=1), T0)
    record_pass(store, _record(T0, None, backlog))
    [state] = mailbox_states(store)
    assert (state.mailbox, state.folder, state.label, state.protocol) == (
        "wicbox@klant.example",
        "INBOX",
        "global mailbox",
        "imap",
    )
    assert (state.last_attempt_at, state.last_success_at, state.last_error_at) == (T0, T0, None)
    assert (state.backlog, state.oldest_pending_at, state.backlog_measured_at) == (
        150,
        T0 - dt.timedelta(hours=1),
        T0,
    )
    assert not state.failing

    later = T0 + dt.timedelta(minutes=5)
    record_pass(store, _record(later, DENIED, None, run_id=2))
    [state] = mailbox_states(store)
    assert (state.last_attempt_at, state.last_success_at, state.last_error_at) == (later, T0, later)
    assert (state.error_kind, state.error_code, state.error_fix) == (
        ErrorKind.AUTHENTICATION,
        "AADSTS50126",
        "fix it",
    )
    assert state.backlog is None  # not measured by a failed pass: unknown, not the old figure
    assert (state.failing, state.last_run_id) == (True, 2)

    latest = later + dt.timedelta(minutes=5)
    record_pass(store, _record(latest, None, Backlog(0, None, latest), run_id=3))
    [state] = mailbox_states(store)
    assert (state.last_success_at, state.last_error_at, state.error_code) == (latest, later, "AADSTS50126")
    assert not state.failing  # the error is kept for the record, but it is not current
    assert store.query("SELECT COUNT(*) FROM WICBOX_MAILBOX_STATE") == [(1,)]


def test_long_messages_are_clipped_to_the_column(store: DbApiStore) -> None:
    failure = PassFailure(ErrorKind.MAILBOX, "x" * 5000, "y" * 5000)
    record_pass(store, _record(T0, failure, None))
    [state] = mailbox_states(store)
    assert state.error_message is not None
    assert state.error_fix is not None
    assert (len(state.error_message), len(state.error_fix)) == (4000, 4000)


def test_recent_runs_newest_first_within_the_limit(store: DbApiStore) -> None:
    for number in range(5):
        run_id = start_run(
            store, mode="SINGLE", max_mails=100, host="h", pid=1, started_at=T0.replace(tzinfo=None)
        )
        finish_run(
            store, run_id, counts=RunCounts(filed=number), outcome=RunOutcome.OK, exit_code=0, message=None
        )
    runs = recent_runs(store, 3)
    assert [run.filed for run in runs] == [4, 3, 2]
    assert runs[0].started_at == T0
    assert runs[0].finished_at is not None


def test_every_dialect_creates_the_mailbox_state_columns(sqlite_target: SqliteTarget) -> None:
    with open_store(sqlite_target) as store:
        init_schema(store)
        columns = table_columns(store, "WICBOX_MAILBOX_STATE")
    assert columns[:3] == ["STATE_ID", "MAILBOX", "FOLDER"]
    for dialect in ("mssql", "postgresql"):
        [script] = [s for s in schema_scripts(dialect) if s.number == 4]
        assert re.search(r"\bCREATE\s+TABLE\s+(?:IF\s+NOT\s+EXISTS\s+)?WICBOX_MAILBOX_STATE\b", script.text)
        for name in columns:
            assert re.search(rf"^\s+{name}\s", script.text, re.MULTILINE), (dialect, name)
        assert re.search(r"UNIQUE\s+(?:NONCLUSTERED\s+)?\(MAILBOX, FOLDER\)", script.text), dialect
