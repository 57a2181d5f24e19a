"""Serve's mailboxes spread over the live serve processes (SQLite and PostgreSQL), in process with
an injected lease clock: a presence row makes an owner live without a lease, a serve above its fair
share gives back the excess only after two renewal rounds in a row and never mid-pass, two serves
settle at half each without handing mailboxes back and forth, and an idle serve whose mailboxes
are all held elsewhere reads the lease table once per tick instead of one transaction per mailbox
(the statements per minute, before and after, are printed: see docs/performance.md)."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterator
from contextlib import ExitStack

import pytest

from tests.helpers.statements import counted_statements
from wicbox_bridge.auth.aadsts import CredentialNames
from wicbox_bridge.auth.accounts import MailboxAccount
from wicbox_bridge.config.dbtarget import DatabaseTarget
from wicbox_bridge.run.runlock import LeaseKeeper, LeaseSettings
from wicbox_bridge.serve.leases import LeaseGate
from wicbox_bridge.store import DbApiStore, open_store
from wicbox_bridge.store.base import Store
from wicbox_bridge.store.leases import (
    DatabaseClock,
    LeaseClock,
    LeaseOwner,
    fenced,
    list_leases,
    live_owners,
)

START = dt.datetime(2026, 3, 1, 8, 0, 0)
MAILBOXES = [f"project{n:02d}@example.be" for n in range(1, 21)]
ACCOUNTS = [MailboxAccount(name, name, None, None, None, CredentialNames()) for name in MAILBOXES]
OWNER_A = LeaseOwner("a" * 36, "host-a", 101)
OWNER_B = LeaseOwner("b" * 36, "host-b", 202)
TICK_S = 2.0
LEASE_S = 3600.0  # nothing expires within a test (no renewal thread runs here)
TICKS_PER_MINUTE = 30


class SteppedClock:
    """The lease clock (the database's, the same for every owner) and the gate's tick clock."""

    def __init__(self) -> None:
        self.moment = START

    def now(self, store: Store) -> dt.datetime:
        return self.moment

    def advance(self, seconds: float) -> None:
        self.moment += dt.timedelta(seconds=seconds)

    def monotonic(self) -> float:
        return (self.moment - START).total_seconds()


@pytest.fixture
def clock() -> SteppedClock:
    return SteppedClock()


@pytest.fixture
def stack() -> Iterator[ExitStack]:
    with ExitStack() as opened:
        yield opened


def _gate(
    target: DatabaseTarget,
    owner: LeaseOwner,
    clock: SteppedClock,
    stack: ExitStack,
    lease_clock: LeaseClock | None = None,
) -> tuple[LeaseGate, DbApiStore]:
    """A serve's gate on a connection of its own; leases judged by ``lease_clock`` (else ``clock``)."""
    store = open_store(target, timeout_s=10)
    settings = LeaseSettings(seconds=LEASE_S, owner=owner, clock=lease_clock or clock)
    keeper = LeaseKeeper(lambda: store, settings)
    stack.callback(keeper.close)
    gate = LeaseGate(keeper, tick_s=TICK_S, clock=clock.monotonic)
    gate.plan(ACCOUNTS)
    return gate, store


def _held(gate: LeaseGate) -> int:
    return sum(gate.holds(account) for account in ACCOUNTS)


def _tick(gate: LeaseGate) -> int:
    return sum(gate.may_work(account) for account in ACCOUNTS)


def test_a_serve_holding_no_lease_counts_as_live_and_is_gone_after_close(
    wic_store: DbApiStore, database_target: DatabaseTarget, clock: SteppedClock, stack: ExitStack
) -> None:
    gate, _ = _gate(database_target, OWNER_A, clock, stack)
    assert [owner.key for owner in live_owners(wic_store, clock)] == [OWNER_A.key]
    assert list_leases(wic_store, clock) == []  # the presence row is no mailbox
    gate.keeper.close()
    assert live_owners(wic_store, clock) == []


def test_two_serves_settle_at_half_each_after_two_renewal_rounds_and_stay_there(
    wic_store: DbApiStore, database_target: DatabaseTarget, clock: SteppedClock, stack: ExitStack
) -> None:
    first, _ = _gate(database_target, OWNER_A, clock, stack)
    assert _tick(first) == len(MAILBOXES)  # alone: every mailbox
    second, _ = _gate(database_target, OWNER_B, clock, stack)
    clock.advance(TICK_S)
    assert _tick(second) == 0  # all held by the first
    first.rebalance()
    assert _held(first) == len(MAILBOXES)  # one round above the share: nothing moves yet
    with ExitStack() as passes:  # 11 passes in progress: the 9 idle go at once, one more after its pass
        for account in ACCOUNTS[:11]:
            assert passes.enter_context(first.claim(account))
        first.rebalance()
        assert _held(first) == len(MAILBOXES) // 2 + 1
        assert first.holds(ACCOUNTS[0])
    assert _held(first) == len(MAILBOXES) // 2
    assert not first.holds(ACCOUNTS[0])
    clock.advance(TICK_S)
    assert _tick(second) == len(MAILBOXES) // 2
    for _ in range(4):  # no ping-pong: each keeps its half, neither takes beyond its share
        clock.advance(TICK_S)
        first.rebalance()
        second.rebalance()
        assert (_tick(first), _tick(second)) == (len(MAILBOXES) // 2, len(MAILBOXES) // 2)
    assert {len(owner.mailboxes) for owner in live_owners(wic_store, clock)} == {len(MAILBOXES) // 2}


def test_the_serve_left_alone_takes_the_mailboxes_of_the_one_that_ended(
    wic_store: DbApiStore, database_target: DatabaseTarget, clock: SteppedClock, stack: ExitStack
) -> None:
    first, _ = _gate(database_target, OWNER_A, clock, stack)
    second, _ = _gate(database_target, OWNER_B, clock, stack)
    assert (_tick(first), _tick(second)) == (10, 10)
    second.keeper.close()  # leases released, presence withdrawn
    clock.advance(TICK_S)
    assert _tick(first) == len(MAILBOXES)


def test_an_idle_serve_reads_the_lease_table_once_per_tick(
    wic_store: DbApiStore, database_target: DatabaseTarget, clock: SteppedClock, stack: ExitStack
) -> None:
    holder, _ = _gate(database_target, OWNER_A, clock, stack, DatabaseClock())
    assert _tick(holder) == len(MAILBOXES)  # the other serve holds every mailbox (a share of 20)
    idle, store = _gate(database_target, OWNER_B, clock, stack, DatabaseClock())
    with counted_statements(store) as before:  # one transaction per mailbox and tick (until now)
        for _ in range(TICKS_PER_MINUTE):
            clock.advance(TICK_S)
            assert not any(idle.keeper.hold(account.mailbox, len(MAILBOXES)) is None for account in ACCOUNTS)
    with counted_statements(store) as after:
        for _ in range(TICKS_PER_MINUTE):
            clock.advance(TICK_S)
            assert _tick(idle) == 0
    print(f"idle serve, 20 mailboxes held elsewhere: {len(before)} statements/min before, {len(after)} after")
    assert len(after) <= 2 * TICKS_PER_MINUTE < len(before)  # the clock's SELECT and the table's


def test_a_lease_is_not_given_back_between_the_decision_to_work_a_mailbox_and_the_end_of_its_pass(
    wic_store: DbApiStore, database_target: DatabaseTarget, clock: SteppedClock, stack: ExitStack
) -> None:
    first, _ = _gate(database_target, OWNER_A, clock, stack)
    assert _tick(first) == len(MAILBOXES)
    _gate(database_target, OWNER_B, clock, stack)  # a second serve: the first holds twice its share
    claimed = ACCOUNTS[0]  # the first one the rebalancing would choose
    with first.claim(claimed) as allowed:  # the worker's decision, then its pass
        assert allowed
        first.rebalance()
        first.rebalance()  # two rounds above the share: the excess goes, but not this mailbox
        assert first.holds(claimed)  # unclaimed, it would have gone first (the first in order)
        assert _held(first) == len(MAILBOXES) // 2
        assert first.keeper.take_one(claimed.mailbox, 1) is None  # the pass's own ask
        with fenced(wic_store, first.keeper.fence(claimed.mailbox)):  # and its filing passes the fence
            pass
    assert first.holds(claimed)  # within the share: kept
    assert _held(first) == len(MAILBOXES) // 2


def test_a_lease_lost_after_the_decision_is_refused_to_the_pass_as_an_info_not_a_failure(
    wic_store: DbApiStore,
    database_target: DatabaseTarget,
    clock: SteppedClock,
    stack: ExitStack,
    caplog: pytest.LogCaptureFixture,
) -> None:
    first, _ = _gate(database_target, OWNER_A, clock, stack)
    mailbox = ACCOUNTS[0].mailbox
    assert first.may_work(ACCOUNTS[0])  # the decision: this serve holds the lease
    clock.advance(LEASE_S + 1)  # then it stalls past its lease, and another serve takes it over
    second, _ = _gate(database_target, OWNER_B, clock, stack)
    assert second.may_work(ACCOUNTS[0])
    caplog.set_level(logging.INFO, logger="wicbox")
    assert first.keeper.renew_round()  # the first serve's renewal finds the lease lost
    refused = first.keeper.take_one(mailbox, 1)  # its pass asks: refused, not run under a dead fence
    assert refused is not None and refused.left, refused
    assert not [record.getMessage() for record in caplog.records if record.levelno >= logging.ERROR]
