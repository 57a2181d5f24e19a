"""WICBOX_MAILBOX_STATE: each mailbox as its last pass left it, for ``wicbox status``.

One row per mailbox address (lower case, as WICBOX_MAIL has it) and source folder: that is what
the mail server holds and what the backlog counts, whatever account label or project reads it.
The runner writes a pass's outcome with :func:`record_pass` (an UPDATE, then an INSERT when no
row was there: portable over SQLite, PostgreSQL and SQL Server). Two writers inserting the same
new row at once do not occur (one run at a time under the run lock, never two passes over one
mailbox at once); should it happen anyway, the unique key refuses the second row and the runner
logs that instead of failing the pass.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Final

from wicbox_bridge.errors import (
    AuthenticationError,
    BridgeError,
    ConfigurationError,
    ConnectionFailure,
    DatabaseError,
    DataRejected,
    MailboxError,
)
from wicbox_bridge.store.base import Row, Store
from wicbox_bridge.store.mails import normalized_mailbox
from wicbox_bridge.store.times import as_utc, naive_utc


class ErrorKind(str, Enum):
    """What kind of failure ended a pass, from the BridgeError subclass."""

    AUTHENTICATION = "authentication"
    CONNECTION = "connection"
    MAILBOX = "mailbox"
    DATABASE = "database"
    CONFIGURATION = "configuration"
    OTHER = "other"


_KINDS: Final[tuple[tuple[type[BridgeError], ErrorKind], ...]] = (
    (AuthenticationError, ErrorKind.AUTHENTICATION),
    (DataRejected, ErrorKind.DATABASE),
    (DatabaseError, ErrorKind.DATABASE),  # before ConnectionFailure's exit code could mislead
    (ConnectionFailure, ErrorKind.CONNECTION),
    (MailboxError, ErrorKind.MAILBOX),
    (ConfigurationError, ErrorKind.CONFIGURATION),
)


def error_kind(error: BridgeError) -> ErrorKind:
    for cls, kind in _KINDS:
        if isinstance(error, cls):
            return kind
    return ErrorKind.OTHER


@dataclass(frozen=True)
class PassFailure:
    """Why a pass failed, already free of secrets."""

    kind: ErrorKind
    message: str
    fix: str | None
    code: str | None = None


@dataclass(frozen=True)
class Backlog:
    """Mails still waiting in the folder when measured; the oldest one's received time (UTC)."""

    count: int
    oldest_received_at: dt.datetime | None
    measured_at: dt.datetime


@dataclass(frozen=True)
class PassRecord:
    """One pass, as the runner records it. ``failure`` None: the pass finished without error;
    ``backlog`` None: not measured (or the measurement failed), the stored one is cleared."""

    mailbox: str
    folder: str
    label: str
    project_code: str | None
    protocol: str
    run_id: int | None
    attempted_at: dt.datetime
    failure: PassFailure | None
    backlog: Backlog | None


@dataclass(frozen=True)
class MailboxState:
    """A row of WICBOX_MAILBOX_STATE (times aware UTC)."""

    mailbox: str
    folder: str
    label: str
    project_code: str | None
    protocol: str
    last_run_id: int | None
    last_attempt_at: dt.datetime
    last_success_at: dt.datetime | None
    last_error_at: dt.datetime | None
    error_kind: ErrorKind | None
    error_code: str | None
    error_message: str | None
    error_fix: str | None
    backlog: int | None
    oldest_pending_at: dt.datetime | None
    backlog_measured_at: dt.datetime | None

    @property
    def failing(self) -> bool:
        """Whether the last pass failed (its error is newer than its last success)."""
        if self.last_error_at is None:
            return False
        return self.last_success_at is None or self.last_error_at >= self.last_success_at


_TEXT_LIMIT: Final = 4000
_COLUMNS: Final = (
    "MAILBOX, FOLDER, LABEL, PROJECT_CODE, PROTOCOL, LAST_RUN_ID, LAST_ATTEMPT_AT, LAST_SUCCESS_AT, "
    "LAST_ERROR_AT, ERROR_KIND, ERROR_CODE, ERROR_MESSAGE, ERROR_FIX, BACKLOG, OLDEST_PENDING_AT, "
    "BACKLOG_MEASURED_AT"
)


def _clip(value: str | None, limit: int) -> str | None:
    return value if value is None or len(value) <= limit else value[: limit - 1] + "…"


def _common(record: PassRecord) -> tuple[list[str], list[object]]:
    """The columns every pass sets, and their values."""
    backlog = record.backlog
    columns = [
        "LABEL",
        "PROJECT_CODE",
        "PROTOCOL",
        "LAST_RUN_ID",
        "LAST_ATTEMPT_AT",
        "BACKLOG",
        "OLDEST_PENDING_AT",
        "BACKLOG_MEASURED_AT",
    ]
    values: list[object] = [
        _clip(record.label, 200),
        _clip(record.project_code, 50),
        record.protocol,
        record.run_id,
        naive_utc(record.attempted_at),
        backlog.count if backlog else None,
        naive_utc(backlog.oldest_received_at) if backlog else None,
        naive_utc(backlog.measured_at) if backlog else None,
    ]
    return columns, values


def _outcome(record: PassRecord) -> tuple[list[str], list[object]]:
    """The success column, or the error columns (a success keeps the last error for the record)."""
    failure = record.failure
    if failure is None:
        return ["LAST_SUCCESS_AT"], [naive_utc(record.attempted_at)]
    columns = ["LAST_ERROR_AT", "ERROR_KIND", "ERROR_CODE", "ERROR_MESSAGE", "ERROR_FIX"]
    values: list[object] = [
        naive_utc(record.attempted_at),
        failure.kind.value,
        _clip(failure.code, 20),
        _clip(failure.message, _TEXT_LIMIT),
        _clip(failure.fix, _TEXT_LIMIT),
    ]
    return columns, values


def record_pass(store: Store, record: PassRecord) -> None:
    """Upsert the pass into its mailbox's row, in a short transaction of its own."""
    record_passes(store, [record])


def record_passes(store: Store, records: Sequence[PassRecord]) -> None:
    """Upsert several passes in one transaction (a MULTIPLE run's mailboxes that had no mail)."""
    with store.transaction():
        for record in records:
            _upsert(store, record)


def _upsert(store: Store, record: PassRecord) -> None:
    columns, values = _common(record)
    more_columns, more_values = _outcome(record)
    columns += more_columns
    values += more_values
    key = (normalized_mailbox(record.mailbox), record.folder[:400])
    assignments = ", ".join(f"{column} = ?" for column in columns)
    update = f"UPDATE WICBOX_MAILBOX_STATE SET {assignments} WHERE MAILBOX = ? AND FOLDER = ?"  # noqa: S608 - names from code
    insert = (
        f"INSERT INTO WICBOX_MAILBOX_STATE (MAILBOX, FOLDER, {', '.join(columns)}) "  # noqa: S608 - names from code
        f"VALUES ({', '.join('?' for _ in range(len(columns) + 2))})"
    )
    if store.execute(update, (*values, *key)) == 0:
        store.execute(insert, (*key, *values))


def _state(row: Row) -> MailboxState:
    kind = str(row[9]).strip() if row[9] is not None else None
    attempted = as_utc(row[6])
    assert attempted is not None  # NOT NULL
    return MailboxState(
        mailbox=str(row[0]),
        folder=str(row[1]),
        label=str(row[2]),
        project_code=row[3],
        protocol=str(row[4]).strip(),
        last_run_id=None if row[5] is None else int(row[5]),
        last_attempt_at=attempted,
        last_success_at=as_utc(row[7]),
        last_error_at=as_utc(row[8]),
        error_kind=ErrorKind(kind) if kind in {k.value for k in ErrorKind} else None,
        error_code=row[10],
        error_message=row[11],
        error_fix=row[12],
        backlog=None if row[13] is None else int(row[13]),
        oldest_pending_at=as_utc(row[14]),
        backlog_measured_at=as_utc(row[15]),
    )


def mailbox_states(store: Store) -> list[MailboxState]:
    """Every mailbox's row, in the order of mailbox and folder."""
    rows = store.query(f"SELECT {_COLUMNS} FROM WICBOX_MAILBOX_STATE ORDER BY MAILBOX, FOLDER")  # noqa: S608
    return [_state(row) for row in rows]
