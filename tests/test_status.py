"""`wicbox status` end to end: real runs over IMAP (Dovecot) and Graph (the emulator), then status
read from the database alone, on SQLite and on PostgreSQL over ODBC."""

from __future__ import annotations

import datetime as dt
import json
import re
from typing import Any

import pytest

from tests.helpers.mailgen import make_mail
from tests.plugins.graph import FIRST_RECEIVED, GraphRoom
from tests.plugins.postgres import BACKENDS
from tests.plugins.wic import Mailroom, WicInstallation
from tests.test_run_faults import refuse_subjects_with_weigeren
from tools.testbed.dovecot import append_message
from wicbox_bridge.store.schema import LATEST_VERSION

pytestmark = pytest.mark.testbed
UTC = dt.timezone.utc


def _status(wic: WicInstallation, *args: str) -> tuple[int, dict[str, Any]]:
    result = wic.cli("status", "--json", *args)
    assert result.exit_code in (0, 1), result.output
    return result.exit_code, json.loads(result.stdout)


def _iso(moment: dt.datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _deliver_dated(room: Mailroom, raws: list[bytes], first: dt.datetime) -> list[dt.datetime]:
    """Append mails with INTERNALDATEs one second apart from ``first``; those dates."""
    dates = [first + dt.timedelta(seconds=n) for n in range(len(raws))]
    with room.dovecot.admin_session(room.mailbox) as client:
        for raw, date in zip(raws, dates, strict=True):
            append_message(client, "INBOX", raw, internal_date=date)
    return dates


@pytest.mark.parametrize("wic_backend", BACKENDS)
def test_imap_backlog_filed_counts_and_the_verdict(mailroom: Mailroom) -> None:
    first = dt.datetime.now(UTC).replace(microsecond=0) - dt.timedelta(hours=3)
    dates = _deliver_dated(mailroom, [make_mail(n) for n in range(250)], first)
    result = mailroom.wic.cli("run")
    assert result.exit_code == 0, result.output

    code, report = _status(mailroom.wic)
    [mailbox] = report["mailboxes"]
    assert (mailbox["mailbox"], mailbox["folder"], mailbox["protocol"]) == (mailroom.mailbox, "INBOX", "imap")
    assert mailbox["configured"] is True
    assert mailbox["filed_last_24h"] == 100
    assert mailbox["backlog"] == 150  # 250 mails, the default cap of 100 per run
    assert mailbox["oldest_pending_received_at"] == _iso(dates[100])
    assert mailbox["failing"] is False
    assert mailbox["last_error"] is None
    assert report["runs"][0]["filed"] == 100
    assert report["runs"][0]["outcome"] == "OK"
    # Mail waits for three hours: with the default window of 30 minutes mail is not flowing.
    assert (code, report["healthy"], report["exit_code"]) == (1, False, 1)
    [reason] = report["reasons"]
    assert re.search(r"oldest mail waiting in INBOX was received 2 h 5\d min ago", reason), reason
    assert "(150 waiting)" in reason
    code, report = _status(mailroom.wic, "--stale-after", "240")
    assert (code, report["healthy"], report["reasons"]) == (0, True, [])

    for _ in range(2):
        assert mailroom.wic.cli("run").exit_code == 0
    code, report = _status(mailroom.wic)
    [mailbox] = report["mailboxes"]
    assert (mailbox["backlog"], mailbox["oldest_pending_received_at"]) == (0, None)
    assert mailbox["filed_last_24h"] == 250
    assert (code, report["healthy"]) == (0, True)
    assert [run["filed"] for run in report["runs"]] == [50, 100, 100]


def test_text_output_names_every_section(mailroom: Mailroom) -> None:
    mailroom.deliver([make_mail(n) for n in range(3)])
    assert mailroom.wic.cli("run", "--max-mails", "2").exit_code == 0
    result = mailroom.wic.cli("status")
    assert result.exit_code == 0, result.output
    text = result.output
    assert "mail is flowing (window: 30 min)" in text
    assert "Runs (last 10; last OK/PARTIAL finished " in text
    assert f"global mailbox: {mailroom.mailbox} (INBOX, imap)" in text
    assert "filed in the last 24 h: 2" in text
    assert "backlog: 1 waiting, oldest received " in text
    assert "last error: none" in text
    assert "Quarantined mails: 0 in the last 7 days" in text
    assert "password sign-in (delegated): no client secret; watch for AADSTS50055" in text


@pytest.mark.parametrize("wic_backend", BACKENDS)
def test_graph_backlog_comes_from_odata_count(graphroom: GraphRoom) -> None:
    graphroom.deliver([make_mail(n) for n in range(250)])
    result = graphroom.wic.cli("run")
    assert result.exit_code == 0, result.output

    _, report = _status(graphroom.wic, "--stale-after", "10080")
    [mailbox] = report["mailboxes"]
    assert (mailbox["protocol"], mailbox["backlog"]) == ("graph", 150)
    assert mailbox["oldest_pending_received_at"] == _iso(FIRST_RECEIVED + dt.timedelta(seconds=100))
    assert mailbox["filed_last_24h"] == 100
    counted = [r for r in graphroom.graph.request_log.entries() if "%24count=true" in r.query]
    assert len(counted) == 1
    assert counted[0].status == 200
    assert "%24top=1" in counted[0].query


def test_graph_backlog_in_seen_mode_counts_unread_mail_only(graphroom: GraphRoom) -> None:
    graphroom.wic.set_params({"WICBOX_MAILCLIENT_AFTERPROCESS": "SEEN"})
    graphroom.deliver([make_mail(n) for n in range(5)])
    assert graphroom.wic.cli("run", "--max-mails", "3").exit_code == 0
    _, report = _status(graphroom.wic)
    [mailbox] = report["mailboxes"]
    assert mailbox["backlog"] == 2  # five in the folder, three of them read now
    assert mailbox["oldest_pending_received_at"] == _iso(FIRST_RECEIVED + dt.timedelta(seconds=3))


@pytest.mark.parametrize("wic_backend", BACKENDS)
def test_a_wrong_password_shows_as_an_authentication_failure(mailroom: Mailroom) -> None:
    assert mailroom.wic.cli("run").exit_code == 0  # once right: the mailbox has a last success
    wrong = "niet-juist-123"
    mailroom.wic.set_params({"WICBOX_MAILCLIENT_PASSWORD": wrong})
    assert mailroom.wic.cli("run").exit_code == 3

    code, report = _status(mailroom.wic)
    [mailbox] = report["mailboxes"]
    assert mailbox["failing"] is True
    error = mailbox["last_error"]
    assert (error["kind"], error["code"]) == ("authentication", "AADSTS50126")
    assert "AADSTS50126" in error["message"]
    assert error["fix"]
    failure = report["credentials"]["last_authentication_failure"]
    assert (failure["code"], failure["mailbox"]) == ("AADSTS50126", mailroom.mailbox)
    assert report["credentials"]["permission"] == "delegated"
    # The last success is recent: a warning, not yet "not flowing".
    assert (code, report["healthy"]) == (0, True)
    assert any("the last pass failed (authentication, AADSTS50126" in w for w in report["warnings"])

    with mailroom.wic.store() as store:  # the last success was an hour ago
        store.execute(
            "UPDATE WICBOX_MAILBOX_STATE SET LAST_SUCCESS_AT = ?",
            (dt.datetime.now(UTC).replace(tzinfo=None) - dt.timedelta(hours=1),),
        )
    code, report = _status(mailroom.wic)
    assert (code, report["healthy"]) == (1, False)
    assert any("no successful pass since 1 h" in r and "AADSTS50126" in r for r in report["reasons"])
    text = mailroom.wic.cli("status")
    assert text.exit_code == 1
    assert "MAIL IS NOT FLOWING" in text.output
    assert "last authentication failure: " in text.output
    assert wrong not in text.output
    assert wrong not in json.dumps(report)


def test_a_mailbox_never_signed_in_is_not_flowing(mailroom: Mailroom) -> None:
    mailroom.wic.set_params({"WICBOX_MAILCLIENT_PASSWORD": "niet-juist-123"})
    assert mailroom.wic.cli("run").exit_code == 3
    code, report = _status(mailroom.wic)
    assert code == 1
    assert any("never read successfully" in reason for reason in report["reasons"])


@pytest.mark.parametrize("wic_backend", BACKENDS)
def test_a_quarantined_mail_is_listed_with_its_reason_and_folder(mailroom: Mailroom) -> None:
    mailroom.deliver([make_mail(1), make_mail(2, subject="Gelieve te WEIGEREN aub"), make_mail(3)])
    refuse_subjects_with_weigeren(mailroom)
    assert mailroom.wic.cli("run").exit_code == 0

    _, report = _status(mailroom.wic)
    quarantined = report["quarantined"]
    assert quarantined["last_7_days"] == 1
    assert quarantined["failed_folder"] == "WICBOX/Failed"
    [mail] = quarantined["latest"]
    assert (mail["mailbox"], mail["moved"], mail["where"]) == (mailroom.mailbox, True, "WICBOX/Failed")
    assert mail["reason"].startswith("the database refused the mail")
    assert report["mailboxes"][0]["filed_last_24h"] == 2
    text = mailroom.wic.cli("status").output
    assert f"in WICBOX/Failed of {mailroom.mailbox}" in text
    assert "Quarantined mails: 1 in the last 7 days" in text


@pytest.mark.parametrize("wic_backend", BACKENDS)
def test_the_exit_code_flips_when_runs_are_stale(mailroom: Mailroom) -> None:
    code, report = _status(mailroom.wic)
    assert code == 1
    assert report["reasons"][0].startswith("no run has been recorded yet: run `wicbox run` once by hand")

    mailroom.deliver([make_mail(1)])
    assert mailroom.wic.cli("run").exit_code == 0
    assert _status(mailroom.wic)[0] == 0

    two_hours_ago = dt.datetime.now(UTC).replace(tzinfo=None) - dt.timedelta(hours=2)
    with mailroom.wic.store() as store:
        store.execute("UPDATE WICBOX_RUN SET STARTED_AT = ?, FINISHED_AT = ?", (two_hours_ago, two_hours_ago))
    code, report = _status(mailroom.wic, "--stale-after", "30")
    assert (code, report["healthy"]) == (1, False)
    assert report["reasons"] == [
        "no run finished OK or PARTIAL in the last 30 min (the last one 2 h ago): check that the scheduled "
        "task still runs `wicbox run`, and the runs below"
    ]
    assert report["last_good_run_finished_at"] == _iso(two_hours_ago.replace(tzinfo=UTC))
    assert _status(mailroom.wic, "--stale-after", "121")[0] == 0


def test_dry_runs_record_no_mailbox_state(mailroom: Mailroom) -> None:
    mailroom.deliver([make_mail(1)])
    assert mailroom.wic.cli("run", "--dry-run").exit_code == 0
    with mailroom.wic.store() as store:
        assert store.query("SELECT COUNT(*) FROM WICBOX_MAILBOX_STATE") == [(0,)]
    _, report = _status(mailroom.wic)
    [mailbox] = report["mailboxes"]  # configured, never read
    assert (mailbox["configured"], mailbox["backlog"], mailbox["last_attempt_at"]) == (True, None, None)


@pytest.mark.parametrize(
    ("days", "state", "healthy"),
    [(200, "ok", True), (10, "expiring", True), (-1, "expired", False)],
)
def test_client_secret_expiry(graphroom: GraphRoom, days: int, state: str, healthy: bool) -> None:
    graphroom.use_application_permissions()
    expires = dt.datetime.now(UTC).date() + dt.timedelta(days=days)
    result = graphroom.wic.cli("params", "set", "WICBOX_MAILCLIENT_CLIENTSECRET_EXPIRES", expires.isoformat())
    assert result.exit_code == 0, result.output
    assert graphroom.wic.cli("run").exit_code == 0
    code, report = _status(graphroom.wic)
    credentials = report["credentials"]
    assert credentials["permission"] == "application"
    assert (credentials["client_secret_expires"], credentials["client_secret_state"]) == (
        expires.isoformat(),
        state,
    )
    assert credentials["client_secret_days_left"] == days
    assert (code == 0, report["healthy"]) == (healthy, healthy)
    expiring = [w for w in report["warnings"] if "client secret expires" in w]
    assert len(expiring) == (state == "expiring")


def test_a_badly_written_expiry_date_is_refused_by_params_set(wic: WicInstallation) -> None:
    result = wic.cli("params", "set", "WICBOX_MAILCLIENT_CLIENTSECRET_EXPIRES", "30/06/2027")
    assert result.exit_code == 2
    assert "YYYY-MM-DD" in result.output


def test_a_database_without_schema_4_says_to_run_db_init(mailroom: Mailroom) -> None:
    with mailroom.wic.store() as store:
        store.execute("DELETE FROM WICBOX_SCHEMA_VERSION WHERE VERSION = ?", (LATEST_VERSION,))
    result = mailroom.wic.cli("status")
    assert result.exit_code == 2
    assert f"schema version {LATEST_VERSION - 1}; this release needs {LATEST_VERSION}" in result.output
    assert "wicbox db init" in result.output
    assert mailroom.wic.cli("db", "upgrade").exit_code == 0
    assert mailroom.wic.cli("status").exit_code == 1  # no run yet
