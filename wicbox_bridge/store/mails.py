"""WICBOX_MAIL and WICBOX_ATTACHMENT: filing mails exactly once, and what became of them.

A mail's identity is (MAILBOX, SHA256): the mailbox (lower case) and the hash of its exact bytes.
Message-IDs are stored but are not the key: senders reuse them, and two different mails must
never collapse into one. Filing inserts the mail and its attachments in one transaction with
STATUS = PENDING_ACK; the server action (move, delete, mark read) comes after the commit, and only
then does STATUS become FILED.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from enum import Enum
from typing import Final, TypeVar

from wicbox_bridge.store.base import Store, atomic, insert_returning_identity
from wicbox_bridge.store.times import naive_utc, utc_now

T = TypeVar("T")


class MailStatus(str, Enum):
    PENDING_ACK = "PENDING_ACK"
    FILED = "FILED"
    QUARANTINE_PENDING = "QUARANTINE_PENDING"
    QUARANTINED = "QUARANTINED"

    @property
    def quarantined(self) -> bool:
        return self in (MailStatus.QUARANTINE_PENDING, MailStatus.QUARANTINED)


@dataclass(frozen=True)
class MailOrigin:
    """Where a mail was read: mailbox, folder, protocol and the server's id for it."""

    mailbox: str
    folder: str
    protocol: str
    source_id: str
    uidvalidity: int | None
    uid: int | None
    received_at: dt.datetime | None


@dataclass(frozen=True)
class KnownMail:
    mail_id: int
    status: MailStatus


@dataclass(frozen=True)
class PendingAck:
    """A filed mail whose server action was not confirmed (the process stopped in between)."""

    mail_id: int
    status: MailStatus
    source_id: str
    uidvalidity: int | None


NAME_LIMIT: Final = 255  # file names and content types of attachments
COLUMN_LIMITS: Final = {"MAILBOX": 320, "FOLDER": 400, "SOURCE_ID": 512, "MESSAGE_ID": 998, "ROUTING": 400}
_IN_CHUNK: Final = 400

INSERT_MAIL_COLUMNS: Final = (
    "INSERT INTO WICBOX_MAIL (RUN_ID, PROJECT_ID, MAILBOX, FOLDER, PROTOCOL, UIDVALIDITY, UID, SOURCE_ID, "
    "MESSAGE_ID, SHA256, SUBJECT, FROM_ADDR, TO_ADDRS, CC_ADDRS, SENT_AT, RECEIVED_AT, SIZE_BYTES, "
    "BODY_TEXT, BODY_HTML, RAW_MIME, STATUS, ROUTING, PROBLEMS, ERROR, FILED_AT)"
)
MAIL_ROW: Final = "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"


def normalized_mailbox(mailbox: str) -> str:
    return mailbox.strip().lower()


def bounded(column: str, value: str | None) -> str | None:
    """``value`` cut to the length of ``column`` (one of the columns in ``COLUMN_LIMITS``)."""
    limit = COLUMN_LIMITS[column]
    return value if value is None or len(value) <= limit else value[:limit]


def find_mails(store: Store, mailbox: str, sha256s: Sequence[str]) -> dict[str, KnownMail]:
    """The mails among ``sha256s`` already filed for this mailbox, by hash (one query per 400)."""
    found: dict[str, KnownMail] = {}
    unique = sorted(set(sha256s))
    for chunk in _chunks(unique):
        marks = ", ".join("?" for _ in chunk)
        rows = store.query(
            f"SELECT SHA256, MAIL_ID, STATUS FROM WICBOX_MAIL WHERE MAILBOX = ? AND SHA256 IN ({marks})",  # noqa: S608 - only ? marks
            (normalized_mailbox(mailbox), *chunk),
        )
        for sha256, mail_id, status in rows:
            found[str(sha256).strip()] = KnownMail(int(mail_id), MailStatus(str(status).strip()))
    return found


def insert_quarantined(
    store: Store, *, run_id: int | None, origin: MailOrigin, raw: bytes, sha256: str, reason: str
) -> int:
    """Record a mail that could not be filed, without its content (STATUS = QUARANTINE_PENDING)."""
    mailbox = normalized_mailbox(origin.mailbox)
    values = (
        run_id,
        None,
        bounded("MAILBOX", mailbox),
        bounded("FOLDER", origin.folder),
        origin.protocol,
        origin.uidvalidity,
        origin.uid,
        bounded("SOURCE_ID", origin.source_id),
        None,
        sha256,
        None,
        None,
        None,
        None,
        None,
        naive_utc(origin.received_at),
        len(raw),
        None,
        None,
        None,
        MailStatus.QUARANTINE_PENDING.value,
        None,
        None,
        reason,
        utc_now(),
    )
    with atomic(store):
        return insert_returning_identity(store, f"{INSERT_MAIL_COLUMNS} VALUES {MAIL_ROW}", values, "MAIL_ID")


def _chunks(values: Sequence[T]) -> Iterable[Sequence[T]]:
    for start in range(0, len(values), _IN_CHUNK):
        yield values[start : start + _IN_CHUNK]


def _set_status(store: Store, mail_ids: Sequence[int], status: MailStatus) -> None:
    """One UPDATE per 400 mails; several in one transaction (one alone is atomic by itself, and a
    transaction around it would cost the batch two more round trips)."""
    now = utc_now()
    chunks = list(_chunks(mail_ids))
    with atomic(store) if len(chunks) > 1 else nullcontext():
        for chunk in chunks:
            marks = ", ".join("?" for _ in chunk)
            store.execute(
                f"UPDATE WICBOX_MAIL SET STATUS = ?, ACKED_AT = ? WHERE MAIL_ID IN ({marks})",  # noqa: S608 - only ? marks
                (status.value, now, *chunk),
            )


def mark_filed(store: Store, mail_ids: Sequence[int]) -> None:
    """The server action for these filed mails is done."""
    _set_status(store, mail_ids, MailStatus.FILED)


def mark_quarantined(store: Store, mail_ids: Sequence[int]) -> None:
    """These mails are in the failed folder now."""
    _set_status(store, mail_ids, MailStatus.QUARANTINED)


def mailboxes_with_pending_acks(store: Store, folder: str) -> set[str]:
    """The mailboxes (normalized) with a mail in ``folder`` whose server action was never confirmed:
    one query for every mailbox of a run."""
    rows = store.query(
        "SELECT DISTINCT MAILBOX FROM WICBOX_MAIL WHERE FOLDER = ? AND STATUS IN (?, ?)",
        (folder, MailStatus.PENDING_ACK.value, MailStatus.QUARANTINE_PENDING.value),
    )
    return {str(row[0]) for row in rows}


def pending_acks(store: Store, mailbox: str, folder: str) -> list[PendingAck]:
    """Mails of this mailbox folder whose server action was never confirmed."""
    rows = store.query(
        "SELECT MAIL_ID, STATUS, SOURCE_ID, UIDVALIDITY FROM WICBOX_MAIL "
        "WHERE MAILBOX = ? AND FOLDER = ? AND STATUS IN (?, ?) ORDER BY MAIL_ID",
        (
            normalized_mailbox(mailbox),
            folder,
            MailStatus.PENDING_ACK.value,
            MailStatus.QUARANTINE_PENDING.value,
        ),
    )
    return [
        PendingAck(
            int(row[0]), MailStatus(str(row[1]).strip()), str(row[2]), None if row[3] is None else int(row[3])
        )
        for row in rows
    ]


def last_served(store: Store, since: dt.datetime) -> dict[str, int]:
    """The newest MAIL_ID per mailbox (normalized) among the mails filed since ``since``: the
    order in which a run opens its mailboxes (least recently served first). One query per run,
    bounded by the FILED_AT index."""
    rows = store.query(
        "SELECT MAILBOX, MAX(MAIL_ID) FROM WICBOX_MAIL WHERE FILED_AT >= ? GROUP BY MAILBOX",
        (naive_utc(since),),
    )
    return {str(row[0]): int(row[1]) for row in rows}
