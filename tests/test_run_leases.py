"""Two `wicbox run` processes over 20 project mailboxes share them through leases (SQLite and
PostgreSQL): one killed with SIGKILL at a random moment (printed seed), its mailboxes taken over
within the lease time + 10 s, every mail filed exactly once; a run stalled past its lease (SIGSTOP,
then SIGCONT) files nothing after another run took its mailbox over."""

from __future__ import annotations

import os
import random
import signal
import time
import uuid
from collections.abc import Callable

import pytest

from tests.clihelp import write_config
from tests.helpers.processes import WicboxProcess, run_wicbox, start_wicbox, wait_for_line
from tests.helpers.waiting import random_moment, wait_until
from tests.plugins.postgres import BACKENDS
from tests.plugins.wic import Mailroom, loopback_hosts
from tests.test_run_fairness import (
    add_project_mailboxes,
    assert_filed_once_under_each_project,
    project_mailbox,
)
from tools.testbed.pki import LoopbackPki
from wicbox_bridge.store.leases import DatabaseClock, Lease, LeaseOwner, acquire, release

pytestmark = [pytest.mark.testbed, pytest.mark.slow, pytest.mark.crash]

# The stall tests wait out a lease with slow filing (about 20 s each): under the suite's time budget
# this one runs on one database and the serve stall test in test_serve_chaos.py covers SQLite;
# both with WICBOX_STALL_BOTH=1.
STALL_BACKENDS = BACKENDS if os.environ.get("WICBOX_STALL_BOTH") == "1" else ("postgresql-odbc",)


MAILBOXES = 20
MAILS_EACH = 10
LEASE_S = 3
TAKE_OVER_MARGIN_S = 10
SEED_VARIABLE = "WICBOX_LEASE_SEED"  # set it to replay a failed run's moments


def _seed() -> int:
    configured = os.environ.get(SEED_VARIABLE)
    seed = int(configured) if configured else random.SystemRandom().randrange(2**32)
    print(f"lease test seed {seed} (replay with {SEED_VARIABLE}={seed})")
    return seed


def _multiple_room(room: Mailroom, testbed_ip: str, pki: LoopbackPki) -> dict[int, list[bytes]]:
    database = room.wic.database
    connection = f"sqlite:///{database}" if database is not None else None
    if connection is not None:
        write_config(
            room.wic.config,
            connection,
            max_mails="1000",
            allowed_hosts=loopback_hosts(testbed_ip),
            ca_bundle=pki.ca_cert,
        )
    return add_project_mailboxes(room, [MAILS_EACH] * MAILBOXES)


def _leases_of(room: Mailroom, pid: int) -> dict[str, int]:
    """The leases process ``pid`` holds (not released): token by mailbox."""
    with room.wic.store() as store:
        rows = store.query(
            "SELECT MAILBOX, TOKEN FROM WICBOX_LEASE WHERE OWNER_PID = ? AND OWNER_KEY IS NOT NULL", (pid,)
        )
    return {str(mailbox): int(token) for mailbox, token in rows}


def _tokens(room: Mailroom) -> dict[str, int]:
    with room.wic.store() as store:
        return {
            str(mailbox): int(token)
            for mailbox, token in store.query("SELECT MAILBOX, TOKEN FROM WICBOX_LEASE")
        }


def _live_leases_of(room: Mailroom, pid: int) -> int:
    with room.wic.store() as store:
        now = DatabaseClock().now(store)
        row = store.query_one(
            "SELECT COUNT(*) FROM WICBOX_LEASE "
            "WHERE OWNER_PID = ? AND OWNER_KEY IS NOT NULL AND EXPIRES_AT > ?",
            (pid, now),
        )
    return 0 if row is None else int(row[0])


def _run_until_done(room: Mailroom, context: str) -> None:
    for _ in range(8):
        code, output = run_wicbox(room.wic, "run", "--lease-seconds", str(LEASE_S))
        assert code == 0, f"{output}\n{context}"
        if "fetched 0," in output and "skipped" not in output:
            return
    raise AssertionError(f"mail still arriving after 8 runs {context}")


def _start(room: Mailroom, name: str) -> WicboxProcess:
    return start_wicbox(room.wic, "-v", "run", "--lease-seconds", str(LEASE_S), name=name)


@pytest.mark.parametrize("wic_backend", BACKENDS)
def test_two_runs_share_20_mailboxes_and_a_killed_one_is_taken_over(
    mailroom: Mailroom, testbed_ip: str, loopback_pki: LoopbackPki
) -> None:
    seed = _seed()
    rng = random.Random(seed)
    context = f"(seed {seed}; replay with {SEED_VARIABLE}={seed})"
    delivered = _multiple_room(mailroom, testbed_ip, loopback_pki)
    runs = [_start(mailroom, "first"), _start(mailroom, "second")]
    wait_until(lambda: any("mail(s) to read" in run.output() for run in runs), "a run reading mail", 60)
    random_moment(rng, 1.5)
    # the victim: a run that holds leases (the other one may have found them all taken and ended)
    holding = [run for run in runs if _leases_of(mailroom, run.process.pid)]
    victim = rng.choice(holding or runs)
    survivor = next(run for run in runs if run is not victim)
    held = _leases_of(mailroom, victim.process.pid)
    victim.kill()
    killed_at = time.monotonic()
    held = {**held, **_leases_of(mailroom, victim.process.pid)}
    assert survivor.wait() in (0, 5), f"{survivor.output()}\n{context}"

    def taken_over() -> bool:
        tokens = _tokens(mailroom)
        return all(tokens[mailbox] > token for mailbox, token in held.items())

    while not taken_over():
        assert time.monotonic() - killed_at < LEASE_S + TAKE_OVER_MARGIN_S, (
            f"not taken over in time {context}"
        )
        code, output = run_wicbox(mailroom.wic, "run", "--lease-seconds", str(LEASE_S))
        assert code in (0, 5), f"{output}\n{context}"
    _run_until_done(mailroom, context)
    assert_filed_once_under_each_project(mailroom, delivered)


def _slow_filing(room: Mailroom, factor: int = 1) -> None:
    """Each mail row takes some 30 ms (times ``factor``) to insert (test only), so a run is busy
    long enough to stall, or for a second run to start beside it."""
    with room.wic.store() as store:
        if store.dialect == "sqlite":
            store.execute(
                "CREATE TRIGGER TEST_SLOW_FILING BEFORE INSERT ON WICBOX_MAIL "
                f"BEGIN SELECT length(hex(randomblob({9_000_000 * factor}))); END"
            )
            return
        store.execute(
            "CREATE FUNCTION test_slow_filing() RETURNS trigger LANGUAGE plpgsql AS "
            f"$$ BEGIN PERFORM pg_sleep({0.03 * factor}); RETURN NEW; END $$"
        )
        store.execute(
            "CREATE TRIGGER TEST_SLOW_FILING BEFORE INSERT ON WICBOX_MAIL "
            "FOR EACH ROW EXECUTE FUNCTION test_slow_filing()"
        )


def _record_tokens(room: Mailroom) -> None:
    """Record, with every filed mail (test only), its mailbox's lease token as of the filing's
    COMMIT: SQLite writes under its one write lock, so the token an insert sees stays until the
    commit; PostgreSQL reads it in a deferred trigger, at the commit, as committed by then. A filing
    that commits after a take-over thus records the new owner's token, whatever its FILED_AT."""
    with room.wic.store() as store:
        store.execute("CREATE TABLE TEST_FILED_UNDER (MAIL_ID INTEGER, MAILBOX VARCHAR(320), TOKEN BIGINT)")
        record = (
            "INSERT INTO TEST_FILED_UNDER (MAIL_ID, MAILBOX, TOKEN) SELECT NEW.MAIL_ID, "
            "lower(trim(NEW.MAILBOX)), "
            "(SELECT TOKEN FROM WICBOX_LEASE WHERE MAILBOX = lower(trim(NEW.MAILBOX)))"
        )
        if store.dialect == "sqlite":
            store.execute(f"CREATE TRIGGER TEST_RECORD_TOKEN AFTER INSERT ON WICBOX_MAIL BEGIN {record}; END")
            return
        store.execute(
            "CREATE FUNCTION test_record_token() RETURNS trigger LANGUAGE plpgsql AS "
            f"$$ BEGIN {record}; RETURN NULL; END $$"
        )
        store.execute(
            "CREATE CONSTRAINT TRIGGER TEST_RECORD_TOKEN AFTER INSERT ON WICBOX_MAIL "
            "DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION test_record_token()"
        )


def _filed_after_take_over(room: Mailroom, pid: int, held: dict[str, int]) -> dict[str, int]:
    """Per mailbox process ``pid`` held when it stalled: how many of its filings committed under a
    later token than its own (after another run had taken the mailbox over)."""
    late = dict.fromkeys(held, 0)
    with room.wic.store() as store:
        rows = store.query(
            "SELECT F.MAILBOX, F.TOKEN FROM TEST_FILED_UNDER F JOIN WICBOX_MAIL M ON M.MAIL_ID = F.MAIL_ID "
            "JOIN WICBOX_RUN R ON R.RUN_ID = M.RUN_ID WHERE R.PROCESS_ID = ?",
            (pid,),
        )
    for mailbox, token in rows:
        own = held.get(str(mailbox))
        if own is not None:  # None: a mailbox it reached (and leased) only after SIGCONT
            late[str(mailbox)] += int(token) > own
    return late


def _taken_over(room: Mailroom, held: dict[str, int]) -> list[str]:
    tokens = _tokens(room)
    return [mailbox for mailbox, token in held.items() if tokens[mailbox] > token]


def _within(condition: Callable[[], bool], seconds: float) -> bool:
    """Whether ``condition`` becomes true within ``seconds`` (a stalled SQLite writer blocks the
    other run until it continues, so the take-over may only come after SIGCONT)."""
    try:
        wait_until(condition, "", seconds)
    except AssertionError:
        return False
    return True


@pytest.mark.parametrize("wic_backend", STALL_BACKENDS)
def test_a_run_stalled_past_its_lease_files_nothing_after_the_take_over(
    mailroom: Mailroom, testbed_ip: str, loopback_pki: LoopbackPki
) -> None:
    seed = _seed()
    rng = random.Random(seed)
    context = f"(seed {seed}; replay with {SEED_VARIABLE}={seed})"
    delivered = _multiple_room(mailroom, testbed_ip, loopback_pki)
    _slow_filing(mailroom)
    _record_tokens(mailroom)
    stalled = _start(mailroom, "stalled")
    pid = stalled.process.pid
    assert wait_for_line(stalled, "mail(s) to read") is not None, stalled.output()
    random_moment(rng, 1.0)
    os.kill(pid, signal.SIGSTOP)
    try:
        held = _leases_of(mailroom, pid)
        wait_until(lambda: _live_leases_of(mailroom, pid) == 0, "the stalled run's leases expired", 30)
        other = start_wicbox(mailroom.wic, "run", "--lease-seconds", "60", name="other")

        def taken_over() -> bool:
            tokens = _tokens(mailroom)
            return any(tokens[mailbox] > token for mailbox, token in held.items())

        took_over_while_stalled = _within(taken_over, 10)
    finally:
        os.kill(pid, signal.SIGCONT)
    assert other.wait() == 0, f"{other.output()}\n{context}"
    assert stalled.wait() in (0, 1), f"{stalled.output()}\n{context}"
    assert _taken_over(mailroom, held), (
        f"nothing was taken over {context}: held {held} at SIGSTOP, tokens now {_tokens(mailroom)}\n"
        f"--- the other run:\n{other.output()}\n--- the stalled run:\n{stalled.output()}"
    )
    late = _filed_after_take_over(mailroom, pid, held)
    assert sum(late.values()) == 0, f"filed after the take-over: {late} {context}"
    if took_over_while_stalled and "lost its lease" not in stalled.output():
        print(f"the stalled run had nothing left to file after SIGCONT {context}")
    _run_until_done(mailroom, context)
    assert_filed_once_under_each_project(mailroom, delivered)


def _mailboxes_filed_by(room: Mailroom, pid: int) -> set[str]:
    with room.wic.store() as store:
        rows = store.query(
            "SELECT DISTINCT lower(M.MAILBOX) FROM WICBOX_MAIL M JOIN WICBOX_RUN R ON R.RUN_ID = M.RUN_ID "
            "WHERE R.PROCESS_ID = ?",
            (pid,),
        )
    return {str(mailbox) for (mailbox,) in rows}


@pytest.mark.parametrize("wic_backend", BACKENDS)
def test_a_run_takes_its_fair_share_beside_another_live_host(
    mailroom: Mailroom, testbed_ip: str, loopback_pki: LoopbackPki
) -> None:
    delivered = _multiple_room(mailroom, testbed_ip, loopback_pki)
    elsewhere = LeaseOwner(str(uuid.uuid4()), "elsewhere", 1)
    with mailroom.wic.store() as store:
        held = acquire(store, project_mailbox(1), elsewhere, 600, DatabaseClock())
    assert isinstance(held, Lease)
    code, output = run_wicbox(mailroom.wic, "run")
    assert code == 0, output
    assert "left for the 1 other live run(s): this run took its fair share, 10 of 20" in output, output
    with mailroom.wic.store() as store:
        rows = store.query("SELECT DISTINCT lower(MAILBOX) FROM WICBOX_MAIL")
        assert len(rows) == MAILBOXES // 2, output  # ceil(20 mailboxes / 2 live owners)
        release(store, held, DatabaseClock())
    _run_until_done(mailroom, "(the other host released its lease)")
    assert_filed_once_under_each_project(mailroom, delivered)


@pytest.mark.parametrize("wic_backend", BACKENDS)
def test_two_runs_started_together_split_20_mailboxes(
    mailroom: Mailroom, testbed_ip: str, loopback_pki: LoopbackPki, wic_backend: str
) -> None:
    delivered = _multiple_room(mailroom, testbed_ip, loopback_pki)
    if wic_backend != "sqlite":  # ODBC start-up varies more: some 1.2 s per mailbox, so the runs overlap
        _slow_filing(mailroom, factor=4)
    runs = [start_wicbox(mailroom.wic, "-v", "run", name=name) for name in ("first", "second")]
    codes = [run.wait() for run in runs]
    outputs = "\n".join(run.output() for run in runs)
    assert codes == [0, 0], outputs
    worked = [_mailboxes_filed_by(mailroom, run.process.pid) for run in runs]
    print(f"mailboxes per run: {[len(each) for each in worked]}")
    assert not worked[0] & worked[1], outputs
    # fair shares: 10 each once both see each other; the first may take a few before the second
    # holds its first lease (without the fair share, it takes all that are free: 16 or more)
    assert all(MAILBOXES // 4 <= len(each) <= MAILBOXES * 3 // 4 for each in worked), f"{worked}\n{outputs}"
    assert len(worked[0] | worked[1]) == MAILBOXES, outputs
    assert_filed_once_under_each_project(mailroom, delivered)
