"""Filing a batch of mails into WICBOX_MAIL exactly once: the store's one entry point for filing.

The run hands over a batch as :class:`~wicbox_bridge.store.mail_insert.NewMail` rows (where each
mail was read, its exact bytes, its parsed record, its project) and gets back one
:class:`FilingAnswer` per mail, in the same order; nothing here calls back into the run.

A mail whose bytes are already filed for this mailbox (UNIQUE (MAILBOX, SHA256)), before or
earlier in the same batch, is answered KNOWN: the run only acknowledges it again. The new mails of
a batch go in with a few multi-row statements in one transaction where the store can
(:func:`~wicbox_bridge.store.mail_insert.files_many_rows`); if the database refuses one of them,
that transaction is rolled back and the batch filed again one mail at a time, each behind its own
savepoint, so the refused mail alone is recorded as quarantined (REFUSED). Any other database
error propagates and rolls the whole batch back, so nothing of it is acknowledged on the server.

With a ``fence`` (the mailbox's lease, :mod:`wicbox_bridge.store.leases`), the batch's transaction
first checks that the lease is still this process's: a process that lost it files nothing
(:class:`~wicbox_bridge.errors.LeaseLost`, the transaction rolled back). On PostgreSQL and SQL
Server the check is folded into the transaction's first statement (it locks the lease row before
the first mail row, and inserts nothing unless the lease holds it): no round trip of its own.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum

from wicbox_bridge.errors import DataRejected
from wicbox_bridge.store.base import Store, savepoint
from wicbox_bridge.store.leases import Fence, fenced
from wicbox_bridge.store.mail_insert import NewMail, files_many_rows, insert_mail, insert_mails
from wicbox_bridge.store.mails import KnownMail, MailStatus, find_mails, insert_quarantined

log = logging.getLogger("wicbox.filing")


class Filed(str, Enum):
    NEW = "new"  # inserted now, STATUS PENDING_ACK
    KNOWN = "known"  # these bytes were filed for this mailbox before, or earlier in this batch
    REFUSED = "refused"  # the database refused the mail: recorded as quarantined, without content


@dataclass(frozen=True)
class FilingAnswer:
    """What the store did with one mail of a batch.

    ``mail_id`` is None only for a REFUSED mail of which not even the quarantine record could be
    stored (the mail then stays on the server). ``quarantined``: the row is (to be) quarantined.
    ``reason``: why a REFUSED mail was refused.
    """

    filed: Filed
    mail_id: int | None
    quarantined: bool = False
    reason: str | None = None


def file_mails(
    store: Store, *, mailbox: str, run_id: int | None, mails: Sequence[NewMail], fence: Fence | None = None
) -> list[FilingAnswer]:
    """File one batch of ``mailbox`` in one transaction; one answer per mail, in order."""
    sha256s = [mail.record.sha256 for mail in mails]
    if files_many_rows(store) and not store.in_transaction:
        known = dict(find_mails(store, mailbox, sha256s))
        if all(sha256 in known for sha256 in sha256s):  # writes nothing: needs no transaction, no fence
            return [_known(known[sha256]) for sha256 in sha256s]
        # Checked before the transaction: only the lease holder files this mailbox, and the fence
        # (checked first in the transaction, in its first statement where the store folds it in)
        # refuses a process that lost the lease since.
        try:
            with store.transaction():
                return _file_together(store, run_id, mails, known, fence)
        except DataRejected as refused:
            log.info(
                "mailbox %s: the database refused a mail of a batch of %d (%s); filing them one by one",
                mailbox,
                len(mails),
                refused.message,
            )
    with fenced(store, fence):
        known = find_mails(store, mailbox, sha256s)
        return _file_one_by_one(store, mailbox, run_id, mails, dict(known))


def _known(found: KnownMail) -> FilingAnswer:
    return FilingAnswer(Filed.KNOWN, found.mail_id, quarantined=found.status.quarantined)


def _file_together(
    store: Store,
    run_id: int | None,
    mails: Sequence[NewMail],
    known: dict[str, KnownMail],
    fence: Fence | None,
) -> list[FilingAnswer]:
    """The new mails of the batch in one transaction of a few statements (the same bytes once),
    ``fence`` checked first (by :func:`insert_mails`, folded into its first statement where it can)."""
    new: dict[str, NewMail] = {}
    for mail in mails:
        sha256 = mail.record.sha256
        if sha256 not in known and sha256 not in new:
            new[sha256] = mail
    mail_ids = insert_mails(store, run_id=run_id, mails=list(new.values()), fence=fence)
    answers = []
    for mail in mails:
        sha256 = mail.record.sha256
        found = known.get(sha256)
        if found is not None:  # filed before, or earlier in this batch
            answers.append(_known(found))
            continue
        mail_id = mail_ids[sha256]
        answers.append(FilingAnswer(Filed.NEW, mail_id))
        known[sha256] = KnownMail(mail_id, MailStatus.PENDING_ACK)
    return answers


def _file_one_by_one(
    store: Store, mailbox: str, run_id: int | None, mails: Sequence[NewMail], known: dict[str, KnownMail]
) -> list[FilingAnswer]:
    """Each mail behind its own savepoint: a mail the database refuses is undone alone."""
    answers = []
    for mail in mails:
        sha256 = mail.record.sha256
        found = known.get(sha256)
        answer = _known(found) if found is not None else _file_one(store, mailbox, run_id, mail)
        if answer.mail_id is not None and found is None:
            status = MailStatus.QUARANTINE_PENDING if answer.quarantined else MailStatus.PENDING_ACK
            known[sha256] = KnownMail(answer.mail_id, status)  # the same bytes twice in one batch
        answers.append(answer)
    return answers


def _file_one(store: Store, mailbox: str, run_id: int | None, mail: NewMail) -> FilingAnswer:
    try:
        with savepoint(store, "wicbox_mail"):
            mail_id = insert_mail(store, run_id=run_id, mail=mail)
    except DataRejected as refused:
        return _quarantine(store, mailbox, run_id, mail, refused)
    return FilingAnswer(Filed.NEW, mail_id)


def _quarantine(
    store: Store, mailbox: str, run_id: int | None, mail: NewMail, refused: DataRejected
) -> FilingAnswer:
    reason = f"the database refused the mail: {refused.message}"
    key = mail.origin.source_id
    log.warning("mailbox %s key %s: %s", mailbox, key, reason)
    try:
        with savepoint(store, "wicbox_quarantine"):
            mail_id = insert_quarantined(
                store,
                run_id=run_id,
                origin=mail.origin,
                raw=mail.raw,
                sha256=mail.record.sha256,
                reason=reason,
            )
    except DataRejected:
        log.error(
            "mailbox %s key %s: not even the quarantine record could be stored; the mail stays on the server",
            mailbox,
            key,
        )
        return FilingAnswer(Filed.REFUSED, None, quarantined=True, reason=reason)
    return FilingAnswer(Filed.REFUSED, mail_id, quarantined=True, reason=reason)
