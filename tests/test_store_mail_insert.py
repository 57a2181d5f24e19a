"""Filing rows on both backends: a batch in a few multi-row statements files exactly what one mail
at a time files, byte for byte, also for values large enough to be sent in parts."""

from __future__ import annotations

import hashlib
import random

import pytest

from wicbox_bridge.mail.record import Attachment, MailRecord
from wicbox_bridge.store import DbApiStore
from wicbox_bridge.store.mail_insert import NewMail, files_many_rows, insert_mail, insert_mails
from wicbox_bridge.store.mails import MailOrigin

MAIL_COLUMNS = (
    "MAILBOX, FOLDER, PROTOCOL, UIDVALIDITY, UID, SOURCE_ID, MESSAGE_ID, SHA256, SUBJECT, FROM_ADDR, "
    "TO_ADDRS, CC_ADDRS, SIZE_BYTES, BODY_TEXT, BODY_HTML, RAW_MIME, STATUS, ROUTING, PROBLEMS, PROJECT_ID"
)


def new_mail(number: int, raw: bytes, attachments: tuple[Attachment, ...] = ()) -> NewMail:
    record = MailRecord(
        sha256=hashlib.sha256(raw).hexdigest(),
        size=len(raw),
        message_id=f"<m{number}@klant.example>",
        subject=f"Dossier {number} — één",
        from_addr="Klant <klant@klant.example>",
        to_addrs=("wicbox@wic.example",),
        body_text=f"tekst {number}\n",
        body_html=f"<p>tekst {number}</p>" if number % 2 else None,
        attachments=attachments,
        problems=("a problem",) if number % 3 == 0 else (),
    )
    origin = MailOrigin("WicBox@Wic.example", "INBOX", "imap", str(number), 7, number, None)
    return NewMail(origin, raw, record, None, "unassigned")


def some_mails(count: int, rng: random.Random, size: int = 3000) -> list[NewMail]:
    mails = []
    for number in range(1, count + 1):
        attachments = tuple(
            Attachment(
                f"bijlage-{number}-{index}.pdf", "application/pdf", rng.randbytes(rng.randrange(0, 5000))
            )
            for index in range(number % 4)
        )
        mails.append(new_mail(number, b"Subject: %d\r\n\r\n" % number + rng.randbytes(size), attachments))
    return mails


def stored(store: DbApiStore, mail_id: int) -> tuple[tuple[object, ...], list[tuple[object, ...]]]:
    row = store.query_one(f"SELECT {MAIL_COLUMNS} FROM WICBOX_MAIL WHERE MAIL_ID = ?", (mail_id,))
    assert row is not None
    attachments = store.query(
        "SELECT POSITION, FILENAME, CONTENT_TYPE, SIZE_BYTES, CONTENT FROM WICBOX_ATTACHMENT "
        "WHERE MAIL_ID = ? ORDER BY POSITION",
        (mail_id,),
    )
    normal = tuple(bytes(value) if isinstance(value, (bytes, memoryview)) else value for value in row)
    return normal, [(*row[:4], bytes(row[4])) for row in attachments]


def expected(mail: NewMail) -> tuple[tuple[object, ...], list[tuple[object, ...]]]:
    record = mail.record
    row = (
        "wicbox@wic.example", "INBOX", "imap", 7, mail.origin.uid, mail.origin.source_id, record.message_id,
        record.sha256, record.subject, record.from_addr, "wicbox@wic.example", None, len(mail.raw),
        record.body_text, record.body_html, mail.raw, "PENDING_ACK", "unassigned",
        "a problem" if record.problems else None, None,
    )  # fmt: skip
    attachments = [
        (position, item.filename, item.content_type, item.size, item.content)
        for position, item in enumerate(record.attachments, start=1)
    ]
    return row, attachments


def test_a_batch_in_few_statements_files_every_mail_exactly(wic_store: DbApiStore) -> None:
    # 60 mails with 0-3 attachments each: more bytes than one statement takes (1 MiB).
    mails = some_mails(60, random.Random(4), size=30_000)

    mail_ids = insert_mails(wic_store, run_id=None, mails=mails)

    assert sorted(mail_ids) == sorted(mail.record.sha256 for mail in mails)
    assert len(set(mail_ids.values())) == len(mails)
    for mail in mails:
        assert stored(wic_store, mail_ids[mail.record.sha256]) == expected(mail)
    [(attachments,)] = wic_store.query("SELECT COUNT(*) FROM WICBOX_ATTACHMENT")
    assert attachments == sum(len(mail.record.attachments) for mail in mails)


def test_one_mail_at_a_time_files_the_same_rows(wic_store: DbApiStore) -> None:
    mails = some_mails(5, random.Random(5))

    for mail in mails:
        mail_id = insert_mail(wic_store, run_id=None, mail=mail)
        assert stored(wic_store, mail_id) == expected(mail)


@pytest.mark.parametrize("together", [True, False], ids=["insert_mails", "insert_mail"])
def test_values_larger_than_a_part_round_trip_byte_for_byte(wic_store: DbApiStore, together: bool) -> None:
    rng = random.Random(9)
    big_attachment = Attachment("groot.pdf", "application/pdf", rng.randbytes(9 * 1024 * 1024 + 17))
    large = new_mail(1, b"Subject: groot\r\n\r\n" + rng.randbytes(13 * 1024 * 1024 + 5), (big_attachment,))
    small = some_mails(3, rng)[1:]

    if together:
        mail_ids = insert_mails(wic_store, run_id=None, mails=[small[0], large, small[1]])
    else:
        mail_ids = {
            mail.record.sha256: insert_mail(wic_store, run_id=None, mail=mail) for mail in [large, *small]
        }

    for mail in [large, *small]:
        assert stored(wic_store, mail_ids[mail.record.sha256]) == expected(mail)


def test_both_test_backends_file_many_rows_at_once(wic_store: DbApiStore) -> None:
    # PostgreSQL and SQLite from 3.35 (RETURNING); SQL Server too (OUTPUT ... INTO, see
    # test_sqlserver_statements).
    assert files_many_rows(wic_store)
