"""Filing rows on both backends: a batch in a few multi-row statements files exactly what one mail
at a time files, byte for byte, also for values large enough to be sent in parts."""

from __future__ import annotations

import hashlib
import random

import pytest

from wicbox_bridge.errors import DataRejected
from wicbox_bridge.mail.record import Attachment, MailRecord
from wicbox_bridge.store import DbApiStore
from wicbox_bridge.store.filing import Filed, file_mails
from wicbox_bridge.store.mail_insert import NewMail, _check_chunk, files_many_rows, insert_mail, insert_mails
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


def test_attachments_land_on_their_own_mail_in_order_also_for_repeated_bytes(wic_store: DbApiStore) -> None:
    """A batch of mails with 0, 1 and many attachments, some bytes twice: each attachment row has its
    own mail's MAIL_ID and its POSITION, the repeated mail is filed (and its attachments) once."""
    seed = random.randrange(2**32)
    print(f"seed {seed}")
    rng = random.Random(seed)
    counts = [0, 1, 7, 0, 3, 1, 12]
    distinct = [
        new_mail(
            number,
            b"Subject: %d\r\n\r\n" % number + rng.randbytes(rng.randrange(10, 40_000)),
            tuple(
                Attachment(
                    f"b-{number}-{index}.bin",
                    "application/octet-stream",
                    rng.randbytes(rng.randrange(0, 9000)),
                )
                for index in range(count)
            ),
        )
        for number, count in enumerate(counts, start=1)
    ]
    batch = [*distinct, distinct[2], distinct[0], distinct[6]]
    rng.shuffle(batch)

    answers = file_mails(wic_store, mailbox="wicbox@wic.example", run_id=None, mails=batch)

    by_sha: dict[str, int] = {}
    for mail, answer in zip(batch, answers, strict=True):
        assert answer.mail_id is not None
        if mail.record.sha256 in by_sha:  # the same bytes earlier in the batch
            assert (answer.filed, answer.mail_id) == (Filed.KNOWN, by_sha[mail.record.sha256])
        else:
            assert answer.filed is Filed.NEW
            by_sha[mail.record.sha256] = answer.mail_id
    assert sum(answer.filed is Filed.NEW for answer in answers) == len(distinct)
    for mail in distinct:
        assert stored(wic_store, by_sha[mail.record.sha256]) == expected(mail)
    [(rows,)] = wic_store.query("SELECT COUNT(*) FROM WICBOX_ATTACHMENT")
    assert rows == sum(counts)


def test_a_refused_attachment_quarantines_only_its_mail(wic_store: DbApiStore) -> None:
    """An attachment row the database refuses fails the batch's statement (on PostgreSQL the one
    statement with every mail of the chunk): the batch is filed again one by one and only the mail of
    that attachment is quarantined; the others land with their attachments."""
    if wic_store.dialect == "sqlite":
        wic_store.execute(
            "CREATE TRIGGER TEST_REFUSE BEFORE INSERT ON WICBOX_ATTACHMENT "
            "WHEN NEW.FILENAME LIKE '%WEIGEREN%' BEGIN SELECT RAISE(ABORT, 'refused'); END"
        )
    else:
        wic_store.execute(
            "ALTER TABLE WICBOX_ATTACHMENT ADD CONSTRAINT TEST_REFUSE CHECK (FILENAME NOT LIKE '%WEIGEREN%')"
        )
    mails = some_mails(6, random.Random(11))
    refused = new_mail(
        99, b"Subject: 99\r\n\r\nweigeren", (Attachment("ok.pdf", "application/pdf", b"%PDF"),
                                           Attachment("WEIGEREN.pdf", "application/pdf", b"%PDF"))
    )  # fmt: skip
    batch = [*mails[:3], refused, *mails[3:]]

    answers = file_mails(wic_store, mailbox="wicbox@wic.example", run_id=None, mails=batch)

    assert [answer.filed for answer in answers] == [Filed.NEW] * 3 + [Filed.REFUSED] + [Filed.NEW] * 3
    assert answers[3].quarantined
    for mail, answer in zip(batch, answers, strict=True):
        assert answer.mail_id is not None
        if mail is not refused:
            assert stored(wic_store, answer.mail_id) == expected(mail)
    [(rows,)] = wic_store.query(
        "SELECT COUNT(*) FROM WICBOX_ATTACHMENT WHERE MAIL_ID = ?", (answers[3].mail_id,)
    )
    assert rows == 0


def test_a_chunk_whose_answer_misses_a_key_or_an_attachment_row_is_refused_as_data() -> None:
    """A statement of a T-SQL batch that failed without its error reaching the client: the keys or
    the attachment count that come back do not match the chunk. Refused as data (DataRejected), so
    filing rolls the batch back and files its mails one at a time, quarantining the refused one."""
    chunk: list[tuple[tuple[object, ...], list[tuple[object, ...]]]] = [((), [(), ()]), ((), [])]
    _check_chunk(chunk, [(1, "a", 2), (2, "b", 2)])  # two keys, two attachment rows: filed
    with pytest.raises(DataRejected, match="came back as 1 keys"):
        _check_chunk(chunk, [(1, "a", 2)])
    with pytest.raises(DataRejected, match=r"\[1\] attachment rows"):
        _check_chunk(chunk, [(1, "a", 1), (2, "b", 1)])
