"""Sharing the per-run cap fairly between mailboxes (pure).

Water-filling: every mailbox gets an equal share of the cap, a mailbox that needs less than its
share gets what it needs, and what it leaves flows to the mailboxes that still have mail. With a
cap of 100 and ten busy mailboxes each gets 10; with one busy and nine quiet ones the quiet ones get
all they have and the busy one the rest. A busy mailbox never starves a quiet one.
"""

from __future__ import annotations

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
