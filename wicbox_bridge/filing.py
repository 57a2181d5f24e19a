"""Filing fetched mails into the database exactly once, and deciding what the server does with each.

For each fetched mail: a mail whose bytes are already filed for this mailbox is only acknowledged
again (the process stopped after the commit, before the server action); otherwise it is parsed,
routed and inserted — a whole batch in one transaction, each mail behind its own savepoint. The
caller then applies the server actions the :class:`BatchResult` lists, and only after that marks
them done. A mail the database refuses (:class:`~wicbox_bridge.errors.DataRejected`) is recorded
as quarantined and moved to the failed folder; any other database error propagates, so nothing
more is acknowledged on the server.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
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
from wicbox_bridge.store.mails import (
    KnownMail,
    MailOrigin,
    MailStatus,
    find_mails,
    insert_mail,
    insert_quarantined,
)

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


def file_batch(store: Store, context: MailboxContext, mails: Sequence[FetchedMail]) -> BatchResult:
    """File one fetched batch in one transaction (a savepoint per mail); see the module docstring.

    One commit per batch instead of one per mail: the database's log flush is the dominant cost of
    filing. A mail the database refuses is undone alone (its savepoint) and quarantined; any other
    database error rolls the whole batch back, so nothing of it is acknowledged on the server.
    """
    batch = BatchResult()
    hashes = [hashlib.sha256(mail.raw).hexdigest() for mail in mails]
    known = find_mails(store, context.mailbox, hashes)
    parsed = {
        sha256: parse_mail(mail.raw)
        for mail, sha256 in zip(mails, hashes, strict=True)
        if sha256 not in known
    }
    writing = contextlib.nullcontext() if context.dry_run else atomic(store)
    with writing:
        for mail, sha256 in zip(mails, hashes, strict=True):
            result = _file_one(store, context, mail, known.get(sha256), parsed.get(sha256))
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
    store: Store,
    context: MailboxContext,
    mail: FetchedMail,
    known: KnownMail | None,
    record: MailRecord | None,
) -> MailResult:
    if known is not None:
        outcome = Outcome.QUARANTINED if known.status.quarantined else Outcome.DUPLICATE
        return MailResult(mail.ref, outcome, known.mail_id, None, "already filed", None)
    if record is None:  # pragma: no cover - every unknown hash was parsed
        record = parse_mail(mail.raw)
    decision = _route(context, record)
    if context.dry_run:
        return MailResult(
            mail.ref,
            Outcome.WOULD_FILE,
            None,
            decision.project_id,
            decision.reason,
            record.message_id,
            record.subject,
        )
    try:
        with savepoint(store, "wicbox_mail"):
            mail_id = insert_mail(
                store,
                run_id=context.run_id,
                origin=origin_of(mail, context.protocol),
                raw=mail.raw,
                record=record,
                project_id=decision.project_id,
                routing=decision.reason,
            )
    except DataRejected as refused:
        return _quarantine(store, context, mail, record.sha256, refused)
    return MailResult(
        mail.ref, Outcome.FILED, mail_id, decision.project_id, decision.reason, record.message_id
    )


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
