"""A worker's pass session kept open from one wake-up to the next.

Without it every pass of ``wicbox serve`` opens a session of its own next to the watch's IDLE
connection (connect, TLS, sign-in, select): most of a mail's arrival-to-filed time on the test bed.
:class:`KeptSession` lends the pass the session the previous pass used, as long as that pass
fetched mail (a mailbox that is getting mail) and it is younger than ``keep_s`` since its last
use; a mailbox without mail holds no second connection, so the idle cost stays one connection per
mailbox. Exchange allows 20 connections per mailbox: serve uses at most two (the watch and this).

A kept session the server has closed meanwhile (an idle timeout, a restart) fails on the pass's
first request, before anything was listed: it is dropped and that request made once more on a new
session, so the pass neither fails nor misses mail. A pass that fails otherwise drops it too.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable
from typing import Final

from wicbox_bridge.adapters.base import FetchedMail, MailboxBacklog, MailboxSession, MailRef
from wicbox_bridge.auth.accounts import MailboxAccount, MailboxOpener
from wicbox_bridge.errors import BridgeError

log = logging.getLogger("wicbox.serve")

KEEP_S: Final = 300.0  # well below the servers' idle timeouts (Exchange and Dovecot: 30 minutes)


class KeptSession:
    """One worker's pass session, lent to each pass (:meth:`open`) and kept or dropped after it
    (:meth:`pass_ended`); closed by :meth:`drop`. Used by one worker thread only."""

    def __init__(
        self,
        open_mailbox: MailboxOpener,
        *,
        keep_s: float = KEEP_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._open_mailbox = open_mailbox
        self._keep_s = keep_s
        self._clock = clock
        self._session: MailboxSession | None = None
        self._used_at = 0.0
        self._lent: _Lent | None = None
        self.opened = 0  # sessions opened (the bench and the tests read it)

    def open(self, account: MailboxAccount) -> MailboxSession:
        """The pass's session: the kept one when there is one still fresh, else a new one."""
        if self._session is not None and self._clock() - self._used_at > self._keep_s:
            self.drop()
        reused = self._session is not None
        if self._session is None:
            self._session = self._new(account)
        self._lent = _Lent(self, account, self._session, reused)
        return self._lent

    def pass_ended(self, *, fetched: int, failed: bool) -> None:
        """Keep the session for the next wake-up after a pass that fetched mail and did not fail."""
        self._lent = None
        if failed or fetched == 0:
            self.drop()
        else:
            self._used_at = self._clock()

    def drop(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            _close_quietly(session)

    def _new(self, account: MailboxAccount) -> MailboxSession:
        session = self._open_mailbox(account)
        self.opened += 1
        return session

    def _replace(self, account: MailboxAccount) -> MailboxSession:
        """A new session instead of a kept one the server closed."""
        self.drop()
        self._session = self._new(account)
        return self._session


class _Lent:
    """The kept session as one pass sees it: ``close`` only ends the loan."""

    def __init__(
        self, owner: KeptSession, account: MailboxAccount, session: MailboxSession, reused: bool
    ) -> None:
        self._owner = owner
        self._account = account
        self._session = session
        self._reused = reused  # the first request may meet a connection closed since the last pass
        self.validity = session.validity

    def list_pending(self, limit: int) -> list[MailRef]:
        if not self._reused:
            return self._session.list_pending(limit)
        self._reused = False
        try:
            return self._session.list_pending(limit)
        except BridgeError as error:
            gone = error.message
            log.info("%s: the kept session is gone (%s); opening a new one", self._account.mailbox, gone)
            self._session = self._owner._replace(self._account)
            self.validity = self._session.validity
            return self._session.list_pending(limit)

    def fetch(self, refs: list[MailRef]) -> list[FetchedMail]:
        self._reused = False
        return self._session.fetch(refs)

    def acknowledge(self, refs: list[MailRef]) -> None:
        self._reused = False
        self._session.acknowledge(refs)

    def quarantine(self, refs: list[MailRef]) -> None:
        self._reused = False
        self._session.quarantine(refs)

    def backlog(self) -> MailboxBacklog:
        self._reused = False
        return self._session.backlog()

    def close(self) -> None:
        """Nothing to close: the worker keeps or drops the session after the pass."""


def _close_quietly(session: MailboxSession) -> None:
    with contextlib.suppress(Exception):  # closing a broken connection: nothing left to do
        session.close()
