"""One run of the main job over every selected mailbox: the cap shared fairly, a few at a time.

The order of every step is what makes a run safe to kill at any moment (see
:mod:`wicbox_bridge.run.mailbox_pass`): earlier unconfirmed server actions are confirmed, the oldest
pending mails are listed, fetched and filed (committed), and only then acknowledged on the server.

The per-run cap is handed out as the passes go (:mod:`wicbox_bridge.run.fairshare`): the first
round opens every mailbox, least recently served first (the newest mail filed from each, one query
per run), and each pass takes its quota when its listing shows what it has waiting: a mailbox with
nothing new takes none of the cap, one with mail at most an equal share of what is left among the
mailboxes not yet served (rounded up). What the first round leaves goes, in the next rounds, to
the mailboxes that still have mail (water-filling over the counts they listed). Mailboxes that
got nothing because the cap ran out were served least recently, so they start the next run: no
mailbox starves, whatever the number of mailboxes and the cap. In each round the global mailbox
is read first (in MIX: the SINGLE pass, then the MULTIPLE pass), then the project mailboxes
concurrently by at most ``workers`` threads, each with its own database connection and never two
connections to one mailbox. Passes that run at once share the in-flight budget of one, and only
one of them at a time holds a mail larger than its share (:mod:`wicbox_bridge.run.large_mails`).

A mailbox that cannot be opened (authentication, connection, a missing folder) is reported and
the run goes on with the others; a database that stops answering ends the run, because nothing
may be acknowledged that is not committed.

Before the first round a run may ask which mailboxes have mail waiting at all (``survey``: Graph
lists up to 20 mailboxes' Inboxes per ``$batch``). A mailbox that certainly has none and has no
unconfirmed server action in the database (one query for all mailboxes) is not opened: its state
is recorded as a success with an empty backlog.

After each pass (not in a dry run) the mailbox's state is recorded for ``wicbox status`` in
WICBOX_MAILBOX_STATE: success or the error (secret-free, passed through the redactor anyway), and,
while the session is still open, the backlog the server reports. Neither the measurement nor the
recording can fail the pass: a failure is logged and the backlog shows as unknown. The state rows
of a round are written together at its end, in one transaction (not one per mailbox).

With leases (``RunJob.leases``, not in a dry run) each mailbox's first pass takes its lease
(:class:`~wicbox_bridge.run.runlock.LeaseKeeper`, up to the run's fair share beside the other live
runs): a mailbox another live run holds, or one left for the others, is skipped and reported
(``MailboxReport.held_by``); the leases taken are renewed in the background while the run goes
on, every pass files and acknowledges only under its lease's fence, and the leases are released
at the end.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from wicbox_bridge.adapters.base import FetchedMail, MailboxBacklog, MailboxSession, MailRef
from wicbox_bridge.auth.accounts import MailboxAccount, MailboxOpener
from wicbox_bridge.errors import AuthenticationError, BridgeError, DatabaseError
from wicbox_bridge.logs.redact import mask_tokens
from wicbox_bridge.logs.setup import FILE_ONLY
from wicbox_bridge.run.fairshare import OpeningShares, share_cap
from wicbox_bridge.run.large_mails import LargeMailGate
from wicbox_bridge.run.mailbox_pass import OpenMailbox, PassContext, run_pass
from wicbox_bridge.run.results import MailboxReport, RunReport
from wicbox_bridge.run.routing import RoutableProject
from wicbox_bridge.run.runlock import LeaseKeeper, LeaseSettings
from wicbox_bridge.secret import mask_values
from wicbox_bridge.store.base import Store
from wicbox_bridge.store.leases import Refused
from wicbox_bridge.store.mailbox_state import (
    Backlog,
    PassFailure,
    PassRecord,
    error_kind,
    record_passes,
)
from wicbox_bridge.store.mails import last_served, mailboxes_with_pending_acks, normalized_mailbox
from wicbox_bridge.store.times import utc_now

log = logging.getLogger("wicbox.run")

ProgressCallback = Callable[[int], None]
StoreOpener = Callable[[], Store]
Redact = Callable[[str], str]
# Per account, in order: mail waiting (True), nothing waiting (False) or unknown (None).
MailboxSurvey = Callable[[Sequence[MailboxAccount]], Sequence[bool | None]]

__all__ = [
    "LeaseSettings",
    "MailboxReport",
    "MailboxSurvey",
    "ProgressCallback",
    "RunJob",
    "RunReport",
    "RunSettings",
    "run_mailboxes",
]


@dataclass(frozen=True)
class RunSettings:
    """How much one run may do, how many mailboxes at once, and whether it may change anything."""

    max_mails: int
    source_folder: str
    protocol: str
    fetch_batch: int = 50
    # Two batches are in flight (one filed, the next fetched and parsed), each holding its bytes
    # about 2.5 times (raw, decoded parts, the driver's copies): 1 MiB keeps a run of small mails
    # within the 80 MB allowance, the process itself included (see docs/performance.md).
    fetch_batch_bytes: int = 1024 * 1024
    dry_run: bool = False
    workers: int = 1
    rotation: int = 0  # which mailbox gets the extra mail when the cap does not divide evenly


@dataclass(frozen=True)
class RunJob:
    """Everything one run works with (built by the CLI, tests build their own)."""

    open_store: StoreOpener
    accounts: Sequence[MailboxAccount]
    open_mailbox: MailboxOpener
    projects: Sequence[RoutableProject]
    settings: RunSettings
    run_id: int | None = None
    progress: ProgressCallback | None = None
    redact: Redact = mask_tokens  # the CLI passes its redactor, which knows every registered secret
    leases: LeaseSettings | None = None  # None: no leases (this process alone reads these mailboxes)
    # set by the caller to stop the run between batches (`wicbox serve` shutting down); the run sets
    # it too when the database fails. None: the run's own event.
    stop: threading.Event | None = None
    survey: MailboxSurvey | None = None  # which mailboxes have mail at all (None: open every one)
    # the leases of a long-running caller (`wicbox serve`), held for its life: the run files under
    # their fences but neither starts nor closes the keeper (``leases`` is then not used)
    keeper: LeaseKeeper | None = None


# A batch is never made smaller than this by sharing (a mail larger than a batch is one of its own).
_LEAST_BATCH_BYTES = 256 * 1024


def _batch_bytes(settings: RunSettings, accounts: int) -> int:
    """Each pass holds two batches in flight; passes that run at once share the budget of one, so
    MULTIPLE with four workers holds what SINGLE holds (docs/performance.md, memory over Graph and
    in MULTIPLE)."""
    concurrent = max(1, min(settings.workers, accounts))
    shared = settings.fetch_batch_bytes // concurrent
    return max(min(_LEAST_BATCH_BYTES, settings.fetch_batch_bytes), shared)


# How far back a run looks for the mailboxes it served (their order, least recently served first);
# a mailbox with nothing filed in this time is among the first.
_SERVED_WINDOW = dt.timedelta(days=7)


@dataclass
class _Pass:
    index: int
    quota: int
    shares: OpeningShares | None = None  # the first round: the quota is claimed while listing
    more_waiting: bool = False
    waiting: int = 0  # mails listed and not taken (at least what is left of the cap, when truncated)


class _ClaimingSession:
    """A pass's session whose listing takes the pass's quota: from the run's opening shares in the
    first round, its fixed quota in later rounds. Remembers whether more mail waits."""

    def __init__(self, session: MailboxSession, step: _Pass) -> None:
        self._session = session
        self._step = step
        self.claimed = False
        self.validity = session.validity

    def list_pending(self, limit: int) -> list[MailRef]:
        refs = self._session.list_pending(limit)
        step = self._step
        shares = step.shares
        step.quota = shares.claim(len(refs)) if shares is not None else min(len(refs), step.quota)
        self.claimed = True
        step.more_waiting = len(refs) > step.quota
        step.waiting = len(refs) - step.quota
        return refs[: step.quota]

    def fetch(self, refs: list[MailRef]) -> list[FetchedMail]:
        return self._session.fetch(refs)

    def acknowledge(self, refs: list[MailRef]) -> None:
        self._session.acknowledge(refs)

    def quarantine(self, refs: list[MailRef]) -> None:
        self._session.quarantine(refs)

    def backlog(self) -> MailboxBacklog:
        return self._session.backlog()

    def close(self) -> None:
        self._session.close()


class _Run:
    """The state of one run while its rounds go on."""

    def __init__(self, job: RunJob) -> None:
        self.job = job
        self.reports = [
            MailboxReport(account.label, account.mailbox, account.project_code) for account in job.accounts
        ]
        self.stop = job.stop if job.stop is not None else threading.Event()
        self.fatal: DatabaseError | None = None
        self._lock = threading.Lock()
        self._local = threading.local()
        self._stores: list[Store] = []
        self.keeper: LeaseKeeper | None = None
        self._states: list[PassRecord] = []  # the round's state rows, written at its end
        self.mailbox_count = len({account.mailbox.strip().lower() for account in job.accounts})
        self.context = PassContext(
            source_folder=job.settings.source_folder,
            protocol=job.settings.protocol,
            fetch_batch=job.settings.fetch_batch,
            fetch_batch_bytes=_batch_bytes(job.settings, len(job.accounts)),
            dry_run=job.settings.dry_run,
            run_id=job.run_id,
            projects=job.projects,
            stop=self.stop,
            progress=self._progress if job.progress is not None else None,
        )
        self.large_mails = LargeMailGate(self.context.fetch_batch_bytes)

    def _progress(self, count: int) -> None:
        with self._lock:
            assert self.job.progress is not None
            self.job.progress(count)

    def store(self) -> Store:
        """This worker thread's database connection, opened on first use, kept for the run."""
        store: Store | None = getattr(self._local, "store", None)
        if store is None:
            store = self.job.open_store()
            self._local.store = store
            with self._lock:
                self._stores.append(store)
        return store

    def close_stores(self) -> None:
        with self._lock:
            stores, self._stores = self._stores, []
        for store in stores:
            store.close()

    def run_pass(self, step: _Pass) -> _Pass:
        """One mailbox's pass; errors end up in its report (a database error also stops the run)."""
        account = self.job.accounts[step.index]
        report = self.reports[step.index]
        if self.stop.is_set() or not self._leased(account, report):
            if step.shares is not None:
                step.shares.withdraw()
            return step
        attempted_at = utc_now()
        failure: BridgeError | None = None
        backlog: Backlog | None = None
        claiming: _ClaimingSession | None = None
        try:
            store = self.store()
            fence = None if self.keeper is None else self.keeper.fence(account.mailbox)
            claiming = _ClaimingSession(self.large_mails.session(self.job.open_mailbox(account)), step)
            try:
                limit = step.quota if step.shares is None else step.shares.left
                run_pass(self.context, OpenMailbox(account, claiming, store, report, fence), limit)
                backlog = self._measure_backlog(account, claiming, step.more_waiting)
            finally:
                claiming.close()
        except DatabaseError as error:
            report.error = failure = error
            with self._lock:
                self.fatal = self.fatal or error
            self.stop.set()
            log.error("%s: the database failed; the run stops: %s", account.label, error, extra=FILE_ONLY)
        except BridgeError as error:
            report.error = failure = error
            # the terminal gets the error and its fix once, from the run's report (run_report.failure_lines)
            log.error("%s (%s): %s", account.label, account.mailbox, error, extra=FILE_ONLY)
        finally:
            if step.shares is not None and (claiming is None or not claiming.claimed):
                step.shares.withdraw()
        self._record_state(account, attempted_at, failure, backlog)
        return step

    def _leased(self, account: MailboxAccount, report: MailboxReport) -> bool:
        """Whether this run holds (or just took) the mailbox's lease; if not, why, in its report."""
        if self.keeper is None:
            return True
        try:
            held = self.keeper.take_one(account.mailbox, self.mailbox_count)
        except DatabaseError as error:
            report.error = error
            with self._lock:
                self.fatal = self.fatal or error
            self.stop.set()
            log.error("%s: the database failed; the run stops: %s", account.label, error, extra=FILE_ONLY)
            return False
        if held is None:
            return True
        report.held_by = _held_text(held)
        return False

    def _measure_backlog(
        self, account: MailboxAccount, session: MailboxSession, more_waiting: bool
    ) -> Backlog | None:
        """What still waits in the folder after the pass; None (unknown) when it cannot be measured.

        A pass whose listing held no more than its share and that was not stopped has emptied the
        folder as of that listing: the backlog is 0 without asking the server again (most passes
        of a scheduled run, so most mailboxes cost no extra round trips)."""
        if self.job.settings.dry_run:
            return None
        if not more_waiting and not self.stop.is_set():
            return Backlog(0, None, dt.datetime.now(dt.timezone.utc))
        try:
            measured = session.backlog()
        except Exception as error:  # informational only: nothing may fail the pass here
            log.warning(
                "%s (%s): the backlog could not be measured; `wicbox status` shows it as unknown: %s",
                account.label,
                account.mailbox,
                error,
            )
            return None
        oldest = measured.oldest_received_at
        received = None if oldest is None else dt.datetime.fromtimestamp(oldest, dt.timezone.utc)
        return Backlog(measured.count, received, dt.datetime.now(dt.timezone.utc))

    def ask_unconfirmed(self) -> frozenset[str] | None:
        """The mailboxes with unconfirmed server actions, one query for the run (None: each pass
        asks for its own mailbox, as when the query failed)."""
        if self.job.settings.dry_run:
            return None
        try:
            found = mailboxes_with_pending_acks(self.store(), self.job.settings.source_folder)
        except BridgeError as error:
            log.warning("Asking for unconfirmed server actions failed; each mailbox asks its own: %s", error)
            return None
        return frozenset(found)

    def served_order(self, candidates: list[int]) -> list[int]:
        """The candidates, least recently served first (never served first; otherwise in order)."""
        if len(candidates) < 2:
            return candidates
        try:
            served = last_served(self.store(), utc_now() - _SERVED_WINDOW)
        except BridgeError as error:
            log.warning("Asking which mailboxes were served last failed; they are read in order: %s", error)
            return candidates
        accounts = self.job.accounts
        return sorted(
            candidates, key=lambda index: served.get(normalized_mailbox(accounts[index].mailbox), 0)
        )

    def idle_mailboxes(self, unconfirmed: frozenset[str] | None) -> set[int]:
        """The accounts the survey found without mail and with no unconfirmed action; not opened."""
        survey = self.job.survey
        if survey is None or self.job.settings.dry_run or len(self.job.accounts) < 2 or unconfirmed is None:
            return set()
        accounts = self.job.accounts
        try:
            answers = survey(accounts)
        except BridgeError as error:  # every mailbox is opened instead, and reports its own error
            log.warning("Asking which mailboxes have mail failed; every mailbox is opened: %s", error)
            return set()
        return {
            index
            for index, answer in enumerate(answers)
            if answer is False and normalized_mailbox(accounts[index].mailbox) not in unconfirmed
        }

    def record_idle(self, indexes: set[int]) -> None:
        """The idle mailboxes' state: a success, nothing waiting."""
        now = utc_now()
        for index in sorted(indexes):
            self._record_state(self.job.accounts[index], now, None, Backlog(0, None, now))

    def write_states(self) -> None:
        """The state rows recorded since the last call, in one transaction; a failure is only logged."""
        with self._lock:
            records, self._states = self._states, []
        if not records:
            return
        try:
            record_passes(self.store(), records)
        except DatabaseError as failure:
            log.warning(
                "The state of %d mailbox(es) for `wicbox status` could not be recorded: %s",
                len(records),
                failure,
            )

    def _record(
        self,
        account: MailboxAccount,
        attempted_at: dt.datetime,
        error: BridgeError | None,
        backlog: Backlog | None,
    ) -> PassRecord:
        return PassRecord(
            mailbox=account.mailbox,
            folder=self.job.settings.source_folder,
            label=account.label,
            project_code=account.project_code,
            protocol=self.job.settings.protocol,
            run_id=self.job.run_id,
            attempted_at=attempted_at,
            failure=None if error is None else self._failure(account, error),
            backlog=backlog,
        )

    def _record_state(
        self,
        account: MailboxAccount,
        attempted_at: dt.datetime,
        error: BridgeError | None,
        backlog: Backlog | None,
    ) -> None:
        """The pass's outcome for WICBOX_MAILBOX_STATE, written with the round's (:meth:`write_states`)."""
        if self.job.settings.dry_run:
            return
        record = self._record(account, attempted_at, error, backlog)
        with self._lock:
            self._states.append(record)

    def _failure(self, account: MailboxAccount, error: BridgeError) -> PassFailure:
        def secret_free(text: str) -> str:
            return self.job.redact(mask_values(text, [account.password]))

        return PassFailure(
            kind=error_kind(error),
            message=secret_free(error.message),
            fix=None if error.fix is None else secret_free(error.fix),
            code=error.code if isinstance(error, AuthenticationError) else None,
        )


def _run_round(pool: ThreadPoolExecutor, state: _Run, steps: list[_Pass]) -> list[_Pass]:
    """The global mailbox's pass first (MIX: the SINGLE pass, then the MULTIPLE pass), then the
    project mailboxes' passes concurrently."""
    accounts = state.job.accounts
    first = [step for step in steps if accounts[step.index].project is None]
    rest = [step for step in steps if accounts[step.index].project is not None]
    return list(pool.map(state.run_pass, first)) + list(pool.map(state.run_pass, rest))


def run_mailboxes(job: RunJob) -> RunReport:
    """Process the accounts in fair rounds with bounded concurrency; see the module docstring."""
    started = time.monotonic()
    state = _Run(job)
    workers = max(1, min(job.settings.workers, len(job.accounts) or 1))
    try:
        _take_leases(state)
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="wicbox-mailbox") as pool:
            _run_rounds(pool, state)
    finally:
        if state.keeper is not None and job.keeper is None:
            state.keeper.close()
        try:
            state.write_states()
        finally:
            state.close_stores()
    return RunReport(state.reports, time.monotonic() - started, job.settings.dry_run, state.fatal)


def _held_text(held: Refused) -> str:
    if held.left:
        return held.holder
    remaining = max(0.0, held.expires_in_s)
    return f"another wicbox run reads it, {held.holder} (its lease expires in {remaining:.0f} s)"


def _take_leases(state: _Run) -> None:
    """The run's lease keeper, renewing from now on; each mailbox's lease is taken by its first pass."""
    job = state.job
    if job.keeper is not None:
        state.keeper = job.keeper
        return
    if job.leases is None or job.settings.dry_run or not job.accounts:
        return
    state.keeper = LeaseKeeper(job.open_store, job.leases)
    state.keeper.start()


def _run_rounds(pool: ThreadPoolExecutor, state: _Run) -> None:
    """The first round over every mailbox (the cap handed out as they list their mail), then
    rounds over the mailboxes that still have mail until the cap is reached."""
    job = state.job
    remaining = job.settings.max_mails
    if remaining <= 0:
        return
    unconfirmed = state.ask_unconfirmed()
    state.context = dataclasses.replace(state.context, unconfirmed=unconfirmed)
    held = {index for index, report in enumerate(state.reports) if report.held_by is not None}
    idle = state.idle_mailboxes(unconfirmed) - held
    state.record_idle(idle)
    candidates = state.served_order([index for index in range(len(job.accounts)) if index not in idle | held])
    shares = OpeningShares(remaining, len(candidates))
    steps = [_Pass(index, 0, shares) for index in candidates]
    round_number = 0
    while steps and not state.stop.is_set():
        before = sum(state.reports[step.index].fetched for step in steps)
        done = _run_round(pool, state, steps)
        state.write_states()
        remaining -= sum(state.reports[step.index].fetched for step in steps) - before
        round_number += 1
        if job.settings.dry_run or remaining <= 0:
            break  # a dry run changes nothing, so a second round would list the same mails again
        steps = _next_round(state, done, remaining, job.settings.rotation + round_number)


def _next_round(state: _Run, done: list[_Pass], remaining: int, rotation: int) -> list[_Pass]:
    """The mailboxes that still have mail, the rest of the cap water-filled over what they listed."""
    hungry = [step for step in done if step.more_waiting and state.reports[step.index].error is None]
    quotas = share_cap(remaining, [min(step.waiting, remaining) for step in hungry], rotation=rotation)
    return [_Pass(step.index, quota) for step, quota in zip(hungry, quotas, strict=True) if quota > 0]
