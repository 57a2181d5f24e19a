"""`wicbox run` and `wicbox check` over Microsoft Graph end to end: the Graph emulator with tokens from the
real msal (delegated and application permissions), every account mode, the corpus byte for byte, and
runs killed at random moments."""

from __future__ import annotations

import hashlib
import os
import random
import time
from collections import Counter
from collections.abc import Sequence

import pytest

from tests.corpus import require_corpus
from tests.helpers.mailgen import make_mail
from tests.helpers.processes import run_wicbox, start_wicbox, wait_for_line
from tests.helpers.waiting import random_moment
from tests.plugins.graph import FAILED, INBOX, PROCESSED, GraphRoom
from tests.plugins.postgres import BACKENDS
from tests.test_run_crash import SEED_VARIABLE, KillLog, mixed_mails, run_outcomes, token_cache_file

pytestmark = pytest.mark.testbed
PERMISSIONS = ["delegated", "application"]


def _run(room: GraphRoom, *args: str) -> tuple[int, str]:
    result = room.wic.cli("run", *args)
    return result.exit_code, result.output


def _with(room: GraphRoom, permission: str) -> GraphRoom:
    if permission == "application":
        room.use_application_permissions()
    return room


def sha256_of(raw: bytes) -> str:
    return hashlib.sha256(raw).hexdigest()


# ---------------------------------------------------------------------------------- SINGLE mode


@pytest.mark.parametrize("permission", PERMISSIONS)
def test_run_files_every_mail_and_moves_it(graphroom: GraphRoom, permission: str) -> None:
    room = _with(graphroom, permission)
    raws = [make_mail(n) for n in range(5)]
    ids = room.deliver(raws)
    code, output = _run(room)
    assert code == 0, output
    assert "fetched 5, filed 5" in output
    filed = room.filed()
    assert [row.raw for row in filed] == raws
    assert all(row.status == "FILED" for row in filed)
    assert room.messages(INBOX) == []
    assert [m.immutable_id for m in room.messages(PROCESSED)] == ids
    with room.wic.store() as store:
        stored = store.query("SELECT PROTOCOL, SOURCE_ID, UIDVALIDITY, UID FROM WICBOX_MAIL ORDER BY MAIL_ID")
    assert [tuple(row) for row in stored] == [("graph", key, None, None) for key in ids]
    prefix = "/v1.0/me/" if permission == "delegated" else f"/v1.0/users/{room.mailbox}/"
    assert all(
        r.path.startswith(prefix) or r.path == "/v1.0/$batch" for r in room.graph.request_log.entries()
    )


@pytest.mark.parametrize("permission", PERMISSIONS)
def test_the_whole_corpus_is_filed_byte_for_byte(graphroom: GraphRoom, permission: str) -> None:
    room = _with(graphroom, permission)
    raws = [path.read_bytes() for path in sorted(require_corpus().rglob("*.eml"))]
    assert len(raws) >= 100
    room.deliver(raws)
    for _ in range(2):  # more mails than the default cap of 100
        code, output = _run(room)
        assert code == 0, output
    by_hash = {row.sha256: row for row in room.filed()}
    distinct = {sha256_of(raw): raw for raw in raws}
    assert set(by_hash) == set(distinct), "every distinct mail is filed exactly once"
    for sha256, row in by_hash.items():
        assert row.raw == distinct[sha256] if row.status == "FILED" else row.error
    assert room.messages(INBOX) == []
    moved = room.raws(PROCESSED) + room.raws(FAILED)
    assert sorted(moved) == sorted(raws)


def test_the_same_mail_again_under_a_new_id_is_filed_once(graphroom: GraphRoom) -> None:
    raw = make_mail(1)
    first = graphroom.deliver([raw])
    assert _run(graphroom)[0] == 0
    second = graphroom.deliver([raw])  # the same bytes again, as a new message with a new id
    assert first != second
    code, output = _run(graphroom)
    assert code == 0, output
    assert "duplicates acknowledged 1" in output
    assert len(graphroom.filed()) == 1
    assert graphroom.messages(INBOX) == []
    assert [m.immutable_id for m in graphroom.messages(PROCESSED)] == first + second


def test_after_process_delete_and_seen(graphroom: GraphRoom) -> None:
    graphroom.wic.set_params({"WICBOX_MAILCLIENT_AFTERPROCESS": "DELETE"})
    graphroom.deliver([make_mail(1)])
    assert _run(graphroom)[0] == 0
    assert graphroom.messages(INBOX) == [] and len(graphroom.graph.deleted(graphroom.mailbox)) == 1
    graphroom.wic.set_params({"WICBOX_MAILCLIENT_AFTERPROCESS": "SEEN"})
    graphroom.deliver([make_mail(2)])
    assert _run(graphroom)[0] == 0
    assert [m.is_read for m in graphroom.messages(INBOX)] == [True]
    code, output = _run(graphroom)
    assert code == 0 and "fetched 0" in output
    assert len(graphroom.filed()) == 2


def test_throttled_run_waits_and_finishes(graphroom: GraphRoom) -> None:
    graphroom.deliver([make_mail(n) for n in range(3)])
    graphroom.graph.request_log.clear()
    graphroom.graph.throttle(2, retry_after=1)
    code, output = _run(graphroom)
    assert code == 0, output
    assert len(graphroom.filed()) == 3
    log = graphroom.graph.request_log.entries()
    throttled = [number for number, entry in enumerate(log) if entry.status == 429]
    assert len(throttled) == 2
    for number in throttled:  # as the server saw it: the next request came after Retry-After
        assert log[number + 1].started - log[number].ended >= 1.0


# ---------------------------------------------------------------------------------- MULTIPLE and MIX


@pytest.mark.parametrize("permission", PERMISSIONS)
@pytest.mark.parametrize("mode", ["MULTIPLE", "MIX"])
def test_project_mailboxes(graphroom: GraphRoom, mode: str, permission: str) -> None:
    room = _with(graphroom, permission)
    room.wic.set_params({"WICBOXACCOUNTMODE": mode})
    projects = room.wic.directory.project_users[:2]
    for number, user in enumerate(projects, start=1):
        room.graph.add_mailbox(user.upn)
        room.wic.add_project(
            number, f"P{number}", mailbox=user.upn, username=user.upn, password=user.password
        )
        room.deliver([make_mail(10 * number), make_mail(10 * number + 1)], mailbox=user.upn)
    global_mail = room.deliver([make_mail(99, subject="[p2] vraag")])
    code, output = _run(room)
    assert code == 0, output
    filed = Counter(row.project_id for row in room.filed())
    expected = {1: 2, 2: 3} if mode == "MIX" else {1: 2, 2: 2}
    assert dict(filed) == expected
    for user in projects:
        assert room.messages(INBOX, mailbox=user.upn) == []
        assert len(room.messages(PROCESSED, mailbox=user.upn)) == 2
    assert len(room.messages(INBOX)) == (0 if mode == "MIX" else len(global_mail))


# ---------------------------------------------------------------------------------- check and wrong tokens


@pytest.mark.parametrize("permission", PERMISSIONS)
def test_check_says_graph_and_why_and_signs_in(graphroom: GraphRoom, permission: str) -> None:
    room = _with(graphroom, permission)
    room.deliver([make_mail(1), make_mail(2)])
    result = room.wic.cli("check")
    assert result.exit_code == 0, result.output
    assert (
        "GRAPH: WICBOX_MAILCLIENT_PROTOCOL is AUTO and WICBOX_MAILCLIENT_SCOPE Mail.ReadWrite is a "
        "Microsoft Graph permission" in result.output
    )
    assert f"signed in to {room.mailbox}; 2 mail(s) waiting" in result.output
    assert len(room.messages(INBOX)) == 2


def test_an_exchange_scope_with_protocol_graph_is_a_clear_error_for_check_and_run(
    graphroom: GraphRoom,
) -> None:
    graphroom.wic.set_params(
        {
            "WICBOX_MAILCLIENT_PROTOCOL": "GRAPH",
            "WICBOX_MAILCLIENT_SCOPE": "https://outlook.office.com/IMAP.AccessAsUser.All",
        }
    )
    graphroom.deliver([make_mail(1)])
    check = graphroom.wic.cli("check")
    assert check.exit_code != 0
    assert "cannot open a mailbox through Microsoft Graph" in check.output
    assert "Mail.ReadWrite" in check.output
    code, output = _run(graphroom)
    assert code == 2, output
    assert "cannot open a mailbox through Microsoft Graph" in output
    assert len(graphroom.messages(INBOX)) == 1 and graphroom.filed() == []


def test_an_access_policy_fails_the_run_with_the_explanation(graphroom: GraphRoom) -> None:
    graphroom.use_application_permissions()
    graphroom.graph.add_application_access_policy(
        graphroom.wic.directory.confidential_client_id, ["andere@klant.example"]
    )
    graphroom.deliver([make_mail(1)])
    code, output = _run(graphroom)
    assert code == 3, output
    assert "application access policy" in output and "Test-ApplicationAccessPolicy" in output
    assert len(graphroom.messages(INBOX)) == 1


# ---------------------------------------------------------------------------------- killed runs

OPENED = "wicbox.graph: Opened"
LISTED = "mail(s) to read"
KILLS = 8  # per database
CAP = "12"
# Enough mail that none of the killed runs finds the folder empty: a run with nothing left to file
# ends long before a kill moment drawn from a full run's time, and the kills must hit busy runs.
MAILS = int(CAP) * (KILLS + 2)
KILL_WINDOW = 0.8  # the share of the timed run's time the kill moments are drawn from


def assert_filed_once_and_moved(room: GraphRoom, delivered: Sequence[bytes], context: str) -> None:
    rows = room.filed()
    expected = {sha256_of(raw): raw for raw in delivered}
    assert len(rows) == len(delivered), f"{len(rows)} rows for {len(delivered)} mails {context}"
    assert {row.sha256 for row in rows} == set(expected), context
    assert all(row.raw == expected[row.sha256] and row.status == "FILED" for row in rows), context
    assert room.messages(INBOX) == [], context
    assert Counter(room.raws(PROCESSED)) == Counter(delivered), context
    assert room.raws(FAILED) == [], f"nothing quarantined: every mail of the set files {context}"


@pytest.mark.crash
@pytest.mark.parametrize("wic_backend", BACKENDS)
def test_runs_killed_at_random_moments_file_every_mail_exactly_once(graphroom: GraphRoom) -> None:
    seed = os.environ.get(SEED_VARIABLE)
    kills = KillLog(int(seed) if seed else random.SystemRandom().randrange(2**32))
    rng = random.Random(kills.seed)
    delivered = mixed_mails(MAILS, rng)
    graphroom.deliver(delivered)
    graphroom.graph.set_delay(0.002)
    timed = start_wicbox(graphroom.wic, "-v", "run", "--max-mails", CAP, name="timed")
    listed_at = wait_for_line(timed, LISTED)
    assert timed.wait() == 0, timed.output()
    whole = time.monotonic() - timed.started
    for _ in range(KILLS):
        if rng.random() < 0.3:
            token_cache_file(graphroom.wic).unlink(missing_ok=True)
        process = start_wicbox(graphroom.wic, "-v", "run", "--max-mails", CAP, name="killed")
        # The timed run was the room's first (a new token, the folders looked up): later runs
        # are faster, so the moments are drawn from most of its time, not all of it.
        if rng.random() < 0.5 and wait_for_line(process, OPENED) is not None:
            random_moment(rng, max(0.01, KILL_WINDOW * (whole - (listed_at or 0.0))))
        else:
            random_moment(rng, KILL_WINDOW * whole)
        if process.kill():
            kills.phases[phase_of(process.output())] += 1
            kills.left_pending += _unacknowledged(graphroom) > 0
        else:
            kills.finished_first += 1
    for _ in range(12):
        code, output = run_wicbox(graphroom.wic, "run")
        assert code == 0, f"{output}\n{kills}"
        if "fetched 0," in output:
            break
    assert_filed_once_and_moved(graphroom, delivered, str(kills))
    assert {outcome for outcome, _ in run_outcomes(graphroom)} <= {"OK", "INTERRUPTED"}, str(kills)  # type: ignore[arg-type]
    assert kills.killed_busy >= KILLS // 2, str(kills)
    print(kills)


def phase_of(output: str) -> str:
    """Where a killed run was: the step after the last progress line it wrote."""
    marks = (
        ("wicbox: SINGLE run:", "exiting"),
        ("wicbox.graph: MOVE:", "marking filed"),
        ("wicbox.graph: Fetched", "filing or MOVE"),
        (LISTED, "fetching"),
        (OPENED, "listing"),
    )
    return next((phase for marker, phase in marks if marker in output), "start-up, token, opening")


def _unacknowledged(room: GraphRoom) -> int:
    with room.wic.store() as store:
        row = store.query_one("SELECT COUNT(*) FROM WICBOX_MAIL WHERE STATUS <> 'FILED'")
    return 0 if row is None else int(row[0])
