"""How a run is reported: the summary line, the dry-run listing and the JSON report (pure)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from wicbox_bridge.errors import error_lines
from wicbox_bridge.run.results import MailboxReport, RunReport


def summary_line(report: RunReport, mode: str) -> str:
    """The one line a scheduled task's log keeps: counts, failures and time."""
    counts = report.counts
    verb = "would file" if report.dry_run else "filed"
    mailboxes = f"{counts.mailboxes} mailbox" + ("" if counts.mailboxes == 1 else "es")
    failed = f", {counts.failed_mailboxes} failed" if counts.failed_mailboxes else ""
    return (
        f"wicbox: {mode} run{' (dry run)' if report.dry_run else ''}: {mailboxes}{failed}; "
        f"fetched {counts.fetched}, {verb} {counts.filed} "
        f"({counts.unassigned} unassigned), duplicates acknowledged {counts.duplicates}, "
        f"quarantined {counts.quarantined}; {report.seconds:.1f} s"
    )


def failure_lines(report: RunReport) -> list[str]:
    """One line per failed mailbox with its fix, for stderr."""
    lines = []
    for mailbox in report.mailboxes:
        if mailbox.error is None:
            continue
        lines += error_lines(
            f"{mailbox.label} ({mailbox.mailbox}): {mailbox.error.message}", mailbox.error.fix
        )
    return lines


def dry_run_lines(report: RunReport, project_codes: Mapping[int, str]) -> list[str]:
    """What a dry run would have filed, and where."""
    lines = []
    for mailbox in report.mailboxes:
        for result in mailbox.results:
            where = (
                project_codes.get(result.project_id, "?") if result.project_id is not None else "unassigned"
            )
            lines.append(
                f"{mailbox.mailbox} {result.ref.key}: {result.outcome.value} -> {where} ({result.routing}); "
                f"subject: {result.subject or '-'}"
            )
    return lines


def _mailbox_json(mailbox: MailboxReport) -> dict[str, Any]:
    error = mailbox.error
    return {
        "label": mailbox.label,
        "mailbox": mailbox.mailbox,
        "project": mailbox.project_code,
        "fetched": mailbox.fetched,
        "filed": mailbox.filed,
        "duplicates": mailbox.duplicates,
        "unassigned": mailbox.unassigned,
        "quarantined": mailbox.quarantined,
        "error": None
        if error is None
        else {"type": type(error).__name__, "message": error.message, "fix": error.fix},
    }


def report_json(report: RunReport, *, mode: str, run_id: int | None, max_mails: int) -> dict[str, Any]:
    """The machine-readable run report (``wicbox run --json``)."""
    counts = report.counts
    return {
        "run_id": run_id,
        "mode": mode,
        "dry_run": report.dry_run,
        "max_mails": max_mails,
        "seconds": round(report.seconds, 3),
        "outcome": report.outcome.value,
        "exit_code": int(report.exit_code),
        "counts": {
            "mailboxes": counts.mailboxes,
            "failed_mailboxes": counts.failed_mailboxes,
            "fetched": counts.fetched,
            "filed": counts.filed,
            "duplicates": counts.duplicates,
            "unassigned": counts.unassigned,
            "quarantined": counts.quarantined,
        },
        "mailboxes": [_mailbox_json(mailbox) for mailbox in report.mailboxes],
        "fatal": None if report.fatal is None else {"message": report.fatal.message, "fix": report.fatal.fix},
    }
