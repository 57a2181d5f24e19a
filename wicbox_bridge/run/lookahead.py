"""Project mailboxes worked by a bounded pool, each worker opening its next mailbox ahead (no I/O here).

A pass has two halves: opening the mailbox (its lease, then connection, TLS, sign-in and folder
selection, mostly waiting for the mail server) and working it (listing, fetching, filing,
acknowledging, closing). While a worker works one mailbox, its look-ahead opens the next one, so
the next pass starts with its session ready. The bounds:

* at most ``count`` mailboxes are worked at once (``WICBOX_MAILCLIENT_WORKERS``), and each worker
  has at most one mailbox opened ahead: at most ``2 x count`` connections at any moment;
* never two connections on one mailbox: a mailbox is handed out only while no other pass of the
  round has it open or opening (two accounts on one mailbox wait for each other);
* a mailbox opened ahead is still worked by the worker that opened it, in the order handed out.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

S = TypeVar("S")  # a pass to do
Op = TypeVar("Op")  # that pass with its mailbox opened (or why not)


class Passes(Protocol[S, Op]):
    """The two halves of a pass, and how to close a mailbox opened but not worked."""

    def open(self, step: S) -> Op: ...

    def work(self, opened: Op) -> S: ...

    def discard(self, opened: Op) -> None: ...


class Dispenser(Generic[S]):
    """Hands out the round's passes in order, never one whose mailbox another pass has open."""

    def __init__(self, steps: list[S], mailbox: Callable[[S], Hashable]) -> None:
        self._pending = list(steps)
        self._mailbox = mailbox
        self._busy: set[Hashable] = set()
        self._changed = threading.Condition()
        self.most_busy = 0  # the most mailboxes open at once (for the tests)

    def take(self, *, wait: bool) -> S | None:
        """The next pass whose mailbox is free (now marked open); None when none is left, or,
        without ``wait``, when the ones left are open elsewhere."""
        with self._changed:
            while True:
                for position, step in enumerate(self._pending):
                    key = self._mailbox(step)
                    if key not in self._busy:
                        del self._pending[position]
                        self._busy.add(key)
                        self.most_busy = max(self.most_busy, len(self._busy))
                        return step
                if not self._pending or not wait:
                    return None
                self._changed.wait()

    def release(self, step: S) -> None:
        """The pass's mailbox is closed again."""
        with self._changed:
            self._busy.discard(self._mailbox(step))
            self._changed.notify_all()


@dataclass(frozen=True)
class Workers:
    """The run's worker pool and the look-ahead pool beside it, ``count`` threads each."""

    pool: ThreadPoolExecutor
    ahead: ThreadPoolExecutor
    count: int

    def run(self, passes: Passes[S, Op], steps: list[S], mailbox: Callable[[S], Hashable]) -> list[S]:
        """Every pass of ``steps`` done (the list itself, its passes updated in place)."""
        dispenser = Dispenser(steps, mailbox)
        futures = [
            self.pool.submit(self._worker, passes, dispenser) for _ in range(min(self.count, len(steps)))
        ]
        for future in futures:
            future.result()
        return steps

    def _worker(self, passes: Passes[S, Op], dispenser: Dispenser[S]) -> None:
        step = dispenser.take(wait=True)
        opened = None if step is None else _open(passes, dispenser, step)
        while opened is not None and step is not None:
            following = dispenser.take(wait=False)
            ahead = None if following is None else self.ahead.submit(_open, passes, dispenser, following)
            try:
                passes.work(opened)
            except BaseException:
                if ahead is not None and following is not None:
                    _discard(passes, dispenser, following, ahead)
                raise
            finally:
                dispenser.release(step)
            if ahead is not None:
                step, opened = following, ahead.result()
            else:
                step = dispenser.take(wait=True)
                opened = None if step is None else _open(passes, dispenser, step)


def _open(passes: Passes[S, Op], dispenser: Dispenser[S], step: S) -> Op:
    try:
        return passes.open(step)
    except BaseException:
        dispenser.release(step)
        raise


def _discard(passes: Passes[S, Op], dispenser: Dispenser[S], step: S, ahead: Future[Op]) -> None:
    """A mailbox opened ahead that will not be worked (its worker failed): closed, released."""
    try:
        passes.discard(ahead.result())
    except BaseException:  # the worker's own error is the one that matters; the opening failed too
        return
    finally:
        dispenser.release(step)
