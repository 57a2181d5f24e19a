"""Sharing the per-run cap fairly between mailboxes (no I/O).

Water-filling: every mailbox gets an equal share of the cap, a mailbox that needs less than its
share gets what it needs, and what it leaves flows to the mailboxes that still have mail. With a
cap of 100 and ten busy mailboxes each gets 10; with one busy and nine quiet ones the quiet ones get
all they have and the busy one the rest. A busy mailbox never starves a quiet one.

A run's first round does not know the counts before it opens the mailboxes: :class:`OpeningShares`
hands the cap out as each pass lists its mail; :func:`share_cap` shares what is left over the
counts the passes listed.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence


def share_cap(cap: int, pending: Sequence[int], *, rotation: int = 0) -> list[int]:
    """Quotas, in the order of ``pending`` (how many mails each mailbox has waiting, at most ``cap``).

    The quotas add up to ``min(cap, sum(pending))``. When the cap does not divide evenly, the extra
    mails go to mailboxes in an order that starts at ``rotation`` (pass the run number), so no
    mailbox is always the one that gets one more.
    """
    if cap < 0 or any(count < 0 for count in pending):
        raise ValueError("the cap and the pending counts cannot be negative")
    quotas = [0] * len(pending)
    remaining = cap
    hungry = [index for index, count in enumerate(pending) if count > 0]
    while remaining > 0 and hungry:
        share, extra = divmod(remaining, len(hungry))
        if share == 0:
            _give_extra(quotas, pending, hungry, extra, rotation)
            return quotas
        for index in hungry:
            quotas[index] += min(share, pending[index] - quotas[index])
        remaining = cap - sum(quotas)
        hungry = [index for index in hungry if quotas[index] < pending[index]]
    return quotas


def _give_extra(
    quotas: list[int], pending: Sequence[int], hungry: list[int], extra: int, rotation: int
) -> None:
    start = rotation % len(hungry)
    for index in (hungry[start:] + hungry[:start])[:extra]:
        if quotas[index] < pending[index]:
            quotas[index] += 1


class OpeningShares:
    """The cap handed out as the passes of a run's first round list their mail (thread-safe).

    Every mailbox is opened, and each claims when it knows how much it has waiting: a mailbox with
    nothing new takes nothing, one with mail takes at most an equal share of what is left among the
    mailboxes that have not claimed yet (rounded up, so with more mailboxes than mails the first
    claimants get one each), never more than it has. What the first round leaves goes, in the next
    rounds, to the mailboxes that still have mail (:func:`share_cap` over their known counts).
    """

    def __init__(self, cap: int, mailboxes: int) -> None:
        if cap < 0 or mailboxes < 0:
            raise ValueError("the cap and the number of mailboxes cannot be negative")
        self._left = cap
        self._unclaimed = mailboxes
        self._lock = threading.Lock()

    @property
    def left(self) -> int:
        with self._lock:
            return self._left

    def claim(self, waiting: int) -> int:
        """This mailbox's quota, given the mails it has waiting (each mailbox claims once)."""
        with self._lock:
            share = -(-self._left // max(1, self._unclaimed))
            quota = max(0, min(waiting, share, self._left))
            self._left -= quota
            self._unclaimed = max(0, self._unclaimed - 1)
            return quota

    def withdraw(self) -> None:
        """A mailbox that will not claim (it could not be opened, or was skipped)."""
        with self._lock:
            self._unclaimed = max(0, self._unclaimed - 1)
