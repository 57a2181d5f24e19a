"""The pure parts of `wicbox status`: the verdict, humanised ages, the secret's expiry, the
rendering, error kinds and the expiry parameter (tables of cases)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json

import pytest

from wicbox_bridge.config.params import parse_parameters, parse_secret_expiry
from wicbox_bridge.diagnostics.credentials import credential_checks
from wicbox_bridge.diagnostics.results import CheckStatus
from wicbox_bridge.errors import (
    AuthenticationError,
    BridgeError,
    ConfigurationError,
    ConnectionFailure,
    DatabaseError,
    DataRejected,
    MailboxError,
    ParameterError,
    SchemaError,
)
from wicbox_bridge.status.render import report_json, text_lines
from wicbox_bridge.status.report import (
    CertificateSummary,
    CredentialStatus,
    MailboxStatus,
    Permission,
    QuarantineStatus,
    SecretState,
    StatusOptions,
    StatusReport,
    humanised,
    secret_note,
    secret_state,
    verdict,
)
from wicbox_bridge.store.activity import QuarantinedMail, RunRow
from wicbox_bridge.store.mailbox_state import ErrorKind, MailboxState, error_kind

UTC = dt.timezone.utc
NOW = dt.datetime(2026, 11, 2, 12, 0, tzinfo=UTC)
MIN = dt.timedelta(minutes=1)


def _run(finished_ago: dt.timedelta | None, outcome: str = "OK") -> RunRow:
    finished = None if finished_ago is None else NOW - finished_ago
    return RunRow(
        7, "SINGLE", "host", NOW - 2 * MIN if finished else NOW, finished, outcome, 0, 1, 0, 3, 3, 0, 0, None
    )


def _state(
    *,
    success_ago: dt.timedelta | None = MIN,
    error_ago: dt.timedelta | None = None,
    oldest_ago: dt.timedelta | None = None,
    backlog: int | None = 0,
) -> MailboxState:
    return MailboxState(
        mailbox="wicbox@klant.example",
        folder="INBOX",
        label="global mailbox",
        project_code=None,
        protocol="imap",
        last_run_id=7,
        last_attempt_at=NOW - MIN,
        last_success_at=None if success_ago is None else NOW - success_ago,
        last_error_at=None if error_ago is None else NOW - error_ago,
        error_kind=ErrorKind.AUTHENTICATION if error_ago is not None else None,
        error_code="AADSTS50126" if error_ago is not None else None,
        error_message="AADSTS50126: wrong password" if error_ago is not None else None,
        error_fix="correct WICBOX_MAILCLIENT_PASSWORD" if error_ago is not None else None,
        backlog=backlog,
        oldest_pending_at=None if oldest_ago is None else NOW - oldest_ago,
        backlog_measured_at=NOW - MIN,
    )


def _report(
    *,
    last_good: dt.timedelta | None = 5 * MIN,
    state: MailboxState | None = None,
    configured: bool | None = True,
    permission: Permission = Permission.DELEGATED,
    expires_in: int | None = None,
) -> StatusReport:
    mailbox = MailboxStatus("global mailbox", "wicbox@klant.example", "INBOX", None, state, 3, configured)
    expires = None if expires_in is None else NOW.date() + dt.timedelta(days=expires_in)
    return StatusReport(
        now=NOW,
        database="sqlite:///wic.db",
        runs=(_run(last_good),) if last_good is not None else (),
        last_good_run_at=None if last_good is None else NOW - last_good,
        mailboxes=(mailbox,),
        quarantine=QuarantineStatus(
            1,
            (QuarantinedMail(9, "wicbox@klant.example", "INBOX", "42", NOW - MIN, False, "refused"),),
            "WICBOX/Failed",
        ),
        credentials=CredentialStatus(permission, expires, state if state and state.error_kind else None),
    )


VERDICTS = {
    "all well": (_report(state=_state()), True, ()),
    "never a run": (
        _report(last_good=None, state=_state()),
        False,
        ("no run has been recorded yet: run `wicbox run`",),
    ),
    "runs stale": (_report(last_good=31 * MIN, state=_state()), False, ("no run finished OK or PARTIAL",)),
    "runs just fresh": (_report(last_good=30 * MIN, state=_state()), True, ()),
    "old waiting mail": (
        _report(state=_state(oldest_ago=45 * MIN, backlog=150)),
        False,
        ("received 45 min ago (150 waiting)",),
    ),
    "young waiting mail": (_report(state=_state(oldest_ago=10 * MIN, backlog=5)), True, ()),
    "failing, success long ago": (
        _report(state=_state(success_ago=2 * 60 * MIN, error_ago=MIN)),
        False,
        ("no successful pass since 2 h ago", "AADSTS50126"),
    ),
    "failing, never succeeded": (
        _report(state=_state(success_ago=None, error_ago=MIN)),
        False,
        ("never read successfully",),
    ),
    "failing, success recent: warning": (_report(state=_state(success_ago=5 * MIN, error_ago=MIN)), True, ()),
    "old error, success since": (_report(state=_state(success_ago=MIN, error_ago=3 * 60 * MIN)), True, ()),
    "no longer configured": (
        _report(state=_state(success_ago=None, error_ago=MIN), configured=False),
        True,
        (),
    ),
    "never read yet": (_report(state=None), True, ()),
    "secret expired": (
        _report(state=_state(), permission=Permission.APPLICATION, expires_in=-1),
        False,
        ("EXPIRED", "AADSTS7000222"),
    ),
    "secret expiring: warning": (
        _report(state=_state(), permission=Permission.APPLICATION, expires_in=3),
        True,
        (),
    ),
}


@pytest.mark.parametrize(("report", "healthy", "phrases"), list(VERDICTS.values()), ids=list(VERDICTS))
def test_verdict(report: StatusReport, healthy: bool, phrases: tuple[str, ...]) -> None:
    result = verdict(report, StatusOptions())
    assert result.healthy is healthy
    assert int(result.exit_code) == (0 if healthy else 1)
    assert bool(result.reasons) is not healthy
    for phrase in phrases:
        assert any(phrase in reason for reason in result.reasons), (phrase, result.reasons)


WARNINGS = {
    "failing recently": (_report(state=_state(success_ago=5 * MIN, error_ago=MIN)), "the last pass failed"),
    "expiring": (
        _report(state=_state(), permission=Permission.APPLICATION, expires_in=3),
        "client secret expires in 3 days",
    ),
}


@pytest.mark.parametrize(("report", "phrase"), list(WARNINGS.values()), ids=list(WARNINGS))
def test_warnings(report: StatusReport, phrase: str) -> None:
    result = verdict(report, StatusOptions())
    assert any(phrase in warning for warning in result.warnings), result.warnings


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0, "0 s"), (59, "59 s"), (60, "1 min"), (3599, "59 min"), (3600, "1 h"), (3660, "1 h 1 min"),
     (86400, "1 day"), (90000, "1 day 1 h"), (3 * 86400, "3 days"), (-5, "0 s")],
)  # fmt: skip
def test_humanised(seconds: int, text: str) -> None:
    assert humanised(dt.timedelta(seconds=seconds)) == text


@pytest.mark.parametrize(
    ("permission", "expires_in", "state"),
    [
        (Permission.DELEGATED, None, SecretState.NOT_APPLICABLE),
        (Permission.BASIC, None, SecretState.NOT_APPLICABLE),
        (Permission.APPLICATION, None, SecretState.UNKNOWN),
        (Permission.APPLICATION, 31, SecretState.OK),
        (Permission.APPLICATION, 30, SecretState.EXPIRING),
        (Permission.APPLICATION, 0, SecretState.EXPIRING),  # valid through its Expires date
        (Permission.APPLICATION, -1, SecretState.EXPIRED),
    ],
)
def test_secret_state(permission: Permission, expires_in: int | None, state: SecretState) -> None:
    expires = None if expires_in is None else NOW.date() + dt.timedelta(days=expires_in)
    credentials = CredentialStatus(permission, expires, None)
    assert secret_state(credentials, NOW.date(), dt.timedelta(days=30)) is state


@pytest.mark.parametrize(
    ("error", "kind"),
    [
        (AuthenticationError("x", code="AADSTS50126"), ErrorKind.AUTHENTICATION),
        (ConnectionFailure("x"), ErrorKind.CONNECTION),
        (DatabaseError("x"), ErrorKind.DATABASE),
        (DataRejected("x"), ErrorKind.DATABASE),
        (SchemaError("x"), ErrorKind.DATABASE),
        (MailboxError("x"), ErrorKind.MAILBOX),
        (ConfigurationError("x"), ErrorKind.CONFIGURATION),
        (ParameterError("P", "x"), ErrorKind.CONFIGURATION),
        (BridgeError("x"), ErrorKind.OTHER),
    ],
)
def test_error_kind(error: BridgeError, kind: ErrorKind) -> None:
    assert error_kind(error) is kind


@pytest.mark.parametrize("text", ["2027-06-30", " 2027-06-30 ", "2028-02-29"])
def test_secret_expiry_dates(text: str) -> None:
    assert parse_secret_expiry(text) == dt.date.fromisoformat(text.strip())


@pytest.mark.parametrize("text", ["30/06/2027", "2027-6-30", "2027-02-30", "morgen", "2027-06-30T00:00"])
def test_secret_expiry_refuses_other_writings(text: str) -> None:
    with pytest.raises(ParameterError, match="YYYY-MM-DD") as raised:
        parse_secret_expiry(text)
    assert raised.value.fix and "Certificates & secrets" in raised.value.fix


APPLICATION = {
    "WICBOXACCOUNTMODE": "SINGLE",
    "WICBOX_MAILCLIENT_CLIENTID": "0b6e3f4c-1a2d-4e5f-8a9b-0c1d2e3f4a5b",
    "WICBOX_MAILCLIENT_TENANTID": "5f1c7d2e-8b4a-4c3e-9a6f-2d7e1b0c9a41",
    "WICBOX_MAILCLIENT_CLIENTSECRET": "geheim-waarde-123",
    "WICBOX_MAILCLIENT_USERNAME": "wicbox@klant.example",
}


def test_the_expiry_parameter_never_stops_a_run() -> None:
    parsed = parse_parameters({**APPLICATION, "WICBOX_MAILCLIENT_CLIENTSECRET_EXPIRES": "2027-06-30"})
    assert parsed.parameters.client_secret_expires == dt.date(2027, 6, 30)
    parsed = parse_parameters({**APPLICATION, "WICBOX_MAILCLIENT_CLIENTSECRET_EXPIRES": "30/06/2027"})
    assert parsed.parameters.client_secret_expires is None
    assert any("YYYY-MM-DD; it is ignored" in warning for warning in parsed.warnings)
    delegated = {
        **APPLICATION,
        "WICBOX_MAILCLIENT_CLIENTSECRET": None,
        "WICBOX_MAILCLIENT_PASSWORD": "pw-1234",
    }
    parsed = parse_parameters({**delegated, "WICBOX_MAILCLIENT_CLIENTSECRET_EXPIRES": "2027-06-30"})
    assert parsed.parameters.client_secret_expires is None
    assert any("no client secret is used" in warning for warning in parsed.warnings)


def test_text_rendering_in_a_given_zone() -> None:
    report = _report(state=_state(success_ago=2 * 60 * MIN, error_ago=MIN, oldest_ago=45 * MIN, backlog=150))
    options = StatusOptions()
    lines = text_lines(report, verdict(report, options), options, tz=UTC)
    text = "\n".join(lines)
    assert lines[0] == "wicbox status at 2026-11-02 12:00:00 UTC: MAIL IS NOT FLOWING (window: 30 min)"
    assert (
        "backlog: 150 waiting, oldest received 2026-11-02 11:15:00 UTC (45 min ago) (measured 1 min ago)"
        in text
    )
    assert "last success: 2026-11-02 10:00:00 UTC (2 h ago)" in text
    assert "last error: 2026-11-02 11:59:00 UTC (1 min ago) authentication, AADSTS50126" in text
    assert "fix: correct WICBOX_MAILCLIENT_PASSWORD" in text
    assert "mail 9 at 2026-11-02 11:59:00 UTC: in WICBOX/Failed of wicbox@klant.example" in text
    assert "password sign-in (delegated)" in text
    assert "#7 2026-11-02 11:58:00 UTC OK" in text


def test_json_shape_is_stable() -> None:
    report = _report(state=_state(oldest_ago=45 * MIN, backlog=150))
    options = StatusOptions()
    document = json.loads(json.dumps(report_json(report, verdict(report, options), options)))
    assert list(document) == [
        "format", "generated_at", "healthy", "exit_code", "reasons", "warnings", "stale_after_minutes",
        "database", "last_good_run_finished_at", "runs", "mailboxes", "quarantined", "credentials",
        "failed_before_database", "leases",
    ]  # fmt: skip
    assert (document["format"], document["generated_at"], document["healthy"]) == (
        1,
        "2026-11-02T12:00:00Z",
        False,
    )
    [mailbox] = document["mailboxes"]
    assert list(mailbox) == [
        "label", "mailbox", "folder", "project", "configured", "protocol", "filed_last_24h", "backlog",
        "oldest_pending_received_at", "oldest_pending_age_seconds", "backlog_measured_at", "last_attempt_at",
        "last_success_at", "last_run_id", "failing", "last_error",
    ]  # fmt: skip
    assert (mailbox["oldest_pending_age_seconds"], mailbox["oldest_pending_received_at"]) == (
        2700,
        "2026-11-02T11:15:00Z",
    )
    assert list(document["runs"][0]) == [
        "run_id", "mode", "host", "started_at", "finished_at", "outcome", "exit_code", "mailboxes",
        "failed_mailboxes", "fetched", "filed", "duplicates", "quarantined", "message", "error", "fix",
    ]  # fmt: skip
    assert list(document["quarantined"]["latest"][0]) == [
        "mail_id", "mailbox", "source_folder", "source_id", "at", "moved", "where", "reason",
    ]  # fmt: skip
    assert list(document["credentials"]) == [
        "permission", "client_secret_expires", "client_secret_days_left", "client_secret_state",
        "certificate", "note", "parameters_problem", "last_authentication_failure",
    ]  # fmt: skip
    changed = dataclasses.replace(report, runs=())
    assert report_json(changed, verdict(changed, options), options)["runs"] == []


@pytest.mark.parametrize(
    ("days", "state", "phrase"),
    [
        (400, SecretState.OK, "(in 400 days)"),
        (12, SecretState.EXPIRING, "in 12 days"),
        (-1, SecretState.EXPIRED, "EXPIRED"),
    ],
)
def test_a_certificate_is_watched_like_a_secret(days: int, state: SecretState, phrase: str) -> None:
    certificate = CertificateSummary(
        "/etc/wicbox/app.pem", "46E434F6502726819EC3D34D64C9BC975BD5C32D", NOW + dt.timedelta(days=days)
    )
    credentials = CredentialStatus(Permission.APPLICATION, None, None, certificate=certificate)
    warning = dt.timedelta(days=30)
    assert secret_state(credentials, NOW.date(), warning) is state
    note = secret_note(credentials, NOW.date(), warning)
    assert phrase in note and "/etc/wicbox/app.pem" in note and certificate.thumbprint in note
    assert ("wicbox cert new" in note) is (state is not SecretState.OK)
    assert "client secret" not in note


@pytest.mark.parametrize(
    ("expires_in", "status", "phrase"),
    [
        (-1, CheckStatus.FAIL, "expired on"),
        (0, CheckStatus.WARN, "expires on"),
        (30, CheckStatus.WARN, "expires on"),
        (31, CheckStatus.OK, "valid until"),
        (None, CheckStatus.OK, "`wicbox params set WICBOX_MAILCLIENT_CLIENTSECRET_EXPIRES YYYY-MM-DD`"),
    ],
)
def test_check_judges_a_client_secret_as_status_does(
    expires_in: int | None, status: CheckStatus, phrase: str
) -> None:
    values = dict(APPLICATION)
    if expires_in is not None:
        values["WICBOX_MAILCLIENT_CLIENTSECRET_EXPIRES"] = (
            NOW.date() + dt.timedelta(days=expires_in)
        ).isoformat()
    params = parse_parameters(values).parameters
    [line] = credential_checks(params, NOW)
    assert line.status is status and phrase in line.detail
    assert "geheim-waarde-123" not in line.render()
    if status is CheckStatus.FAIL:
        assert line.exit_code == 3 and "wicbox cert new" in (line.fix or "")
