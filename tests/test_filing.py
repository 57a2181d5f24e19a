"""Filing one fetched batch on both backends: new mails, the same bytes twice in a batch, mails filed
before, a dry run, and a mail the database refuses in the middle of a batch."""

from __future__ import annotations

import hashlib

from tests.helpers.mailgen import make_mail
from wicbox_bridge.adapters.base import FetchedMail, MailRef
from wicbox_bridge.run.filing import MailboxContext, Outcome, file_prepared, prepare_batch
from wicbox_bridge.store import DbApiStore

MAILBOX = "wicbox@klant.example"
REFUSED_SUBJECT = "WEIGEREN"


def fetched(raw: bytes, uid: int) -> FetchedMail:
    return FetchedMail(MailRef(MAILBOX, "INBOX", "11", str(uid), len(raw)), raw, 1_700_000_000.0)


def context(*, dry_run: bool = False) -> MailboxContext:
    return MailboxContext(mailbox=MAILBOX, protocol="imap", run_id=None, projects=(), dry_run=dry_run)


def filed_rows(store: DbApiStore) -> dict[str, tuple[int, str]]:
    rows = store.query("SELECT SHA256, MAIL_ID, STATUS FROM WICBOX_MAIL")
    return {str(sha).strip(): (int(mail_id), str(status).strip()) for sha, mail_id, status in rows}


def sha(raw: bytes) -> str:
    return hashlib.sha256(raw).hexdigest()


def test_new_mails_repeated_bytes_and_mails_filed_before(wic_store: DbApiStore) -> None:
    a, b, c = make_mail(1), make_mail(2), make_mail(3)
    [earlier] = file_prepared(wic_store, context(), prepare_batch([fetched(c, 1)])).results

    batch = file_prepared(
        wic_store, context(), prepare_batch([fetched(a, 2), fetched(b, 3), fetched(a, 4), fetched(c, 5)])
    )

    rows = filed_rows(wic_store)
    assert [(r.ref.key, r.outcome, r.mail_id) for r in batch.results] == [
        ("2", Outcome.FILED, rows[sha(a)][0]),
        ("3", Outcome.FILED, rows[sha(b)][0]),
        ("4", Outcome.DUPLICATE, rows[sha(a)][0]),  # the same bytes later in the same batch
        ("5", Outcome.DUPLICATE, earlier.mail_id),
    ]
    assert sorted(rows) == sorted({sha(a), sha(b), sha(c)})
    assert {status for _, status in rows.values()} == {"PENDING_ACK"}
    assert [(ref.key, mail_id) for ref, mail_id in batch.to_acknowledge] == [
        (result.ref.key, result.mail_id) for result in batch.results
    ]
    assert batch.to_quarantine == []
    assert batch.results[0].message_id == "mail-1@example.org"
    assert batch.results[0].routing.startswith("unassigned: ")


def test_a_dry_run_writes_nothing_and_acknowledges_nothing(wic_store: DbApiStore) -> None:
    a, c = make_mail(1), make_mail(3)
    file_prepared(wic_store, context(), prepare_batch([fetched(c, 1)]))

    batch = file_prepared(
        wic_store, context(dry_run=True), prepare_batch([fetched(a, 2), fetched(a, 3), fetched(c, 4)])
    )

    assert [(r.outcome, r.mail_id, r.subject) for r in batch.results] == [
        (Outcome.WOULD_FILE, None, "Vraag nummer 1"),
        (Outcome.WOULD_FILE, None, "Vraag nummer 1"),
        (Outcome.DUPLICATE, filed_rows(wic_store)[sha(c)][0], None),
    ]
    assert sorted(filed_rows(wic_store)) == [sha(c)]
    assert [ref.key for ref, _ in batch.to_acknowledge] == ["4"]  # only what was filed before


def test_a_refused_mail_is_quarantined_alone_and_the_rest_of_its_batch_filed(wic_store: DbApiStore) -> None:
    if wic_store.dialect == "sqlite":
        wic_store.execute(
            "CREATE TRIGGER TEST_REFUSE BEFORE INSERT ON WICBOX_MAIL "
            f"WHEN NEW.SUBJECT LIKE '%{REFUSED_SUBJECT}%' BEGIN SELECT RAISE(ABORT, 'refused'); END"
        )
    else:
        wic_store.execute(
            "ALTER TABLE WICBOX_MAIL ADD CONSTRAINT TEST_REFUSE "
            f"CHECK (SUBJECT IS NULL OR SUBJECT NOT LIKE '%{REFUSED_SUBJECT}%')"
        )
    mails = [make_mail(1), make_mail(2, subject=f"Graag {REFUSED_SUBJECT}"), make_mail(3)]

    batch = file_prepared(
        wic_store, context(), prepare_batch([fetched(raw, n) for n, raw in enumerate(mails)])
    )

    rows = filed_rows(wic_store)
    assert [r.outcome for r in batch.results] == [Outcome.FILED, Outcome.QUARANTINED, Outcome.FILED]
    assert rows[sha(mails[1])][1] == "QUARANTINE_PENDING"
    assert [ref.key for ref, _ in batch.to_quarantine] == ["1"]
    assert [ref.key for ref, _ in batch.to_acknowledge] == ["0", "2"]
    assert {rows[sha(mails[0])][1], rows[sha(mails[2])][1]} == {"PENDING_ACK"}
