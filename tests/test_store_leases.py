"""The lease table on SQLite and PostgreSQL, with an injected clock (SQL Server: its statements
parse as T-SQL in tests/test_sqlserver_statements.py)."""

from __future__ import annotations

import datetime as dt
import threading

import pytest

from tests.helpers.mailgen import make_mail
from wicbox_bridge.config.dbtarget import DatabaseTarget
from wicbox_bridge.errors import LeaseLost
from wicbox_bridge.mail.parse import parse_mail
from wicbox_bridge.store import DbApiStore, open_store
from wicbox_bridge.store.base import Store
from wicbox_bridge.store.filing import Filed, file_mails
from wicbox_bridge.store.leases import (
    DatabaseClock,
    Fence,
    Lease,
    LeaseOwner,
    Refused,
    acquire,
    check_fence,
    fenced,
    list_leases,
    read_owners,
    read_table,
    release,
    renew,
)
from wicbox_bridge.store.mail_insert import NewMail, insert_mails
from wicbox_bridge.store.mails import MailOrigin

START = dt.datetime(2026, 3, 1, 8, 0, 0)
HOST_A = LeaseOwner("a" * 36, "host-a", 101)
HOST_B = LeaseOwner("b" * 36, "host-b", 202)


class SteppedClock:
    """A clock the test moves; the same for every host, as the database's is."""

    def __init__(self) -> None:
        self.moment = START

    def now(self, store: Store) -> dt.datetime:
        return self.moment

    def advance(self, seconds: float) -> None:
        self.moment += dt.timedelta(seconds=seconds)


@pytest.fixture
def clock() -> SteppedClock:
    return SteppedClock()


def _lease(result: Lease | Refused) -> Lease:
    assert isinstance(result, Lease), result
    return result


def test_a_free_mailbox_is_taken_with_a_first_token(wic_store: DbApiStore, clock: SteppedClock) -> None:
    lease = _lease(acquire(wic_store, "Info@Example.BE", HOST_A, 60, clock))
    expected = ("info@example.be", 1, START + dt.timedelta(seconds=60))
    assert (lease.mailbox, lease.token, lease.expires_at) == expected
    [row] = list_leases(wic_store, clock)
    assert (row.mailbox, row.holder, row.token, row.expires_in_s) == (
        "info@example.be",
        "process 101 on host-a",
        1,
        60.0,
    )


def test_a_live_lease_is_refused_to_another_owner_and_extended_for_its_own(
    wic_store: DbApiStore, clock: SteppedClock
) -> None:
    first = _lease(acquire(wic_store, "info@example.be", HOST_A, 60, clock))
    clock.advance(59)
    refused = acquire(wic_store, "info@example.be", HOST_B, 60, clock)
    assert refused == Refused("info@example.be", "process 101 on host-a", 1.0)
    again = _lease(acquire(wic_store, "info@example.be", HOST_A, 60, clock))
    assert again.token == first.token
    assert again.expires_at == START + dt.timedelta(seconds=119)


def test_an_expired_lease_goes_to_the_next_owner_with_a_new_token(
    wic_store: DbApiStore, clock: SteppedClock
) -> None:
    first = _lease(acquire(wic_store, "info@example.be", HOST_A, 60, clock))
    clock.advance(60)  # expired at exactly its expiry
    taken = _lease(acquire(wic_store, "info@example.be", HOST_B, 60, clock))
    assert taken.token == first.token + 1
    assert renew(wic_store, first, 60, clock) is None
    assert not release(wic_store, first, clock)
    [row] = list_leases(wic_store, clock)
    assert row.holder == "process 202 on host-b"


def test_renewal_only_while_still_held(wic_store: DbApiStore, clock: SteppedClock) -> None:
    lease = _lease(acquire(wic_store, "info@example.be", HOST_A, 30, clock))
    clock.advance(20)
    renewed = renew(wic_store, lease, 30, clock)
    assert renewed is not None
    assert renewed.expires_at == START + dt.timedelta(seconds=50)
    clock.advance(29)
    assert isinstance(acquire(wic_store, "info@example.be", HOST_B, 30, clock), Refused)
    clock.advance(1)  # 50 s: expired, not renewed in time
    assert renew(wic_store, renewed, 30, clock) is None


def test_a_released_lease_is_free_at_once_and_keeps_counting_tokens(
    wic_store: DbApiStore, clock: SteppedClock
) -> None:
    lease = _lease(acquire(wic_store, "info@example.be", HOST_A, 60, clock))
    assert release(wic_store, lease, clock)
    [row] = list_leases(wic_store, clock)
    assert row.holder is None
    taken = _lease(acquire(wic_store, "info@example.be", HOST_B, 60, clock))
    assert taken.token == lease.token + 1


def test_the_fence_refuses_a_lost_lease_and_rolls_the_work_back(
    wic_store: DbApiStore, clock: SteppedClock
) -> None:
    wic_store.execute("CREATE TABLE NOTE (ID INTEGER PRIMARY KEY)")
    stale = _lease(acquire(wic_store, "info@example.be", HOST_A, 10, clock))
    with fenced(wic_store, Fence(stale, clock)):
        wic_store.execute("INSERT INTO NOTE (ID) VALUES (1)")
    clock.advance(11)
    with pytest.raises(LeaseLost, match="lost its lease"), fenced(wic_store, Fence(stale, clock)):
        wic_store.execute("INSERT INTO NOTE (ID) VALUES (2)")
    _lease(acquire(wic_store, "info@example.be", HOST_B, 10, clock))
    clock.moment = START  # even by a clock that lags: the token is no longer the row's
    with pytest.raises(LeaseLost), fenced(wic_store, Fence(stale, clock)):
        wic_store.execute("INSERT INTO NOTE (ID) VALUES (3)")
    assert wic_store.query("SELECT ID FROM NOTE") == [(1,)]


def test_the_fence_is_checked_inside_a_transaction(wic_store: DbApiStore, clock: SteppedClock) -> None:
    lease = _lease(acquire(wic_store, "info@example.be", HOST_A, 10, clock))
    with pytest.raises(RuntimeError, match="inside the transaction"):
        check_fence(wic_store, Fence(lease, clock))


def test_a_take_over_waits_for_a_fenced_transaction(
    wic_store: DbApiStore, database_target: DatabaseTarget, clock: SteppedClock
) -> None:
    """The fence check locks the row: a take-over of an expiring lease waits until the filing that
    passed the check committed, then takes the lease with a new token."""
    lease = _lease(acquire(wic_store, "info@example.be", HOST_A, 10, clock))
    taken: list[Lease | Refused] = []
    started = threading.Event()

    def take_over() -> None:
        with open_store(database_target, timeout_s=10) as other:
            started.set()
            taken.append(acquire(other, "info@example.be", HOST_B, 10, clock))

    thread = threading.Thread(target=take_over)
    with fenced(wic_store, Fence(lease, clock)):
        clock.advance(11)
        thread.start()
        assert started.wait(10)
        thread.join(0.5)
        assert thread.is_alive()  # waiting for the row lock
    thread.join(10)
    assert _lease(taken[0]).token == lease.token + 1


def test_the_database_clock(wic_store: DbApiStore) -> None:
    before = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
    moment = DatabaseClock().now(wic_store)
    after = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
    assert before - dt.timedelta(seconds=2) <= moment <= after + dt.timedelta(seconds=2)


def _new_mails(first: int, count: int) -> list[NewMail]:
    mails = []
    for number in range(first, first + count):
        raw = make_mail(number)
        origin = MailOrigin("info@example.be", "INBOX", "imap", str(number), 1, number, None)
        mails.append(NewMail(origin, raw, parse_mail(raw), None, ""))
    return mails


def _filed(store: Store) -> int:
    [(count,)] = store.query("SELECT COUNT(*) FROM WICBOX_MAIL")
    return int(count)


def test_a_batch_of_a_lost_lease_files_nothing_by_an_injected_clock(
    wic_store: DbApiStore, clock: SteppedClock
) -> None:
    """The batch's fence (on PostgreSQL folded into its first statement, the time a parameter):
    filed while the lease holds, LeaseLost with nothing filed once it expired or was taken over."""
    stale = _lease(acquire(wic_store, "info@example.be", HOST_A, 10, clock))
    answers = file_mails(
        wic_store, mailbox="info@example.be", run_id=None, mails=_new_mails(1, 3), fence=Fence(stale, clock)
    )
    assert [answer.filed for answer in answers] == [Filed.NEW] * 3
    clock.advance(11)
    with pytest.raises(LeaseLost, match="lost its lease"):
        file_mails(
            wic_store,
            mailbox="info@example.be",
            run_id=None,
            mails=_new_mails(4, 3),
            fence=Fence(stale, clock),
        )
    _lease(acquire(wic_store, "info@example.be", HOST_B, 10, clock))
    clock.moment = START  # even by a clock that lags: the token is no longer the row's
    with pytest.raises(LeaseLost, match="lost its lease"):
        file_mails(
            wic_store,
            mailbox="info@example.be",
            run_id=None,
            mails=_new_mails(4, 3),
            fence=Fence(stale, clock),
        )
    assert _filed(wic_store) == 3


def test_a_batch_of_a_lost_lease_files_nothing_by_the_database_clock(wic_store: DbApiStore) -> None:
    """The same by the database's clock (on PostgreSQL read in the batch's first statement itself)."""
    database = DatabaseClock()
    lease = _lease(acquire(wic_store, "info@example.be", HOST_A, 60, database))
    answers = file_mails(
        wic_store,
        mailbox="info@example.be",
        run_id=None,
        mails=_new_mails(1, 2),
        fence=Fence(lease, database),
    )
    assert [answer.filed for answer in answers] == [Filed.NEW] * 2
    assert release(wic_store, lease, database)
    _lease(acquire(wic_store, "info@example.be", HOST_B, 60, database))
    with pytest.raises(LeaseLost, match=f"lost its lease \\(token {lease.token}\\)"):
        file_mails(
            wic_store,
            mailbox="info@example.be",
            run_id=None,
            mails=_new_mails(3, 2),
            fence=Fence(lease, database),
        )
    assert _filed(wic_store) == 2


def test_a_take_over_waits_for_a_batch_whose_first_statement_checked_the_fence(
    wic_store: DbApiStore, database_target: DatabaseTarget, clock: SteppedClock
) -> None:
    """The fence folded into the batch's first statement locks the lease row as check_fence does:
    a take-over waits until the batch's transaction committed."""
    lease = _lease(acquire(wic_store, "info@example.be", HOST_A, 10, clock))
    taken: list[Lease | Refused] = []
    started = threading.Event()

    def take_over() -> None:
        with open_store(database_target, timeout_s=10) as other:
            started.set()
            taken.append(acquire(other, "info@example.be", HOST_B, 10, clock))

    thread = threading.Thread(target=take_over)
    with wic_store.transaction():
        insert_mails(wic_store, run_id=None, mails=_new_mails(1, 3), fence=Fence(lease, clock))
        clock.advance(11)
        thread.start()
        assert started.wait(10)
        thread.join(0.5)
        assert thread.is_alive()  # waiting for the row lock
    thread.join(10)
    assert _lease(taken[0]).token == lease.token + 1
    assert _filed(wic_store) == 3


def test_the_live_owners_alone_are_those_of_the_whole_table(
    wic_store: DbApiStore, clock: SteppedClock
) -> None:
    """What a fair share is counted by: one row per live owner, not one per held mailbox."""
    host_c = LeaseOwner("c" * 36, "host-c", 303)
    _lease(acquire(wic_store, "gone@example.be", host_c, 10, clock))
    for number in range(6):
        _lease(acquire(wic_store, f"a{number}@example.be", HOST_A, 60, clock))
    _lease(acquire(wic_store, "b@example.be", HOST_B, 60, clock))
    clock.advance(30)  # host-c's only lease has expired: it is no live owner any more
    owners = read_owners(wic_store, clock)
    assert owners.owners == {HOST_A.key: "host-a", HOST_B.key: "host-b"}
    assert owners.owners == read_table(wic_store, clock).owners
    assert owners.leases == {}
