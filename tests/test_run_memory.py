"""A run holds at most the batches in flight, whatever its size: a real run against the test bed's
Dovecot (IMAPS, XOAUTH2 from the real msal) into each database backend, with the real IMAP session
watched through weak references to every mail it fetched."""

from __future__ import annotations

import gc
import threading
import weakref

import pytest

from tests import adapter_bed
from tests.adapter_bed import IdentityParts, RecordingTokens
from tests.helpers.mailgen import make_mail
from tests.test_imap_adapter import MAILBOX, Bed, imap_bed, open_session
from tools.testbed.dovecot import DovecotServer, append_message
from wicbox_bridge.adapters.base import FetchedMail, MailboxBacklog, MailboxSession, MailRef
from wicbox_bridge.adapters.imap import ImapAdapter
from wicbox_bridge.auth.aadsts import CredentialNames
from wicbox_bridge.auth.accounts import MailboxAccount
from wicbox_bridge.config.dbtarget import DatabaseTarget
from wicbox_bridge.run.runner import RunJob, RunReport, RunSettings, run_mailboxes
from wicbox_bridge.store import open_store
from wicbox_bridge.store.dbapi import DbApiStore

pytestmark = pytest.mark.testbed

BATCH = 4
MAILS = 40  # ten batches: a pass that kept its mails would hold ten times the bound
FILLER = "Beste, dit is een lang bericht.\r\n" * 600  # about 20 KB: the byte budget cuts no batch

identity_parts = adapter_bed.identity_parts


class WatchedSession:
    """The real IMAP session; every mail it fetches is watched through a weak reference, and before
    each fetch the mails of earlier fetches still alive are counted."""

    def __init__(self, session: MailboxSession) -> None:
        self.session = session
        self.validity = session.validity
        self.fetched: list[weakref.ref[FetchedMail]] = []
        self.alive_before_fetch: list[int] = []

    def alive(self) -> int:
        return sum(ref() is not None for ref in self.fetched)

    def list_pending(self, limit: int) -> list[MailRef]:
        return self.session.list_pending(limit)

    def fetch(self, refs: list[MailRef]) -> list[FetchedMail]:
        self.alive_before_fetch.append(self.alive())
        mails = self.session.fetch(refs)
        self.fetched += [weakref.ref(mail) for mail in mails]
        return mails

    def acknowledge(self, refs: list[MailRef]) -> None:
        self.session.acknowledge(refs)

    def quarantine(self, refs: list[MailRef]) -> None:
        self.session.quarantine(refs)

    def backlog(self) -> MailboxBacklog:
        return self.session.backlog()

    def close(self) -> None:
        self.session.close()


@pytest.fixture
def bed(dovecot_clean: DovecotServer, identity_parts: IdentityParts) -> Bed:
    dovecot_clean.add_mailbox(MAILBOX)
    return imap_bed(dovecot_clean, identity_parts)


def deliver(bed: Bed, count: int) -> None:
    with bed.dovecot.admin_session(MAILBOX) as client:
        for number in range(count):
            append_message(client, "INBOX", make_mail(number, body=FILLER))


def watched_run(
    bed: Bed, database_target: DatabaseTarget, settings: RunSettings
) -> tuple[RunReport, WatchedSession]:
    """One real run of the global mailbox with the session watched."""
    tokens: RecordingTokens = bed.delegated()
    sessions: list[WatchedSession] = []

    def open_mailbox(account: MailboxAccount) -> MailboxSession:
        sessions.append(WatchedSession(open_session(bed, tokens)))
        return sessions[-1]

    account = MailboxAccount("global", MAILBOX, None, MAILBOX, None, CredentialNames())
    job = RunJob(
        open_store=lambda: open_store(database_target, timeout_s=10),
        accounts=[account],
        open_mailbox=open_mailbox,
        projects=[],
        settings=settings,
    )
    report = run_mailboxes(job)
    [watched] = sessions
    return report, watched


def test_a_run_holds_at_most_the_batches_in_flight(
    bed: Bed, wic_store: DbApiStore, database_target: DatabaseTarget
) -> None:
    deliver(bed, MAILS)
    settings = RunSettings(max_mails=MAILS, source_folder="INBOX", protocol="imap", fetch_batch=BATCH)
    report, watched = watched_run(bed, database_target, settings)

    assert report.counts.filed == MAILS, report.mailboxes[0].error
    assert len(watched.alive_before_fetch) == MAILS // BATCH
    # The filing thread holds the batch it files, the helper fetches the next one: before each
    # fetch only that one earlier batch may still be alive (two batches are in flight at most).
    assert max(watched.alive_before_fetch) <= BATCH, watched.alive_before_fetch
    gc.collect()
    assert watched.alive() == 0, "the run keeps fetched mails after it ended"
    assert report.mailboxes[0].results == [], "a run (not a dry run) keeps counts, not each mail's result"
    rows = wic_store.query("SELECT COUNT(*) FROM WICBOX_MAIL WHERE STATUS = 'FILED'")
    assert int(rows[0][0]) == MAILS


def test_a_batch_too_large_to_sit_beside_the_one_being_filed_waits_until_that_one_is_filed(
    bed: Bed, wic_store: DbApiStore, database_target: DatabaseTarget
) -> None:
    """Each mail (about 20 KB) is over the byte budget, so a batch of its own, and two of them are
    over what may be in flight together (twice the budget): never two fetched mails alive at once."""
    count = 6
    deliver(bed, count)
    settings = RunSettings(
        max_mails=count, source_folder="INBOX", protocol="imap", fetch_batch=BATCH, fetch_batch_bytes=8_000
    )
    report, watched = watched_run(bed, database_target, settings)

    assert report.counts.filed == count, report.mailboxes[0].error
    assert watched.alive_before_fetch == [0] * count
    rows = wic_store.query("SELECT COUNT(*) FROM WICBOX_MAIL WHERE STATUS = 'FILED'")
    assert int(rows[0][0]) == count


PROJECT_MAILBOXES = tuple(f"project-{number}@klant.example" for number in range(1, 4))


class SharedWatch:
    """Every mail any watched session fetched, and how many of them were alive before each fetch."""

    def __init__(self) -> None:
        self.fetched: list[weakref.ref[FetchedMail]] = []
        self.alive_before_fetch: list[int] = []
        self.lock = threading.Lock()

    def session(self, session: MailboxSession) -> MailboxSession:
        watch = self

        class Watched(WatchedSession):
            def fetch(self, refs: list[MailRef]) -> list[FetchedMail]:
                with watch.lock:
                    watch.alive_before_fetch.append(sum(ref() is not None for ref in watch.fetched))
                mails = self.session.fetch(refs)
                with watch.lock:
                    watch.fetched += [weakref.ref(mail) for mail in mails]
                return mails

        return Watched(session)


def test_passes_at_once_hold_one_large_mail_between_them(
    dovecot_clean: DovecotServer,
    identity_parts: IdentityParts,
    wic_store: DbApiStore,
    database_target: DatabaseTarget,
) -> None:
    """MULTIPLE with three workers over three project mailboxes whose mails are each over the byte
    budget: before any pass fetches, no mail fetched by any pass is still alive."""
    each = 4
    for mailbox in PROJECT_MAILBOXES:
        dovecot_clean.add_mailbox(mailbox)
        dovecot_clean.grant_app_access(identity_parts.directory.confidential_client_sp_id, mailbox)
        with dovecot_clean.admin_session(mailbox) as client:
            for number in range(each):
                append_message(client, "INBOX", make_mail(number, to=mailbox, body=FILLER))
    bed = imap_bed(dovecot_clean, identity_parts)
    tokens = bed.application()
    tokens()  # signed in once before the passes start at once (the test's token cache is one file)
    watch = SharedWatch()

    def open_mailbox(account: MailboxAccount) -> MailboxSession:
        return watch.session(ImapAdapter(bed.settings()).open(account.mailbox, tokens))

    accounts = [
        MailboxAccount(mailbox, mailbox, None, None, None, CredentialNames()) for mailbox in PROJECT_MAILBOXES
    ]
    settings = RunSettings(
        max_mails=each * len(accounts), source_folder="INBOX", protocol="imap", fetch_batch=BATCH,
        fetch_batch_bytes=8_000, workers=3,
    )  # fmt: skip
    job = RunJob(
        open_store=lambda: open_store(database_target, timeout_s=10),
        accounts=accounts,
        open_mailbox=open_mailbox,
        projects=[],
        settings=settings,
    )
    report = run_mailboxes(job)

    assert report.counts.filed == each * len(accounts), [m.error for m in report.mailboxes]
    assert len(watch.alive_before_fetch) == each * len(accounts)
    assert watch.alive_before_fetch == [0] * len(watch.alive_before_fetch), watch.alive_before_fetch
