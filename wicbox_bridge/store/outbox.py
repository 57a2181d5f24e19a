"""WICBOX_OUTBOX and WICBOX_OUTBOX_ATTACHMENT: mails WIC hands over, and what became of them.

A row moves PENDING -> SENDING -> SENT, or to FAILED with the server's answer. SENDING is written,
with the Message-ID, and committed before the submission starts; a row still SENDING when
``wicbox send`` starts was interrupted and is resolved first (see :mod:`wicbox_bridge.send.outbox`).
Claiming a row is a conditional UPDATE (``WHERE STATUS = 'PENDING'``), so two senders can never
both take it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Final

from wicbox_bridge.mail.outgoing import OutgoingAttachment
from wicbox_bridge.store.base import Row, Store, atomic, insert_returning_identity
from wicbox_bridge.store.mails import NAME_LIMIT
from wicbox_bridge.store.times import as_utc, naive_utc, utc_now


class OutboxStatus(str, Enum):
    PENDING = "PENDING"
    SENDING = "SENDING"
    SENT = "SENT"
    FAILED = "FAILED"
    UNKNOWN = "UNKNOWN"  # interrupted, and whether it was sent cannot be checked: held until released


@dataclass(frozen=True)
class OutboxRow:
    """One outbox mail as stored (addresses as WIC wrote them)."""

    outbox_id: int
    from_addr: str | None
    to_addrs: str
    cc_addrs: str
    bcc_addrs: str
    subject: str
    body_text: str | None
    body_html: str | None
    raw_mime: bytes | None = field(repr=False)
    status: OutboxStatus
    attempts: int
    last_error: str | None
    message_id: str | None
    next_attempt_at: dt.datetime | None
    created_at: dt.datetime | None


_COLUMNS: Final = (
    "OUTBOX_ID, FROM_ADDR, TO_ADDRS, CC_ADDRS, BCC_ADDRS, SUBJECT, BODY_TEXT, BODY_HTML, RAW_MIME, "
    "STATUS, ATTEMPTS, LAST_ERROR, MESSAGE_ID, NEXT_ATTEMPT_AT, CREATED_AT"
)
_INSERT: Final = (
    "INSERT INTO WICBOX_OUTBOX (FROM_ADDR, TO_ADDRS, CC_ADDRS, BCC_ADDRS, SUBJECT, BODY_TEXT, BODY_HTML, "
    "RAW_MIME, STATUS, ATTEMPTS, CREATED_AT, SOURCE) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 0, ?, ?)"
)
_INSERT_ATTACHMENT: Final = (
    "INSERT INTO WICBOX_OUTBOX_ATTACHMENT (OUTBOX_ID, POSITION, FILENAME, CONTENT_TYPE, CONTENT) "
    "VALUES (?, ?, ?, ?, ?)"
)
_MESSAGE_ID_LIMIT: Final = 998
SOURCE_LIMIT: Final = 100
RELAY_SOURCE_PREFIX: Final = "relay:"


def _text(value: object) -> str:
    return "" if value is None else str(value)


def _row(row: Row) -> OutboxRow:
    raw = row[8]
    return OutboxRow(
        outbox_id=int(row[0]),
        from_addr=None if row[1] is None or not str(row[1]).strip() else str(row[1]).strip(),
        to_addrs=_text(row[2]),
        cc_addrs=_text(row[3]),
        bcc_addrs=_text(row[4]),
        subject=_text(row[5]),
        body_text=None if row[6] is None else str(row[6]),
        body_html=None if row[7] is None else str(row[7]),
        raw_mime=None if raw is None else bytes(raw),
        status=OutboxStatus(str(row[9]).strip()),
        attempts=int(row[10] or 0),
        last_error=None if row[11] is None else str(row[11]),
        message_id=None if row[12] is None or not str(row[12]).strip() else str(row[12]).strip(),
        next_attempt_at=as_utc(row[13]),
        created_at=as_utc(row[14]),
    )


def enqueue(
    store: Store,
    *,
    from_addr: str | None,
    to: str = "",
    cc: str = "",
    bcc: str = "",
    subject: str = "",
    body_text: str | None = None,
    body_html: str | None = None,
    raw_mime: bytes | None = None,
    attachments: Sequence[OutgoingAttachment] = (),
    source: str | None = None,
) -> int:
    """Insert a PENDING mail with its attachments (as WIC does); its OUTBOX_ID.

    ``source`` is None for WIC's own mails, ``relay:<account>`` for a message the relay took.
    """
    with atomic(store):
        outbox_id = insert_returning_identity(
            store,
            _INSERT,
            (
                from_addr,
                to or None,
                cc or None,
                bcc or None,
                subject or None,
                body_text,
                body_html,
                raw_mime,
                OutboxStatus.PENDING.value,
                utc_now(),
                None if source is None else source[:SOURCE_LIMIT],
            ),
            "OUTBOX_ID",
        )
        for position, attachment in enumerate(attachments, start=1):
            store.execute(
                _INSERT_ATTACHMENT,
                (
                    outbox_id,
                    position,
                    attachment.filename[:NAME_LIMIT],
                    attachment.content_type[:NAME_LIMIT],
                    attachment.content,
                ),
            )
    return outbox_id


def due_rows(store: Store, now: dt.datetime, limit: int) -> list[OutboxRow]:
    """PENDING rows whose next attempt is due, oldest first, at most ``limit``."""
    ids = store.query(
        "SELECT OUTBOX_ID FROM WICBOX_OUTBOX WHERE STATUS = ? AND (NEXT_ATTEMPT_AT IS NULL OR "
        "NEXT_ATTEMPT_AT <= ?) ORDER BY OUTBOX_ID",
        (OutboxStatus.PENDING.value, naive_utc(now)),
    )
    rows = (get_row(store, int(found[0])) for found in ids[:limit])
    return [row for row in rows if row is not None]


def rows_with_status(store: Store, status: OutboxStatus) -> list[OutboxRow]:
    found = store.query(
        f"SELECT {_COLUMNS} FROM WICBOX_OUTBOX WHERE STATUS = ? ORDER BY OUTBOX_ID",  # noqa: S608 - constant
        (status.value,),
    )
    return [_row(row) for row in found]


def get_row(store: Store, outbox_id: int) -> OutboxRow | None:
    row = store.query_one(
        f"SELECT {_COLUMNS} FROM WICBOX_OUTBOX WHERE OUTBOX_ID = ?",  # noqa: S608 - constant
        (outbox_id,),
    )
    return None if row is None else _row(row)


def attachments_of(store: Store, outbox_id: int) -> tuple[OutgoingAttachment, ...]:
    rows = store.query(
        "SELECT FILENAME, CONTENT_TYPE, CONTENT FROM WICBOX_OUTBOX_ATTACHMENT WHERE OUTBOX_ID = ? "
        "ORDER BY POSITION, ATTACHMENT_ID",
        (outbox_id,),
    )
    return tuple(OutgoingAttachment(str(row[0]), str(row[1]), bytes(row[2])) for row in rows)


def claim_for_sending(store: Store, outbox_id: int, message_id: str | None) -> bool:
    """PENDING -> SENDING with the Message-ID, committed; False when the row was not PENDING any more."""
    changed = store.execute(
        "UPDATE WICBOX_OUTBOX SET STATUS = ?, MESSAGE_ID = ?, ATTEMPTS = ATTEMPTS + 1 "
        "WHERE OUTBOX_ID = ? AND STATUS = ?",
        (
            OutboxStatus.SENDING.value,
            None if message_id is None else message_id[:_MESSAGE_ID_LIMIT],
            outbox_id,
            OutboxStatus.PENDING.value,
        ),
    )
    return changed == 1


def mark_sent(
    store: Store, outbox_id: int, sent_at: dt.datetime, note: str | None = None, recipients: int | None = None
) -> None:
    """SENT at ``sent_at``; ``recipients``: how many envelope recipients it had (the daily limit)."""
    store.execute(
        "UPDATE WICBOX_OUTBOX SET STATUS = ?, SENT_AT = ?, NEXT_ATTEMPT_AT = NULL, LAST_ERROR = ?, "
        "RECIPIENT_COUNT = ? WHERE OUTBOX_ID = ?",
        (OutboxStatus.SENT.value, naive_utc(sent_at), note, recipients, outbox_id),
    )


def park_unknown(store: Store, outbox_id: int, reason: str) -> None:
    """An interrupted mail that cannot be looked up: never sent again without an administrator."""
    store.execute(
        "UPDATE WICBOX_OUTBOX SET STATUS = ?, NEXT_ATTEMPT_AT = NULL, LAST_ERROR = ? WHERE OUTBOX_ID = ?",
        (OutboxStatus.UNKNOWN.value, reason, outbox_id),
    )


RELEASED = "released by an administrator: sent again"


def release_unknown(store: Store, outbox_id: int) -> bool:
    """An UNKNOWN mail back to PENDING (an administrator found it was not received); False: not UNKNOWN."""
    row = get_row(store, outbox_id)
    if row is None or row.status is not OutboxStatus.UNKNOWN:
        return False
    store.execute(
        "UPDATE WICBOX_OUTBOX SET STATUS = ?, NEXT_ATTEMPT_AT = NULL, LAST_ERROR = ? "
        "WHERE OUTBOX_ID = ? AND STATUS = ?",
        (OutboxStatus.PENDING.value, RELEASED, outbox_id, OutboxStatus.UNKNOWN.value),
    )
    return True


def mark_failed(store: Store, outbox_id: int, error: str) -> None:
    store.execute(
        "UPDATE WICBOX_OUTBOX SET STATUS = ?, LAST_ERROR = ?, NEXT_ATTEMPT_AT = NULL WHERE OUTBOX_ID = ?",
        (OutboxStatus.FAILED.value, error, outbox_id),
    )


def reschedule(store: Store, outbox_id: int, error: str | None, next_attempt_at: dt.datetime | None) -> None:
    """Back to PENDING (the Message-ID is kept, so a later attempt sends the same one)."""
    store.execute(
        "UPDATE WICBOX_OUTBOX SET STATUS = ?, LAST_ERROR = ?, NEXT_ATTEMPT_AT = ? WHERE OUTBOX_ID = ?",
        (
            OutboxStatus.PENDING.value,
            error,
            None if next_attempt_at is None else naive_utc(next_attempt_at),
            outbox_id,
        ),
    )


def recipients_sent_since(store: Store, since: dt.datetime) -> list[tuple[str | None, int]]:
    """(FROM_ADDR, recipients) of the mails sent since ``since`` (a mail of an older version: 1)."""
    rows = store.query(
        "SELECT FROM_ADDR, RECIPIENT_COUNT FROM WICBOX_OUTBOX WHERE STATUS = ? AND SENT_AT >= ?",
        (OutboxStatus.SENT.value, naive_utc(since)),
    )
    return [
        (None if row[0] is None else str(row[0]), int(row[1]) if row[1] is not None else 1) for row in rows
    ]


def sent_since(store: Store, since: dt.datetime) -> list[tuple[str | None, dt.datetime]]:
    """(FROM_ADDR, SENT_AT) of the mails sent since ``since``: what the submission limit counts."""
    rows = store.query(
        "SELECT FROM_ADDR, SENT_AT FROM WICBOX_OUTBOX WHERE STATUS = ? AND SENT_AT >= ?",
        (OutboxStatus.SENT.value, naive_utc(since)),
    )
    found = []
    for row in rows:
        sent_at = as_utc(row[1])
        if sent_at is not None:
            found.append((None if row[0] is None else str(row[0]), sent_at))
    return found


def outbox_has_work(store: Store, now: dt.datetime) -> bool:
    """Whether a delivery has anything to do: a due PENDING row, or a SENDING one to resolve."""
    found = store.query_one(
        "SELECT 1 FROM WICBOX_OUTBOX WHERE STATUS = ? OR (STATUS = ? AND (NEXT_ATTEMPT_AT IS NULL OR "
        "NEXT_ATTEMPT_AT <= ?))",
        (OutboxStatus.SENDING.value, OutboxStatus.PENDING.value, naive_utc(now)),
    )
    return found is not None


def outbox_senders(store: Store, limit: int = 50) -> list[str]:
    """The distinct From addresses WIC has put in the outbox (for `wicbox check --powershell`)."""
    rows = store.query("SELECT DISTINCT FROM_ADDR FROM WICBOX_OUTBOX WHERE FROM_ADDR IS NOT NULL")
    return sorted({str(row[0]).strip() for row in rows if row[0] and str(row[0]).strip()})[:limit]


def outbox_in_use(store: Store) -> bool:
    """Whether WIC has ever handed a mail to the outbox (``wicbox check`` then requires SMTP)."""
    return store.query_one("SELECT 1 FROM WICBOX_OUTBOX WHERE OUTBOX_ID IS NOT NULL") is not None


@dataclass(frozen=True)
class RelayFailure:
    outbox_id: int
    source: str
    from_addr: str | None
    subject: str
    error: str


@dataclass(frozen=True)
class RelaySummary:
    """What the relay handed to the outbox: taken/sent/failed since a moment, and waiting now."""

    accepted: int
    sent: int
    failed: int
    waiting: int
    held: int
    last_accepted_at: dt.datetime | None
    failures: tuple[RelayFailure, ...]


def relay_summary(store: Store, since: dt.datetime, failures: int = 5) -> RelaySummary:
    """Counts over the relayed mails (SOURCE 'relay:...'): accepted, sent and failed since ``since``,
    waiting (PENDING or SENDING) and held (UNKNOWN) now, and the latest ``failures`` failed ones."""
    pattern = RELAY_SOURCE_PREFIX + "%"
    when = naive_utc(since)
    row = store.query_one(
        "SELECT "
        "SUM(CASE WHEN CREATED_AT >= ? THEN 1 ELSE 0 END), "
        "SUM(CASE WHEN STATUS = ? AND SENT_AT >= ? THEN 1 ELSE 0 END), "
        "SUM(CASE WHEN STATUS = ? AND CREATED_AT >= ? THEN 1 ELSE 0 END), "
        "SUM(CASE WHEN STATUS IN (?, ?) THEN 1 ELSE 0 END), "
        "SUM(CASE WHEN STATUS = ? THEN 1 ELSE 0 END), "
        "MAX(CREATED_AT) "
        "FROM WICBOX_OUTBOX WHERE SOURCE LIKE ?",
        (
            when,
            OutboxStatus.SENT.value,
            when,
            OutboxStatus.FAILED.value,
            when,
            OutboxStatus.PENDING.value,
            OutboxStatus.SENDING.value,
            OutboxStatus.UNKNOWN.value,
            pattern,
        ),
    )
    counts = [int(value or 0) for value in (row[:5] if row else (0, 0, 0, 0, 0))]
    failed = store.query(
        "SELECT OUTBOX_ID, SOURCE, FROM_ADDR, SUBJECT, LAST_ERROR FROM WICBOX_OUTBOX "
        "WHERE SOURCE LIKE ? AND STATUS = ? AND CREATED_AT >= ? ORDER BY OUTBOX_ID DESC",
        (pattern, OutboxStatus.FAILED.value, when),
    )[:failures]
    return RelaySummary(
        accepted=counts[0],
        sent=counts[1],
        failed=counts[2],
        waiting=counts[3],
        held=counts[4],
        last_accepted_at=as_utc(row[5]) if row else None,
        failures=tuple(
            RelayFailure(
                int(r[0]), _text(r[1]), None if r[2] is None else str(r[2]), _text(r[3]), _text(r[4])
            )
            for r in failed
        ),
    )
