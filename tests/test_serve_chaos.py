"""Chaos for `wicbox serve` on leases (SQLite and PostgreSQL), real processes: two serve processes
and a scheduled-style `wicbox run` on one database, MULTIPLE with 20 project mailboxes, mail
appended while they run, either serve killed with SIGKILL at random moments (printed seed) and a
new serve started in its place: every mailbox of the killed one taken over within the lease time
+ 10 s, and in the end every mail filed exactly once. A serve stalled past its lease (SIGSTOP,
then SIGCONT) files nothing once it lost the lease, and works the mailbox again when it is free.

Under CI 500 mails over 20 mailboxes; elsewhere fewer (a note says so), all 500 with
WICBOX_SERVE_CHAOS_FULL=1. Nothing is timed but the take-over: the tests wait on the database."""

from __future__ import annotations

import contextlib
import os
import random
import signal
import threading
import time
from collections.abc import Iterator

import pytest

from tests.clihelp import write_config
from tests.helpers.mailgen import make_mail
from tests.helpers.processes import WicboxProcess, start_wicbox, wait_for_line
from tests.helpers.waiting import random_moment, wait_until
from tests.plugins.postgres import BACKENDS
from tests.plugins.wic import Mailroom, loopback_hosts
from tests.test_run_fairness import (
    add_project_mailboxes,
    assert_filed_once_under_each_project,
    project_mailbox,
)
from tools.testbed.pki import LoopbackPki
from wicbox_bridge.store.leases import PRESENCE_PREFIX, DatabaseClock, Lease, LeaseOwner, acquire, release

pytestmark = [pytest.mark.testbed, pytest.mark.slow, pytest.mark.crash]

# The stall tests wait out a lease with slow filing (about 20 s each): under the suite's time budget
# this one runs on one database and the run stall test in test_run_leases.py covers PostgreSQL;
# both with WICBOX_STALL_BOTH=1.
STALL_BACKENDS = BACKENDS if os.environ.get("WICBOX_STALL_BOTH") == "1" else ("sqlite",)


MAILBOXES = 20
FULL_MAILS = 500
LEASE_S = 3
TAKE_OVER_MARGIN_S = 10
KILLS = 3
SEED_VARIABLE = "WICBOX_SERVE_CHAOS_SEED"
FULL_VARIABLE = "WICBOX_SERVE_CHAOS_FULL"
STALL_PID = 999_999  # the test's own lease owner (files nothing)
FILED_WITHIN_S = 90.0  # only ends a hanging test
MAILBOXES_ONLY = f"MAILBOX NOT LIKE '{PRESENCE_PREFIX}%'"  # not the serves' presence rows


def _seed() -> int:
    configured = os.environ.get(SEED_VARIABLE)
    seed = int(configured) if configured else random.SystemRandom().randrange(2**32)
    print(f"serve chaos seed {seed} (replay with {SEED_VARIABLE}={seed})")
    return seed


def _mails_total() -> int:
    if os.environ.get("CI") == "true" or os.environ.get(FULL_VARIABLE) == "1":
        return FULL_MAILS
    print(f"serve chaos: {FULL_MAILS // 5} mails instead of {FULL_MAILS} ({FULL_VARIABLE}=1 for all)")
    return FULL_MAILS // 5


@pytest.fixture
def processes() -> Iterator[list[WicboxProcess]]:
    started: list[WicboxProcess] = []
    yield started
    for process in started:
        if process.process.poll() is None:
            with_continue(process)
            process.kill()


def with_continue(process: WicboxProcess) -> None:
    """A stopped process is continued before it is killed (else SIGKILL waits on nothing)."""
    os.kill(process.process.pid, signal.SIGCONT)


def _room(room: Mailroom, testbed_ip: str, pki: LoopbackPki) -> None:
    database = room.wic.database
    if database is not None:
        write_config(
            room.wic.config,
            f"sqlite:///{database}",
            max_mails="1000",
            allowed_hosts=loopback_hosts(testbed_ip),
            ca_bundle=pki.ca_cert,
        )
    add_project_mailboxes(room, [0] * MAILBOXES)


def _serve(room: Mailroom, processes: list[WicboxProcess], name: str) -> WicboxProcess:
    process = start_wicbox(
        room.wic, "-v", "serve", "--lease-seconds", str(LEASE_S), "--reload-seconds", "600", name=name
    )
    processes.append(process)
    assert wait_for_line(process, "wicbox serve: started") is not None, process.output()
    return process


def _leases_of(room: Mailroom, pid: int) -> dict[str, int]:
    with room.wic.store() as store:
        rows = store.query(
            "SELECT MAILBOX, TOKEN FROM WICBOX_LEASE WHERE OWNER_PID = ? AND OWNER_KEY IS NOT NULL"
            f" AND {MAILBOXES_ONLY}",
            (pid,),
        )
    return {str(mailbox): int(token) for mailbox, token in rows}


def _tokens(room: Mailroom) -> dict[str, int]:
    with room.wic.store() as store:
        return {
            str(mailbox): int(token)
            for mailbox, token in store.query(
                f"SELECT MAILBOX, TOKEN FROM WICBOX_LEASE WHERE {MAILBOXES_ONLY}"
            )
        }


def _live_leases_of(room: Mailroom, pid: int) -> int:
    with room.wic.store() as store:
        now = DatabaseClock().now(store)
        row = store.query_one(
            "SELECT COUNT(*) FROM WICBOX_LEASE "
            f"WHERE OWNER_PID = ? AND OWNER_KEY IS NOT NULL AND EXPIRES_AT > ? AND {MAILBOXES_ONLY}",
            (pid, now),
        )
    return 0 if row is None else int(row[0])


def _done(room: Mailroom, count: int) -> bool:
    rows = room.filed()
    return len(rows) >= count and all(row.status == "FILED" for row in rows)


def _append(room: Mailroom, batch: int, per_mailbox: int, delivered: dict[int, list[bytes]]) -> None:
    for project_id in range(1, MAILBOXES + 1):
        mails = [
            make_mail(1_000_000 * batch + 10_000 * project_id + n, to=project_mailbox(project_id))
            for n in range(per_mailbox)
        ]
        room.deliver(mails, user=project_mailbox(project_id))
        delivered.setdefault(project_id, []).extend(mails)


@pytest.mark.parametrize("wic_backend", BACKENDS)
def test_two_serves_and_a_run_lose_nothing_and_file_nothing_twice_through_sigkills(
    mailroom: Mailroom, testbed_ip: str, loopback_pki: LoopbackPki, processes: list[WicboxProcess]
) -> None:
    seed = _seed()
    rng = random.Random(seed)
    context = f"(seed {seed}; replay with {SEED_VARIABLE}={seed})"
    _room(mailroom, testbed_ip, loopback_pki)
    total = _mails_total()
    batches = 5
    per_mailbox = total // (MAILBOXES * batches)
    serves = [_serve(mailroom, processes, "serve-a"), _serve(mailroom, processes, "serve-b")]
    wait_until(lambda: len(_tokens(mailroom)) == MAILBOXES, f"every mailbox leased {context}", 60)
    delivered: dict[int, list[bytes]] = {}
    run: WicboxProcess | None = None
    kills = 0
    for batch in range(batches):
        _append(mailroom, batch, per_mailbox, delivered)
        if batch == 1:
            run = start_wicbox(mailroom.wic, "run", "--lease-seconds", str(LEASE_S), name="run")
            processes.append(run)
        if kills < KILLS and batch < batches - 1:
            random_moment(rng, 1.0)
            holding = [serve for serve in serves if _leases_of(mailroom, serve.process.pid)]
            victim = rng.choice(holding or serves)
            held = _leases_of(mailroom, victim.process.pid)
            victim.kill()
            killed_at = time.monotonic()
            kills += 1
            print(f"killed {victim.output_path.name} holding {len(held)} mailbox(es) {context}")
            serves[serves.index(victim)] = _serve(mailroom, processes, f"serve-{batch}")

            def taken_over(held: dict[str, int] = held) -> bool:
                tokens = _tokens(mailroom)
                return all(tokens[mailbox] > token for mailbox, token in held.items())

            wait_until(
                taken_over, f"the killed serve's mailboxes taken over {context}", LEASE_S + TAKE_OVER_MARGIN_S
            )
            print(f"taken over after {time.monotonic() - killed_at:.1f} s")
    assert run is not None
    assert run.wait() in (0, 5), f"{run.output()}\n{context}"
    wait_until(lambda: _done(mailroom, total), f"{total} mails filed {context}", FILED_WITHIN_S)
    inboxes_empty = lambda: all(not mailroom.messages(user=project_mailbox(p)) for p in delivered)  # noqa: E731
    wait_until(inboxes_empty, f"every mail acknowledged {context}", FILED_WITHIN_S)
    for process in serves:
        process.process.send_signal(signal.SIGTERM)
        assert process.wait(10) == 0, f"{process.output()}\n{context}"
    assert sum(len(mails) for mails in delivered.values()) == total
    assert_filed_once_under_each_project(mailroom, delivered)


def _slow_filing(room: Mailroom) -> None:
    """Each mail row takes some 30 ms to insert (test only): a pass is busy long enough to stall in."""
    with room.wic.store() as store:
        if store.dialect == "sqlite":
            store.execute(
                "CREATE TRIGGER TEST_SLOW_FILING BEFORE INSERT ON WICBOX_MAIL "
                "BEGIN SELECT length(hex(randomblob(9000000))); END"
            )
            return
        store.execute(
            "CREATE FUNCTION test_slow_filing() RETURNS trigger LANGUAGE plpgsql AS "
            "$$ BEGIN PERFORM pg_sleep(0.03); RETURN NEW; END $$"
        )
        store.execute(
            "CREATE TRIGGER TEST_SLOW_FILING BEFORE INSERT ON WICBOX_MAIL "
            "FOR EACH ROW EXECUTE FUNCTION test_slow_filing()"
        )


def _record_owners(room: Mailroom) -> None:
    """Record, with every filed mail (test only), its mailbox's lease owner as of the filing's
    COMMIT (see tests/test_run_leases.py: SQLite under its one write lock, PostgreSQL in a deferred
    trigger). The fence keeps the lease row locked from its check to the commit, so a filing that
    passed its fence records its own process; one recorded under the test's owner was filed by a
    serve that had lost the lease."""
    with room.wic.store() as store:
        store.execute(
            "CREATE TABLE TEST_FILED_UNDER (MAIL_ID INTEGER, MAILBOX VARCHAR(320), OWNER_PID INTEGER)"
        )
        record = (
            "INSERT INTO TEST_FILED_UNDER (MAIL_ID, MAILBOX, OWNER_PID) SELECT NEW.MAIL_ID, "
            "lower(trim(NEW.MAILBOX)), "
            "(SELECT OWNER_PID FROM WICBOX_LEASE WHERE MAILBOX = lower(trim(NEW.MAILBOX)))"
        )
        if store.dialect == "sqlite":
            store.execute(f"CREATE TRIGGER TEST_RECORD_OWNER AFTER INSERT ON WICBOX_MAIL BEGIN {record}; END")
            return
        store.execute(
            "CREATE FUNCTION test_record_owner() RETURNS trigger LANGUAGE plpgsql AS "
            f"$$ BEGIN {record}; RETURN NULL; END $$"
        )
        store.execute(
            "CREATE CONSTRAINT TRIGGER TEST_RECORD_OWNER AFTER INSERT ON WICBOX_MAIL "
            "DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION test_record_owner()"
        )


def _filed_under_the_test_owner(room: Mailroom) -> int:
    with room.wic.store() as store:
        row = store.query_one("SELECT COUNT(*) FROM TEST_FILED_UNDER WHERE OWNER_PID = ?", (STALL_PID,))
    return 0 if row is None else int(row[0])


def _take_from_the_stalled(room: Mailroom, mailboxes: list[str], owner: LeaseOwner) -> list[Lease]:
    """The test's owner takes every one of ``mailboxes`` that is free (blocks while a stalled SQLite
    writer holds the write lock; the caller continues it meanwhile)."""
    taken = []
    with room.wic.store() as store:
        for mailbox in mailboxes:
            lease = acquire(store, mailbox, owner, 600, DatabaseClock())
            if isinstance(lease, Lease):
                taken.append(lease)
    return taken


@pytest.mark.parametrize("wic_backend", STALL_BACKENDS)
def test_a_serve_stalled_past_its_lease_files_nothing_after_it_lost_it(
    mailroom: Mailroom, testbed_ip: str, loopback_pki: LoopbackPki, processes: list[WicboxProcess]
) -> None:
    seed = _seed()
    rng = random.Random(seed)
    context = f"(seed {seed}; replay with {SEED_VARIABLE}={seed})"
    _room(mailroom, testbed_ip, loopback_pki)
    _slow_filing(mailroom)
    _record_owners(mailroom)
    stalled = _serve(mailroom, processes, "stalled")
    pid = stalled.process.pid
    wait_until(lambda: len(_leases_of(mailroom, pid)) == MAILBOXES, f"serve holds every lease {context}", 60)
    delivered: dict[int, list[bytes]] = {}
    _append(mailroom, 0, 10, delivered)
    wait_until(lambda: len(mailroom.filed()) > 0, f"serve filing {context}", 60)
    random_moment(rng, 1.0)
    os.kill(pid, signal.SIGSTOP)
    owner = LeaseOwner("5ca1ab1e-0000-4000-8000-000000000000", "the test", STALL_PID)
    try:
        held = sorted(_leases_of(mailroom, pid))
        wait_until(
            lambda: _live_leases_of(mailroom, pid) == 0, f"the stalled serve's leases expired {context}", 30
        )
        taken: list[Lease] = []
        taking = threading.Thread(target=lambda: taken.extend(_take_from_the_stalled(mailroom, held, owner)))
        taking.start()
        # the stalled serve may be inside a filing's transaction, holding the lease row's lock (SQLite:
        # the write lock): the test's take-over then waits for it to continue
        with contextlib.suppress(AssertionError):
            wait_until(lambda: not taking.is_alive(), "the take-over without the stalled serve", 2)
    finally:
        with_continue(stalled)
    taking.join()
    assert taken, f"the test took over no mailbox {context}"
    before = len(mailroom.filed())
    _append(mailroom, 1, 2, delivered)
    names = {lease.mailbox for lease in taken}
    wait_until(
        lambda: all(f"{name}: not worked here while" in stalled.output() for name in names),
        f"the stalled serve refuses the mailboxes it lost {context}",
        30,
    )
    assert _filed_under_the_test_owner(mailroom) == 0, f"filed after losing the lease {context}"
    filed_since = [row for row in mailroom.filed()[before:] if row.mailbox.lower() in names]
    assert filed_since == [], f"filed in a lost mailbox {context}"
    with mailroom.wic.store() as store:
        for lease in taken:
            assert release(store, lease, DatabaseClock())
    total = sum(len(mails) for mails in delivered.values())
    wait_until(
        lambda: _done(mailroom, total), f"the released mailboxes worked again {context}", FILED_WITHIN_S
    )
    stalled.process.send_signal(signal.SIGTERM)
    assert stalled.wait(10) == 0, f"{stalled.output()}\n{context}"
    assert _filed_under_the_test_owner(mailroom) == 0, context
    assert_filed_once_under_each_project(mailroom, delivered)


@pytest.mark.parametrize("wic_backend", BACKENDS)
def test_a_second_serve_gets_half_the_mailboxes_and_no_mail_is_filed_twice_in_the_handover(
    mailroom: Mailroom, testbed_ip: str, loopback_pki: LoopbackPki, processes: list[WicboxProcess]
) -> None:
    _room(mailroom, testbed_ip, loopback_pki)
    first = _serve(mailroom, processes, "serve-a")
    holds_all = lambda: _live_leases_of(mailroom, first.process.pid) == MAILBOXES  # noqa: E731
    wait_until(holds_all, "the first serve holds every mailbox", 60)
    delivered: dict[int, list[bytes]] = {}
    _append(mailroom, 0, 2, delivered)
    second = _serve(mailroom, processes, "serve-b")
    _append(mailroom, 1, 2, delivered)  # while the leases are handed over
    halves = (MAILBOXES // 2, MAILBOXES // 2)
    spread = lambda: tuple(_live_leases_of(mailroom, p.process.pid) for p in (first, second)) == halves  # noqa: E731
    wait_until(spread, "each serve holds half of the mailboxes", 5 * LEASE_S)
    _append(mailroom, 2, 2, delivered)
    total = sum(len(mails) for mails in delivered.values())
    wait_until(lambda: _done(mailroom, total), f"{total} mails filed", FILED_WITHIN_S)
    assert spread(), "the mailboxes moved again after they were spread"
    inboxes_empty = lambda: all(not mailroom.messages(user=project_mailbox(p)) for p in delivered)  # noqa: E731
    wait_until(inboxes_empty, "every mail acknowledged", FILED_WITHIN_S)
    for process in (first, second):
        process.process.send_signal(signal.SIGTERM)
        assert process.wait(10) == 0, process.output()
    assert "giving back 10" in first.output(), first.output()
    assert_filed_once_under_each_project(mailroom, delivered)
