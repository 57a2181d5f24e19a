"""`wicbox run` killed at random moments loses nothing and files nothing twice (SQLite and PostgreSQL).

Each run is a real ``python -m wicbox_bridge`` process, killed with SIGKILL at a random moment:
during start-up, token acquisition, listing, fetching, filing or the MOVE. Later runs must finish
the work, every mail filed exactly once with its exact bytes. The helpers here (the run as a
process, the invariants) are shared with tests/test_run_faults.py.
"""

from __future__ import annotations

import os
import random
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.corpus import require_corpus
from tests.helpers.filing import assert_filed_exactly_once, sha256_of
from tests.helpers.mailgen import make_mail, to_crlf
from tests.helpers.processes import WicboxProcess, run_wicbox, start_wicbox, wait_for_line
from tests.helpers.waiting import random_moment, wait_until
from tests.plugins.postgres import BACKENDS
from tests.plugins.wic import Mailroom, WicInstallation
from wicbox_bridge.adapters.token_cache import CACHE_FILE_NAME
from wicbox_bridge.config.paths import state_dir_for

pytestmark = [pytest.mark.testbed, pytest.mark.slow, pytest.mark.crash, pytest.mark.corpus]

SEED_VARIABLE = "WICBOX_CRASH_SEED"  # set it to replay the kill moments of a failed run


# --------------------------------------------------------------------------- runs as processes


def token_cache_file(installation: WicInstallation) -> Path:
    state_dir = state_dir_for(installation.config, env={"WICBOX_HOME": str(installation.cli_runner.home)})
    return state_dir / CACHE_FILE_NAME


# --------------------------------------------------------------------------- mails and invariants


def _padded_mail(number: int, size: int) -> bytes:
    line = f"Regel van bericht {number}: " + "abcdefghijklmnopqrstuvwxyz0123456789" * 2
    lines = [line] * max(1, size // (len(line) + 2))
    return make_mail(number, body="\r\n".join(lines))


def corpus_mails() -> list[bytes]:
    """The shared corpus, CRLF-normalised as an IMAP server stores it."""
    paths = sorted(require_corpus().rglob("*.eml"))
    return [to_crlf(path.read_bytes()) for path in paths]


def mixed_mails(count: int, rng: random.Random) -> list[bytes]:
    """``count`` distinct mails: the corpus, then generated ones from 300 bytes to 400 KB."""
    unique: dict[str, bytes] = {}
    for raw in corpus_mails():
        unique.setdefault(sha256_of(raw), raw)
    number = 0
    while len(unique) < count:
        size = rng.choice((300, 300, 2_000, 8_000, 30_000, 120_000, 400_000))
        raw = _padded_mail(number, size)
        unique.setdefault(sha256_of(raw), raw)
        number += 1
    mails = list(unique.values())[:count]
    rng.shuffle(mails)
    return mails


def run_until_done(room: Mailroom, context: str, *, max_runs: int = 6) -> None:
    """Complete runs until one finds nothing more to read; each must succeed."""
    for _ in range(max_runs):
        code, output = run_wicbox(room.wic, "run")
        assert code == 0, f"{output}\n{context}"
        if "fetched 0," in output:
            return
    raise AssertionError(f"mail still arriving after {max_runs} runs {context}")


def run_outcomes(room: Mailroom) -> list[tuple[str, int | None]]:
    with room.wic.store() as store:
        rows = store.query("SELECT OUTCOME, EXIT_CODE FROM WICBOX_RUN ORDER BY RUN_ID")
    return [(str(row[0]).strip(), None if row[1] is None else int(row[1])) for row in rows]


# --------------------------------------------------------------------------- the crash test

# Lines of `wicbox -v run` that show how far a run got, in the order a run writes them.
CONNECTED = "wicbox.imap: Connected to"
SIGNED_IN = "wicbox.imap: Signed in to"
LISTED = "mail(s) to read"
FETCHED = "wicbox.imap: Fetched"
MOVED = "wicbox.imap: MOVE:"
SUMMARY = "wicbox: SINGLE run:"
PHASES = (
    (SUMMARY, "exiting"),
    (MOVED, "marking filed"),
    (FETCHED, "filing or MOVE"),
    (LISTED, "fetching"),
    (SIGNED_IN, "selecting and listing"),
    (CONNECTED, "token and sign-in"),
)


def phase_of(output: str) -> str:
    """Where a killed run was: the step after the last progress line it wrote."""
    return next((phase for marker, phase in PHASES if marker in output), "start-up")


@dataclass
class KillLog:
    """What the kills hit, for the assertion messages."""

    seed: int
    phases: Counter[str] = field(default_factory=Counter)
    finished_first: int = 0
    left_pending: int = 0

    @property
    def killed_busy(self) -> int:
        return sum(self.phases.values())

    def __str__(self) -> str:
        hit = ", ".join(f"{phase} {count}" for phase, count in sorted(self.phases.items()))
        return (
            f"(seed {self.seed}: kills during {hit or 'nothing'}; {self.finished_first} run(s) finished "
            f"before the kill; {self.left_pending} kill(s) left mails filed but not acknowledged; "
            f"replay with {SEED_VARIABLE}={self.seed})"
        )


def _seed() -> int:
    configured = os.environ.get(SEED_VARIABLE)
    return int(configured) if configured else random.SystemRandom().randrange(2**32)


def _unacknowledged(room: Mailroom) -> int:
    with room.wic.store() as store:
        row = store.query_one("SELECT COUNT(*) FROM WICBOX_MAIL WHERE STATUS <> 'FILED'")
    return 0 if row is None else int(row[0])


@dataclass(frozen=True)
class RunTiming:
    """How long the parts of an undisturbed run take (the windows kills are aimed at)."""

    whole_s: float  # start to exit
    token_s: float  # connected to signed in: token acquisition (nothing cached) and AUTHENTICATE
    mail_s: float  # listed to the summary line: fetch, filing, MOVE, marking filed, the run row


def _timed_run(room: Mailroom, cap: int) -> RunTiming:
    """A first, undisturbed run (no token cached yet) with the progress lines' times."""
    process = start_wicbox(room.wic, "-v", "run", "--max-mails", str(cap), name="timed")
    marks = [wait_for_line(process, marker) for marker in (CONNECTED, SIGNED_IN, LISTED, SUMMARY)]
    assert process.wait() == 0, process.output()
    connected, signed_in, listed, summary = marks
    assert connected and signed_in and listed and summary, f"progress lines missing:\n{process.output()}"
    return RunTiming(
        whole_s=time.monotonic() - process.started,
        token_s=signed_in - connected,
        mail_s=summary - listed,
    )


def slow_down_marking(room: Mailroom) -> None:
    """Make marking a mail FILED take some 20 ms a row (test only).

    A batch is committed in one transaction and moved in one command, so the moments between the
    commit, the MOVE and the status update are short; widening the last one lets random kills land
    there too (mails moved on the server while their rows still say PENDING_ACK).
    """
    with room.wic.store() as store:
        if store.dialect == "sqlite":
            store.execute(
                "CREATE TRIGGER TEST_SLOW_MARKING BEFORE UPDATE OF STATUS ON WICBOX_MAIL "
                "BEGIN SELECT length(hex(randomblob(6000000))); END"
            )
            return
        store.execute(
            "CREATE FUNCTION test_slow_marking() RETURNS trigger LANGUAGE plpgsql AS "
            "$$ BEGIN PERFORM pg_sleep(0.02); RETURN NEW; END $$"
        )
        store.execute(
            "CREATE TRIGGER TEST_SLOW_MARKING BEFORE UPDATE OF STATUS ON WICBOX_MAIL "
            "FOR EACH ROW EXECUTE FUNCTION test_slow_marking()"
        )


@dataclass(frozen=True)
class CrashPlan:
    mails: int
    kills: int
    cap: int


# SQLite 24 kills (47 s of the suite with 32); the deeper runs are tools.crash_matrix's.
CRASH_PLANS = {"sqlite": CrashPlan(mails=300, kills=24, cap=12), "postgresql-odbc": CrashPlan(300, 16, 20)}


def _kill_one_run(
    room: Mailroom, plan: CrashPlan, timing: RunTiming, rng: random.Random, kills: KillLog
) -> None:
    """Start a run and kill it during start-up, token acquisition, or the reading and filing."""
    aim = rng.choices(("anywhere", "token", "mail"), weights=(3, 2, 5))[0]
    if aim == "token":
        token_cache_file(room.wic).unlink(missing_ok=True)  # this run must acquire a token
    process = start_wicbox(room.wic, "-v", "run", "--max-mails", str(plan.cap), name="killed")
    if aim == "anywhere":
        random_moment(rng, timing.whole_s)
    elif aim == "token" and wait_for_line(process, CONNECTED) is not None:
        random_moment(rng, timing.token_s)
    elif aim == "mail" and wait_for_line(process, LISTED) is not None:
        random_moment(rng, timing.mail_s)
    if process.kill():
        kills.phases[phase_of(process.output())] += 1
        kills.left_pending += _unacknowledged(room) > 0
    else:
        kills.finished_first += 1
        assert process.process.returncode == 0, f"{process.output()}\n{kills}"


@pytest.mark.parametrize("wic_backend", BACKENDS)
def test_runs_killed_at_random_moments_file_every_mail_exactly_once(
    mailroom: Mailroom, wic_backend: str
) -> None:
    plan = CRASH_PLANS[wic_backend]
    kills = KillLog(_seed())
    rng = random.Random(kills.seed)
    delivered = mixed_mails(plan.mails, rng)
    mailroom.deliver(delivered)
    assert [message.raw for message in mailroom.messages()] == delivered, "Dovecot changed a mail's bytes"
    slow_down_marking(mailroom)
    timing = _timed_run(mailroom, plan.cap)
    for _ in range(plan.kills):
        _kill_one_run(mailroom, plan, timing, rng, kills)
    run_until_done(mailroom, str(kills))
    assert_filed_exactly_once(mailroom, delivered, str(kills))
    outcomes = {outcome for outcome, _code in run_outcomes(mailroom)}
    assert outcomes <= {"OK", "INTERRUPTED"}, f"{outcomes} {kills}"
    assert kills.killed_busy >= plan.kills // 2, f"too few kills hit a busy run {kills}"
    assert kills.left_pending >= 1, f"no kill landed between filing and acknowledging {kills}"
    print(kills)


# --------------------------------------------------------------------------- the run lock


def _wait_for_running_row(room: Mailroom, process: WicboxProcess, timeout_s: float = 30.0) -> None:
    wait_until(
        lambda: ("RUNNING", None) in run_outcomes(room) or process.process.poll() is not None,
        "the run records itself as RUNNING",
        timeout_s,
    )
    assert process.process.poll() is None, f"the run ended before it was killed:\n{process.output()}"


def test_a_run_killed_while_holding_the_lock_does_not_block_the_next(mailroom: Mailroom) -> None:
    delivered = mixed_mails(120, random.Random(7))
    mailroom.deliver(delivered)
    process = start_wicbox(mailroom.wic, "run", "--max-mails", "60")
    _wait_for_running_row(mailroom, process)
    assert process.kill()
    code, output = run_wicbox(mailroom.wic, "run")
    assert code == 0, output  # not 5: the operating system released the killed run's lock
    outcomes = run_outcomes(mailroom)
    assert outcomes == [("INTERRUPTED", None), ("OK", 0)]
    run_until_done(mailroom, "after the killed run")
    assert_filed_exactly_once(mailroom, delivered)
