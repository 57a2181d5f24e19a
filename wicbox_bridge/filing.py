"""Filing fetched mails into the database exactly once, and deciding what the server does with each.

For each fetched mail: a mail whose bytes are already filed for this mailbox is only acknowledged
again (the process stopped after the commit, before the server action); otherwise it is parsed,
routed and inserted — a whole batch in one transaction (see :func:`file_prepared`). The
caller then applies the server actions the :class:`BatchResult` lists, and only after that marks
them done. A mail the database refuses (:class:`~wicbox_bridge.errors.DataRejected`) is recorded
as quarantined and moved to the failed folder; any other database error propagates, so nothing
more is acknowledged on the server.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import Enum

from wicbox_bridge.adapters.base import FetchedMail, MailRef
from wicbox_bridge.errors import DataRejected
from wicbox_bridge.mail_record import MailRecord
from wicbox_bridge.mailparse import parse_mail
from wicbox_bridge.routing import RoutableProject, RoutingDecision, route_mail
from wicbox_bridge.store.base import Store, atomic, savepoint
from wicbox_bridge.store.mail_insert import NewMail, files_many_rows, insert_mail, insert_mails
from wicbox_bridge.store.mails import KnownMail, MailOrigin, MailStatus, find_mails, insert_quarantined

log = logging.getLogger("wicbox.filing")


class Outcome(str, Enum):
    FILED = "filed"
    DUPLICATE = "duplicate"
    QUARANTINED = "quarantined"
    WOULD_FILE = "would-file"


@dataclass(frozen=True)
class MailResult:
    """What happened to one mail, for the per-mail log line and the run report."""

    ref: MailRef
    outcome: Outcome
    mail_id: int | None
    project_id: int | None
    routing: str
    message_id: str | None
    subject: str | None = None


@dataclass
class BatchResult:
    """The results of one batch, and the server actions they call for (with their MAIL_IDs)."""

    results: list[MailResult] = field(default_factory=list)
    to_acknowledge: list[tuple[MailRef, int]] = field(default_factory=list)
    to_quarantine: list[tuple[MailRef, int]] = field(default_factory=list)

    def add(self, result: MailResult) -> None:
        self.results.append(result)
        if result.mail_id is None:
            return
        if result.outcome is Outcome.QUARANTINED:
            self.to_quarantine.append((result.ref, result.mail_id))
        elif result.outcome in (Outcome.FILED, Outcome.DUPLICATE):
            self.to_acknowledge.append((result.ref, result.mail_id))

    def extend(self, other: BatchResult) -> None:
        self.results += other.results
        self.to_acknowledge += other.to_acknowledge
        self.to_quarantine += other.to_quarantine


@dataclass(frozen=True)
class MailboxContext:
    """What filing needs to know about the mailbox being read."""

    mailbox: str
    protocol: str
    run_id: int | None
    projects: Sequence[RoutableProject]
    own_project_id: int | None = None  # MULTIPLE: every mail of this mailbox belongs to this project
    dry_run: bool = False


def origin_of(mail: FetchedMail, protocol: str) -> MailOrigin:
    ref = mail.ref
    is_imap = protocol == "imap"
    received = (
        None if mail.received_at is None else dt.datetime.fromtimestamp(mail.received_at, dt.timezone.utc)
    )
    return MailOrigin(
        mailbox=ref.mailbox,
        folder=ref.folder,
        protocol=protocol,
        source_id=ref.key,
        uidvalidity=int(ref.validity) if is_imap and ref.validity else None,
        uid=int(ref.key) if is_imap else None,
        received_at=received,
    )


def _route(context: MailboxContext, record: MailRecord) -> RoutingDecision:
    if context.own_project_id is not None:
        return RoutingDecision(context.own_project_id, "the project's own mailbox")
    return route_mail(record, context.projects)


@dataclass(frozen=True)
class PreparedMail:
    """A fetched mail with its SHA-256 and its parsed record, ready to be filed."""

    mail: FetchedMail
    record: MailRecord

    @property
    def sha256(self) -> str:
        return self.record.sha256


def prepare_batch(mails: Sequence[FetchedMail]) -> list[PreparedMail]:
    """Parse (and hash) a fetched batch: the CPU part of filing, which needs no database.

    It runs ahead of the database work (see :mod:`wicbox_bridge.mailbox_pass`), so it is done for
    every mail, also for the rare one the database then recognises as already filed.
    """
    return [PreparedMail(mail, parse_mail(mail.raw)) for mail in mails]


def file_prepared(store: Store, context: MailboxContext, prepared: Sequence[PreparedMail]) -> BatchResult:
    """File one parsed batch in one transaction; see the module docstring.

    One commit per batch instead of one per mail: the database's log flush is the dominant cost of
    filing. Where the store can (:func:`~wicbox_bridge.store.mail_insert.files_many_rows`), the new
    mails of the batch go in with a few multi-row statements; if the database refuses one of them,
    that transaction is rolled back and the batch filed again one mail at a time, each behind its
    own savepoint, so the refused mail alone is quarantined. Any other database error rolls the
    whole batch back, so nothing of it is acknowledged on the server.
    """
    known = find_mails(store, context.mailbox, [item.sha256 for item in prepared])
    if context.dry_run:
        return _would_file(context, prepared, known)
    if files_many_rows(store) and not store.in_transaction:
        try:
            return _file_together(store, context, prepared, dict(known))
        except DataRejected as refused:
            log.info(
                "mailbox %s: the database refused a mail of a batch of %d (%s); filing them one by one",
                context.mailbox,
                len(prepared),
                refused.message,
            )
    with atomic(store):
        return _file_one_by_one(store, context, prepared, dict(known))


def _already_filed(mail: FetchedMail, known: KnownMail) -> MailResult:
    outcome = Outcome.QUARANTINED if known.status.quarantined else Outcome.DUPLICATE
    return MailResult(mail.ref, outcome, known.mail_id, None, "already filed", None)


def _new_mail(context: MailboxContext, item: PreparedMail) -> NewMail:
    """The row a prepared mail becomes: where it came from, its bytes and record, its project."""
    decision = _route(context, item.record)
    return NewMail(
        origin_of(item.mail, context.protocol),
        item.mail.raw,
        item.record,
        decision.project_id,
        decision.reason,
    )


def _filed(item: PreparedMail, mail_id: int, new: NewMail) -> MailResult:
    return MailResult(
        item.mail.ref, Outcome.FILED, mail_id, new.project_id, new.routing, item.record.message_id
    )


def _would_file(
    context: MailboxContext, prepared: Sequence[PreparedMail], known: dict[str, KnownMail]
) -> BatchResult:
    batch = BatchResult()
    for item in prepared:
        found = known.get(item.sha256)
        if found is not None:
            batch.add(_already_filed(item.mail, found))
            continue
        decision, record = _route(context, item.record), item.record
        batch.add(
            MailResult(
                item.mail.ref,
                Outcome.WOULD_FILE,
                None,
                decision.project_id,
                decision.reason,
                record.message_id,
                record.subject,
            )
        )
    return batch


def _file_together(
    store: Store, context: MailboxContext, prepared: Sequence[PreparedMail], known: dict[str, KnownMail]
) -> BatchResult:
    """The new mails of the batch in one transaction of a few statements (the same bytes once)."""
    new: dict[str, NewMail] = {}
    for item in prepared:
        if item.sha256 not in known and item.sha256 not in new:
            new[item.sha256] = _new_mail(context, item)
    mail_ids = insert_mails(store, run_id=context.run_id, mails=list(new.values())) if new else {}
    batch = BatchResult()
    for item in prepared:
        found = known.get(item.sha256)
        if found is not None:  # filed before, or earlier in this batch
            batch.add(_already_filed(item.mail, found))
            continue
        mail_id = mail_ids[item.sha256]
        batch.add(_filed(item, mail_id, new[item.sha256]))
        known[item.sha256] = KnownMail(mail_id, MailStatus.PENDING_ACK)
    return batch


def _file_one_by_one(
    store: Store, context: MailboxContext, prepared: Sequence[PreparedMail], known: dict[str, KnownMail]
) -> BatchResult:
    """Each mail behind its own savepoint: a mail the database refuses is undone alone."""
    batch = BatchResult()
    for item in prepared:
        sha256 = item.sha256
        result = _file_one(store, context, item, known.get(sha256))
        if result.mail_id is not None and sha256 not in known:
            status = (
                MailStatus.QUARANTINE_PENDING
                if result.outcome is Outcome.QUARANTINED
                else MailStatus.PENDING_ACK
            )
            known[sha256] = KnownMail(result.mail_id, status)  # the same bytes twice in one batch
        batch.add(result)
    return batch


def _file_one(
    store: Store, context: MailboxContext, item: PreparedMail, known: KnownMail | None
) -> MailResult:
    if known is not None:
        return _already_filed(item.mail, known)
    new = _new_mail(context, item)
    try:
        with savepoint(store, "wicbox_mail"):
            mail_id = insert_mail(store, run_id=context.run_id, mail=new)
    except DataRejected as refused:
        return _quarantine(store, context, item.mail, item.sha256, refused)
    return _filed(item, mail_id, new)


def _quarantine(
    store: Store, context: MailboxContext, mail: FetchedMail, sha256: str, refused: DataRejected
) -> MailResult:
    reason = f"the database refused the mail: {refused.message}"
    log.warning("mailbox %s key %s: %s", context.mailbox, mail.ref.key, reason)
    origin = origin_of(mail, context.protocol)
    try:
        with savepoint(store, "wicbox_quarantine"):
            mail_id = insert_quarantined(
                store, run_id=context.run_id, origin=origin, raw=mail.raw, sha256=sha256, reason=reason
            )
    except DataRejected:
        log.error(
            "mailbox %s key %s: not even the quarantine record could be stored; the mail stays on the server",
            context.mailbox,
            mail.ref.key,
        )
        return MailResult(mail.ref, Outcome.QUARANTINED, None, None, reason, None)
    return MailResult(mail.ref, Outcome.QUARANTINED, mail_id, None, reason, None)
