"""Two `wicbox run` processes over 20 project mailboxes share them through leases (SQLite and
PostgreSQL): one killed with SIGKILL at a random moment (printed seed), its mailboxes taken over
within the lease time + 10 s, every mail filed exactly once; a run stalled past its lease (SIGSTOP,
then SIGCONT) files nothing after another run took its mailbox over."""

from __future__ import annotations

import os
import random
import signal
import time
from collections.abc import Callable

import pytest

from tests.clihelp import write_config
from tests.helpers.processes import WicboxProcess, run_wicbox, start_wicbox, wait_for_line
from tests.helpers.waiting import random_moment, wait_until
from tests.plugins.postgres import BACKENDS
from tests.plugins.wic import Mailroom, loopback_hosts
from tests.test_run_fairness import add_project_mailboxes, assert_filed_once_under_each_project
from tools.testbed.pki import LoopbackPki
from wicbox_bridge.store.leases import DatabaseClock

pytestmark = [pytest.mark.testbed, pytest.mark.slow, pytest.mark.crash]

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


def _slow_filing(room: Mailroom) -> None:
    """Each mail row takes some 30 ms to insert (test only), so a run is busy long enough to stall."""
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


def _filed_after_take_over(room: Mailroom, pid: int, held: dict[str, int]) -> dict[str, int]:
    """Per mailbox taken over from process ``pid``: the mails that process filed after the new owner
    acquired the lease (FILED_AT against ACQUIRED_AT, both this machine's clock)."""
    late: dict[str, int] = {}
    with room.wic.store() as store:
        for mailbox, token in held.items():
            lease = store.query_one(
                "SELECT TOKEN, ACQUIRED_AT FROM WICBOX_LEASE WHERE MAILBOX = ?", (mailbox,)
            )
            assert lease is not None
            if int(lease[0]) <= token:
                continue  # not taken over (the stalled run kept it, or released it itself)
            row = store.query_one(
                "SELECT COUNT(*) FROM WICBOX_MAIL M JOIN WICBOX_RUN R ON R.RUN_ID = M.RUN_ID "
                "WHERE R.PROCESS_ID = ? AND M.MAILBOX = ? AND M.FILED_AT > ?",
                (pid, mailbox, lease[1]),
            )
            late[mailbox] = 0 if row is None else int(row[0])
    return late


def _within(condition: Callable[[], bool], seconds: float) -> bool:
    """Whether ``condition`` becomes true within ``seconds`` (a stalled SQLite writer blocks the
    other run until it continues, so the take-over may only come after SIGCONT)."""
    try:
        wait_until(condition, "", seconds)
    except AssertionError:
        return False
    return True


@pytest.mark.parametrize("wic_backend", BACKENDS)
def test_a_run_stalled_past_its_lease_files_nothing_after_the_take_over(
    mailroom: Mailroom, testbed_ip: str, loopback_pki: LoopbackPki
) -> None:
    seed = _seed()
    rng = random.Random(seed)
    context = f"(seed {seed}; replay with {SEED_VARIABLE}={seed})"
    delivered = _multiple_room(mailroom, testbed_ip, loopback_pki)
    _slow_filing(mailroom)
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
    late = _filed_after_take_over(mailroom, pid, held)
    assert late, f"nothing was taken over {context}"
    assert sum(late.values()) == 0, f"filed after the take-over: {late} {context}"
    if took_over_while_stalled and "lost its lease" not in stalled.output():
        print(f"the stalled run had nothing left to file after SIGCONT {context}")
    _run_until_done(mailroom, context)
    assert_filed_once_under_each_project(mailroom, delivered)
