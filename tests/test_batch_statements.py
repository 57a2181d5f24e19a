"""What a batch costs the database, counted on the real connection of each backend: the statements
of filing a batch (duplicates check, rows, attachments, routing, the status after the server
action) must not grow with the number of mails in it. On PostgreSQL (and SQL Server) the mails and
their attachments are one statement per chunk; SQLite, in-process, sends them as two. Routing
reads no table (the projects are read once per run); the mailbox state and WICBOX_RUN are written
once per pass and per run."""

from __future__ import annotations

import base64
import random

import pytest

from tests.helpers.mailgen import make_mail
from tests.helpers.statements import counted_statements
from wicbox_bridge.adapters.base import FetchedMail, MailRef
from wicbox_bridge.run.filing import MailboxContext, Outcome, file_prepared, prepare_batch
from wicbox_bridge.run.routing import RoutableProject
from wicbox_bridge.store import DbApiStore
from wicbox_bridge.store.leases import DatabaseClock, Fence, Lease, LeaseOwner, acquire
from wicbox_bridge.store.mails import mark_filed

MAILBOX = "wicbox@klant.example"
PROJECTS = (RoutableProject(1, "BOUW"), RoutableProject(2, "MILIEU", "milieu@klant.example"))
MOST_STATEMENTS = {"sqlite": 6, "postgresql": 4}


def with_attachment(number: int, rng: random.Random) -> bytes:
    content = base64.encodebytes(rng.randbytes(rng.randrange(100, 4000))).replace(b"\n", b"\r\n")
    return (
        (
            f"From: Burger <burger{number}@example.org>\r\nTo: {MAILBOX}\r\n"
            f"Subject: [BOUW] dossier {number} bijlage\r\nMessage-ID: <b{number}@example.org>\r\n"
            'MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="g"\r\n\r\n'
            "--g\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nZie bijlage.\r\n"
            "--g\r\nContent-Type: application/pdf\r\n"
            f'Content-Disposition: attachment; filename="plan-{number}.pdf"\r\n'
            "Content-Transfer-Encoding: base64\r\n\r\n"
        ).encode()
        + content
        + b"--g--\r\n"
    )


def batch_of(first: int, count: int, rng: random.Random) -> list[FetchedMail]:
    mails = []
    for number in range(first, first + count):
        raw = (
            with_attachment(number, rng) if number % 3 == 0 else make_mail(number, to="milieu@klant.example")
        )
        mails.append(FetchedMail(MailRef(MAILBOX, "INBOX", "11", str(number), len(raw)), raw, 1.7e9))
    return mails


def file_and_acknowledge(store: DbApiStore, context: MailboxContext, mails: list[FetchedMail]) -> list[str]:
    """The statements of one batch as a pass sends them: filing, then the status after the
    server action; each mail ends as ``expected``."""
    prepared = prepare_batch(mails)
    with counted_statements(store) as statements:
        batch = file_prepared(store, context, prepared)
        mark_filed(store, [mail_id for _, mail_id in batch.to_acknowledge])
    assert len(batch.to_acknowledge) == len(mails)
    return statements


@pytest.mark.parametrize("leased", [False, True], ids=["no-lease", "lease"])
@pytest.mark.parametrize("own_project", [None, 2], ids=["SINGLE", "MULTIPLE"])
def test_the_statements_of_a_batch_do_not_grow_with_its_mails(
    wic_store: DbApiStore, own_project: int | None, leased: bool
) -> None:
    seed = random.randrange(2**32)
    print(f"seed {seed}")
    rng = random.Random(seed)
    fence = None
    if leased:  # the database's clock, as a run has it
        lease = acquire(wic_store, MAILBOX, LeaseOwner.this_process(), 600, DatabaseClock())
        assert isinstance(lease, Lease), lease
        fence = Fence(lease, DatabaseClock())
    context = MailboxContext(MAILBOX, "imap", None, PROJECTS, own_project_id=own_project, fence=fence)

    few = file_and_acknowledge(wic_store, context, batch_of(1, 5, rng))
    fifty = batch_of(101, 50, rng)
    many = file_and_acknowledge(wic_store, context, fifty)
    again = file_and_acknowledge(wic_store, context, fifty)  # all filed before

    assert len(many) == len(few), f"5 mails: {few}\n50 mails: {many}"
    # duplicates check, mails with their attachments and the fence (SQLite: mails, attachments,
    # and the fence's clock and lease row), commit (SQLite: and BEGIN), the status: one each
    assert len(many) <= MOST_STATEMENTS[wic_store.dialect] + (
        2 if leased and wic_store.dialect == "sqlite" else 0
    ), many
    assert len(again) <= 2, again  # the duplicates check and the status
    rows = wic_store.query("SELECT PROJECT_ID, COUNT(*) FROM WICBOX_MAIL GROUP BY PROJECT_ID")
    assert dict(rows) == ({2: 55} if own_project else {2: 55 - 18, 1: 18}), rows


def test_a_dry_run_batch_is_one_query(wic_store: DbApiStore) -> None:
    context = MailboxContext(MAILBOX, "imap", None, PROJECTS, dry_run=True)
    prepared = prepare_batch(batch_of(1, 50, random.Random(3)))

    with counted_statements(wic_store) as statements:
        batch = file_prepared(wic_store, context, prepared)

    assert {result.outcome for result in batch.results} == {Outcome.WOULD_FILE}
    assert len(statements) == 1, statements
