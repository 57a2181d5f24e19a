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
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import Enum

from wicbox_bridge.adapters.base import FetchedMail, MailRef
from wicbox_bridge.mail.parse import parse_mail
from wicbox_bridge.mail.record import MailRecord
from wicbox_bridge.run.routing import RoutableProject, RoutingDecision, route_mail
from wicbox_bridge.store.base import Store
from wicbox_bridge.store.filing import Filed, FilingAnswer, file_mails
from wicbox_bridge.store.leases import Fence
from wicbox_bridge.store.mail_insert import NewMail
from wicbox_bridge.store.mails import KnownMail, MailOrigin, find_mails


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
    received_at: float | None = None  # the server's received time (epoch s) of a mail filed now


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

    def extend_actions(self, other: BatchResult) -> None:
        """Take over ``other``'s server actions, not its results: a pass keeps what the server
        must still be told (a reference and a MAIL_ID per mail), not every mail's result."""
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
    fence: Fence | None = None  # the mailbox's lease, checked in every filing transaction


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

    It runs ahead of the database work (see :mod:`wicbox_bridge.run.mailbox_pass`), so it is done for
    every mail, also for the rare one the database then recognises as already filed.
    """
    return [PreparedMail(mail, parse_mail(mail.raw)) for mail in mails]


def file_prepared(store: Store, context: MailboxContext, prepared: Sequence[PreparedMail]) -> BatchResult:
    """File one parsed batch: route every mail, hand the batch to the store, read its one answer.

    The store files the batch in one transaction (see :mod:`wicbox_bridge.store.filing`): the new
    mails in a few multi-row statements where it can, one by one behind savepoints when the
    database refused one of them, so the refused mail alone is quarantined. A dry run only asks
    which mails are filed already.
    """
    if context.dry_run:
        known = find_mails(store, context.mailbox, [item.sha256 for item in prepared])
        return _would_file(context, prepared, known)
    new = [_new_mail(context, item) for item in prepared]
    answers = file_mails(
        store, mailbox=context.mailbox, run_id=context.run_id, mails=new, fence=context.fence
    )
    batch = BatchResult()
    for item, mail, answer in zip(prepared, new, answers, strict=True):
        batch.add(_result(item, mail, answer))
    return batch


def _already_filed(ref: MailRef, mail_id: int, *, quarantined: bool) -> MailResult:
    outcome = Outcome.QUARANTINED if quarantined else Outcome.DUPLICATE
    return MailResult(ref, outcome, mail_id, None, "already filed", None)


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


def _result(item: PreparedMail, new: NewMail, answer: FilingAnswer) -> MailResult:
    """The store's answer for one mail as the run reports it."""
    ref = item.mail.ref
    if answer.filed is Filed.KNOWN and answer.mail_id is not None:
        return _already_filed(ref, answer.mail_id, quarantined=answer.quarantined)
    if answer.filed is Filed.NEW and answer.mail_id is not None:
        return MailResult(
            ref,
            Outcome.FILED,
            answer.mail_id,
            new.project_id,
            new.routing,
            item.record.message_id,
            received_at=item.mail.received_at,
        )
    return MailResult(ref, Outcome.QUARANTINED, answer.mail_id, None, answer.reason or "refused", None)


def _would_file(
    context: MailboxContext, prepared: Sequence[PreparedMail], known: dict[str, KnownMail]
) -> BatchResult:
    batch = BatchResult()
    for item in prepared:
        found = known.get(item.sha256)
        if found is not None:
            batch.add(_already_filed(item.mail.ref, found.mail_id, quarantined=found.status.quarantined))
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
