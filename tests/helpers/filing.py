"""The exactly-once assertion of the filing tests, and what it looks at: the rows of WICBOX_MAIL
and every folder of the test mailbox."""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Sequence

from tests.plugins.wic import Mailroom

PROCESSED = "WICBOX/Processed"


def sha256_of(raw: bytes) -> str:
    return hashlib.sha256(raw).hexdigest()


def mailbox_contents(room: Mailroom) -> dict[str, Counter[bytes]]:
    """Every non-empty folder of the mailbox and the mails in it (deleted-flagged ones too)."""
    contents: dict[str, Counter[bytes]] = {}
    for folder in room.dovecot.folders(room.mailbox):
        if folder == "WICBOX":
            continue  # the parent folder of Processed and Failed holds no mail
        mails = Counter(message.raw for message in room.messages(folder))
        if mails:
            contents[folder] = mails
    return contents


def assert_filed_exactly_once(room: Mailroom, delivered: Sequence[bytes], context: str = "") -> None:
    """Every delivered mail filed once with its exact bytes, STATUS FILED, and in Processed once;
    the inbox empty and no mail anywhere else."""
    assert_rows_filed_exactly_once(room, delivered, context)
    assert mailbox_contents(room) == {PROCESSED: Counter(delivered)}, context


def assert_rows_filed_exactly_once(room: Mailroom, delivered: Sequence[bytes], context: str = "") -> None:
    """Every delivered mail has exactly one WICBOX_MAIL row, with its exact bytes, STATUS FILED."""
    rows = room.filed()
    expected = {sha256_of(raw): raw for raw in delivered}
    assert len(expected) == len(delivered), "the test delivered the same mail twice"
    assert len(rows) == len(delivered), f"{len(rows)} rows for {len(delivered)} mails {context}"
    assert {row.sha256 for row in rows} == set(expected), context
    wrong_bytes = [row.mail_id for row in rows if row.raw != expected[row.sha256]]
    assert wrong_bytes == [], f"RAW_MIME differs from the delivered mail {context}"
    not_filed = [(row.mail_id, row.status, row.error) for row in rows if row.status != "FILED"]
    assert not_filed == [], context
