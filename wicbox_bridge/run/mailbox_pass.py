"""One pass over one mailbox: confirm what an earlier run left, list, fetch ahead, file, acknowledge.

Fetching and filing overlap: a helper thread fetches and parses the next batch while this thread
files the current one (the IMAP or Graph session is used by that thread alone until the fetching
is done). Filing mostly waits for the database server, without holding the interpreter lock, so
the parsing belongs with the fetching. The server actions for everything filed in the pass are
applied after that, so the order that makes a run safe to kill holds: commit first, then
move/delete/flag, then mark done.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass

from wicbox_bridge.adapters.base import MailboxSession, MailRef
from wicbox_bridge.auth.accounts import MailboxAccount
from wicbox_bridge.run.filing import (
    BatchResult,
    MailboxContext,
    MailResult,
    PreparedMail,
    file_prepared,
    prepare_batch,
)
from wicbox_bridge.run.handover import Handover, Item
from wicbox_bridge.run.results import MailboxReport
from wicbox_bridge.run.routing import RoutableProject
from wicbox_bridge.run.trace import mail_trace_line, project_field
from wicbox_bridge.store.base import Store
from wicbox_bridge.store.leases import Fence, confirm_fence, fenced
from wicbox_bridge.store.mails import (
    MailStatus,
    mark_filed,
    mark_quarantined,
    normalized_mailbox,
    pending_acks,
)

log = logging.getLogger("wicbox.run")
mail_log = logging.getLogger("wicbox.mail")

_ACTION_CHUNK = 500


@dataclass(frozen=True)
class PassContext:
    """What every pass of a run shares."""

    source_folder: str
    protocol: str
    fetch_batch: int
    fetch_batch_bytes: int
    dry_run: bool
    run_id: int | None
    projects: Sequence[RoutableProject]
    stop: threading.Event
    progress: Callable[[int], None] | None = None
    # the mailboxes (normalized) with unconfirmed server actions, asked once for the whole run
    # (store.mails.mailboxes_with_pending_acks); None: each pass asks for its own mailbox
    unconfirmed: frozenset[str] | None = None

    @functools.cached_property
    def project_codes(self) -> Mapping[int, str]:
        """Project id to code, for the per-mail trace line."""
        return {project.project_id: project.code for project in self.projects}


@dataclass(frozen=True)
class OpenMailbox:
    """One mailbox being read: its account, open session, database connection and report."""

    account: MailboxAccount
    session: MailboxSession
    store: Store
    report: MailboxReport
    fence: Fence | None = None  # its lease: every filing and acknowledgement checks it first


def run_pass(context: PassContext, mailbox: OpenMailbox, quota: int) -> bool:
    """File at most ``quota`` mails of one open mailbox; whether more mail is waiting."""
    account, session, store = mailbox.account, mailbox.session, mailbox.store
    if not context.dry_run:
        _reconcile(context, mailbox)
    refs = session.list_pending(quota + 1)
    more_waiting = len(refs) > quota
    refs = refs[:quota]
    log.info("%s (%s): %d mail(s) to read", account.label, account.mailbox, len(refs))
    if not refs:
        return more_waiting
    filing = MailboxContext(
        mailbox=account.mailbox,
        protocol=context.protocol,
        run_id=context.run_id,
        projects=context.projects,
        own_project_id=account.project.project_id if account.project else None,
        dry_run=context.dry_run,
        fence=mailbox.fence,
    )
    chunks = batches(refs, context.fetch_batch, context.fetch_batch_bytes)
    filed = _fetch_and_file(context, mailbox, filing, chunks)
    if not context.dry_run:
        apply_server_actions(store, session, filed, mailbox.fence)
    return more_waiting


def batches(refs: list[MailRef], most: int, most_bytes: int) -> list[list[MailRef]]:
    """Consecutive batches of at most ``most`` mails and (by listed size) ``most_bytes`` bytes.

    A batch is the unit of one transaction and of the fetch-ahead: the next batch is fetched only
    once the filing thread took the previous one, so memory stays near two batches (and a batch
    that would not fit beside the one being filed waits until it is filed). A mail larger than
    the budget is a batch of its own.
    """
    result: list[list[MailRef]] = []
    current: list[MailRef] = []
    size = 0
    for ref in refs:
        if current and (len(current) >= most or size + ref.size > most_bytes):
            result.append(current)
            current, size = [], 0
        current.append(ref)
        size += ref.size
    if current:
        result.append(current)
    return result


def listed_bytes(chunk: Sequence[MailRef]) -> int:
    return sum(ref.size for ref in chunk)


def _fetch_and_file(
    context: PassContext, mailbox: OpenMailbox, filing: MailboxContext, chunks: list[list[MailRef]]
) -> BatchResult:
    handover: Handover[list[PreparedMail]] = Handover()
    fetcher = threading.Thread(
        target=_fetch_ahead,
        args=(mailbox.session, chunks, handover, context.stop, 2 * context.fetch_batch_bytes),
        name="wicbox-fetch",
        daemon=True,
    )
    filed = BatchResult()
    fetcher.start()
    try:
        while _file_next(context, mailbox, filing, handover, filed) and not context.stop.is_set():
            pass
    finally:
        handover.close()
        fetcher.join()
    return filed


def _file_next(
    context: PassContext,
    mailbox: OpenMailbox,
    filing: MailboxContext,
    handover: Handover[list[PreparedMail]],
    filed: BatchResult,
) -> bool:
    """File the next fetched batch into ``filed``; False when there is none. A batch is only
    referenced here, so its bytes are freed before the next one is waited for."""
    item = handover.take()
    if item.error is not None:
        raise item.error
    if item.batch is None:
        return False
    batch = file_prepared(mailbox.store, filing, item.batch)
    filed.extend_actions(batch)
    _record(batch.results, mailbox.report, context)
    return True


def _fetch_ahead(
    session: MailboxSession,
    chunks: list[list[MailRef]],
    handover: Handover[list[PreparedMail]],
    stop: threading.Event,
    in_flight_bytes: int,
) -> None:
    """Fetch and parse the batches in order, one ahead of the filing; an error is handed over,
    not raised here. Each batch is fetched only once the previous one was taken, and one that
    would not fit beside the batch being filed (together more than ``in_flight_bytes`` by listed
    size: large mails) only once the filing thread is done with it, so memory holds at most two
    batches of at most ``in_flight_bytes`` together, or one larger batch alone."""
    previous = 0
    try:
        for chunk in chunks:
            size = listed_bytes(chunk)
            if stop.is_set() or not handover.wait_taken():
                break
            if previous + size > in_flight_bytes and not handover.wait_idle():
                break
            if not handover.put(Item(prepare_batch(session.fetch(chunk)))):
                return
            previous = size
        handover.put(Item())
    except BaseException as error:
        handover.put(Item(error=error))


def _record(results: list[MailResult], report: MailboxReport, context: PassContext) -> None:
    """Counted and logged once committed: if a server action fails later, these mails are still
    filed (the next run only acknowledges them) and the report must say so. Only a dry run keeps
    each mail's result (its listing names every mail); a run keeps the counts, so its memory does
    not grow with the number of mails."""
    report.committed(results, time.time())
    for result in results:
        report.count(result)
        if context.dry_run:
            report.results.append(result)
        _log_mail(result, context.project_codes)
    if context.progress is not None:
        context.progress(len(results))


def _reconcile(context: PassContext, mailbox: OpenMailbox) -> None:
    """Finish the server actions a stopped run left unconfirmed (safe to repeat: no-ops then)."""
    account, session, store = mailbox.account, mailbox.session, mailbox.store
    if context.unconfirmed is not None and normalized_mailbox(account.mailbox) not in context.unconfirmed:
        return  # the run-wide query found nothing to confirm here (one query per run, not per mailbox)
    pending = pending_acks(store, account.mailbox, context.source_folder)
    if not pending:
        return
    current = [row for row in pending if _same_validity(row.uidvalidity, session.validity)]
    # Rows of an older UIDVALIDITY cannot be addressed by UID any more. If such a mail is still in
    # the folder it is listed again, recognised by its bytes and acknowledged then.
    stale = [row for row in pending if row not in current]
    batch = BatchResult()
    for row in current:
        ref = MailRef(account.mailbox, context.source_folder, session.validity, row.source_id, 0)
        target = batch.to_quarantine if row.status is MailStatus.QUARANTINE_PENDING else batch.to_acknowledge
        target.append((ref, row.mail_id))
    log.info("%s: confirming %d server action(s) left by an earlier run", account.label, len(current))
    apply_server_actions(store, session, batch, mailbox.fence)
    with fenced(store, mailbox.fence):
        mark_filed(store, [row.mail_id for row in stale if row.status is MailStatus.PENDING_ACK])
        mark_quarantined(store, [row.mail_id for row in stale if row.status is MailStatus.QUARANTINE_PENDING])


def _same_validity(stored: int | None, current: str) -> bool:
    return (str(stored) if stored is not None else "") == current


def apply_server_actions(
    store: Store, session: MailboxSession, batch: BatchResult, fence: Fence | None = None
) -> None:
    """Move/delete/flag the filed mails and quarantine the refused ones, then mark them done.

    With a ``fence``, each chunk's lease is confirmed first (a short transaction of its own, so no
    write lock is held across the server round trip), and the marking runs in a fenced transaction:
    a process that lost its lease marks nothing (see :func:`~wicbox_bridge.store.leases.confirm_fence`
    for why a server action that slips past a take-over is harmless)."""
    for start in range(0, len(batch.to_acknowledge), _ACTION_CHUNK):
        chunk = batch.to_acknowledge[start : start + _ACTION_CHUNK]
        confirm_fence(store, fence)
        session.acknowledge([ref for ref, _ in chunk])
        with _guarded(store, fence):
            mark_filed(store, [mail_id for _, mail_id in chunk])
    for start in range(0, len(batch.to_quarantine), _ACTION_CHUNK):
        chunk = batch.to_quarantine[start : start + _ACTION_CHUNK]
        confirm_fence(store, fence)
        session.quarantine([ref for ref, _ in chunk])
        with _guarded(store, fence):
            mark_quarantined(store, [mail_id for _, mail_id in chunk])


def _guarded(store: Store, fence: Fence | None) -> AbstractContextManager[None]:
    """The lease's fenced transaction; without a lease, none (each marking is its own)."""
    return contextlib.nullcontext() if fence is None else fenced(store, fence)


def _log_mail(result: MailResult, project_codes: Mapping[int, str]) -> None:
    if not mail_log.isEnabledFor(logging.INFO):
        return
    line = mail_trace_line(
        result.ref,
        message_id=result.message_id,
        project=project_field(result.project_id, project_codes),
        outcome=result.outcome.value,
        mail_id=result.mail_id,
        routing=result.routing,
    )
    mail_log.info("%s", line)
