"""The mailbox leases of `wicbox serve`: held for the service's whole life, each mailbox worked only
while its lease is held, and spread evenly over the live serve processes.

:class:`LeaseGate` wraps the run's :class:`~wicbox_bridge.run.runlock.LeaseKeeper` (one owner for
the process, renewed every third of the lease on a connection of its own, released on SIGTERM):
before a pass, :meth:`LeaseGate.may_work` answers whether this process holds the mailbox's lease or
can take it now within its fair share of the live owners (serve, other serve processes on this or
other hosts, scheduled runs). A lease lost since (the host stalled past it and another owner took
it over) is taken anew only when it is free or expired again; meanwhile the pass is refused and
asked again at the worker's next tick. Every filing and acknowledgement of a pass checks the
lease's fencing token, so a pass that began just before the lease was lost files nothing after.

Cost: the lease table is read once per tick (:attr:`LeaseGate.tick_s`, one SELECT for every
worker together); a mailbox it shows held by another live owner is refused without a transaction,
and only a free or expired one within the fair share is tried (one transaction).

The decision and the pass: :meth:`LeaseGate.claim` marks the mailbox busy *before* it asks
:meth:`~LeaseGate.may_work`, and the rebalancing gives back only mailboxes that are not busy,
checked and marked in one step under the gate's lock. So a lease is never given back between the
decision to work a mailbox and the end of its pass. A lease lost in that window all the same (the
renewal found it taken over after it expired) is refused by the keeper when the pass asks for it
(:meth:`~wicbox_bridge.run.runlock.LeaseKeeper.take_one`): an info line, no failed pass. Only a
fence that refuses in the middle of a pass (the host stalled past its lease) is a warning.

While the keeper's renewal fails (the database is down or locked), no new pass starts: the leases
may be expiring, and the pass would fail on the database anyway.

Rebalancing: serve keeps a presence row, so it counts as a live owner while it holds no lease. After
each round of renewals the gate counts its share, ``ceil(mailboxes / live owners)``; when it holds
more than that at two rounds in a row (hysteresis: a short scheduled run, or a serve that just
started or died, moves nothing), it gives back the excess: mailboxes not in a pass at once, a
mailbox in a pass when that pass ends. It only ever takes up to its share, so two serves settle at
half each and do not hand mailboxes back and forth.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

from wicbox_bridge.auth.accounts import MailboxAccount
from wicbox_bridge.errors import BridgeError
from wicbox_bridge.run.runlock import LeaseKeeper
from wicbox_bridge.store.leases import LeaseTable
from wicbox_bridge.store.mails import normalized_mailbox

log = logging.getLogger("wicbox.serve")

OVER_ROUNDS = 2  # renewal rounds in a row above the share before leases are given back


class LeaseGate:
    """``ServeJob.may_work`` by the mailbox leases; the keeper is the caller's (started, closed).

    Announces the keeper's presence and hooks the rebalancing into its renewals (at once: the
    keeper may already be started)."""

    def __init__(
        self, keeper: LeaseKeeper, *, tick_s: float = 2.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.keeper = keeper
        self.tick_s = tick_s
        self._clock = clock
        self._mailboxes = 1
        self._refused: set[str] = set()
        self._busy: set[str] = set()
        self._leaving: set[str] = set()  # given back when their pass ends
        self._giving: set[str] = set()  # being given back now: not claimed meanwhile
        self._at_risk = False  # said once per renewal outage
        self._over = 0
        self._table: tuple[float, LeaseTable] | None = None
        self._lock = threading.Lock()
        self._reading = threading.Lock()
        keeper.announce_presence()
        keeper.after_renewal(self.rebalance)

    def plan(self, accounts: Sequence[MailboxAccount]) -> None:
        """The mailboxes of the current plan: the fair share is counted over them."""
        names = {normalized_mailbox(account.mailbox) for account in accounts}
        with self._lock:
            self._mailboxes = max(1, len(names))

    def may_work(self, account: MailboxAccount) -> bool:
        """Whether this process holds (or just took) ``account``'s mailbox lease."""
        name = normalized_mailbox(account.mailbox)
        with self._lock:
            mailboxes = self._mailboxes
            leaving = name in self._leaving and name not in self._busy
        if leaving:
            self._give_back([name])
            return False
        if not self._renewing():
            return False
        if self.keeper.holds(name):
            return True
        refused = self.keeper.hold(name, mailboxes, self._survey())
        with self._lock:
            if refused is None:
                self._table = None  # the table changed: read again at the next ask
                if name in self._refused:
                    self._refused.discard(name)
                    log.info("%s: this process holds its lease now", name)
                return True
            if name not in self._refused:  # said once, not at every tick
                self._refused.add(name)
                log.info("%s: not worked here while %s", name, refused.holder)
        return False

    def _renewing(self) -> bool:
        """False while the keeper's renewal fails (said once per outage)."""
        failing = self.keeper.renewal_failing()
        with self._lock:
            said, self._at_risk = self._at_risk, failing
        if failing and not said:
            log.info("no pass starts while the mailbox leases cannot be renewed (they may be expiring)")
        elif said and not failing:
            log.info("the mailbox leases are renewed again: passes start again")
        return not failing

    @contextmanager
    def claim(self, account: MailboxAccount) -> Iterator[bool]:
        """Around the decision to work ``account``'s mailbox and its passes: yields
        :meth:`may_work`, asked once the mailbox is marked busy, so the rebalancing cannot give its
        lease back between the decision and the end of the passes (only after)."""
        name = normalized_mailbox(account.mailbox)
        with self._lock:
            blocked = name in self._giving or name in self._leaving  # leaving: given back below
            self._busy.add(name)
        try:
            yield not blocked and self.may_work(account)
        finally:
            with self._lock:
                self._busy.discard(name)
                leaving = name in self._leaving
            if leaving:
                self._give_back([name])

    def holds(self, account: MailboxAccount) -> bool:
        return self.keeper.holds(account.mailbox)

    def rebalance(self) -> None:
        """After a round of renewals: give back what lies above the fair share two rounds in a row
        (nothing while the renewal fails: the keeper has said so, and the table cannot be read)."""
        if self.keeper.renewal_failing():
            return
        try:
            table = self.keeper.survey()
        except BridgeError as error:
            log.warning("the lease table could not be read (rebalancing at the next renewal): %s", error)
            return
        held = self.keeper.held()
        with self._lock:
            self._table = (self._clock(), table)
            share, others = self.keeper.fair_share(self._mailboxes, table)
            excess = len(held) - share
            self._over = self._over + 1 if excess > 0 else 0
            if self._over < OVER_ROUNDS:
                return
            self._over = 0
            idle = [name for name in held if name not in self._busy]
            busy = [name for name in held if name in self._busy]
            chosen = (idle + busy)[:excess]
            now = [name for name in chosen if name not in self._busy]
            self._leaving.update(name for name in chosen if name in self._busy)
            self._giving.update(now)  # claimed by no worker until given back
        log.info(
            "holding %d of %d mailboxes with %d other live owner(s): giving back %d (fair share %d)",
            len(held),
            self._mailboxes,
            others,
            excess,
            share,
        )
        self._give_back(now)

    def _give_back(self, names: list[str]) -> None:
        for name in names:
            with self._lock:
                self._leaving.discard(name)
                self._giving.add(name)
            try:
                if self.keeper.give_back(name):
                    log.info("%s: lease given back for another live owner", name)
            finally:
                with self._lock:
                    self._giving.discard(name)

    def _survey(self) -> LeaseTable:
        """The lease table, read at most once per tick for all the workers."""
        with self._reading:
            with self._lock:
                cached = self._table
            if cached is not None and self._clock() - cached[0] < self.tick_s:
                return cached[1]
            table = self.keeper.survey()
            with self._lock:
                self._table = (self._clock(), table)
            return table
