"""``wicbox run``: the main job (also what ``wicbox`` without a command does)."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import os
import socket
import sys
from collections.abc import Iterator

import click

from wicbox_bridge import __version__
from wicbox_bridge.auth.accounts import AccountPlan, plan_accounts
from wicbox_bridge.commands import examples, pass_runtime
from wicbox_bridge.commands._build import (
    mailbox_opener,
    mailbox_survey,
    provider_factory,
    register_account_secrets,
    token_service,
)
from wicbox_bridge.commands.send import deliver_if_due, print_outbox_report
from wicbox_bridge.config.params import AuthMethod, Parameters
from wicbox_bridge.errors import AlreadyRunning, BridgeError, DatabaseError, ExitCode, warning_line, with_fix
from wicbox_bridge.logs.setup import FILE_ONLY
from wicbox_bridge.run.allocator import freeze_startup_objects, limit_retained_memory
from wicbox_bridge.run.report import dry_run_lines, failure_lines, report_json, summary_line
from wicbox_bridge.run.routing import RoutableProject
from wicbox_bridge.run.runlock import RunLock
from wicbox_bridge.run.runner import (
    LeaseSettings,
    MailboxReport,
    ProgressCallback,
    RunJob,
    RunReport,
    RunSettings,
    run_mailboxes,
)
from wicbox_bridge.runtime import Runtime
from wicbox_bridge.schedule.pause import paused_notice
from wicbox_bridge.send.outbox import OutboxSettings
from wicbox_bridge.status.failed_starts import FailedStart, record_failed_start
from wicbox_bridge.store import Store
from wicbox_bridge.store.projects import list_projects
from wicbox_bridge.store.runs import (
    RunCounts,
    RunOutcome,
    finish_run,
    mark_interrupted_runs,
    record_failed_run,
    start_run,
)
from wicbox_bridge.store.times import utc_now

MAX_MAILS_LIMIT = 1000
DEFAULT_LEASE_SECONDS = 60
MIN_LEASE_SECONDS = 3
MAX_LEASE_SECONDS = 3600

log = logging.getLogger("wicbox.run")


@click.command(
    "run",
    epilog=examples(
        ("wicbox run --dry-run", "read and route; file and change nothing"),
        ("wicbox run --max-mails 20 --json", "a small run, its report as JSON"),
    ),
)
@click.option(
    "--max-mails",
    type=click.IntRange(1, MAX_MAILS_LIMIT),
    default=None,
    help="Read at most this many mails in this run (lowers WicBoxMaxMailsPerRun; never above it).",
)
@click.option(
    "--dry-run", is_flag=True, help="Read, parse and route, print what would be filed; change nothing."
)
@click.option("--json", "as_json", is_flag=True, help="Print the run report as JSON on stdout.")
@click.option(
    "--lease-seconds",
    type=click.IntRange(MIN_LEASE_SECONDS, MAX_LEASE_SECONDS),
    default=DEFAULT_LEASE_SECONDS,
    show_default=True,
    help="Hold each mailbox's lease this long, renewed every third of it; a run that dies leaves its "
    "mailboxes to other runs after at most this long.",
)
@click.option(
    "--send/--no-send",
    default=True,
    show_default=True,
    help="Then deliver the mails WIC put in WICBOX_OUTBOX (as `wicbox send` does), when any are due.",
)
@pass_runtime
def run_command(  # noqa: PLR0917 - click passes one argument per option
    runtime: Runtime, max_mails: int | None, dry_run: bool, as_json: bool, lease_seconds: int, send: bool
) -> int:
    """Read the configured mailboxes and file every mail into the WIC database; then deliver the outbox.

    Oldest mails first, at most WicBoxMaxMailsPerRun (WicGlobal.config) per run, so a backlog
    drains over successive runs. Each mail is committed to the database before it is moved (or
    deleted, or marked read) on the server. Each mailbox is read by one run at a time, through a
    lease in the WIC database: runs on several servers (or overlapping runs) share the mailboxes,
    and a run that finds every mailbox held by another run exits with code 5. The scheduled task
    runs this, so WIC's outgoing mail leaves with every run (a `wicbox send` already busy is left
    to it).
    """
    limit_retained_memory()  # before the first mail: glibc keeps freed mail buffers otherwise
    freeze_startup_objects()  # the collector leaves start-up's objects alone from here on
    code = _read_and_file(runtime, max_mails, dry_run, as_json, lease_seconds)
    if not send or dry_run or code == ExitCode.ALREADY_RUNNING or _paused(runtime):
        return code
    return _combined(code, _deliver_outbox(runtime, as_json))


def _paused(runtime: Runtime) -> bool:
    return paused_notice(runtime.machine_state_dir) is not None


def _deliver_outbox(runtime: Runtime, as_json: bool) -> int:
    try:
        report = deliver_if_due(runtime, OutboxSettings())
    except AlreadyRunning:
        log.info("a wicbox send for this configuration is busy: the outbox is left to it")
        return int(ExitCode.OK)
    if report is None:
        return int(ExitCode.OK)
    print_outbox_report(report, err=as_json)
    return int(report.exit_code)


def _combined(read_code: int, send_code: int) -> int:
    """The reading's code, unless it is 0: then the delivery's."""
    return read_code if read_code != ExitCode.OK else send_code


def _read_and_file(
    runtime: Runtime, max_mails: int | None, dry_run: bool, as_json: bool, lease_seconds: int
) -> int:
    """Reads and files; a run that stops on an error is recorded: in WICBOX_RUN when the database
    could be reached, else in the configuration's machine-local record (``wicbox status`` shows both)."""
    started = utc_now()
    recorded: list[int] = []
    try:
        return _read_and_file_recorded(runtime, max_mails, dry_run, as_json, started, recorded, lease_seconds)
    except AlreadyRunning:
        raise
    except BridgeError as error:
        if not recorded and not dry_run:
            _record_locally(runtime, started, error)
        raise


def _read_and_file_recorded(  # noqa: PLR0917 - one run's inputs and its record
    runtime: Runtime,
    max_mails: int | None,
    dry_run: bool,
    as_json: bool,
    started: dt.datetime,
    recorded: list[int],
    lease_seconds: int,
) -> int:
    cap = _effective_cap(runtime.config.max_mails_per_run, max_mails)
    # shared: runs keep apart by mailbox leases; the lock tells `wicbox schedule stop` a run is busy
    lock = contextlib.nullcontext() if dry_run else RunLock(runtime.machine_state_dir, shared=True)
    with contextlib.ExitStack() as stack:
        stack.enter_context(lock)
        if (notice := paused_notice(runtime.machine_state_dir)) is not None:  # `wicbox schedule stop`
            click.echo(notice, err=as_json)
            return int(ExitCode.OK)
        store = stack.enter_context(runtime.open_store())
        run_id: int | None = None
        try:
            parsed = runtime.load_parameters(store)
            for warning in (*runtime.config.warnings, *parsed.warnings):
                click.echo(warning_line(warning), err=True)
            params = parsed.parameters
            plan = plan_accounts(params, store)
            register_account_secrets(runtime, plan)
            projects = [
                RoutableProject(project.project_id, project.code, project.mailbox)
                for project in list_projects(store)
                if project.active
            ]
            run_id = None if dry_run else _start_run(store, params, cap)
            report = _run(
                runtime,
                params,
                plan=plan,
                projects=projects,
                cap=cap,
                run_id=run_id,
                dry_run=dry_run,
                show_progress=not as_json,
                leases=LeaseSettings(seconds=lease_seconds, state_dir=runtime.machine_state_dir),
            )
        except AlreadyRunning:
            raise
        except BridgeError as error:
            if not dry_run:
                recorded += _record_in_database(store, run_id, started, error)
            raise
        report.mailboxes.extend(_broken_project_reports(plan))
        if run_id is not None:
            _record_end(store, run_id, report)
    _print_report(report, params, projects=projects, run_id=run_id, cap=cap, as_json=as_json)
    return int(report.exit_code)


def _effective_cap(configured: int, requested: int | None) -> int:
    if requested is None:
        return configured
    if requested > configured:
        click.echo(
            warning_line(
                f"--max-mails {requested} is above WicBoxMaxMailsPerRun ({configured}); using {configured}"
            ),
            err=True,
        )
        return configured
    return requested


def _record_in_database(
    store: Store, run_id: int | None, started: dt.datetime, error: BridgeError
) -> list[int]:
    """The run that stopped on ``error`` as a FAILED row of WICBOX_RUN: its id; none when the
    database cannot take it (no schema, connection lost)."""
    try:
        if run_id is None:
            host = socket.gethostname()
            mark_interrupted_runs(store, host)
            run_id = record_failed_run(
                store,
                host=host,
                pid=os.getpid(),
                started_at=started,
                exit_code=int(error.exit_code),
                message=error.message,
                fix=error.fix,
            )
        else:
            finish_run(
                store,
                run_id,
                counts=RunCounts(),
                outcome=RunOutcome.FAILED,
                exit_code=int(error.exit_code),
                message=with_fix(error.message, error.fix),
            )
    except DatabaseError:
        log.debug("the failed run could not be recorded in WICBOX_RUN", exc_info=True)
        return []
    return [run_id]


def _record_locally(runtime: Runtime, started: dt.datetime, error: BridgeError) -> None:
    """A run that never reached the database: the configuration's machine-local record."""
    try:
        directory = runtime.machine_state_dir
    except BridgeError:  # no configuration file found: there is no such directory
        return
    entry = FailedStart(started, "run", int(error.exit_code), error.message, error.fix)
    record_failed_start(directory, entry)


def _start_run(store: Store, params: Parameters, cap: int) -> int:
    host = socket.gethostname()
    mark_interrupted_runs(store, host)
    return start_run(
        store,
        mode=params.account_mode.value,
        max_mails=cap,
        host=host,
        pid=os.getpid(),
        started_at=utc_now(),
    )


def _run(
    runtime: Runtime,
    params: Parameters,
    *,
    plan: AccountPlan,
    projects: list[RoutableProject],
    cap: int,
    run_id: int | None,
    dry_run: bool,
    show_progress: bool,
    leases: LeaseSettings,
) -> RunReport:
    log.info(
        "run %s started: mode=%s cap=%d dry_run=%s version=%s config=%s",
        run_id or "-",
        params.account_mode.value,
        cap,
        dry_run,
        __version__,
        runtime.location.describe(),
    )
    oauth = params.method is AuthMethod.OAUTH2
    services = token_service(runtime, params) if oauth else contextlib.nullcontext(None)
    with services as service, _progress(cap, show_progress) as progress:
        provider_for = provider_factory(service, params) if service is not None else None
        protocol, opener = mailbox_opener(params, plan, provider_for)
        job = RunJob(
            open_store=runtime.open_store,
            accounts=plan.accounts,
            open_mailbox=opener,
            projects=projects,
            settings=RunSettings(
                max_mails=cap,
                source_folder=params.source_folder,
                protocol=protocol,
                dry_run=dry_run,
                workers=params.workers,
                rotation=run_id or 0,
            ),
            run_id=run_id,
            progress=progress,
            redact=runtime.redactor.redact,
            leases=leases,
            survey=mailbox_survey(params, provider_for),
        )
        return run_mailboxes(job)


@contextlib.contextmanager
def _progress(cap: int, wanted: bool) -> Iterator[ProgressCallback | None]:
    """A progress bar on a terminal; nothing in a scheduled task's log."""
    if not (wanted and sys.stderr.isatty()):
        yield None
        return
    with click.progressbar(length=cap, label="reading mail", file=sys.stderr) as bar:
        yield bar.update


def _broken_project_reports(plan: AccountPlan) -> list[MailboxReport]:
    return [
        MailboxReport(
            f"project {project.code}", project.mailbox or project.username or "-", project.code, error=error
        )
        for project, error in plan.broken
    ]


def _record_end(store: Store, run_id: int, report: RunReport) -> None:
    """Record how the run ended in its WICBOX_RUN row.

    When the database itself failed the run, recording usually fails too; the report (with the
    database's error) is still printed, and the next run marks the row INTERRUPTED.
    """
    try:
        finish_run(
            store,
            run_id,
            counts=report.counts,
            outcome=report.outcome,
            exit_code=int(report.exit_code),
            message=_run_message(report),
        )
    except DatabaseError:
        if not isinstance(report.fatal, DatabaseError):
            raise
        click.echo(
            warning_line(
                f"the end of run {run_id} could not be recorded in WICBOX_RUN "
                "(the database failed); the next run marks it INTERRUPTED"
            ),
            err=True,
        )


def _run_message(report: RunReport) -> str | None:
    problems = [f"{m.label}: {m.error}" for m in report.mailboxes if m.error is not None]
    return "; ".join(problems) or None


def _print_report(
    report: RunReport,
    params: Parameters,
    *,
    projects: list[RoutableProject],
    run_id: int | None,
    cap: int,
    as_json: bool,
) -> None:
    mode = params.account_mode.value
    summary = summary_line(report, mode).removeprefix("wicbox: ")
    log.info("run %s ended: %s", run_id or "-", summary, extra=FILE_ONLY)
    if as_json:
        click.echo(json.dumps(report_json(report, mode=mode, run_id=run_id, max_mails=cap), indent=2))
    elif report.dry_run:
        for line in dry_run_lines(report, {project.project_id: project.code for project in projects}):
            click.echo(line)
    for mailbox in report.mailboxes:
        if mailbox.held_by is not None:
            click.echo(
                f"wicbox: skipped {mailbox.label} ({mailbox.mailbox}): {mailbox.held_by}",
                err=True,
            )
    for line in failure_lines(report):
        click.echo(line, err=True)
    click.echo(summary_line(report, mode), err=as_json)
