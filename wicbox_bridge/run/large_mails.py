"""One large batch at a time in the whole run, whatever the number of passes running at once.

Each pass holds at most two batches of its share of the in-flight budget, or one batch larger than
that alone (a large mail: see :func:`wicbox_bridge.run.mailbox_pass.batches`). Passes that run
at once (MULTIPLE, ``workers`` threads) would each hold such a large mail, so a run of 2-5 MB mails
over four project mailboxes held four of them. :class:`LargeMailGate` wraps each pass's session:
fetching a batch larger than the pass's budget first takes the run's one gate, and gives it back
at the pass's next fetch (the pass fetches the next batch only once that large one is filed) or
when the pass ends. Small batches never wait.
"""

from __future__ import annotations

import threading

from wicbox_bridge.adapters.base import FetchedMail, MailboxBacklog, MailboxSession, MailRef


class LargeMailGate:
    """The run's gate; :meth:`session` wraps one pass's session with it."""

    def __init__(self, budget_bytes: int) -> None:
        self.budget_bytes = budget_bytes
        self._lock = threading.Lock()

    def session(self, session: MailboxSession) -> MailboxSession:
        return _GatedSession(session, self)

    def take(self) -> None:
        self._lock.acquire()

    def give_back(self) -> None:
        self._lock.release()


class _GatedSession:
    """A pass's session whose fetch of a large batch waits for the run's gate (see the module)."""

    def __init__(self, session: MailboxSession, gate: LargeMailGate) -> None:
        self._session = session
        self._gate = gate
        self._holding = False
        self.validity = session.validity

    def _give_back(self) -> None:
        if self._holding:
            self._holding = False
            self._gate.give_back()

    def list_pending(self, limit: int) -> list[MailRef]:
        return self._session.list_pending(limit)

    def fetch(self, refs: list[MailRef]) -> list[FetchedMail]:
        self._give_back()  # the previous batch is filed when the pass fetches the next
        if sum(ref.size for ref in refs) > self._gate.budget_bytes:
            self._gate.take()
            self._holding = True
        return self._session.fetch(refs)

    def acknowledge(self, refs: list[MailRef]) -> None:
        self._give_back()
        self._session.acknowledge(refs)

    def quarantine(self, refs: list[MailRef]) -> None:
        self._give_back()
        self._session.quarantine(refs)

    def backlog(self) -> MailboxBacklog:
        return self._session.backlog()

    def close(self) -> None:
        try:
            self._session.close()
        finally:
            self._give_back()
