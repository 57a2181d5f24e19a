"""One broken project mailbox never stops the others (MULTIPLE mode, both permission types).

A failing mailbox is reported with its project code and the fix, on stderr and in WICBOX_RUN.MESSAGE;
the other mailboxes are read and filed; the exit code is 1 (partial), and 3 only when
authentication failed for every account. Passwords never appear in what the run prints or records.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pytest
from click.testing import Result

from tests.helpers.mailgen import make_mail
from tests.plugins.wic import Mailroom
from tests.test_run_fairness import use_application_permissions

pytestmark = pytest.mark.testbed

ALPHA, BRAVO, CHARLIE, DELTA, ECHO = (
    f"project-{name}@klant.example" for name in ("alpha", "bravo", "charlie", "delta", "echo")
)
WRONG_PASSWORD = "Niet-Het-Juiste-Wachtwoord-7731"  # a deliberately wrong test password


@dataclass(frozen=True)
class RunRow:
    outcome: str
    exit_code: int
    mailboxes: int
    failed_mailboxes: int
    filed: int
    message: str | None


def _run(room: Mailroom) -> tuple[Result, RunRow]:
    result = room.wic.cli("run", "--json")
    with room.wic.store() as store:
        row = store.query_one(
            "SELECT OUTCOME, EXIT_CODE, MAILBOXES, FAILED_MAILBOXES, FILED, MESSAGE FROM WICBOX_RUN "
            "ORDER BY RUN_ID DESC"
        )
    assert row is not None
    return result, RunRow(*row)


def _error_and_fix(output: str, code: str) -> tuple[str, str]:
    """The error line naming project ``code`` and the fix line right after it."""
    lines = output.splitlines()
    for index, line in enumerate(lines):
        if line.startswith(f"wicbox: error: project {code} ("):
            following = lines[index + 1] if index + 1 < len(lines) else ""
            assert following.startswith("wicbox: fix: "), f"no fix after: {line}"
            return line, following
    raise AssertionError(f"project {code} is not reported:\n{output}")


def _reported_failures(result: Result) -> dict[str, dict[str, Any]]:
    """The JSON run report's failed mailboxes by project code: their error type, message and fix."""
    report = json.loads(result.stdout)
    return {m["project"]: m["error"] for m in report["mailboxes"] if m["error"] is not None}


def _deliver_own_mail(room: Mailroom, mailboxes: Sequence[str]) -> dict[str, list[bytes]]:
    delivered = {}
    for number, mailbox in enumerate(mailboxes, start=1):
        mails = [make_mail(100 * number + n, to=mailbox) for n in range(3)]
        room.deliver(mails, user=mailbox)
        delivered[mailbox] = mails
    return delivered


def test_delegated_failures_are_reported_per_project_and_the_rest_is_filed(mailroom: Mailroom) -> None:
    room = mailroom
    users = room.wic.directory
    for mailbox in (ALPHA, BRAVO, DELTA, ECHO):  # CHARLIE has an account but no mailbox
        room.dovecot.add_mailbox(mailbox)
    add = room.wic.add_project
    add(1, "ALPHA", mailbox=ALPHA, username=ALPHA, password=users.user(ALPHA).password)
    add(2, "BRAVO", mailbox=BRAVO, username=BRAVO, password=WRONG_PASSWORD)
    add(3, "CHARLIE", mailbox=CHARLIE, username=CHARLIE, password=users.user(CHARLIE).password)
    add(4, "DELTA", mailbox=DELTA, username=DELTA, password=users.user(DELTA).password)
    add(5, "LEEG", mailbox="", username=" ")  # active, no mailbox of its own: not selected
    add(6, "ECHO", mailbox=ECHO, username=ECHO, password=None)  # no password and no saved sign-in
    room.wic.set_params({"WICBOXACCOUNTMODE": "MULTIPLE"})
    delivered = _deliver_own_mail(room, [ALPHA, BRAVO, DELTA, ECHO])

    result, run = _run(room)

    assert result.exit_code == 1, result.output
    _line, fix = _error_and_fix(result.output, "BRAVO")
    assert "AADSTS50126" in result.output
    assert "WICBOX_PASSWORD" in fix or "password" in fix.lower()
    _error_and_fix(result.output, "CHARLIE")
    line, fix = _error_and_fix(result.output, "ECHO")
    assert f"sign-in needed: no sign-in is saved for {ECHO}" in line
    assert "run `wicbox signin --project ECHO`" in fix
    assert "LEEG" not in result.output
    failures = _reported_failures(result)
    assert sorted(failures) == ["BRAVO", "CHARLIE", "ECHO"]
    assert failures["ECHO"]["type"] == "AuthenticationError"
    assert all(failure["fix"] for failure in failures.values())
    assert WRONG_PASSWORD not in result.output
    assert all(users.user(upn).password not in result.output for upn in (ALPHA, CHARLIE, DELTA))

    filed = {(row.project_id, row.raw) for row in room.filed()}
    assert filed == {(1, raw) for raw in delivered[ALPHA]} | {(4, raw) for raw in delivered[DELTA]}
    for mailbox in (BRAVO, ECHO):
        assert [m.raw for m in room.messages(user=mailbox)] == delivered[mailbox], "left for a later run"

    assert (run.outcome, run.exit_code, run.mailboxes, run.failed_mailboxes, run.filed) == (
        "PARTIAL", 1, 5, 3, 6,
    )  # fmt: skip
    assert run.message is not None
    assert all(f"project {code}" in run.message for code in ("BRAVO", "CHARLIE", "ECHO"))
    assert "ALPHA" not in run.message and "DELTA" not in run.message and "LEEG" not in run.message
    assert WRONG_PASSWORD not in run.message


def test_application_failures_are_reported_per_project_and_the_rest_is_filed(mailroom: Mailroom) -> None:
    room = mailroom
    use_application_permissions(room)
    sp_id = room.wic.directory.confidential_client_sp_id
    for mailbox in (ALPHA, BRAVO, DELTA):  # CHARLIE's mailbox does not exist
        room.dovecot.add_mailbox(mailbox)
    for mailbox in (ALPHA, CHARLIE, DELTA):  # BRAVO: Add-MailboxPermission was never run
        room.dovecot.grant_app_access(sp_id, mailbox)
    for project_id, (code, mailbox) in enumerate(
        [("ALPHA", ALPHA), ("BRAVO", BRAVO), ("CHARLIE", CHARLIE), ("DELTA", DELTA)], start=1
    ):
        room.wic.add_project(project_id, code, mailbox=mailbox)
    room.wic.set_params({"WICBOXACCOUNTMODE": "MULTIPLE"})
    delivered = _deliver_own_mail(room, [ALPHA, BRAVO, DELTA])

    result, run = _run(room)

    assert result.exit_code == 1, result.output
    _line, fix = _error_and_fix(result.output, "BRAVO")
    assert f"Add-MailboxPermission -Identity {BRAVO}" in fix
    _error_and_fix(result.output, "CHARLIE")
    assert sorted(_reported_failures(result)) == ["BRAVO", "CHARLIE"]
    filed = {(row.project_id, row.raw) for row in room.filed()}
    assert filed == {(1, raw) for raw in delivered[ALPHA]} | {(4, raw) for raw in delivered[DELTA]}
    assert [m.raw for m in room.messages(user=BRAVO)] == delivered[BRAVO]
    assert (run.outcome, run.exit_code, run.failed_mailboxes) == ("PARTIAL", 1, 2)
    assert run.message is not None and "project BRAVO" in run.message and "project CHARLIE" in run.message


@pytest.mark.parametrize(
    ("passwords", "exit_code"),
    [
        pytest.param(("wrong", "wrong", "wrong"), 3, id="every-account-refused"),
        pytest.param(("wrong", "right", "wrong"), 1, id="one-account-works"),
        pytest.param(("wrong", "missing", "wrong"), 1, id="one-account-misconfigured"),
    ],
)
def test_exit_code_3_only_when_authentication_fails_for_every_account(
    mailroom: Mailroom, passwords: tuple[str, str, str], exit_code: int
) -> None:
    room = mailroom
    users = room.wic.directory
    for project_id, (mailbox, password) in enumerate(
        zip((ALPHA, BRAVO, CHARLIE), passwords, strict=True), start=1
    ):
        room.dovecot.add_mailbox(mailbox)
        value = {"wrong": WRONG_PASSWORD, "right": users.user(mailbox).password, "missing": None}[password]
        # "missing": no WICBOX_USERNAME, a configuration error (without a password the account would
        # still sign in with a saved `wicbox signin`, an authentication question)
        username = None if password == "missing" else mailbox
        room.wic.add_project(project_id, f"P{project_id}", mailbox=mailbox, username=username, password=value)
    room.wic.set_params({"WICBOXACCOUNTMODE": "MULTIPLE"})
    room.deliver([make_mail(1, to=BRAVO)], user=BRAVO)
    result, run = _run(room)
    assert result.exit_code == exit_code, result.output
    assert run.exit_code == exit_code
    assert run.failed_mailboxes == passwords.count("wrong") + passwords.count("missing")
    assert len(room.filed()) == (1 if "right" in passwords else 0)
    assert WRONG_PASSWORD not in result.output


def test_multiple_without_any_project_mailbox_is_a_configuration_error(mailroom: Mailroom) -> None:
    room = mailroom
    room.wic.add_project(1, "ALPHA")  # no mailbox of its own
    room.wic.add_project(2, "BRAVO", mailbox=BRAVO, username=BRAVO, active=False)
    room.wic.set_params({"WICBOXACCOUNTMODE": "MULTIPLE"})
    result = room.wic.cli("run")
    assert result.exit_code == 2, result.output
    assert "no active project has a mailbox of its own" in result.output
    assert "WICBOX_MAILBOX" in result.output
    assert room.dovecot.sign_ins() == []
