"""MULTIPLE at the scale of many project mailboxes (issue 19 part 3). Microsoft Graph: which
mailboxes have mail is listed in ``$batch`` requests across mailboxes, mailboxes without mail are
not opened, a 429 inside a batch is repeated alone after its Retry-After, every mail is filed
exactly once, and the requests in flight stay within Exchange's limit per mailbox and our bound.
IMAP: connections within the worker bound, the TLS session resumed across mailboxes."""

from __future__ import annotations

import hashlib
from collections import Counter

import pytest

from tests.helpers.filing import assert_rows_filed_exactly_once
from tests.helpers.mailgen import make_mail
from tests.plugins.graph import INBOX, PROCESSED, GraphRoom
from tests.plugins.wic import Mailroom
from tests.test_run_fairness import (
    add_project_mailboxes,
    assert_filed_once_under_each_project,
    imap_recorder,
    most_open_together,
    overlapping_per_mailbox,
    run_json,
)
from tests.test_run_fairness import project_mailbox as imap_project_mailbox

pytestmark = pytest.mark.testbed

MAILBOXES = 25  # more than one $batch of 20
WITH_MAIL = (1, 7, 20, 21, 25)  # in the first and in the second batch
MAILS_EACH = 2
WORKERS = 3
CONCURRENCY = 4  # requests at once per mailbox session (WICBOX_MAILCLIENT_GRAPHCONCURRENCY default)


def project_mailbox(number: int) -> str:
    return f"project-{number:03d}@klant.example"


def listing_path(mailbox: str) -> str:
    return f"/v1.0/users/{mailbox}/mailFolders/inbox/messages"


def many_project_mailboxes(room: GraphRoom) -> dict[int, list[bytes]]:
    """MULTIPLE with application permissions over MAILBOXES project mailboxes, a few with mail."""
    room.use_application_permissions()
    room.wic.set_params({"WICBOXACCOUNTMODE": "MULTIPLE", "WICBOX_MAILCLIENT_WORKERS": str(WORKERS)})
    delivered: dict[int, list[bytes]] = {}
    for number in range(1, MAILBOXES + 1):
        mailbox = project_mailbox(number)
        room.graph.add_mailbox(mailbox)
        room.wic.add_project(number, f"P{number:03d}", mailbox=mailbox)
        if number in WITH_MAIL:
            raws = [make_mail(100 * number + index) for index in range(MAILS_EACH)]
            room.deliver(raws, mailbox=mailbox)
            delivered[number] = raws
    room.graph.request_log.clear()
    return delivered


def assert_each_filed_once(room: GraphRoom, delivered: dict[int, list[bytes]]) -> None:
    rows = room.filed()
    assert Counter(row.project_id for row in rows) == {
        number: len(raws) for number, raws in delivered.items()
    }
    expected = {hashlib.sha256(raw).hexdigest(): raw for raws in delivered.values() for raw in raws}
    assert sorted(row.sha256 for row in rows) == sorted(expected)
    assert all(row.raw == expected[row.sha256] and row.status == "FILED" for row in rows)
    for number, raws in delivered.items():
        mailbox = project_mailbox(number)
        assert room.messages(INBOX, mailbox=mailbox) == []
        assert sorted(m.raw for m in room.messages(PROCESSED, mailbox=mailbox)) == sorted(raws)


def test_mailboxes_are_listed_in_batches_and_only_those_with_mail_are_opened(graphroom: GraphRoom) -> None:
    delivered = many_project_mailboxes(graphroom)
    result = graphroom.wic.cli("run")
    assert result.exit_code == 0, result.output
    assert_each_filed_once(graphroom, delivered)
    log = graphroom.graph.request_log
    listings = [e for e in log.entries(in_batch=True) if e.path.endswith("/mailFolders/inbox/messages")]
    assert len(listings) == MAILBOXES
    first_opened = min(e.started for e in log.entries(in_batch=False) if e.path != "/v1.0/$batch")
    assert all(e.ended <= first_opened for e in listings), "every mailbox listed before one is opened"
    for number in range(1, MAILBOXES + 1):
        mailbox = project_mailbox(number)
        listed = [e for e in log.entries(path=listing_path(mailbox)) if e.in_batch]
        assert len(listed) == 1, mailbox
        outside = [e for e in log.entries(mailbox=mailbox) if not e.in_batch]
        if number in WITH_MAIL:
            assert outside, f"{mailbox} has mail and was opened"
        else:
            assert outside == [], f"{mailbox} has no mail and was not opened: {outside}"
    for number in WITH_MAIL:
        assert graphroom.graph.peak_concurrency(project_mailbox(number)) <= CONCURRENCY
    assert graphroom.graph.peak_total_concurrency() <= WORKERS * CONCURRENCY
    with graphroom.wic.store() as store:
        states = store.query("SELECT MAILBOX, BACKLOG, LAST_SUCCESS_AT FROM WICBOX_MAILBOX_STATE")
    assert len(states) == MAILBOXES
    assert all(backlog == 0 and success is not None for _mailbox, backlog, success in states)

    graphroom.graph.request_log.clear()
    again = graphroom.wic.cli("run")
    assert again.exit_code == 0, again.output
    assert "fetched 0" in again.output
    assert_each_filed_once(graphroom, delivered)
    assert [e for e in graphroom.graph.request_log.entries() if not e.in_batch and e.mailbox] == []


def test_a_429_inside_a_batch_is_repeated_alone_after_its_retry_after(graphroom: GraphRoom) -> None:
    delivered = many_project_mailboxes(graphroom)
    graphroom.graph.throttle_in_batches(1, retry_after=1)  # the first listing of the first batch
    result = graphroom.wic.cli("run")
    assert result.exit_code == 0, result.output
    assert_each_filed_once(graphroom, delivered)
    log = graphroom.graph.request_log
    listings = [e for e in log.entries(in_batch=True) if e.path.endswith("/mailFolders/inbox/messages")]
    throttled = [e for e in listings if e.status == 429]
    assert len(throttled) == 1
    mailbox = throttled[0].mailbox or throttled[0].path.split("/")[3]
    repeated = [e for e in listings if e.path == throttled[0].path]
    assert [e.status for e in repeated] == [429, 200], "the throttled listing, and only it, again"
    assert Counter(e.path for e in listings if e.path != throttled[0].path) == Counter(
        listing_path(project_mailbox(n))
        for n in range(1, MAILBOXES + 1)
        if listing_path(project_mailbox(n)) != throttled[0].path
    )
    assert repeated[1].started - throttled[0].ended >= 1.0, f"{mailbox}: repeated before Retry-After"


# ---------------------------------------------------------------------------------- IMAP


IMAP_MAILBOXES = 24


def test_imap_many_mailboxes_within_the_bound_resuming_one_tls_session(mailroom: Mailroom) -> None:
    """IMAP has no cross-mailbox listing: every mailbox is opened, but within WICBOX_MAILCLIENT_WORKERS
    connections at once, never two on one mailbox, and each connection after the first few resumes
    the TLS session of an earlier one (the server saw ``session_reused``)."""
    delivered = add_project_mailboxes(
        mailroom, [2 if n % 3 == 0 else 0 for n in range(1, IMAP_MAILBOXES + 1)]
    )
    mailroom.wic.set_params({"WICBOX_MAILCLIENT_WORKERS": str(WORKERS)})
    with imap_recorder(mailroom) as recorder:
        report = run_json(mailroom)
        connections = recorder.connections()
    assert report["counts"]["filed"] == sum(map(len, delivered.values()))
    assert_filed_once_under_each_project(mailroom, delivered)
    assert_rows_filed_exactly_once(mailroom, [raw for raws in delivered.values() for raw in raws])
    assert {c.user for c in connections} == {imap_project_mailbox(n) for n in range(1, IMAP_MAILBOXES + 1)}
    assert overlapping_per_mailbox(connections) == [], "two connections to one mailbox at once"
    most = most_open_together(connections)
    assert most <= WORKERS, f"{most} connections open together, WICBOX_MAILCLIENT_WORKERS allows {WORKERS}"
    went_away = [c.user for c in connections if not c.logged_out]
    assert went_away == [], f"connections closed without LOGOUT: {went_away}"
    full = [c for c in connections if not c.resumed]
    assert len(full) <= WORKERS, (
        f"{len(full)} full TLS handshakes: only the first of each worker may need one"
    )
