"""``wicbox send-test`` (one test mail, step by step) and ``wicbox send`` (deliver the outbox)."""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import click

from wicbox_bridge import __version__
from wicbox_bridge.auth.accounts import MailboxAccount, global_account, plan_accounts, project_account
from wicbox_bridge.commands import examples, pass_runtime
from wicbox_bridge.commands._build import (
    graph_sender,
    mail_sender,
    provider_factory,
    route_memory,
    sent_lookup_factory,
    smtp_sender,
    token_service,
)
from wicbox_bridge.config.params import USERNAME, AuthMethod, Parameters
from wicbox_bridge.diagnostics.accounts import ProviderFactory
from wicbox_bridge.diagnostics.results import CheckResult, CheckStatus
from wicbox_bridge.errors import AlreadyRunning, AuthenticationError, BridgeError, ParameterError, error_lines
from wicbox_bridge.mail.outgoing import Envelope, OutgoingMail, build_message, parse_addresses
from wicbox_bridge.run.runlock import LeaseKeeper, LeaseSettings, RunLock
from wicbox_bridge.runtime import Runtime
from wicbox_bridge.secret import Secret
from wicbox_bridge.send.outbox import ROW_LABELS, OutboxJob, OutboxReport, OutboxSettings, deliver_outbox
from wicbox_bridge.send.routes import SMTP_AUTH_DISABLED
from wicbox_bridge.store import Store
from wicbox_bridge.store.leases import Fence, Refused
from wicbox_bridge.store.outbox import outbox_has_work, release_unknown
from wicbox_bridge.store.projects import find_project

if TYPE_CHECKING:  # the SMTP adapter (aiosmtplib) loads only when a mail is sent
    from wicbox_bridge.adapters.smtp import StepReport

SEND_LOCK_FILE_NAME = "send.lock"
log = logging.getLogger("wicbox.outbox")

OUTBOX_LEASE = "(outbox)"  # the outbox's row in WICBOX_LEASE: one host delivers at a time
SEND_TEST_LABELS = {"from": "--from", "to": "--to", "cc": "--cc", "bcc": "--bcc", "subject": "--subject"}
DEFAULT_TEST_SUBJECT = "wicbox-bridge: test mail"


class SendLock(RunLock):
    """One ``wicbox send`` per configuration at a time (its own lock file, next to the run lock)."""

    def __init__(self, state_dir: Path) -> None:
        super().__init__(state_dir)
        self.path = state_dir / SEND_LOCK_FILE_NAME
        self.holder_path = state_dir / f"{SEND_LOCK_FILE_NAME}.holder"

    def acquire(self) -> None:
        try:
            super().acquire()
        except AlreadyRunning as exc:
            raise AlreadyRunning(
                f"another wicbox send for this configuration is still busy ({self._holder()})",
                fix="wait for it to finish; a scheduled task should not start sends that overlap",
            ) from exc


@contextlib.contextmanager
def _providers(runtime: Runtime, params: Parameters) -> Iterator[ProviderFactory | None]:
    """Token providers per account, or None with Basic authentication."""
    if params.method is AuthMethod.BASIC:
        yield None
        return
    with token_service(runtime, params) as service:
        yield provider_factory(service, params)


# --------------------------------------------------------------------------- wicbox send-test


def _sending_account(runtime: Runtime, params: Parameters, store: Store, code: str | None) -> MailboxAccount:
    if code is None:
        return global_account(params)
    project = find_project(store, code)
    if project is None:
        raise ParameterError("--project", f"no project with code {code!r} in WIC_PROJECT.")
    account = project_account(params, project)
    runtime.redactor.register([account.password])
    return account


def _print_step(report: StepReport) -> None:
    status = CheckStatus.OK if report.ok else CheckStatus.FAIL
    fix = report.error.fix if report.error is not None else None
    click.echo(CheckResult(report.stage.value, status, report.detail, fix).render())


def _test_mail(
    account: MailboxAccount, params: Parameters, to: str, sender: str, subject: str
) -> OutgoingMail:
    now = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    body = (
        "This is a test mail of wicbox-bridge (wicbox send-test).\r\n\r\n"
        f"Signed in as:     {account.username or account.mailbox}\r\n"
        f"Permissions:      {params.permission_type.value} ({params.method.value})\r\n"
        f"Server:           {params.smtp}\r\n"
        f"Sent from:        {socket.gethostname()} at {now}\r\n"
        f"wicbox-bridge:    {__version__}\r\n"
    )
    return OutgoingMail(from_addr=sender, to=to, subject=subject, body_text=body)


@click.command(
    "send-test",
    epilog=examples(
        ("wicbox send-test --to you@example.be", "from the global mailbox"),
        ("wicbox send-test --to you@example.be --project P01", "with project P01's own account"),
    ),
)
@click.option("--to", "to_addr", required=True, help="Recipient of the test mail.")
@click.option("--from", "from_addr", default=None, help="From address (default: the sending mailbox).")
@click.option("--subject", default=DEFAULT_TEST_SUBJECT, show_default=True, help="Subject of the test mail.")
@click.option("--project", "project_code", default=None, help="Send with this project's own mailbox account.")
@click.option(
    "--via",
    type=click.Choice(["auto", "smtp", "graph"]),
    default=None,
    help="The route to test: SMTP with OAuth2, Microsoft Graph's sendMail (Mail.Send), or AUTO (SMTP, "
    "then Graph if SMTP AUTH is disabled). Default: WICBOX_MAILCLIENT_SENDPROTOCOL.",
)
@pass_runtime
def send_test_command(  # noqa: PLR0917 - click hands every option over as an argument
    runtime: Runtime,
    to_addr: str,
    from_addr: str | None,
    subject: str,
    project_code: str | None,
    via: str | None,
) -> int:
    """Send one test mail with the configured account and permission type, step by step.

    Over SMTP it prints token, connect, TLS, AUTH, MAIL, RCPT and DATA with OK, or the server's
    answer and the fix; `--via graph` sends it through Microsoft Graph instead. Exits 0 only when the
    server accepted the mail. Run it once after the Azure setup.
    """
    with runtime.open_store() as store:
        params = runtime.load_parameters(store).parameters
        account = _sending_account(runtime, params, store, project_code)
    mail = _test_mail(account, params, to_addr, from_addr or account.mailbox, subject)
    built = build_message(mail, labels=SEND_TEST_LABELS)
    route = via or params.send_protocol.value.lower()
    if route == "graph":
        return _send_test_via_graph(runtime, params, account, built.as_bytes(), built.envelope)
    code, error = _send_test_via_smtp(runtime, params, account, built.as_bytes(), built.envelope)
    if (
        route == "smtp"
        or error is None
        or error.code != SMTP_AUTH_DISABLED
        or params.method is AuthMethod.BASIC
    ):
        return code
    click.echo(
        f"SMTP did not take it ({error.code}: SMTP AUTH is disabled for this mailbox or tenant, or Security "
        "Defaults / Conditional Access block it). AUTO sends through Microsoft Graph in that case:"
    )
    graph_code = _send_test_via_graph(runtime, params, account, built.as_bytes(), built.envelope)
    if graph_code == 0:
        click.echo(f"Route: Microsoft Graph (SMTP refused with {error.code}); the outbox will do the same.")
    return graph_code


def _send_test_via_smtp(
    runtime: Runtime, params: Parameters, account: MailboxAccount, raw: bytes, envelope: Envelope
) -> tuple[int, AuthenticationError | None]:
    """The SMTP test step by step: its exit code, and the sign-in refusal when that was the failure."""
    from wicbox_bridge.adapters.smtp import Stage  # noqa: PLC0415 - loaded only when sending

    click.echo(
        f"Sending a test mail from {envelope.sender} to {', '.join(envelope.recipients)} "
        f"via {params.smtp} ({account.label}, {params.permission_type.value} permissions)"
    )
    if params.method is AuthMethod.BASIC:
        basic = "WICBOXMethod is Basic: no token"
        click.echo(CheckResult(Stage.TOKEN.value, CheckStatus.SKIP, basic).render())
    reported: list[StepReport] = []

    def on_step(report: StepReport) -> None:
        reported.append(report)
        _print_step(report)

    with _providers(runtime, params) as provider_for:
        sender = smtp_sender(params, account, provider_for, on_step=on_step)
        try:
            result = sender.send(raw, envelope.sender, list(envelope.recipients))
        except BridgeError as error:
            if not any(report.error is error for report in reported):
                raise
            click.echo("The test mail was NOT accepted: fix the FAIL above and run send-test again.")
            return int(error.exit_code), error if isinstance(error, AuthenticationError) else None
    click.echo(f"The server accepted the test mail (Message-ID {result.message_id}).")
    return 0, None


def _send_test_via_graph(
    runtime: Runtime, params: Parameters, account: MailboxAccount, raw: bytes, envelope: Envelope
) -> int:
    click.echo(
        f"Sending a test mail from {envelope.sender} to {', '.join(envelope.recipients)} through Microsoft "
        f"Graph ({params.graph_url}, {account.label}, {params.permission_type.value} permissions)"
    )
    with _providers(runtime, params) as provider_for:
        try:
            result = graph_sender(params, account, provider_for).send(
                raw, envelope.sender, list(envelope.recipients)
            )
        except BridgeError as error:
            click.echo(CheckResult("sendMail", CheckStatus.FAIL, error.message, error.fix).render())
            click.echo("The test mail was NOT accepted: fix the FAIL above and run send-test again.")
            return int(error.exit_code)
    click.echo(CheckResult("sendMail", CheckStatus.OK, result.server_reply).render())
    click.echo("Microsoft Graph accepted the test mail (a copy is in the mailbox's Sent Items).")
    return 0


# --------------------------------------------------------------------------- wicbox send


class SendingAccounts:
    """Which account sends a row: the mailbox whose address is FROM_ADDR, else the global mailbox."""

    def __init__(self, params: Parameters, store: Store) -> None:
        try:
            accounts = plan_accounts(params, store).accounts
        except ParameterError:
            accounts = ()
        self._by_mailbox = {account.mailbox.casefold(): account for account in accounts}
        self._global = global_account(params) if params.username else None

    def account_for(self, from_addr: str | None) -> MailboxAccount:
        address = self._address(from_addr)
        found = self._by_mailbox.get(address.casefold()) if address else None
        if found is not None:
            return found
        if self._global is None:
            raise ParameterError(
                USERNAME,
                f"is empty, and no project mailbox is {address or 'the sender'}: no account can send it.",
                fix=f"run `wicbox params set {USERNAME} <mailbox>` with the global mailbox, or set FROM_ADDR "
                "to a project's mailbox",
            )
        return self._global

    @staticmethod
    def _address(from_addr: str | None) -> str | None:
        if not from_addr:
            return None
        try:
            found = parse_addresses(ROW_LABELS["from"], from_addr)
        except ParameterError:
            return None  # the row itself is refused when it is built
        return found[0].addr_spec if found else None

    def passwords(self) -> list[Secret | None]:
        return [account.password for account in self._by_mailbox.values()]


@click.command(
    "send",
    epilog=examples(
        ("wicbox send", "deliver what is due now"),
        ("wicbox send --release 42", "send held mail 42 again (it did not arrive)"),
    ),
)
@click.option(
    "--max-mails",
    type=click.IntRange(1, 100_000),
    default=None,
    help="Deliver at most this many outbox mails in this run.",
)
@click.option(
    "--release",
    "release_ids",
    type=int,
    multiple=True,
    metavar="OUTBOX_ID",
    help="Send this mail held as UNKNOWN again (after checking it did not arrive); repeatable. "
    "Releases and exits: the next run sends it.",
)
@pass_runtime
def send_command(runtime: Runtime, max_mails: int | None, release_ids: tuple[int, ...]) -> int:
    """Deliver the mails WIC put in WICBOX_OUTBOX.

    At most 30 mails a minute per sending mailbox (Exchange Online's limit); answers worth retrying
    are retried later with growing delays, a permanent refusal is recorded with the server's answer
    in LAST_ERROR. A mail is never sent twice when the process is stopped halfway: see
    docs/sending.md. Only one send per configuration at a time: a second one exits with code 5.
    """
    if release_ids:
        return _release(runtime, release_ids)
    defaults = OutboxSettings()
    settings = OutboxSettings(max_messages=max_mails or defaults.max_messages)
    report = deliver(runtime, settings)
    print_outbox_report(report)
    return int(report.exit_code)


def _release(runtime: Runtime, outbox_ids: tuple[int, ...]) -> int:
    """UNKNOWN rows back to PENDING; 2 when one of them is not held as UNKNOWN."""
    refused = []
    with runtime.open_store() as store:
        runtime.load_parameters(store)  # the schema check, as every command does
        for outbox_id in outbox_ids:
            if release_unknown(store, outbox_id):
                click.echo(f"outbox mail {outbox_id}: released; the next run sends it")
            else:
                refused.append(outbox_id)
    if refused:
        listed = ", ".join(str(outbox_id) for outbox_id in refused)
        raise ParameterError(
            "--release",
            f"outbox mail {listed} is not held as UNKNOWN (no such mail, or it is pending, sent or failed)",
            fix="`wicbox status` lists the mails held as UNKNOWN with their ids",
        )
    return 0


def _holder_text(refused: Refused) -> str:
    if refused.left:
        return refused.holder
    return f"{refused.holder}, its lease expires in {max(0.0, refused.expires_in_s):.0f} s"


@contextlib.contextmanager
def _outbox_lease(runtime: Runtime) -> Iterator[Fence | str]:
    """The outbox's lease, renewed in the background while the delivery goes on and released at
    its end: its fence; or, when another live host holds it, who (nothing is delivered then)."""
    keeper = LeaseKeeper(runtime.open_store, LeaseSettings(state_dir=runtime.machine_state_dir))
    try:
        refused = keeper.take([OUTBOX_LEASE]).get(OUTBOX_LEASE)
        fence = keeper.fence(OUTBOX_LEASE)
        if refused is not None or fence is None:
            who = "" if refused is None else f" ({_holder_text(refused)})"
            yield f"another wicbox delivers the outbox{who}"
            return
        keeper.start()
        yield fence
    finally:
        keeper.close()


def deliver(runtime: Runtime, settings: OutboxSettings) -> OutboxReport:
    """Deliver the outbox under the send lock and the outbox's lease (a second delivery at once,
    on this host or another, exits with code 5)."""
    with SendLock(runtime.machine_state_dir), _outbox_lease(runtime) as lease, runtime.open_store() as store:
        if isinstance(lease, str):
            raise AlreadyRunning(
                lease,
                fix="nothing to do: that host delivers the outbox (hosts sharing one database take "
                "turns); if it died, its lease expires and the next `wicbox send` continues",
            )
        return _deliver(runtime, store, settings, fence=lease)


def deliver_if_due(
    runtime: Runtime, settings: OutboxSettings, *, sleep: Callable[[float], None] = time.sleep
) -> OutboxReport | None:
    """As :func:`deliver`, but None, without a connection, when no row is due (``wicbox run``, the
    relay); ``sleep`` waits for the pacing window (the relay's ends early when it stops)."""
    with SendLock(runtime.machine_state_dir), runtime.open_store() as store:
        if not outbox_has_work(store, dt.datetime.now(dt.timezone.utc)):
            return None
        with _outbox_lease(runtime) as lease:
            if isinstance(lease, str):
                log.info("the outbox is not delivered now: %s", lease)
                return None
            return _deliver(runtime, store, settings, sleep, fence=lease)


def _deliver(
    runtime: Runtime,
    store: Store,
    settings: OutboxSettings,
    sleep: Callable[[float], None] = time.sleep,
    *,
    fence: Fence | None = None,
) -> OutboxReport:
    params = runtime.load_parameters(store).parameters
    accounts = SendingAccounts(params, store)
    runtime.redactor.register(accounts.passwords())
    routes = route_memory(runtime)
    with _providers(runtime, params) as provider_for:
        job = OutboxJob(
            store=store,
            account_for=accounts.account_for,
            sender_for=lambda account: mail_sender(params, account, provider_for, routes),
            lookup_for=sent_lookup_factory(params, provider_for),
            settings=settings,
            sleep=sleep,
            fence=fence,
        )
        return deliver_outbox(job)


def print_outbox_report(report: OutboxReport, *, err: bool = False) -> None:
    for problem in report.problems:
        for line in error_lines(problem.message, problem.fix):
            click.echo(line, err=True)
    click.echo(report.summary(), err=err)
