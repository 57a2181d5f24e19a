"""What ``wicbox status`` reports, and whether mail is flowing (pure: no I/O).

:mod:`wicbox_bridge.status.gather` fills a :class:`StatusReport` from the database alone (no mail
server is asked: status stays cheap for monitoring and works while a server is down);
:func:`verdict` decides whether mail is flowing; :mod:`wicbox_bridge.status.render` prints both.

Mail is *not flowing* (exit code 1) when, with ``stale_after`` the ``--stale-after`` window:

- no run finished OK or PARTIAL within ``stale_after``; or
- a mailbox's oldest waiting mail was received longer than ``stale_after`` ago; or
- a mailbox's last pass failed and its last success is older than ``stale_after`` (or never was);
- or the client secret has expired (its expiry date is known and past).

A client secret that expires within the warning window, a mailbox whose last pass failed but
which succeeded within ``stale_after``, and unreadable parameters are warnings: shown, exit 0.
Mailboxes the current account plan no longer reads are shown but do not count.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from enum import Enum

from wicbox_bridge.config.params import CERTIFICATE, CLIENT_SECRET, CLIENT_SECRET_EXPIRES, SECRETS_PAGE
from wicbox_bridge.errors import ExitCode, with_fix
from wicbox_bridge.status.failed_starts import FailedStart
from wicbox_bridge.store.activity import QuarantinedMail, RunRow
from wicbox_bridge.store.leases import LeaseRow
from wicbox_bridge.store.mailbox_state import MailboxState

NOT_FLOWING = ExitCode.PARTIAL
"""The exit code of ``wicbox status`` when mail is not flowing (1; 0 when it flows)."""


@dataclass(frozen=True)
class StatusOptions:
    stale_after: dt.timedelta = dt.timedelta(minutes=30)
    expiry_warning: dt.timedelta = dt.timedelta(days=30)
    runs: int = 10
    quarantined: int = 5


class Permission(str, Enum):
    APPLICATION = "application"
    DELEGATED = "delegated"
    BASIC = "basic"
    UNKNOWN = "unknown"


class SecretState(str, Enum):
    OK = "ok"
    EXPIRING = "expiring"
    EXPIRED = "expired"
    UNKNOWN = "unknown"  # application permissions, but the expiry date is not set
    NOT_APPLICABLE = "not-applicable"  # password sign-in: no client secret


@dataclass(frozen=True)
class MailboxStatus:
    """One mailbox: its recorded state (None: never read yet) and what it filed lately.

    ``configured`` False: the current account plan no longer reads it; None: not known (the
    parameters could not be read).
    """

    label: str
    mailbox: str
    folder: str
    project_code: str | None
    state: MailboxState | None
    filed_last_24h: int
    configured: bool | None


@dataclass(frozen=True)
class QuarantineStatus:
    last_7_days: int
    latest: tuple[QuarantinedMail, ...]
    failed_folder: str | None


@dataclass(frozen=True)
class CertificateSummary:
    """The configured certificate as `wicbox status` shows it (never the key)."""

    path: str
    thumbprint: str
    not_after: dt.datetime


@dataclass(frozen=True)
class CredentialStatus:
    permission: Permission
    secret_expires: dt.date | None
    last_authentication_failure: MailboxState | None
    problem: str | None = None  # the parameters could not be read: their error and fix
    certificate: CertificateSummary | None = None  # application permissions with a certificate

    @property
    def expires(self) -> dt.date | None:
        """When the credential in use expires: the certificate's not-after, else the secret's date."""
        if self.certificate is not None:
            return self.certificate.not_after.date()
        return self.secret_expires


@dataclass(frozen=True)
class StatusReport:
    now: dt.datetime  # aware UTC
    database: str
    runs: tuple[RunRow, ...]
    last_good_run_at: dt.datetime | None
    mailboxes: tuple[MailboxStatus, ...]
    quarantine: QuarantineStatus
    credentials: CredentialStatus
    parameter_warnings: tuple[str, ...] = ()
    failed_starts: tuple[FailedStart, ...] = ()
    """Runs that stopped before the database could be reached (this machine's record), newest first."""
    leases: tuple[LeaseRow, ...] = ()  # the mailbox leases not released (held, or left by a run that died)


@dataclass(frozen=True)
class Verdict:
    healthy: bool
    reasons: tuple[str, ...]
    warnings: tuple[str, ...]

    @property
    def exit_code(self) -> ExitCode:
        return ExitCode.OK if self.healthy else NOT_FLOWING


# --------------------------------------------------------------------------- humanised times


def humanised(delta: dt.timedelta) -> str:
    """A duration as people say it: 45 s, 12 min, 3 h 5 min, 2 days 4 h."""
    seconds = max(0, int(delta.total_seconds()))
    if seconds < 60:
        return f"{seconds} s"
    minutes = seconds // 60
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    days, hours = divmod(hours, 24)
    unit = "day" if days == 1 else "days"
    return f"{days} {unit} {hours} h" if hours else f"{days} {unit}"


def ago(now: dt.datetime, moment: dt.datetime) -> str:
    return f"{humanised(now - moment)} ago"


# --------------------------------------------------------------------------- credentials


def secret_state(credentials: CredentialStatus, today: dt.date, warning: dt.timedelta) -> SecretState:
    if credentials.permission is not Permission.APPLICATION:
        return SecretState.NOT_APPLICABLE
    expires = credentials.expires
    if expires is None:
        return SecretState.UNKNOWN
    if today > expires:
        return SecretState.EXPIRED
    return SecretState.EXPIRING if expires - today <= warning else SecretState.OK


def days_left(credentials: CredentialStatus, today: dt.date) -> int | None:
    expires = credentials.expires
    return None if expires is None else (expires - today).days


def _no_secret_note(permission: Permission) -> str:
    if permission is Permission.DELEGATED:
        return "password sign-in (delegated): no client secret; watch for AADSTS50055 (password expired)"
    if permission is Permission.BASIC:
        return "Basic authentication: the mailbox password, no client secret"
    return "the sign-in cannot be told: the parameters could not be read"


def secret_note(credentials: CredentialStatus, today: dt.date, warning: dt.timedelta) -> str:
    """One sentence on the client secret: its expiry and what to do, or why there is none."""
    state = secret_state(credentials, today, warning)
    expires = credentials.expires
    if state is SecretState.NOT_APPLICABLE:
        return _no_secret_note(credentials.permission)
    if credentials.certificate is not None and expires is not None:
        return _certificate_note(credentials.certificate, state, (expires - today).days)
    if state is SecretState.UNKNOWN or expires is None:
        return (
            f"client secret: expiry unknown; enter its Expires date (from {SECRETS_PAGE}) with "
            f"`wicbox params set {CLIENT_SECRET_EXPIRES} YYYY-MM-DD` to be warned ahead"
        )
    renew = (
        f"create a new client secret in {SECRETS_PAGE}, put its Value in {CLIENT_SECRET} and its "
        f"Expires date in {CLIENT_SECRET_EXPIRES}"
    )
    left = (expires - today).days
    if state is SecretState.EXPIRED:
        return f"client secret EXPIRED on {expires.isoformat()}: sign-in fails (AADSTS7000222); {renew}"
    if state is SecretState.EXPIRING:
        when = "today" if left == 0 else f"in {left} day" + ("" if left == 1 else "s")
        return f"client secret expires {when} ({expires.isoformat()}): {renew} before then"
    return f"client secret expires {expires.isoformat()} (in {left} days)"


def _certificate_note(certificate: CertificateSummary, state: SecretState, left: int) -> str:
    what = f"certificate {certificate.path} (thumbprint {certificate.thumbprint})"
    expires = certificate.not_after.date().isoformat()
    renew = (
        "make a new one with `wicbox cert new`, upload its .cer to the app registration and point "
        f"{CERTIFICATE} at the new .pem"
    )
    if state is SecretState.EXPIRED:
        return f"{what} EXPIRED on {expires}: sign-in fails; {renew}"
    if state is SecretState.EXPIRING:
        when = "today" if left == 0 else f"in {left} day" + ("" if left == 1 else "s")
        return f"{what} expires {when} ({expires}): {renew} before then"
    return f"{what} expires {expires} (in {left} days)"


# --------------------------------------------------------------------------- the verdict


def _counts(mailbox: MailboxStatus) -> bool:
    return mailbox.configured is not False and mailbox.state is not None


@dataclass(frozen=True)
class FailedRun:
    """The latest run that stopped on an error: when, its exit code, the error and its fix."""

    at: dt.datetime
    exit_code: int | None
    error: str


def latest_failure(report: StatusReport) -> FailedRun | None:
    """The newest failed run newer than the last good one: from WICBOX_RUN or this machine's record."""
    failures = [
        FailedRun(at, run.exit_code, run.message or f"outcome {run.outcome}")
        for run in report.runs
        if run.outcome == "FAILED" and (at := run.finished_at or run.started_at) is not None
    ]
    failures += [
        FailedRun(entry.at, entry.exit_code, with_fix(entry.message, entry.fix))
        for entry in report.failed_starts
    ]
    last_good = report.last_good_run_at
    newer = [failure for failure in failures if last_good is None or failure.at > last_good]
    return max(newer, key=lambda failure: failure.at, default=None)


def _failure_text(report: StatusReport, failure: FailedRun) -> str:
    code = "" if failure.exit_code is None else f", exit code {failure.exit_code}"
    return f"the last run ({ago(report.now, failure.at)}{code}) stopped on: {failure.error}"


def _run_reason(report: StatusReport, stale: dt.timedelta) -> str | None:
    last = report.last_good_run_at
    minutes = int(stale.total_seconds() // 60)
    failure = latest_failure(report)
    if last is None:
        if failure is not None:
            return f"no run has finished OK or PARTIAL yet; {_failure_text(report, failure)}"
        if not report.runs:
            return (
                "no run has been recorded yet: run `wicbox run` once by hand, then let the scheduled "
                "task run it (`wicbox schedule install`)"
            )
        return (
            "no run has finished OK or PARTIAL yet: the runs below did not finish; see their messages, "
            "and check that the scheduled task runs `wicbox run`"
        )
    if report.now - last > stale:
        cause = (
            f"; {_failure_text(report, failure)}"
            if failure is not None
            else ": check that the scheduled task still runs `wicbox run`, and the runs below"
        )
        return (
            f"no run finished OK or PARTIAL in the last {minutes} min (the last one {ago(report.now, last)})"
            f"{cause}"
        )
    return None


def _backlog_reason(mailbox: MailboxStatus, now: dt.datetime, stale: dt.timedelta) -> str | None:
    state = mailbox.state
    if state is None or state.oldest_pending_at is None or now - state.oldest_pending_at <= stale:
        return None
    waiting = f"{state.backlog} waiting" if state.backlog is not None else "waiting"
    return (
        f"{mailbox.label} ({mailbox.mailbox}): the oldest mail waiting in {mailbox.folder} was received "
        f"{ago(now, state.oldest_pending_at)} ({waiting}): run `wicbox run` more often or raise "
        "WicBoxMaxMailsPerRun in WicGlobal.config, and check the mailbox's errors"
    )


def _error_text(state: MailboxState) -> str:
    kind = state.error_kind.value if state.error_kind else "error"
    code = f", {state.error_code}" if state.error_code else ""
    return f"{kind}{code}: {with_fix(state.error_message or '(no message)', state.error_fix)}"


def _error_reason(mailbox: MailboxStatus, now: dt.datetime, stale: dt.timedelta) -> str | None:
    state = mailbox.state
    if state is None or not state.failing:
        return None
    success = state.last_success_at
    if success is not None and now - success <= stale:
        return None
    since = "never read successfully" if success is None else f"no successful pass since {ago(now, success)}"
    return f"{mailbox.label} ({mailbox.mailbox}): {since}; last error ({_error_text(state)})"


def _warnings(report: StatusReport, options: StatusOptions) -> list[str]:
    warnings = list(report.parameter_warnings)
    credentials = report.credentials
    if credentials.problem:
        warnings.append(f"the parameters could not be read: {credentials.problem}")
    state = secret_state(credentials, report.now.date(), options.expiry_warning)
    if state is SecretState.EXPIRING:
        warnings.append(secret_note(credentials, report.now.date(), options.expiry_warning))
    for mailbox in report.mailboxes:
        current = mailbox.state
        recent = _error_reason(mailbox, report.now, options.stale_after) is None
        if _counts(mailbox) and current is not None and current.failing and recent:
            warnings.append(
                f"{mailbox.label} ({mailbox.mailbox}): the last pass failed ({_error_text(current)})"
            )
    return warnings


def verdict(report: StatusReport, options: StatusOptions) -> Verdict:
    """Whether mail flows; the reasons when it does not, and what deserves a look anyway."""
    stale = options.stale_after
    reasons = [reason for reason in [_run_reason(report, stale)] if reason]
    for mailbox in report.mailboxes:
        if not _counts(mailbox):
            continue
        for reason in (
            _backlog_reason(mailbox, report.now, stale),
            _error_reason(mailbox, report.now, stale),
        ):
            if reason:
                reasons.append(reason)
    today = report.now.date()
    if secret_state(report.credentials, today, options.expiry_warning) is SecretState.EXPIRED:
        reasons.append(secret_note(report.credentials, today, options.expiry_warning))
    return Verdict(not reasons, tuple(reasons), tuple(_warnings(report, options)))
