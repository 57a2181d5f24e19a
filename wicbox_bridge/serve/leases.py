"""The mailbox leases of `wicbox serve`: held for the service's whole life, each mailbox worked only
while its lease is held.

:class:`LeaseGate` wraps the run's :class:`~wicbox_bridge.run.runlock.LeaseKeeper` (one owner for
the process, renewed every third of the lease on a connection of its own, released on SIGTERM):
before a pass, :meth:`LeaseGate.may_work` answers whether this process holds the mailbox's lease or
can take it now within its fair share of the live owners (serve, other serve processes on this or
other hosts, scheduled runs). A lease lost since (the host stalled past it and another owner took
it over) is taken anew only when it is free or expired again; meanwhile the pass is refused and
asked again at the worker's next tick. Every filing and acknowledgement of a pass checks the
lease's fencing token, so a pass that began just before the lease was lost files nothing after.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence

from wicbox_bridge.auth.accounts import MailboxAccount
from wicbox_bridge.run.runlock import LeaseKeeper
from wicbox_bridge.store.mails import normalized_mailbox

log = logging.getLogger("wicbox.serve")


class LeaseGate:
    """``ServeJob.may_work`` by the mailbox leases; the keeper is the caller's (started, closed)."""

    def __init__(self, keeper: LeaseKeeper) -> None:
        self.keeper = keeper
        self._mailboxes = 1
        self._refused: set[str] = set()
        self._lock = threading.Lock()

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
        refused = self.keeper.hold(name, mailboxes)
        with self._lock:
            if refused is None:
                if name in self._refused:
                    self._refused.discard(name)
                    log.info("%s: this process holds its lease now", name)
                return True
            if name not in self._refused:  # said once, not at every tick
                self._refused.add(name)
                log.info("%s: not worked here while %s", name, refused.holder)
        return False

    def holds(self, account: MailboxAccount) -> bool:
        return self.keeper.holds(account.mailbox)
