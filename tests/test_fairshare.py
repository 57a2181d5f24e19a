"""The per-run cap is shared fairly between mailboxes."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from wicbox_bridge.adapters.base import MailRef
from wicbox_bridge.run.fairshare import OpeningShares, share_cap
from wicbox_bridge.run.mailbox_pass import batches


@pytest.mark.parametrize(
    ("cap", "pending", "expected"),
    [
        (100, [50] * 10, [10] * 10),
        (100, [100], [100]),
        (100, [3, 200], [3, 97]),
        (100, [5, 5, 5, 200], [5, 5, 5, 85]),
        (10, [0, 0, 7], [0, 0, 7]),
        (10, [], []),
        (0, [5, 5], [0, 0]),
        (7, [10, 10, 10], [3, 2, 2]),
        (100, [1] * 150, [1] * 100 + [0] * 50),
        (1000, [5] * 100, [5] * 100),
    ],
)
def test_share_cap_table(cap: int, pending: list[int], expected: list[int]) -> None:
    assert share_cap(cap, pending) == expected


def test_the_extra_mail_rotates_between_runs() -> None:
    assert share_cap(7, [10, 10, 10], rotation=1) == [2, 3, 2]
    assert share_cap(7, [10, 10, 10], rotation=2) == [2, 2, 3]


def test_ten_busy_mailboxes_drain_in_five_runs() -> None:
    pending = [50] * 10
    for run in range(5):
        quotas = share_cap(100, pending, rotation=run)
        assert all(8 <= quota <= 12 for quota in quotas)
        pending = [count - quota for count, quota in zip(pending, quotas, strict=True)]
    assert pending == [0] * 10


@given(st.integers(0, 1000), st.lists(st.integers(0, 1000), max_size=40), st.integers(0, 50))
def test_share_cap_properties(cap: int, pending: list[int], rotation: int) -> None:
    quotas = share_cap(cap, pending, rotation=rotation)
    assert sum(quotas) == min(cap, sum(pending))
    assert all(0 <= quota <= count for quota, count in zip(quotas, pending, strict=True))
    # Fair: a mailbox that got less than it has waiting got at least as much as any other, minus one.
    if quotas:
        for quota, count in zip(quotas, pending, strict=True):
            if quota < count:
                assert quota >= max(quotas) - 1


def test_negative_input_is_refused() -> None:
    with pytest.raises(ValueError, match="negative"):
        share_cap(-1, [1])


def _ref(key: int, size: int) -> MailRef:
    return MailRef("m@klant.example", "INBOX", "1", str(key), size)


@pytest.mark.parametrize(
    ("sizes", "most", "most_bytes", "expected"),
    [
        ([10] * 5, 2, 1000, [2, 2, 1]),
        ([400, 400, 400], 10, 1000, [2, 1]),
        ([5000, 1, 1], 10, 1000, [1, 2]),  # a mail above the budget is a batch of its own
        ([1, 5000, 1], 10, 1000, [1, 1, 1]),
        ([], 10, 1000, []),
        ([0] * 7, 3, 1000, [3, 3, 1]),  # Graph lists no sizes: counted only
    ],
)
def test_batches_by_count_and_bytes(
    sizes: list[int], most: int, most_bytes: int, expected: list[int]
) -> None:
    refs = [_ref(key, size) for key, size in enumerate(sizes)]
    chunks = batches(refs, most, most_bytes)
    assert [len(chunk) for chunk in chunks] == expected
    assert [ref for chunk in chunks for ref in chunk] == refs


def test_opening_shares_give_empty_mailboxes_nothing_and_the_first_claimants_one_each() -> None:
    shares = OpeningShares(3, 5)
    assert [shares.claim(waiting) for waiting in (0, 4, 0, 4, 4)] == [0, 1, 0, 1, 1]
    assert shares.left == 0


def test_opening_shares_hand_what_quiet_mailboxes_leave_to_the_later_ones() -> None:
    shares = OpeningShares(100, 4)
    assert [shares.claim(waiting) for waiting in (3, 3, 200, 200)] == [3, 3, 47, 47]
    shares = OpeningShares(100, 3)
    shares.withdraw()  # a mailbox that could not be opened takes no share
    assert [shares.claim(200), shares.claim(200)] == [50, 50]


@given(st.integers(0, 300), st.lists(st.integers(0, 300), max_size=40))
def test_opening_shares_properties(cap: int, waiting: list[int]) -> None:
    shares = OpeningShares(cap, len(waiting))
    quotas = []
    for position, count in enumerate(waiting):
        left = shares.left
        quota = shares.claim(count)
        quotas.append(quota)
        assert 0 <= quota <= count
        # at most an equal share, rounded up, of what is left among those not yet served
        assert quota <= -(-left // (len(waiting) - position))
        # a mailbox with mail goes without only when the cap is spent
        assert quota > 0 or count == 0 or left == 0
    assert sum(quotas) + shares.left == cap
