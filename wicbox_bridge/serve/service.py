"""The service loop of ``wicbox serve``: watches per mailbox, passes when they fire, the outbox and
the parameters on their own rhythm, a heartbeat, and a clean stop.

Everything that knows protocols or the configuration is handed in by the command (``ServeJob``):
``load_plan`` reads WICMan's parameters and the projects again and builds the openers,
``deliver_outbox`` sends what is due. A pass is run/'s own (:func:`run_mailboxes` over one account),
so filing, acknowledging and WICBOX_MAILBOX_STATE are exactly a scheduled run's.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace

from wicbox_bridge.adapters.base import MailboxSession, MailboxWatch
from wicbox_bridge.auth.accounts import MailboxAccount, MailboxOpener
from wicbox_bridge.errors import BridgeError, LeaseLost
from wicbox_bridge.run.routing import RoutableProject
from wicbox_bridge.run.runner import RunJob, RunReport, RunSettings, StoreOpener, run_mailboxes
from wicbox_bridge.serve.heartbeat import Heartbeat, MailboxBeat, utc_text
from wicbox_bridge.serve.kept import KEEP_S, KeptSession
from wicbox_bridge.serve.leases import LeaseGate

log = logging.getLogger("wicbox.serve")

WatchOpener = Callable[[MailboxAccount], MailboxWatch]
MayWork = Callable[[MailboxAccount], bool]
"""Whether this process may work ``account``'s mailbox now (without leases: always)."""


def always(_account: MailboxAccount) -> bool:
    return True


@dataclass(frozen=True)
class ServePlan:
    """What the parameters say now: the accounts, the projects, and how to open and watch them."""

    accounts: Sequence[MailboxAccount]
    projects: Sequence[RoutableProject]
    open_mailbox: MailboxOpener
    open_watch: WatchOpener
    run_settings: RunSettings
    auth_version: int = 0  # raised when the token layer was built again (a changed secret): rewatch all


@dataclass(frozen=True)
class ServeSettings:
    wait_s: float = 2.0  # the longest a worker waits on its watch before looking at the stop event
    reload_s: float = 60.0  # WICMan's parameters read again
    outbox_s: float = 15.0  # the outbox delivered
    heartbeat_s: float = 5.0
    refresh_s: float = 30.0  # tokens about to expire renewed (see wicbox_bridge.auth.refresh)
    retry_s: float = 30.0  # a mailbox that cannot be watched is tried again after this
    join_s: float = 8.0  # the longest the stop waits for the workers (SIGTERM: out within 10 s)
    max_watches: int = 500
    keep_session_s: float = KEEP_S  # a pass's session kept for the next wake-up (0: a new one each pass)


@dataclass(frozen=True)
class ServeJob:
    open_store: StoreOpener
    load_plan: Callable[[], ServePlan]
    deliver_outbox: Callable[[], None]
    heartbeat: Callable[[Heartbeat], None]
    stop: threading.Event
    refresh_tokens: Callable[[], None] = lambda: None
    settings: ServeSettings = ServeSettings()
    may_work: MayWork = always
    passes: threading.Semaphore | None = None  # at most this many passes at once (None: no limit)
    host: str = ""
    pid: int = 0
    clock: Callable[[], float] = time.monotonic
    leases: LeaseGate | None = None  # the mailbox leases (then ``may_work`` is theirs)

    @contextlib.contextmanager
    def claim(self, account: MailboxAccount) -> Iterator[bool]:
        """Around the decision to work ``account``'s mailbox and its passes: whether it may be
        worked now (its lease, with leases, and ``may_work``); with leases, the lease is not given
        back before the block ends (:meth:`LeaseGate.claim`)."""
        if self.leases is None:
            yield self.may_work(account)
            return
        with self.leases.claim(account) as leased:
            yield leased and self.may_work(account)


def _key(account: MailboxAccount) -> str:
    return f"{account.label}|{account.mailbox.casefold()}"


class _Worker:
    """One mailbox: its watch, and its passes when the watch fires."""

    def __init__(
        self, job: ServeJob, account: MailboxAccount, plan: ServePlan, mailbox_lock: threading.Lock
    ) -> None:
        self.job = job
        self.account = account
        self.plan = plan
        self.stop = threading.Event()
        self.beat = MailboxBeat(account.label, account.mailbox, "starting")
        self._mailbox_lock = mailbox_lock  # MIX: the global mailbox has two accounts, one pass at a time
        self._pass_stop: threading.Event | None = None
        self._kept = KeptSession(self._open_mailbox, keep_s=job.settings.keep_session_s, clock=job.clock)
        self.thread = threading.Thread(target=self._run, name=f"wicbox-watch-{account.label}", daemon=True)

    def halt(self) -> None:
        self.stop.set()
        pass_stop = self._pass_stop
        if pass_stop is not None:
            pass_stop.set()

    def _run(self) -> None:
        watch: MailboxWatch | None = None
        due = False  # a pass is owed (the watch fired, but the mailbox could not be worked yet)
        try:
            while not self._stopping():
                try:
                    if watch is None:
                        watch = self.plan.open_watch(self.account)
                        self.beat = replace(self.beat, how=watch.how, error=None)
                        fired = True  # the first pass catches up with what came before the watch
                    else:
                        fired = watch.wait(self.job.settings.wait_s)
                    due = due or fired
                    if due and not self._stopping():
                        with self.job.claim(self.account) as allowed:
                            if allowed:
                                due = self._work()
                    self._show_lease()
                except BridgeError as error:
                    log.error(
                        "%s (%s): %s; trying again in %.0f s",
                        self.account.label,
                        self.account.mailbox,
                        error,
                        self.job.settings.retry_s,
                    )
                    self.beat = replace(self.beat, how="failing", error=error.message)
                    if watch is not None:
                        _close_quietly(watch)
                        watch = None
                    self.stop.wait(self.job.settings.retry_s)
        finally:
            self._kept.drop()
            if watch is not None:
                _close_quietly(watch)

    def _open_mailbox(self, account: MailboxAccount) -> MailboxSession:
        return self.plan.open_mailbox(account)  # the plan read last (a reload replaces it)

    def _stopping(self) -> bool:
        return self.stop.is_set() or self.job.stop.is_set()

    def _show_lease(self) -> None:
        leases = self.job.leases
        held = None if leases is None else leases.holds(self.account)
        if held != self.beat.lease_held:
            self.beat = replace(self.beat, lease_held=held)

    def _work(self) -> bool:
        """Passes until the folder is drained (a pass takes at most the run's cap); True when a
        pass is still owed (the lease was lost on the way: asked for again at the next tick)."""
        fired_at = self.job.clock()
        while not self._stopping():
            report = self._one_pass()
            mailbox = report.mailboxes[0]
            if mailbox.held_by is not None:  # the lease left this process since the decision: by design
                log.info(
                    "%s (%s): not worked here, %s", self.account.label, self.account.mailbox, mailbox.held_by
                )
                return True
            now = utc_text(dt.datetime.now(dt.timezone.utc))
            latency = mailbox.last_latency_s
            self.beat = replace(
                self.beat,
                last_pass_at=now,
                last_filed=mailbox.filed,
                last_pass_s=round(self.job.clock() - fired_at, 3),
                error=None if mailbox.error is None else mailbox.error.message,
                filed_total=self.beat.filed_total + mailbox.filed,
                last_latency_s=self.beat.last_latency_s if latency is None else round(latency, 3),
                last_latency_at=self.beat.last_latency_at if latency is None else now,
            )
            if isinstance(mailbox.error, LeaseLost):
                log.warning("%s (%s): %s", self.account.label, self.account.mailbox, mailbox.error.message)
                return True
            if mailbox.error is not None:
                raise mailbox.error
            if mailbox.fetched < self.plan.run_settings.max_mails:
                return False
        return False

    def _one_pass(self) -> RunReport:
        pass_stop = threading.Event()
        self._pass_stop = pass_stop
        if self._stopping():
            pass_stop.set()
        job = RunJob(
            open_store=self.job.open_store,
            accounts=[self.account],
            open_mailbox=self._kept.open,
            projects=self.plan.projects,
            settings=self.plan.run_settings,
            stop=pass_stop,
            keeper=None if self.job.leases is None else self.job.leases.keeper,
        )
        report: RunReport | None = None
        try:
            with self._mailbox_lock, _bounded(self.job.passes):
                report = run_mailboxes(job)
        finally:
            self._pass_stop = None
            mailbox = None if report is None else report.mailboxes[0]
            if mailbox is None or self.job.settings.keep_session_s <= 0:
                self._kept.pass_ended(fetched=0, failed=True)
            else:
                failed = mailbox.error is not None or mailbox.held_by is not None
                self._kept.pass_ended(fetched=mailbox.fetched, failed=failed)
        filed = report.mailboxes[0].filed
        if filed:
            log.info("%s (%s): %d mail(s) filed", self.account.label, self.account.mailbox, filed)
        return report


class _bounded:
    def __init__(self, semaphore: threading.Semaphore | None) -> None:
        self._semaphore = semaphore

    def __enter__(self) -> None:
        if self._semaphore is not None:
            self._semaphore.acquire()

    def __exit__(self, *exc_info: object) -> None:
        if self._semaphore is not None:
            self._semaphore.release()


def _close_quietly(watch: MailboxWatch) -> None:
    try:
        watch.close()
    except Exception as error:  # closing a broken connection: nothing left to do
        log.debug("closing the watch failed: %s", error)


class Service:
    """The workers of the current plan, kept equal to it on every reload."""

    def __init__(self, job: ServeJob) -> None:
        self.job = job
        self.workers: dict[str, _Worker] = {}
        self._mailbox_locks: dict[str, threading.Lock] = {}
        self.started_at = utc_text(dt.datetime.now(dt.timezone.utc))

    def reconcile(self, plan: ServePlan) -> None:
        """Start workers for new accounts, stop the ones gone, restart the ones whose account changed."""
        wanted = {_key(account): account for account in plan.accounts[: self.job.settings.max_watches]}
        if self.job.leases is not None:
            self.job.leases.plan(list(wanted.values()))
        if len(plan.accounts) > self.job.settings.max_watches:
            log.warning(
                "%d mailboxes, but serve watches at most %d",
                len(plan.accounts),
                self.job.settings.max_watches,
            )
        for key in list(self.workers):
            worker = self.workers[key]
            if (
                key not in wanted
                or wanted[key] != worker.account
                or worker.plan.auth_version != plan.auth_version
            ):
                worker.halt()
                del self.workers[key]
            else:
                worker.plan = plan  # the next pass routes with the projects read now
        for key, account in wanted.items():
            if key not in self.workers:
                lock = self._mailbox_locks.setdefault(account.mailbox.casefold(), threading.Lock())
                worker = _Worker(self.job, account, plan, lock)
                self.workers[key] = worker
                worker.thread.start()
                log.info("watching %s (%s)", account.label, account.mailbox)

    def heartbeat(self) -> Heartbeat:
        beats = tuple(worker.beat for worker in self.workers.values())
        now = utc_text(dt.datetime.now(dt.timezone.utc))
        return Heartbeat(self.job.host, self.job.pid, self.started_at, now, beats)

    def halt(self) -> None:
        workers = list(self.workers.values())
        for worker in workers:
            worker.halt()
        deadline = time.monotonic() + self.job.settings.join_s
        for worker in workers:
            worker.thread.join(max(0.0, deadline - time.monotonic()))
        busy = [worker.account.label for worker in workers if worker.thread.is_alive()]
        if busy:
            log.warning("still busy when stopping (their passes end at the next batch): %s", ", ".join(busy))


def serve(job: ServeJob) -> None:
    """Run until ``job.stop`` is set; see the module docstring."""
    service = Service(job)
    settings = job.settings
    next_reload = next_outbox = next_beat = next_refresh = job.clock()
    try:
        while not job.stop.is_set():
            now = job.clock()
            if now >= next_reload:
                next_reload = now + settings.reload_s
                _guarded("reading the parameters", lambda: service.reconcile(job.load_plan()))
            if now >= next_outbox:
                next_outbox = now + settings.outbox_s
                _guarded("delivering the outbox", job.deliver_outbox)
            if now >= next_beat:
                next_beat = now + settings.heartbeat_s
                _guarded("writing the heartbeat", lambda: job.heartbeat(service.heartbeat()))
            if now >= next_refresh:
                next_refresh = now + settings.refresh_s
                _guarded("renewing the tokens", job.refresh_tokens)
            due = min(next_reload, next_outbox, next_beat, next_refresh)
            job.stop.wait(max(0.0, due - job.clock()))
    finally:
        service.halt()


def _guarded(doing: str, step: Callable[[], None]) -> None:
    try:
        step()
    except BridgeError as error:
        log.error("%s failed: %s", doing, error)
    except OSError as error:
        log.error("%s failed: %s", doing, error)
