"""What a run did: per-mailbox reports and the run's counts, outcome and exit code."""

from __future__ import annotations

from dataclasses import dataclass, field

from wicbox_bridge.errors import AuthenticationError, BridgeError, ConnectionFailure, ExitCode
from wicbox_bridge.run.filing import MailResult, Outcome
from wicbox_bridge.store.runs import RunCounts, RunOutcome


@dataclass
class MailboxReport:
    """What one mailbox contributed to the run, or why it failed."""

    label: str
    mailbox: str
    project_code: str | None
    fetched: int = 0
    filed: int = 0
    duplicates: int = 0
    unassigned: int = 0
    quarantined: int = 0
    error: BridgeError | None = None
    held_by: str | None = None  # skipped: another live run holds this mailbox's lease (who, for how long)
    results: list[MailResult] = field(default_factory=list)  # a dry run's mails (its listing), else empty
    # from the last filed mail's received time on the server to its commit (`wicbox serve` shows it)
    last_latency_s: float | None = None

    def committed(self, results: list[MailResult], at: float) -> None:
        """Note the arrival-to-filed latency of the last mail of a batch committed at ``at``."""
        filed = [r.received_at for r in results if r.outcome is Outcome.FILED]
        received = [moment for moment in filed if moment is not None]
        if received:
            self.last_latency_s = max(0.0, at - received[-1])

    def count(self, result: MailResult) -> None:
        self.fetched += 1
        if result.outcome in (Outcome.FILED, Outcome.WOULD_FILE):  # a dry run counts what it would file
            self.filed += 1
            self.unassigned += result.project_id is None
        elif result.outcome is Outcome.DUPLICATE:
            self.duplicates += 1
        elif result.outcome is Outcome.QUARANTINED:
            self.quarantined += 1


@dataclass
class RunReport:
    """The whole run: per-mailbox reports, timing, and the exit code it ends with."""

    mailboxes: list[MailboxReport]
    seconds: float
    dry_run: bool
    fatal: BridgeError | None = None

    @property
    def counts(self) -> RunCounts:
        reports = self.mailboxes
        return RunCounts(
            mailboxes=len(reports),
            failed_mailboxes=sum(report.error is not None for report in reports),
            fetched=sum(report.fetched for report in reports),
            filed=sum(report.filed for report in reports),
            duplicates=sum(report.duplicates for report in reports),
            unassigned=sum(report.unassigned for report in reports),
            quarantined=sum(report.quarantined for report in reports),
        )

    @property
    def exit_code(self) -> ExitCode:
        if self.fatal is not None:
            return self.fatal.exit_code
        if self.mailboxes and all(report.held_by is not None for report in self.mailboxes):
            return ExitCode.ALREADY_RUNNING  # every mailbox is another run's: as a second run always did
        errors = [report.error for report in self.mailboxes if report.error is not None]
        if not errors:
            return ExitCode.OK
        if len(errors) == len(self.mailboxes):
            if all(isinstance(error, AuthenticationError) for error in errors):
                return ExitCode.AUTHENTICATION
            if all(isinstance(error, ConnectionFailure) for error in errors):
                return ExitCode.CONNECTION
        return ExitCode.PARTIAL

    @property
    def outcome(self) -> RunOutcome:
        code = self.exit_code
        if code is ExitCode.OK:
            return RunOutcome.OK
        return RunOutcome.PARTIAL if code is ExitCode.PARTIAL else RunOutcome.FAILED
