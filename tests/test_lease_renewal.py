"""The lease renewal outlives a database outage (SQLite and PostgreSQL, an injected lease clock):
while the test-bed PostgreSQL is stopped, or the SQLite file is locked by another connection, the
renewal rounds fail on schedule, the failure is logged once with its fix, the holder learns that
its leases are at risk (serve starts no pass), and once the database is back the renewal resumes
on a new connection. A lease that expired meanwhile is dropped and its fence refuses filing.

Nothing here sleeps: the test waits on the keeper's rounds (a step run after each round)."""

from __future__ import annotations

import datetime as dt
import logging
import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, ExitStack, contextmanager

import pytest

from tests.helpers.statements import counted_statements
from tests.plugins.postgres import BACKENDS, PgDatabase
from wicbox_bridge.auth.aadsts import CredentialNames
from wicbox_bridge.auth.accounts import MailboxAccount
from wicbox_bridge.config.dbtarget import DatabaseTarget, SqliteTarget
from wicbox_bridge.errors import FIX_SEPARATOR, LeaseLost
from wicbox_bridge.run.runlock import LeaseKeeper, LeaseSettings
from wicbox_bridge.serve.leases import LeaseGate
from wicbox_bridge.store import DbApiStore, init_schema, open_store
from wicbox_bridge.store.base import Store
from wicbox_bridge.store.leases import (
    DatabaseClock,
    Lease,
    LeaseOwner,
    acquire,
    announce,
    fenced,
    renew,
)

START = dt.datetime(2026, 3, 1, 8, 0, 0)
LEASE_S = 0.6  # renewal rounds every 0.2 s of real time; expiry is judged by the stepped clock
MAILBOX = "info@example.be"
ACCOUNT = MailboxAccount(MAILBOX, MAILBOX, None, None, None, CredentialNames())
OWNER = LeaseOwner("c" * 36, "host-c", 303)
OTHER = LeaseOwner("d" * 36, "host-d", 404)
FAILED_ROUNDS = 3
WAIT_S = 60.0  # only ends a hanging test


class SteppedClock:
    """The lease clock (the database's in production): moves only when the test says so."""

    def __init__(self) -> None:
        self.moment = START

    def now(self, store: Store) -> dt.datetime:
        return self.moment


class Rounds:
    """The keeper's renewal rounds as they end: whether each left the renewal failing."""

    def __init__(self, keeper: LeaseKeeper) -> None:
        self._keeper = keeper
        self._changed = threading.Condition()
        self.outcomes: list[bool] = []  # True: the round's renewal got through
        keeper.after_renewal(self._record)

    def _record(self) -> None:
        with self._changed:
            self.outcomes.append(not self._keeper.renewal_failing())
            self._changed.notify_all()

    def wait(self, condition: Callable[[list[bool]], bool], what: str) -> None:
        with self._changed:
            if not self._changed.wait_for(lambda: condition(self.outcomes), WAIT_S):
                raise AssertionError(f"not within {WAIT_S} s: {what} (last rounds: {self.outcomes[-20:]})")

    def failed_since(self, start: int) -> int:
        return self.outcomes[start:].count(False)


Outage = Callable[[], AbstractContextManager[None]]


@pytest.fixture(params=BACKENDS)
def bed(request: pytest.FixtureRequest) -> tuple[DatabaseTarget, Outage]:
    """A database with the schema, and how to make it unavailable for a while."""
    if request.param == "sqlite":
        target: DatabaseTarget = request.getfixturevalue("sqlite_target")
        outage = _locked_file(target)  # type: ignore[arg-type]
    else:
        database: PgDatabase = request.getfixturevalue("pg_database")
        target = database.target
        outage = _stopped_server(database)
    with open_store(target, timeout_s=10) as store:
        init_schema(store)
    return target, outage


def _locked_file(target: SqliteTarget) -> Outage:
    @contextmanager
    def locked() -> Iterator[None]:
        connection = sqlite3.connect(target.path, isolation_level=None)
        try:
            connection.execute("BEGIN EXCLUSIVE")  # every other writer waits, then fails
            yield
            connection.execute("ROLLBACK")
        finally:
            connection.close()

    return locked


def _stopped_server(database: PgDatabase) -> Outage:
    @contextmanager
    def stopped() -> Iterator[None]:
        database.server.halt()
        try:
            yield
        finally:
            database.server.start()

    return stopped


@contextmanager
def _keeper(target: DatabaseTarget, clock: SteppedClock) -> Iterator[tuple[LeaseKeeper, Lease]]:
    settings = LeaseSettings(seconds=LEASE_S, owner=OWNER, clock=clock)
    keeper = LeaseKeeper(lambda: open_store(target, timeout_s=0.2), settings)
    try:
        assert keeper.take([MAILBOX]) == {}
        fence = keeper.fence(MAILBOX)
        assert fence is not None
        yield keeper, fence.lease
    finally:
        keeper.close()


def _row(target: DatabaseTarget) -> tuple[int, str]:
    with open_store(target, timeout_s=10) as store:
        row = store.query_one("SELECT TOKEN, EXPIRES_AT FROM WICBOX_LEASE WHERE MAILBOX = ?", (MAILBOX,))
    assert row is not None
    return int(row[0]), str(row[1])


def _renewal_errors(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [
        record
        for record in caplog.records
        if record.levelno >= logging.ERROR and "could not be renewed" in record.getMessage()
    ]


@pytest.mark.parametrize("expired", [False, True], ids=["short-outage", "outage-past-the-lease"])
def test_the_renewal_survives_an_outage_and_nothing_is_filed_under_an_expired_fence(
    bed: tuple[DatabaseTarget, Outage], expired: bool, caplog: pytest.LogCaptureFixture
) -> None:
    target, outage = bed
    clock = SteppedClock()
    caplog.set_level(logging.INFO, logger="wicbox")
    with ExitStack() as stack:
        keeper, lease = stack.enter_context(_keeper(target, clock))
        gate = LeaseGate(keeper)
        rounds = Rounds(keeper)
        keeper.start()
        rounds.wait(any, "a first renewal round")
        assert gate.may_work(ACCOUNT)
        with outage():
            start = len(rounds.outcomes)
            rounds.wait(lambda done: done[start:].count(False) >= FAILED_ROUNDS, "failed renewal rounds")
            assert keeper.renewal_failing()
            assert not gate.may_work(ACCOUNT)  # at risk: serve starts no pass
            if expired:
                clock.moment += dt.timedelta(seconds=2 * LEASE_S)
        errors = _renewal_errors(caplog)
        assert len(errors) == 1, [record.getMessage() for record in errors]  # once per outage
        assert FIX_SEPARATOR in errors[0].getMessage()  # with its fix
        back = len(rounds.outcomes)
        rounds.wait(lambda done: any(done[back:]), "a renewal round that got through after the outage")
        assert not keeper.renewal_failing()
        assert "the mailbox leases are renewed again" in caplog.text
        token, expires = _row(target)
        assert token == lease.token
        if not expired:
            assert keeper.holds(MAILBOX)
            assert expires.startswith(str(clock.moment + dt.timedelta(seconds=LEASE_S))[:19])
            assert gate.may_work(ACCOUNT)
            return
        assert not keeper.holds(MAILBOX)  # dropped: it expired while it could not be renewed
        fence = keeper.fence(MAILBOX)
        assert fence is not None and fence.lease.token == lease.token
        with open_store(target, timeout_s=10) as store:
            with pytest.raises(LeaseLost), fenced(store, fence):  # nothing is filed under it
                store.execute("UPDATE WICBOX_LEASE SET TOKEN = TOKEN WHERE MAILBOX = ?", (MAILBOX,))
            taken = acquire(store, MAILBOX, OTHER, LEASE_S, clock)
        assert isinstance(taken, Lease) and taken.token == lease.token + 1  # free for the others


def test_a_failing_step_after_the_renewal_does_not_end_the_renewals(
    sqlite_target: SqliteTarget, caplog: pytest.LogCaptureFixture
) -> None:
    with open_store(sqlite_target, timeout_s=10) as store:
        init_schema(store)
    failures = [RuntimeError("a holder's step broke")]

    def breaks_once() -> None:
        if failures:
            raise failures.pop()

    with _keeper(sqlite_target, SteppedClock()) as (keeper, _):
        keeper.after_renewal(breaks_once)
        rounds = Rounds(keeper)
        keeper.start()
        rounds.wait(lambda done: len(done) >= 2, "two renewal rounds")
        assert all(rounds.outcomes)
    assert "RuntimeError: a holder's step broke" in caplog.text


def test_a_renewal_round_costs_the_same_few_statements_for_100_leases(
    wic_store: DbApiStore, database_target: DatabaseTarget
) -> None:
    """One UPDATE for every held lease and the presence row, instead of a transaction per lease
    (the per-lease renewal of before is counted on the same leases for comparison)."""
    mailboxes = [f"project{number:03d}@example.be" for number in range(100)]
    store = open_store(database_target, timeout_s=10)
    keeper = LeaseKeeper(lambda: store, LeaseSettings(seconds=60.0, owner=OWNER, clock=DatabaseClock()))
    try:
        keeper.announce_presence()
        assert all(keeper.hold(name, len(mailboxes)) is None for name in mailboxes)  # as serve does
        leases = [fence.lease for fence in map(keeper.fence, mailboxes) if fence is not None]
        with counted_statements(store) as before:
            for lease in leases:
                assert renew(store, lease, 60.0, DatabaseClock()) is not None
            announce(store, OWNER, 60.0, DatabaseClock())
        with counted_statements(store) as after:
            assert keeper.renew_round()
        assert keeper.held() == sorted(mailboxes)
    finally:
        keeper.close()
    rounds = 3  # a round every third of the default 60 s lease
    print(
        f"renewal, 100 leases and the presence row: {len(before)} statements a round before "
        f"({rounds * len(before)}/min), {len(after)} after ({rounds * len(after)}/min): {after}"
    )
    assert len(after) <= 5 < 100 < len(before)
