"""``wicbox status``: whether mail is flowing, from the database alone (no mail server is asked)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json

import click

from wicbox_bridge.commands import examples, pass_runtime
from wicbox_bridge.commands._build import route_memory
from wicbox_bridge.errors import BridgeError, with_fix
from wicbox_bridge.runtime import Runtime
from wicbox_bridge.send.routes import RememberedRoute
from wicbox_bridge.serve.heartbeat import HEARTBEAT_FILE_NAME, read_heartbeat
from wicbox_bridge.status.failed_starts import FailedStart, failed_since, read_failed_starts
from wicbox_bridge.status.gather import gather_status
from wicbox_bridge.status.render import JSON_FORMAT, failed_start_lines, report_json, text_lines
from wicbox_bridge.status.report import StatusOptions, verdict
from wicbox_bridge.status.serve_block import ServeStatus, serve_json, serve_lines, serve_status
from wicbox_bridge.store.outbox import OutboxStatus, RelaySummary, relay_summary, rows_with_status
from wicbox_bridge.store.schema import require_schema


@click.command(
    "status",
    epilog=examples(
        ("wicbox status", "for people"),
        ("wicbox status --json --stale-after 60", "for a monitor: always one JSON document"),
    ),
)
@click.option(
    "--stale-after",
    "stale_minutes",
    type=click.IntRange(1, 7 * 24 * 60),
    default=30,
    show_default=True,
    metavar="MINUTES",
    help="Mail is not flowing when no run finished OK/PARTIAL in this many minutes, a mailbox's oldest "
    "waiting mail is older, or a failing mailbox last succeeded longer ago.",
)
@click.option(
    "--runs", type=click.IntRange(1, 1000), default=10, show_default=True, help="How many runs to show."
)
@click.option(
    "--quarantined",
    type=click.IntRange(0, 1000),
    default=5,
    show_default=True,
    help="How many of the latest quarantined mails to show.",
)
@click.option(
    "--expiry-warning",
    "expiry_days",
    type=click.IntRange(0, 365),
    default=30,
    show_default=True,
    metavar="DAYS",
    help="Warn this many days before the client secret expires (WICBOX_MAILCLIENT_CLIENTSECRET_EXPIRES).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON on stdout (docs/status.md).")
@pass_runtime
def status_command(  # noqa: PLR0917 - click hands every option over as an argument
    runtime: Runtime, stale_minutes: int, runs: int, quarantined: int, expiry_days: int, as_json: bool
) -> int:
    """Show whether mail is flowing: the last runs, per mailbox what was filed in the last 24 hours,
    the backlog and its oldest mail, quarantined mails, and the credentials' expiry and failures.

    Reads only the database (what `wicbox run` recorded), so it works while a mail server is down,
    and this machine's record of the runs that stopped before the database could be reached.
    Exit code 0 when mail is flowing, 1 when it is not (the reasons are printed); 2 and 4 as for
    every command (configuration or schema, database unreachable). With --json it always prints
    one JSON document on stdout, also with exit code 2 or 4 (then with the error and its fix).
    """
    options = StatusOptions(
        stale_after=dt.timedelta(minutes=stale_minutes),
        expiry_warning=dt.timedelta(days=expiry_days),
        runs=runs,
        quarantined=quarantined,
    )
    try:
        with runtime.open_store() as store:
            require_schema(store)
            report = gather_status(
                store, now=dt.datetime.now(dt.timezone.utc), options=options, policy=runtime.config.endpoints
            )
            held = rows_with_status(store, OutboxStatus.UNKNOWN)
            relayed = relay_summary(store, dt.datetime.now(dt.timezone.utc) - RELAY_WINDOW)
    except BridgeError as error:
        _report_unreadable(runtime, error, options, as_json=as_json)
        raise
    starts = failed_since(_failed_starts(runtime), report.last_good_run_at)[: options.runs]
    report = dataclasses.replace(report, failed_starts=tuple(starts))
    result = verdict(report, options)
    routes = _graph_routes(runtime)
    served = _serve_status(runtime)
    if as_json:
        document = report_json(report, result, options)
        document["outbox_unknown"] = [
            {
                "outbox_id": row.outbox_id,
                "from": row.from_addr,
                "subject": row.subject,
                "reason": row.last_error,
            }
            for row in held
        ]
        document["send_routes"] = [
            {
                "mailbox": route.mailbox,
                "route": "graph",
                "since": route.since.isoformat(),
                "reason": route.reason,
            }
            for route in routes
        ]
        document["relay"] = _relay_json(relayed)
        document["serve"] = serve_json(served)
        click.echo(json.dumps(document, indent=2))
    else:
        for line in text_lines(report, result, options, tz=None):
            click.echo(line)
        for row in held:
            release = f"`wicbox send --release {row.outbox_id}`"
            click.echo(
                f"Outbox: mail {row.outbox_id} is held as UNKNOWN: it was interrupted and cannot be looked "
                f"up; if it did not arrive, {release}"
            )
        for route in routes:
            since = f"{route.since:%Y-%m-%d %H:%M} UTC"
            click.echo(
                f"Sending: {route.mailbox} sends through Microsoft Graph since {since} ({route.reason}); "
                "SMTP is tried again a day after that"
            )
        for line in _relay_lines(relayed):
            click.echo(line)
        for line in serve_lines(served, dt.datetime.now(dt.timezone.utc)):
            click.echo(line)
    return int(result.exit_code)


RELAY_WINDOW = dt.timedelta(hours=24)


def _relay_lines(relayed: RelaySummary) -> list[str]:
    """What `wicbox relay` took in the last 24 hours; nothing when it took nothing and nothing waits."""
    if not (relayed.accepted or relayed.waiting or relayed.held):
        return []
    lines = [
        f"Relay: {relayed.accepted} message(s) taken in the last 24 hours: {relayed.sent} sent, "
        f"{relayed.failed} failed; {relayed.waiting} waiting, {relayed.held} held as UNKNOWN"
    ]
    lines.extend(
        f"Relay: outbox mail {failure.outbox_id} ({failure.source}, from {failure.from_addr}, "
        f"{failure.subject!r}) failed: {failure.error}"
        for failure in relayed.failures
    )
    return lines


def _relay_json(relayed: RelaySummary) -> dict[str, object]:
    return {
        "window_hours": int(RELAY_WINDOW.total_seconds() // 3600),
        "accepted": relayed.accepted,
        "sent": relayed.sent,
        "failed": relayed.failed,
        "waiting": relayed.waiting,
        "held": relayed.held,
        "last_accepted_at": relayed.last_accepted_at.isoformat() if relayed.last_accepted_at else None,
        "failures": [
            {
                "outbox_id": failure.outbox_id,
                "source": failure.source,
                "from": failure.from_addr,
                "subject": failure.subject,
                "error": failure.error,
            }
            for failure in relayed.failures
        ],
    }


def _failed_starts(runtime: Runtime) -> list[FailedStart]:
    """This machine's record of runs that stopped before the database (none without a config file)."""
    try:
        return read_failed_starts(runtime.machine_state_dir)
    except BridgeError:
        return []


def _report_unreadable(
    runtime: Runtime, error: BridgeError, options: StatusOptions, *, as_json: bool
) -> None:
    """Status without a database: the runs this machine recorded, and with --json one document
    carrying the error and its fix (the CLI then prints the error on stderr and exits 2 or 4)."""
    starts = failed_since(_failed_starts(runtime), None)[: options.runs]
    if as_json:
        document = {
            "format": JSON_FORMAT,
            "generated_at": dt.datetime.now(dt.timezone.utc).isoformat().replace("+00:00", "Z"),
            "healthy": False,
            "exit_code": int(error.exit_code),
            "error": {"message": error.message, "fix": error.fix},
            "reasons": [with_fix(error.message, error.fix)],
            "warnings": [],
            "failed_before_database": [entry.as_json() for entry in starts],
        }
        click.echo(json.dumps(document, indent=2))
        return
    for line in failed_start_lines(starts, tz=None):
        click.echo(line)


def _serve_status(runtime: Runtime) -> ServeStatus | None:
    """`wicbox serve`'s heartbeat (None when serve never ran with this configuration)."""
    try:
        directory = runtime.machine_state_dir
    except BridgeError:  # no configuration file: no machine-wide directory
        return None
    document = read_heartbeat(directory / HEARTBEAT_FILE_NAME)
    return serve_status(document, dt.datetime.now(dt.timezone.utc))


def _graph_routes(runtime: Runtime) -> list[RememberedRoute]:
    """The mailboxes that AUTO moved to Graph (the configuration's machine-wide directory)."""
    try:
        memory = route_memory(runtime)
    except BridgeError:  # no configuration file: no machine-wide directory, nothing remembered
        return []
    return memory.current()
