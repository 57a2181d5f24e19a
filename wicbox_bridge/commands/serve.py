"""``wicbox serve``: watch every mailbox and file new mail within seconds, until stopped."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import click

from wicbox_bridge.adapters.base import TokenProvider
from wicbox_bridge.adapters.smtp_relay import RelayServerSettings
from wicbox_bridge.auth.accounts import MailboxAccount, plan_accounts
from wicbox_bridge.auth.refresh import AuthKey, TokenRefresher, auth_key
from wicbox_bridge.auth.scopes import TokenProtocol
from wicbox_bridge.commands import examples, pass_runtime
from wicbox_bridge.commands._build import (
    mailbox_opener,
    provider_factory,
    register_account_secrets,
    token_service,
    watch_opener,
)
from wicbox_bridge.commands.relay import running_relay
from wicbox_bridge.commands.run import DEFAULT_LEASE_SECONDS, MAX_LEASE_SECONDS, MIN_LEASE_SECONDS
from wicbox_bridge.commands.send import deliver_if_due, print_outbox_report
from wicbox_bridge.config.listen import DEFAULT_LISTEN, parse_listen
from wicbox_bridge.config.params import AuthMethod, Parameters
from wicbox_bridge.diagnostics.accounts import ProviderFactory
from wicbox_bridge.errors import AlreadyRunning, warning_line
from wicbox_bridge.run.allocator import freeze_startup_objects, limit_retained_memory
from wicbox_bridge.run.routing import RoutableProject
from wicbox_bridge.run.runlock import LeaseKeeper, LeaseSettings, RunLock
from wicbox_bridge.run.runner import RunSettings
from wicbox_bridge.runtime import Runtime
from wicbox_bridge.schedule.pause import paused_notice
from wicbox_bridge.send.outbox import OutboxSettings
from wicbox_bridge.serve.heartbeat import HEARTBEAT_FILE_NAME, Heartbeat, write_heartbeat
from wicbox_bridge.serve.leases import LeaseGate
from wicbox_bridge.serve.service import ServeJob, ServePlan, ServeSettings, serve
from wicbox_bridge.store.projects import list_projects

log = logging.getLogger("wicbox.serve")


@click.command(
    "serve",
    epilog=examples(
        ("wicbox serve", "watch every mailbox until Ctrl+C or SIGTERM"),
        ("wicbox schedule install --serve", "as a service, started at boot"),
    ),
)
@click.option(
    "--poll-seconds",
    type=click.FloatRange(1, 600),
    default=5.0,
    show_default=True,
    help="Graph: seconds between two delta queries per mailbox (IMAP is told of new mail by IDLE).",
)
@click.option(
    "--reload-seconds",
    type=click.FloatRange(1, 3600),
    default=60.0,
    show_default=True,
    help="Read WICMan's parameters and projects again this often (a new project mailbox is watched).",
)
@click.option(
    "--lease-seconds",
    type=click.IntRange(MIN_LEASE_SECONDS, MAX_LEASE_SECONDS),
    default=DEFAULT_LEASE_SECONDS,
    show_default=True,
    help="Hold each mailbox's lease this long, renewed every third of it; when this process dies, "
    "another serve or run takes its mailboxes over after at most this long.",
)
@click.option(
    "--relay",
    is_flag=True,
    help="Also run the SMTP relay (`wicbox relay`) in this process, with the --relay-* options.",
)
@click.option(
    "--relay-listen",
    default=DEFAULT_LISTEN,
    show_default=True,
    metavar="HOST:PORT",
    help="Where the relay listens (as `wicbox relay --listen`).",
)
@click.option(
    "--relay-tls-cert",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="The relay's PEM certificate for STARTTLS (as `wicbox relay --tls-cert`).",
)
@click.option(
    "--relay-tls-key",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="The certificate's PEM key (as `wicbox relay --tls-key`).",
)
@click.option(
    "--relay-allow-remote",
    is_flag=True,
    help="Let other computers use the relay (as `wicbox relay --allow-remote`).",
)
@pass_runtime
def serve_command(  # noqa: PLR0917 - click hands every option over as an argument
    runtime: Runtime,
    poll_seconds: float,
    reload_seconds: float,
    lease_seconds: int,
    relay: bool,
    relay_listen: str,
    relay_tls_cert: Path | None,
    relay_tls_key: Path | None,
    relay_allow_remote: bool,
) -> int:
    """Watch every mailbox and file new mail within seconds; deliver the outbox; until stopped.

    Each mailbox of the account mode is watched at once (IMAP IDLE, or Graph delta queries), and a
    mailbox's pass runs as soon as mail arrives, exactly as `wicbox run` files it. WIC's outgoing
    mail is delivered every 15 seconds and the parameters are read again every minute. SIGTERM or
    Ctrl+C stops it cleanly. A mailbox is worked only while this process holds its lease in the WIC
    database: serve on several hosts, and scheduled runs beside it, share the mailboxes. With
    --relay the SMTP relay of `wicbox relay` runs in the same process.
    """
    limit_retained_memory()  # before the first mail: glibc keeps freed mail buffers otherwise
    freeze_startup_objects()  # the collector leaves start-up's objects alone from here on
    stop = threading.Event()
    relay_options = relay_tls_cert or relay_tls_key or relay_allow_remote or relay_listen != DEFAULT_LISTEN
    if relay_options and not relay:
        raise click.UsageError("the --relay-* options need --relay: add --relay to run the relay in serve")
    relay_settings = (
        _relay_settings(relay_listen, relay_tls_cert, relay_tls_key, allow_remote=relay_allow_remote)
        if relay
        else None
    )
    with contextlib.ExitStack() as stack:
        # shared, as for `wicbox run`: the mailbox leases keep serve and runs apart; the lock tells
        # `wicbox schedule stop` that serve is busy
        stack.enter_context(RunLock(runtime.machine_state_dir, shared=True))
        if (notice := paused_notice(runtime.machine_state_dir)) is not None:  # `wicbox schedule stop`
            click.echo(notice, err=True)
            return 0
        stack.enter_context(_stop_signals(stop))
        with runtime.open_store() as store:
            parsed = runtime.load_parameters(store)
        for warning in (*runtime.config.warnings, *parsed.warnings):
            click.echo(warning_line(warning), err=True)
        params = parsed.parameters
        tokens = stack.enter_context(contextlib.closing(TokenLayer(runtime)))
        tokens.current(params)  # a wrong certificate stops the command before any mailbox
        keeper = LeaseKeeper(
            runtime.open_store, LeaseSettings(seconds=lease_seconds, state_dir=runtime.machine_state_dir)
        )
        stack.callback(keeper.close)  # released on SIGTERM / Ctrl+C (a killed serve's leases expire)
        keeper.start()
        job = ServeJob(
            open_store=runtime.open_store,
            load_plan=_plan_loader(runtime, tokens, stop, poll_seconds),
            deliver_outbox=lambda: _deliver(runtime),
            heartbeat=_beat_until_paused(runtime, stop),
            stop=stop,
            refresh_tokens=tokens.refresh,
            settings=ServeSettings(reload_s=reload_seconds),
            passes=threading.Semaphore(max(1, params.workers)),
            host=socket.gethostname(),
            pid=os.getpid(),
            leases=LeaseGate(keeper),
        )
        if relay_settings is not None:
            server = stack.enter_context(running_relay(runtime, relay_settings))
            click.echo(f"wicbox serve: relay listening on {server.address}", err=True)
        click.echo("wicbox serve: started; stop with Ctrl+C", err=True)
        serve(job)
    click.echo("wicbox serve: stopped", err=True)
    return 0


class TokenLayer:
    """The token service of the current parameters, built again when the sign-in parameters change
    (a new client secret, certificate or client id in WICMan), and the refresher of its tokens."""

    def __init__(self, runtime: Runtime) -> None:
        self._runtime = runtime
        self._key: AuthKey | None = None
        self._stack: contextlib.ExitStack | None = None
        self._provider_for: ProviderFactory | None = None
        self.version = 0
        self.refresher = TokenRefresher()

    def current(self, params: Parameters) -> ProviderFactory | None:
        """The providers for ``params`` (None: Basic authentication), the same while the key is."""
        key = auth_key(params)
        if key == self._key:
            return self._provider_for
        if self._key is not None:
            log.warning("the sign-in parameters changed in WICMan: signing in anew")
        self.close()
        self.refresher.forget()
        self._key, self.version = key, self.version + 1
        if params.method is not AuthMethod.OAUTH2:
            self._provider_for = None
            return None
        stack = contextlib.ExitStack()
        try:
            service = stack.enter_context(token_service(self._runtime, params))
        except BaseException:
            self._key = None
            stack.close()
            raise
        self._stack = stack
        self._provider_for = self._tracking(provider_factory(service, params))
        return self._provider_for

    def _tracking(self, provider_for: ProviderFactory) -> ProviderFactory:
        def tracked(account: MailboxAccount, protocol: TokenProtocol) -> TokenProvider:
            key = (account.label, account.mailbox.casefold(), protocol)
            return self.refresher.track(key, provider_for(account, protocol))

        return tracked

    def refresh(self) -> None:
        self.refresher.refresh_due()

    def close(self) -> None:
        stack, self._stack, self._provider_for = self._stack, None, None
        if stack is not None:
            stack.close()


def _plan_loader(
    runtime: Runtime, tokens: TokenLayer, stop: threading.Event, poll_seconds: float
) -> Callable[[], ServePlan]:
    shown: list[int] = []

    def load() -> ServePlan:
        with runtime.open_store() as store:
            params = runtime.load_parameters(store).parameters
            plan = plan_accounts(params, store)
            projects = [
                RoutableProject(project.project_id, project.code, project.mailbox)
                for project in list_projects(store)
                if project.active
            ]
        register_account_secrets(runtime, plan)
        provider_for = tokens.current(params)
        for project, error in plan.broken:
            log.error("project %s cannot be watched: %s", project.code, error)
        protocol, opener = mailbox_opener(params, plan, provider_for)
        watches = watch_opener(params, plan, provider_for, sleep=_sleeper(stop), poll_interval_s=poll_seconds)
        if shown[-1:] != [len(plan.accounts)]:
            shown.append(len(plan.accounts))
            click.echo(f"wicbox serve: watching {len(plan.accounts)} mailbox(es)", err=True)
        settings = RunSettings(
            max_mails=runtime.config.max_mails_per_run,
            source_folder=params.source_folder,
            protocol=protocol,
        )
        return ServePlan(plan.accounts, projects, opener, watches, settings, tokens.version)

    return load


def _relay_settings(
    listen: str, tls_cert: Path | None, tls_key: Path | None, *, allow_remote: bool
) -> RelayServerSettings:
    """The relay's settings, checked as `wicbox relay` checks its own options."""
    host, port = parse_listen(listen, "--relay-listen")
    return RelayServerSettings(
        host=host, port=port, tls_cert=tls_cert, tls_key=tls_key, allow_remote=allow_remote
    )


def _sleeper(stop: threading.Event) -> Callable[[float], None]:
    """A sleep that ends at once when the service stops."""

    def sleep(seconds: float) -> None:
        stop.wait(seconds)

    return sleep


def _deliver(runtime: Runtime) -> None:
    try:
        report = deliver_if_due(runtime, OutboxSettings())
    except AlreadyRunning:
        log.info("a wicbox send for this configuration is busy: the outbox is left to it")
        return
    if report is not None:
        print_outbox_report(report, err=True)


def _beat_until_paused(runtime: Runtime, stop: threading.Event) -> Callable[[Heartbeat], None]:
    """Writes each heartbeat, then stops the service cleanly once `wicbox schedule stop` paused
    this configuration: on Windows that is how the service learns it must end (Task Scheduler's
    "End" would terminate the process outright; the stop only ends the task when serve has not
    ended on its own within a grace period)."""

    def beat(heartbeat: Heartbeat) -> None:
        write_heartbeat(runtime.machine_state_dir / HEARTBEAT_FILE_NAME, heartbeat)
        if not stop.is_set() and (notice := paused_notice(runtime.machine_state_dir)) is not None:
            click.echo(f"{notice}: wicbox serve stops", err=True)
            stop.set()

    return beat


@contextlib.contextmanager
def _stop_signals(stop: threading.Event) -> Iterator[None]:
    """SIGTERM and SIGINT (and Ctrl+Break on Windows) stop the service between batches."""
    names = ["SIGTERM", "SIGINT"] + (["SIGBREAK"] if sys.platform == "win32" else [])
    numbers = [getattr(signal, name) for name in names if hasattr(signal, name)]
    previous = {number: signal.getsignal(number) for number in numbers}
    for number in numbers:
        signal.signal(number, lambda *_: stop.set())
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
