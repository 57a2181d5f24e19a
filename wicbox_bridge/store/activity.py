"""What ``wicbox status`` reads besides the mailbox states: recent runs, mails filed and quarantined.

Every query is bounded (the last N runs, counts over a window, the latest few quarantined mails)
and uses the indexes of schema version 2 (WICBOX_RUN's key, WICBOX_MAIL's FILED_AT).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Final

from wicbox_bridge.store.base import Dialect, Row, Store
from wicbox_bridge.store.mails import MailStatus
from wicbox_bridge.store.runs import RunOutcome
from wicbox_bridge.store.times import as_utc, naive_utc

_FIRST_ROWS: Final[dict[Dialect, str]] = {
    # SQL Server has no LIMIT; TOP takes a parameter in parentheses.
    "mssql": "SELECT TOP (?) {columns} FROM {table} WHERE {where} ORDER BY {order}",
    "sqlite": "SELECT {columns} FROM {table} WHERE {where} ORDER BY {order} LIMIT ?",
    "postgresql": "SELECT {columns} FROM {table} WHERE {where} ORDER BY {order} LIMIT ?",
}
_FILED: Final = (MailStatus.FILED.value, MailStatus.PENDING_ACK.value)
_QUARANTINED: Final = (MailStatus.QUARANTINED.value, MailStatus.QUARANTINE_PENDING.value)
_FINISHED_WELL: Final = (RunOutcome.OK.value, RunOutcome.PARTIAL.value)


@dataclass(frozen=True)
class RunRow:
    """One row of WICBOX_RUN (times aware UTC)."""

    run_id: int
    mode: str
    host: str | None
    started_at: dt.datetime | None
    finished_at: dt.datetime | None
    outcome: str
    exit_code: int | None
    mailboxes: int
    failed_mailboxes: int
    fetched: int
    filed: int
    duplicates: int
    quarantined: int
    message: str | None


@dataclass(frozen=True)
class QuarantinedMail:
    """A mail that could not be filed; ``pending`` while it is still in the source folder."""

    mail_id: int
    mailbox: str
    folder: str
    source_id: str
    at: dt.datetime | None
    pending: bool
    reason: str | None


def _first_rows(store: Store, *, columns: str, table: str, where: str, order: str) -> str:
    return _FIRST_ROWS[store.dialect].format(columns=columns, table=table, where=where, order=order)


def _limited(store: Store, sql: str, params: tuple[object, ...], limit: int) -> list[Row]:
    """``sql`` from :func:`_first_rows` with its row limit in the place the dialect wants it."""
    ordered = (limit, *params) if store.dialect == "mssql" else (*params, limit)
    return store.query(sql, ordered)


_RUN_COLUMNS: Final = (
    "RUN_ID, MODE, HOST_NAME, STARTED_AT, FINISHED_AT, OUTCOME, EXIT_CODE, MAILBOXES, FAILED_MAILBOXES, "
    "FETCHED, FILED, DUPLICATES, QUARANTINED, MESSAGE"
)


def recent_runs(store: Store, limit: int) -> list[RunRow]:
    """The last ``limit`` runs, newest first."""
    sql = _first_rows(store, columns=_RUN_COLUMNS, table="WICBOX_RUN", where="1 = 1", order="RUN_ID DESC")
    return [_run(row) for row in _limited(store, sql, (), limit)]


def _run(row: Row) -> RunRow:
    return RunRow(
        run_id=int(row[0]),
        mode=str(row[1]).strip(),
        host=row[2],
        started_at=as_utc(row[3]),
        finished_at=as_utc(row[4]),
        outcome=str(row[5]).strip(),
        exit_code=None if row[6] is None else int(row[6]),
        mailboxes=int(row[7]),
        failed_mailboxes=int(row[8]),
        fetched=int(row[9]),
        filed=int(row[10]),
        duplicates=int(row[11]),
        quarantined=int(row[12]),
        message=row[13],
    )


def last_good_run_finished_at(store: Store) -> dt.datetime | None:
    """When the last run that ended OK or PARTIAL finished (mail flowed), or None."""
    row = store.query_one(
        "SELECT MAX(FINISHED_AT) FROM WICBOX_RUN WHERE OUTCOME IN (?, ?) AND FINISHED_AT IS NOT NULL",
        _FINISHED_WELL,
    )
    return None if row is None else as_utc(row[0])


def filed_since(store: Store, since: dt.datetime) -> dict[str, int]:
    """Mails filed per mailbox (lower case) since ``since``."""
    rows = store.query(
        "SELECT MAILBOX, COUNT(*) FROM WICBOX_MAIL WHERE FILED_AT >= ? AND STATUS IN (?, ?) GROUP BY MAILBOX",
        (naive_utc(since), *_FILED),
    )
    return {str(row[0]): int(row[1]) for row in rows}


def quarantined_since(store: Store, since: dt.datetime) -> int:
    row = store.query_one(
        "SELECT COUNT(*) FROM WICBOX_MAIL WHERE FILED_AT >= ? AND STATUS IN (?, ?)",
        (naive_utc(since), *_QUARANTINED),
    )
    return 0 if row is None else int(row[0])


def latest_quarantined(store: Store, limit: int) -> list[QuarantinedMail]:
    """The ``limit`` most recently quarantined mails, newest first."""
    sql = _first_rows(
        store,
        columns="MAIL_ID, MAILBOX, FOLDER, SOURCE_ID, FILED_AT, STATUS, ERROR",
        table="WICBOX_MAIL",
        where="STATUS IN (?, ?)",
        order="MAIL_ID DESC",
    )
    return [
        QuarantinedMail(
            mail_id=int(row[0]),
            mailbox=str(row[1]),
            folder=str(row[2]),
            source_id=str(row[3]),
            at=as_utc(row[4]),
            pending=str(row[5]).strip() == MailStatus.QUARANTINE_PENDING.value,
            reason=row[6],
        )
        for row in _limited(store, sql, _QUARANTINED, limit)
    ]
