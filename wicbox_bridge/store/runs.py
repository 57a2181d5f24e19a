"""WICBOX_RUN: one row per run, for monitoring (``wicbox status``) and support."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from enum import Enum
from typing import Final

from wicbox_bridge.errors import with_fix
from wicbox_bridge.store.base import Store, atomic
from wicbox_bridge.store.times import utc_now


class RunOutcome(str, Enum):
    RUNNING = "RUNNING"
    OK = "OK"
    PARTIAL = "PARTIAL"
    FAILED = "FAILED"
    INTERRUPTED = "INTERRUPTED"


@dataclass(frozen=True)
class RunCounts:
    mailboxes: int = 0
    failed_mailboxes: int = 0
    fetched: int = 0
    filed: int = 0
    duplicates: int = 0
    unassigned: int = 0
    quarantined: int = 0


_MESSAGE_LIMIT: Final = 4000


def start_run(
    store: Store, *, mode: str, max_mails: int, host: str, pid: int, started_at: dt.datetime
) -> int:
    """Insert the RUNNING row of a new run; its RUN_ID."""
    key = str(uuid.uuid4())
    with atomic(store):
        store.execute(
            "INSERT INTO WICBOX_RUN (RUN_KEY, MODE, HOST_NAME, PROCESS_ID, STARTED_AT, MAX_MAILS, OUTCOME) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (key, mode, host[:255], pid, started_at, max_mails, RunOutcome.RUNNING.value),
        )
        row = store.query_one("SELECT RUN_ID FROM WICBOX_RUN WHERE RUN_KEY = ?", (key,))
    if row is None:  # pragma: no cover - inserted just above
        raise RuntimeError("the run row just inserted cannot be found")
    return int(row[0])


def finish_run(
    store: Store, run_id: int, *, counts: RunCounts, outcome: RunOutcome, exit_code: int, message: str | None
) -> None:
    """Record how a run ended."""
    store.execute(
        "UPDATE WICBOX_RUN SET FINISHED_AT = ?, MAILBOXES = ?, FAILED_MAILBOXES = ?, FETCHED = ?, FILED = ?, "
        "DUPLICATES = ?, UNASSIGNED = ?, QUARANTINED = ?, OUTCOME = ?, EXIT_CODE = ?, MESSAGE = ? "
        "WHERE RUN_ID = ?",
        (
            utc_now(),
            counts.mailboxes,
            counts.failed_mailboxes,
            counts.fetched,
            counts.filed,
            counts.duplicates,
            counts.unassigned,
            counts.quarantined,
            outcome.value,
            exit_code,
            None if message is None else message[:_MESSAGE_LIMIT],
            run_id,
        ),
    )


def mark_interrupted_runs(store: Store, host: str) -> int:
    """Runs of this host still RUNNING while we hold the run lock were killed: mark them INTERRUPTED."""
    return store.execute(
        "UPDATE WICBOX_RUN SET OUTCOME = ?, MESSAGE = ? WHERE OUTCOME = ? AND HOST_NAME = ?",
        (
            RunOutcome.INTERRUPTED.value,
            "the process ended before the run finished (killed, crashed or the machine stopped)",
            RunOutcome.RUNNING.value,
            host[:255],
        ),
    )


UNKNOWN_MODE: Final = "-"
"""MODE of a run that stopped before its parameters were read (the account mode is not known)."""


def record_failed_run(
    store: Store,
    *,
    host: str,
    pid: int,
    started_at: dt.datetime,
    exit_code: int,
    message: str,
    fix: str | None,
) -> int:
    """Record a run that stopped before it started reading (its parameters, its account plan): one
    FAILED row with its start and end, exit code, and the error with its fix (:func:`with_fix`).

    Without it a run that exits 2 on its configuration would be invisible to ``wicbox status``.
    """
    run_id = start_run(store, mode=UNKNOWN_MODE, max_mails=0, host=host, pid=pid, started_at=started_at)
    finish_run(
        store,
        run_id,
        counts=RunCounts(),
        outcome=RunOutcome.FAILED,
        exit_code=exit_code,
        message=with_fix(message, fix),
    )
    return run_id
