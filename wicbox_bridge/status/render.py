"""``wicbox status`` as text for people and as JSON for monitoring tools (pure).

Text shows times in the machine's local time with its zone and ages humanised; JSON shows times
in ISO 8601 UTC and ages in seconds. The JSON shape (``"format": 1``) is documented in
docs/status.md; fields are only ever added to it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from wicbox_bridge.errors import FIX_SEPARATOR, split_fix
from wicbox_bridge.status.failed_starts import FailedStart
from wicbox_bridge.status.report import (
    MailboxStatus,
    StatusOptions,
    StatusReport,
    Verdict,
    ago,
    days_left,
    humanised,
    secret_note,
    secret_state,
)
from wicbox_bridge.store.activity import QuarantinedMail, RunRow
from wicbox_bridge.store.leases import LeaseRow
from wicbox_bridge.store.mailbox_state import MailboxState

JSON_FORMAT = 1


def local(moment: dt.datetime | None, tz: dt.tzinfo | None = None) -> str:
    """``moment`` in ``tz`` (None: the machine's local zone, daylight saving included) with its zone."""
    if moment is None:
        return "-"
    return moment.astimezone(tz).strftime("%Y-%m-%d %H:%M:%S %Z").strip()


def _when(report: StatusReport, moment: dt.datetime | None, tz: dt.tzinfo | None) -> str:
    return "never" if moment is None else f"{local(moment, tz)} ({ago(report.now, moment)})"


# --------------------------------------------------------------------------- text


def text_lines(
    report: StatusReport, verdict: Verdict, options: StatusOptions, tz: dt.tzinfo | None
) -> list[str]:
    """The whole report for people: verdict, runs, mailboxes, quarantined mails, credentials."""
    minutes = int(options.stale_after.total_seconds() // 60)
    state = "mail is flowing" if verdict.healthy else "MAIL IS NOT FLOWING"
    lines = [f"wicbox status at {local(report.now, tz)}: {state} (window: {minutes} min)"]
    lines += [f"  not flowing: {reason}" for reason in verdict.reasons]
    lines += [f"  warning: {warning}" for warning in verdict.warnings]
    lines += ["", f"Database: {report.database}", "", *_run_lines(report, options, tz)]
    lines += ["", *_mailbox_lines(report, tz)]
    lines += ["", *_lease_lines(report)]
    lines += ["", *_quarantine_lines(report, tz)]
    lines += ["", *_credential_lines(report, options, tz)]
    return lines


def _run_lines(report: StatusReport, options: StatusOptions, tz: dt.tzinfo | None) -> list[str]:
    lines = [
        f"Runs (last {options.runs}; last OK/PARTIAL finished {_when(report, report.last_good_run_at, tz)}):"
    ]
    if not report.runs:
        lines.append("  none yet: `wicbox run` records every run in WICBOX_RUN")
    for run in report.runs:
        lines.append(
            f"  #{run.run_id} {local(run.started_at, tz)} {run.outcome:<11} {_duration(run)} "
            f"fetched {run.fetched}, filed {run.filed}, duplicates {run.duplicates}, "
            f"quarantined {run.quarantined}, failed mailboxes {run.failed_mailboxes}/{run.mailboxes}"
        )
        lines += [f"      {line}" for line in _message_lines(run.message)]
    return [*lines, *failed_start_lines(report.failed_starts, tz)]


def _message_lines(message: str | None) -> list[str]:
    """A run's message; one error with its fix (:func:`with_fix`) as two lines."""
    if not message:
        return []
    if message.count(FIX_SEPARATOR) != 1:
        return [message]
    error, fix = split_fix(message)
    return [error, f"fix: {fix}"]


def failed_start_lines(entries: Sequence[FailedStart], tz: dt.tzinfo | None) -> list[str]:
    """The runs that stopped before the database could be reached, with their error and fix."""
    if not entries:
        return []
    lines = ["Runs that stopped before the database could be reached (recorded on this machine):"]
    for entry in entries:
        lines.append(f"  {local(entry.at, tz)} `wicbox {entry.command}` exit code {entry.exit_code}")
        lines.append(f"      {entry.message}")
        if entry.fix:
            lines.append(f"      fix: {entry.fix}")
    return lines


def _duration(run: RunRow) -> str:
    if run.started_at is None or run.finished_at is None:
        return "(not finished)"
    return f"({humanised(run.finished_at - run.started_at)})"


def _mailbox_lines(report: StatusReport, tz: dt.tzinfo | None) -> list[str]:
    if not report.mailboxes:
        return ["Mailboxes: none recorded yet (`wicbox run` records each mailbox after reading it)"]
    lines = ["Mailboxes:"]
    for mailbox in report.mailboxes:
        lines += _one_mailbox(report, mailbox, tz)
    return lines


def _lease_lines(report: StatusReport) -> list[str]:
    """Which run reads which mailbox now (by the database's clock)."""
    if not report.leases:
        return ["Leases: none held (no run is reading a mailbox)"]
    lines = ["Leases:"]
    for lease in report.leases:
        left = dt.timedelta(seconds=abs(lease.expires_in_s))
        when = (
            f"expires in {humanised(left)}"
            if lease.expires_in_s > 0
            else f"expired {humanised(left)} ago (free for the next run)"
        )
        lines.append(f"  {lease.mailbox}: {lease.holder}, {when}")
    return lines


def _one_mailbox(report: StatusReport, mailbox: MailboxStatus, tz: dt.tzinfo | None) -> list[str]:
    state = mailbox.state
    protocol = f", {state.protocol}" if state else ""
    note = " [no longer read by the current account plan]" if mailbox.configured is False else ""
    lines = [f"  {mailbox.label}: {mailbox.mailbox} ({mailbox.folder}{protocol}){note}"]
    lines.append(f"    filed in the last 24 h: {mailbox.filed_last_24h}")
    if state is None:
        return [*lines, "    not read yet"]
    lines.append(f"    backlog: {_backlog_text(report, state, tz)}")
    lines.append(f"    last success: {_when(report, state.last_success_at, tz)}")
    if state.last_error_at is None:
        return [*lines, "    last error: none"]
    current = "" if state.failing else " (succeeded since)"
    code = f", {state.error_code}" if state.error_code else ""
    kind = state.error_kind.value if state.error_kind else "error"
    lines.append(f"    last error: {_when(report, state.last_error_at, tz)}{current} {kind}{code}")
    lines.append(f"      {state.error_message or '(no message)'}")
    if state.error_fix:
        lines.append(f"      fix: {state.error_fix}")
    return lines


def _backlog_text(report: StatusReport, state: MailboxState, tz: dt.tzinfo | None) -> str:
    if state.backlog is None or state.backlog_measured_at is None:
        return "unknown (not measured by the last pass)"
    measured = f"measured {ago(report.now, state.backlog_measured_at)}"
    if state.backlog == 0:
        return f"0 waiting ({measured})"
    oldest = state.oldest_pending_at
    received = "" if oldest is None else f", oldest received {local(oldest, tz)} ({ago(report.now, oldest)})"
    return f"{state.backlog} waiting{received} ({measured})"


def _where(mail: QuarantinedMail, failed_folder: str | None) -> str:
    if mail.pending:
        return f"still in {mail.folder} of {mail.mailbox}; the next run moves it to the failed folder"
    return f"in {failed_folder or 'the failed folder'} of {mail.mailbox}"


def _quarantine_lines(report: StatusReport, tz: dt.tzinfo | None) -> list[str]:
    quarantine = report.quarantine
    lines = [f"Quarantined mails: {quarantine.last_7_days} in the last 7 days"]
    for mail in quarantine.latest:
        lines.append(
            f"  mail {mail.mail_id} at {local(mail.at, tz)}: {_where(mail, quarantine.failed_folder)}"
        )
        lines.append(f"    {mail.reason or '(no reason recorded)'}")
    return lines


def _credential_lines(report: StatusReport, options: StatusOptions, tz: dt.tzinfo | None) -> list[str]:
    credentials = report.credentials
    lines = [
        f"Credentials ({credentials.permission.value}):",
        f"  {secret_note(credentials, report.now.date(), options.expiry_warning)}",
    ]
    if credentials.problem:
        lines.append(f"  parameters: {credentials.problem}")
    failure = credentials.last_authentication_failure
    if failure is None:
        return [*lines, "  last authentication failure: none recorded"]
    code = f" {failure.error_code}" if failure.error_code else ""
    lines.append(
        f"  last authentication failure: {_when(report, failure.last_error_at, tz)}, "
        f"{failure.label} ({failure.mailbox}){code}" + ("" if failure.failing else " (signed in since)")
    )
    lines.append(f"    {failure.error_message or '(no message)'}")
    if failure.error_fix:
        lines.append(f"    fix: {failure.error_fix}")
    return lines


# --------------------------------------------------------------------------- JSON


def _iso(moment: dt.datetime | None) -> str | None:
    if moment is None:
        return None
    return moment.astimezone(dt.timezone.utc).isoformat().replace("+00:00", "Z")


def _age(report: StatusReport, moment: dt.datetime | None) -> int | None:
    return None if moment is None else max(0, int((report.now - moment).total_seconds()))


def _error_json(state: MailboxState) -> dict[str, Any] | None:
    if state.last_error_at is None:
        return None
    return {
        "at": _iso(state.last_error_at),
        "kind": state.error_kind.value if state.error_kind else None,
        "code": state.error_code,
        "message": state.error_message,
        "fix": state.error_fix,
    }


def _mailbox_json(report: StatusReport, mailbox: MailboxStatus) -> dict[str, Any]:
    state = mailbox.state
    return {
        "label": mailbox.label,
        "mailbox": mailbox.mailbox,
        "folder": mailbox.folder,
        "project": mailbox.project_code,
        "configured": mailbox.configured,
        "protocol": state.protocol if state else None,
        "filed_last_24h": mailbox.filed_last_24h,
        "backlog": state.backlog if state else None,
        "oldest_pending_received_at": _iso(state.oldest_pending_at) if state else None,
        "oldest_pending_age_seconds": _age(report, state.oldest_pending_at) if state else None,
        "backlog_measured_at": _iso(state.backlog_measured_at) if state else None,
        "last_attempt_at": _iso(state.last_attempt_at) if state else None,
        "last_success_at": _iso(state.last_success_at) if state else None,
        "last_run_id": state.last_run_id if state else None,
        "failing": state.failing if state else False,
        "last_error": _error_json(state) if state else None,
    }


def _run_json(run: RunRow) -> dict[str, Any]:
    return {
        "run_id": run.run_id,
        "mode": run.mode,
        "host": run.host,
        "started_at": _iso(run.started_at),
        "finished_at": _iso(run.finished_at),
        "outcome": run.outcome,
        "exit_code": run.exit_code,
        "mailboxes": run.mailboxes,
        "failed_mailboxes": run.failed_mailboxes,
        "fetched": run.fetched,
        "filed": run.filed,
        "duplicates": run.duplicates,
        "quarantined": run.quarantined,
        "message": run.message,
        **_message_json(run.message),
    }


def _message_json(message: str | None) -> dict[str, Any]:
    """The error and fix of a run that stopped on one error (None where the message holds more)."""
    if not message or message.count(FIX_SEPARATOR) != 1:
        return {"error": message, "fix": None}
    error, fix = split_fix(message)
    return {"error": error, "fix": fix}


def _quarantined_json(mail: QuarantinedMail, failed_folder: str | None) -> dict[str, Any]:
    return {
        "mail_id": mail.mail_id,
        "mailbox": mail.mailbox,
        "source_folder": mail.folder,
        "source_id": mail.source_id,
        "at": _iso(mail.at),
        "moved": not mail.pending,
        "where": mail.folder if mail.pending else failed_folder,
        "reason": mail.reason,
    }


def _credentials_json(report: StatusReport, options: StatusOptions) -> dict[str, Any]:
    credentials = report.credentials
    today = report.now.date()
    failure = credentials.last_authentication_failure
    return {
        "permission": credentials.permission.value,
        "client_secret_expires": credentials.secret_expires.isoformat()
        if credentials.secret_expires
        else None,
        "client_secret_days_left": days_left(credentials, today),
        "client_secret_state": secret_state(credentials, today, options.expiry_warning).value,
        "certificate": None
        if credentials.certificate is None
        else {
            "path": credentials.certificate.path,
            "thumbprint": credentials.certificate.thumbprint,
            "not_after": credentials.certificate.not_after.isoformat(),
        },
        "note": secret_note(credentials, today, options.expiry_warning),
        "parameters_problem": credentials.problem,
        "last_authentication_failure": None
        if failure is None
        else {"label": failure.label, "mailbox": failure.mailbox, **(_error_json(failure) or {})},
    }


def _lease_json(lease: LeaseRow) -> dict[str, Any]:
    return {"mailbox": lease.mailbox, "holder": lease.holder, "expires_in_seconds": round(lease.expires_in_s)}


def report_json(report: StatusReport, verdict: Verdict, options: StatusOptions) -> dict[str, Any]:
    """The machine-readable report (``wicbox status --json``); see docs/status.md."""
    quarantine = report.quarantine
    return {
        "format": JSON_FORMAT,
        "generated_at": _iso(report.now),
        "healthy": verdict.healthy,
        "exit_code": int(verdict.exit_code),
        "reasons": list(verdict.reasons),
        "warnings": list(verdict.warnings),
        "stale_after_minutes": int(options.stale_after.total_seconds() // 60),
        "database": report.database,
        "last_good_run_finished_at": _iso(report.last_good_run_at),
        "runs": [_run_json(run) for run in report.runs],
        "mailboxes": [_mailbox_json(report, mailbox) for mailbox in report.mailboxes],
        "quarantined": {
            "last_7_days": quarantine.last_7_days,
            "failed_folder": quarantine.failed_folder,
            "latest": [_quarantined_json(mail, quarantine.failed_folder) for mail in quarantine.latest],
        },
        "credentials": _credentials_json(report, options),
        "failed_before_database": [entry.as_json() for entry in report.failed_starts],
        "leases": [_lease_json(lease) for lease in report.leases],
    }
