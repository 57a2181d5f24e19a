"""One run of the main job: read each selected mailbox, file its mails, acknowledge them.

The order of every step is what makes a run safe to kill at any moment:

1. mails whose server action was never confirmed (the previous run stopped in between) are
   acknowledged again — moving, deleting or flagging a mail that was already handled is a no-op;
2. the oldest pending mails are listed (never more than the run's share of the cap) and fetched
   in batches;
3. each mail is filed in its own transaction, or recognised as already filed by its bytes;
4. only then are the server actions applied, and after them the mails marked done.

A mailbox that cannot be opened (authentication, connection, a missing folder) is reported and
the run goes on with the next; a database that stops answering ends the run, because nothing may
be acknowledged that is not committed.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from wicbox_bridge.account_checks import MailboxOpener
from wicbox_bridge.accounts import MailboxAccount
from wicbox_bridge.adapters.base import MailboxSession, MailRef
from wicbox_bridge.errors import (
    AuthenticationError,
    BridgeError,
    ConnectionFailure,
    DatabaseError,
    DataRejected,
    ExitCode,
)
from wicbox_bridge.filing import BatchResult, MailboxContext, MailResult, Outcome, file_batch
from wicbox_bridge.routing import RoutableProject
from wicbox_bridge.store.base import Store
from wicbox_bridge.store.mails import MailStatus, mark_filed, mark_quarantined, pending_acks
from wicbox_bridge.store.runs import RunCounts, RunOutcome

log = logging.getLogger("wicbox.run")
mail_log = logging.getLogger("wicbox.mail")

ProgressCallback = Callable[[int], None]


@dataclass(frozen=True)
class RunSettings:
    """How much one run may do and whether it may change anything."""

    max_mails: int
    source_folder: str
    protocol: str
    fetch_batch: int = 100
    dry_run: bool = False


@dataclass
class MailboxReport:
    """What one mailbox contributed to the run, or why it failed."""

    label: str
    mailbox: str
    project_code: str | None
    fetched: int = 0
    filed: int = 0
    duplicates: int = 0
    unassigned: int = 0
    quarantined: int = 0
    error: BridgeError | None = None
    results: list[MailResult] = field(default_factory=list)

    def count(self, result: MailResult) -> None:
        self.fetched += 1
        if result.outcome in (Outcome.FILED, Outcome.WOULD_FILE):  # a dry run counts what it would file
            self.filed += 1
            self.unassigned += result.project_id is None
        elif result.outcome is Outcome.DUPLICATE:
            self.duplicates += 1
        elif result.outcome is Outcome.QUARANTINED:
            self.quarantined += 1


@dataclass
class RunReport:
    """The whole run: per-mailbox reports, timing, and the exit code it ends with."""

    mailboxes: list[MailboxReport]
    seconds: float
    dry_run: bool
    fatal: BridgeError | None = None

    @property
    def counts(self) -> RunCounts:
        reports = self.mailboxes
        return RunCounts(
            mailboxes=len(reports),
            failed_mailboxes=sum(report.error is not None for report in reports),
            fetched=sum(report.fetched for report in reports),
            filed=sum(report.filed for report in reports),
            duplicates=sum(report.duplicates for report in reports),
            unassigned=sum(report.unassigned for report in reports),
            quarantined=sum(report.quarantined for report in reports),
        )

    @property
    def exit_code(self) -> ExitCode:
        if self.fatal is not None:
            return self.fatal.exit_code
        errors = [report.error for report in self.mailboxes if report.error is not None]
        if not errors:
            return ExitCode.OK
        if len(errors) == len(self.mailboxes):
            if all(isinstance(error, AuthenticationError) for error in errors):
                return ExitCode.AUTHENTICATION
            if all(isinstance(error, ConnectionFailure) for error in errors):
                return ExitCode.CONNECTION
        return ExitCode.PARTIAL

    @property
    def outcome(self) -> RunOutcome:
        code = self.exit_code
        if code is ExitCode.OK:
            return RunOutcome.OK
        return RunOutcome.PARTIAL if code is ExitCode.PARTIAL else RunOutcome.FAILED


@dataclass(frozen=True)
class RunJob:
    """Everything one run works with (built by the CLI, tests build their own)."""

    store: Store
    accounts: Sequence[MailboxAccount]
    open_mailbox: MailboxOpener
    projects: Sequence[RoutableProject]
    settings: RunSettings
    run_id: int | None = None
    progress: ProgressCallback | None = None


def run_mailboxes(job: RunJob) -> RunReport:
    """Process the accounts in order, sharing the cap; see the module docstring."""
    started = time.monotonic()
    reports: list[MailboxReport] = []
    remaining = job.settings.max_mails
    fatal: BridgeError | None = None
    for index, account in enumerate(job.accounts):
        share = _share(remaining, len(job.accounts) - index)
        report = MailboxReport(account.label, account.mailbox, account.project_code)
        reports.append(report)
        try:
            _process_mailbox(job, account, share, report)
        except DatabaseError as error:
            if isinstance(error, DataRejected):  # pragma: no cover - filing handles it per mail
                raise
            report.error = fatal = error
            log.error("%s: the database failed; the run stops here: %s", account.label, error)
            break
        except BridgeError as error:
            report.error = error
            log.error("%s (%s): %s", account.label, account.mailbox, error)
        remaining -= report.fetched
    return RunReport(reports, time.monotonic() - started, job.settings.dry_run, fatal)


def _share(remaining: int, accounts_left: int) -> int:
    """An equal share of what is left; what a mailbox does not use flows to the next ones."""
    if remaining <= 0:
        return 0
    return max(1, remaining // accounts_left)


def _process_mailbox(job: RunJob, account: MailboxAccount, share: int, report: MailboxReport) -> None:
    session = job.open_mailbox(account)
    try:
        if not job.settings.dry_run:
            _reconcile(job, account, session)
        if share == 0:
            return
        refs = session.list_pending(share)
        log.info("%s (%s): %d mail(s) to read", account.label, account.mailbox, len(refs))
        context = MailboxContext(
            mailbox=account.mailbox,
            protocol=job.settings.protocol,
            run_id=job.run_id,
            projects=job.projects,
            own_project_id=account.project.project_id if account.project else None,
            dry_run=job.settings.dry_run,
        )
        for start in range(0, len(refs), job.settings.fetch_batch):
            chunk = refs[start : start + job.settings.fetch_batch]
            batch = file_batch(job.store, context, session.fetch(chunk))
            # Counted and logged once committed: if the server action fails next, these mails are
            # still filed (the next run only acknowledges them) and the report must say so.
            for result in batch.results:
                report.count(result)
                report.results.append(result)
                _log_mail(account, result)
            if not job.settings.dry_run:
                _apply_server_actions(job.store, session, batch)
            if job.progress is not None:
                job.progress(len(batch.results))
    finally:
        session.close()


def _reconcile(job: RunJob, account: MailboxAccount, session: MailboxSession) -> None:
    """Finish the server actions a stopped run left unconfirmed (safe to repeat: no-ops then)."""
    pending = pending_acks(job.store, account.mailbox, job.settings.source_folder)
    if not pending:
        return
    current = [row for row in pending if _same_validity(row.uidvalidity, session.validity)]
    # Rows of an older UIDVALIDITY cannot be addressed by UID any more. If such a mail is still in
    # the folder it is listed again, recognised by its bytes and acknowledged then.
    stale = [row for row in pending if row not in current]
    batch = BatchResult()
    for row in current:
        ref = MailRef(account.mailbox, job.settings.source_folder, session.validity, row.source_id, 0)
        target = batch.to_quarantine if row.status is MailStatus.QUARANTINE_PENDING else batch.to_acknowledge
        target.append((ref, row.mail_id))
    log.info("%s: confirming %d server action(s) left by an earlier run", account.label, len(current))
    _apply_server_actions(job.store, session, batch)
    mark_filed(job.store, [row.mail_id for row in stale if row.status is MailStatus.PENDING_ACK])
    mark_quarantined(job.store, [row.mail_id for row in stale if row.status is MailStatus.QUARANTINE_PENDING])


def _same_validity(stored: int | None, current: str) -> bool:
    return (str(stored) if stored is not None else "") == current


def _apply_server_actions(store: Store, session: MailboxSession, batch: BatchResult) -> None:
    if batch.to_acknowledge:
        session.acknowledge([ref for ref, _ in batch.to_acknowledge])
        mark_filed(store, [mail_id for _, mail_id in batch.to_acknowledge])
    if batch.to_quarantine:
        session.quarantine([ref for ref, _ in batch.to_quarantine])
        mark_quarantined(store, [mail_id for _, mail_id in batch.to_quarantine])


def _log_mail(account: MailboxAccount, result: MailResult) -> None:
    mail_log.info(
        "mailbox=%s key=%s message_id=%s project=%s outcome=%s mail_id=%s routing=%s",
        account.mailbox,
        result.ref.key,
        result.message_id or "-",
        result.project_id if result.project_id is not None else "unassigned",
        result.outcome.value,
        result.mail_id if result.mail_id is not None else "-",
        result.routing,
    )
