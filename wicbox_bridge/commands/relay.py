"""``wicbox relay``: a local SMTP relay for WIC before 4.9.9 and other applications that still send
with a password; ``wicbox relay user add|list|remove``: its accounts.

The relay takes each message into WICBOX_OUTBOX (committed before it answers 250) and has the
normal delivery send it at once, through SMTP with OAuth2 or Graph as the outbox always does; the
delivery also runs every minute for mails that wait (pacing, retries).
"""

from __future__ import annotations

import contextlib
import json
import logging
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import click

from wicbox_bridge.adapters.smtp_relay import DEFAULT_MAX_MESSAGE_BYTES, RelayServerSettings, SmtpRelayServer
from wicbox_bridge.auth.relay_accounts import (
    ACCOUNTS_FILE_NAME,
    RelayAccount,
    RelayAccountFile,
    checked_name,
    checked_password,
    checked_senders,
    checked_sources,
    hash_password,
)
from wicbox_bridge.commands import examples, pass_runtime
from wicbox_bridge.commands.send import deliver_if_due
from wicbox_bridge.config.listen import DEFAULT_LISTEN, parse_listen
from wicbox_bridge.errors import AlreadyRunning, BridgeError, ParameterError
from wicbox_bridge.helpformat import WholeSummaryGroup
from wicbox_bridge.run.allocator import freeze_startup_objects, limit_retained_memory
from wicbox_bridge.runtime import Runtime
from wicbox_bridge.secret import Secret
from wicbox_bridge.send.outbox import OutboxReport, OutboxSettings
from wicbox_bridge.send.relay import OutboxRelayGate

log = logging.getLogger("wicbox.relay")
DELIVERY_INTERVAL_S = 60.0
BUSY_RETRY_S = 5.0


def relay_accounts(runtime: Runtime) -> RelayAccountFile:
    return RelayAccountFile(runtime.machine_state_dir / ACCOUNTS_FILE_NAME)


# --------------------------------------------------------------------------- delivering while relaying


class _Stopping(Exception):
    """The relay is stopping: a delivery waiting for the pacing window gives up its turn."""


class RelayDelivery:
    """Delivers the outbox in its own thread: at once when the relay took a message, and every
    ``interval_s`` for mails that wait (pacing, retries). A delivery busy elsewhere (``wicbox run``
    or ``wicbox send`` holding the send lock) is tried again a few seconds later."""

    def __init__(
        self,
        deliver: Callable[[Callable[[float], None]], OutboxReport | None],
        interval_s: float = DELIVERY_INTERVAL_S,
    ) -> None:
        self._deliver = deliver
        self.interval_s = interval_s
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="wicbox-relay-delivery", daemon=True)

    def start(self) -> None:
        self._wake.set()  # what waited while the relay was down goes first
        self._thread.start()

    def wake(self, _outbox_id: int | None = None) -> None:
        self._wake.set()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        self._thread.join()

    def _wait(self, seconds: float) -> None:
        """The pacing's sleep: ends the delivery early when the relay stops."""
        if self._stop.wait(seconds):
            raise _Stopping

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.interval_s)
            self._wake.clear()
            if self._stop.is_set():
                return
            self._round()

    def _round(self) -> None:
        try:
            report = self._deliver(self._wait)
        except _Stopping:
            return
        except AlreadyRunning:
            log.info("Relay: another delivery is busy; trying again in %.0f s", BUSY_RETRY_S)
            if not self._stop.wait(BUSY_RETRY_S):
                self._wake.set()
            return
        except BridgeError as error:
            log.error("Relay: delivering the outbox failed: %s", error)
            return
        if report is not None:
            log.info("Relay: %s", report.summary())
            for problem in report.problems:
                log.error("Relay: %s", problem)


# --------------------------------------------------------------------------- wicbox relay


@click.group(
    "relay",
    cls=WholeSummaryGroup,
    invoke_without_command=True,
    epilog=examples(
        ("wicbox relay user add wic --from wic@example.be", "an account WIC logs in with"),
        ("wicbox relay", "relay until stopped"),
    ),
)
@click.option(
    "--listen",
    default=DEFAULT_LISTEN,
    show_default=True,
    metavar="HOST:PORT",
    help="Address and port to listen on. Other than loopback needs --allow-remote and TLS.",
)
@click.option(
    "--tls-cert",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="PEM certificate (with chain) for STARTTLS; required with --allow-remote.",
)
@click.option(
    "--tls-key",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="The certificate's PEM key.",
)
@click.option(
    "--allow-remote",
    is_flag=True,
    help="Accept connections from other machines (listen on a non-loopback address); STARTTLS is then "
    "required before AUTH.",
)
@click.option(
    "--max-size",
    "max_size_mb",
    type=click.IntRange(1, 150),
    default=DEFAULT_MAX_MESSAGE_BYTES // (1024 * 1024),
    show_default=True,
    metavar="MB",
    help="Largest message accepted (552 beyond).",
)
@click.pass_context
@pass_runtime
def relay_group(  # noqa: PLR0917 - click hands every option over as an argument
    runtime: Runtime,
    ctx: click.Context,
    listen: str,
    tls_cert: Path | None,
    tls_key: Path | None,
    allow_remote: bool,
    max_size_mb: int,
) -> int | None:
    """Run an SMTP relay for applications that still send with a password (WIC before 4.9.9).

    Point the application's SMTP settings at this relay (default 127.0.0.1, port 2525, no SSL) with
    a relay account (`wicbox relay user add`). Each message is stored in WICBOX_OUTBOX before the
    relay answers 250 and sent at once from the mailbox of its sender, through SMTP with OAuth2 or
    Microsoft Graph as WICBOX_MAILCLIENT_SENDPROTOCOL says. MAIL FROM and the From: header must be
    one of the account's --from addresses. Runs until stopped (Ctrl+C, SIGTERM, the service stops).
    """
    if ctx.invoked_subcommand is not None:
        given = ctx.get_parameter_source("listen") is not click.core.ParameterSource.DEFAULT
        if given or tls_cert or tls_key or allow_remote:
            raise click.UsageError(
                "--listen, --tls-cert, --tls-key and --allow-remote belong to `wicbox relay` itself; "
                f"leave them out of `wicbox relay {ctx.invoked_subcommand}`"
            )
        return None
    host, port = parse_listen(listen)
    settings = RelayServerSettings(
        host=host,
        port=port,
        tls_cert=tls_cert,
        tls_key=tls_key,
        allow_remote=allow_remote,
        max_message_bytes=max_size_mb * 1024 * 1024,
    )
    return serve(runtime, settings)


def serve(runtime: Runtime, settings: RelayServerSettings) -> int:
    """Check the setup, then relay until a stop signal; 0 after a clean stop."""
    limit_retained_memory()  # before the first message: glibc keeps freed message buffers otherwise
    freeze_startup_objects()  # the collector leaves start-up's objects alone from here on
    with runtime.open_store() as store:
        runtime.load_parameters(store)  # a broken configuration fails now, not at the first message
    stop = threading.Event()
    with _stop_signals(stop), running_relay(runtime, settings) as server:
        click.echo(f"wicbox relay: listening on {server.address}; stop with Ctrl+C", err=True)
        while not stop.wait(1.0):
            pass
    click.echo("wicbox relay: stopped", err=True)
    return 0


@contextlib.contextmanager
def running_relay(runtime: Runtime, settings: RelayServerSettings) -> Iterator[SmtpRelayServer]:
    """The relay listening and its delivery thread running, until the block ends (also for
    `wicbox serve --relay`, which runs it in its own process)."""
    accounts = relay_accounts(runtime)
    if not accounts.accounts():
        log.warning(
            "Relay: there are no relay accounts yet: nobody can log in. Add one with `wicbox relay user add`"
        )
    delivery = RelayDelivery(lambda wait: deliver_if_due(runtime, OutboxSettings(), sleep=wait))
    gate = OutboxRelayGate(accounts, runtime.open_store, on_stored=delivery.wake)
    with SmtpRelayServer(settings, gate) as server:
        delivery.start()
        try:
            yield server
        finally:
            delivery.stop()


@contextlib.contextmanager
def _stop_signals(stop: threading.Event) -> Iterator[None]:
    """SIGTERM and SIGINT (and Ctrl+Break on Windows) end the relay cleanly."""
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


# --------------------------------------------------------------------------- wicbox relay user


@relay_group.group("user", cls=WholeSummaryGroup, epilog=examples(("wicbox relay user list", "")))
def relay_user_group() -> None:
    """The relay's accounts: who may log in, and as which senders."""


@relay_user_group.command(
    "add", epilog=examples(("wicbox relay user add wic --from wic@example.be", "asks for the password"))
)
@click.argument("name")
@click.option(
    "--from",
    "senders",
    multiple=True,
    required=True,
    metavar="ADDRESS",
    help="A sender address this account may use (MAIL FROM and the From: header); repeatable.",
)
@click.option(
    "--source",
    "sources",
    multiple=True,
    metavar="ADDRESS/NETWORK",
    help="Accept this account only from these client addresses or networks; repeatable. Default: any.",
)
@click.option(
    "--password-stdin", is_flag=True, help="Read the password from the first line of standard input."
)
@pass_runtime
def relay_user_add_command(
    runtime: Runtime, name: str, senders: tuple[str, ...], sources: tuple[str, ...], password_stdin: bool
) -> None:
    """Add a relay account NAME (what WIC's SMTP settings call the user name).

    The password (at least 12 characters) is asked twice, or read with --password-stdin; only a
    salted scrypt hash is kept, in a file readable by this account only.
    """
    account_name = checked_name(name)
    addresses = checked_senders(senders)
    networks = checked_sources(sources)
    password = checked_password(_read_password(password_stdin))
    relay_accounts(runtime).add(
        RelayAccount(account_name, hash_password(password), senders=addresses, sources=networks)
    )
    click.echo(f"relay account {account_name} added; it may send as {', '.join(addresses)}")
    click.echo(
        f"Point the application at the relay: server 127.0.0.1, port {DEFAULT_LISTEN.rpartition(':')[2]}, "
        f"user {account_name}, this password, no SSL (or the address and port given to --listen)"
    )


def _read_password(from_stdin: bool) -> Secret:
    if from_stdin:
        line = sys.stdin.readline()
        return Secret(line.rstrip("\r\n"))
    if not sys.stdin.isatty():
        raise ParameterError(
            "password", "cannot be asked: standard input is not a terminal.", fix="use --password-stdin"
        )
    return Secret(click.prompt("Password", hide_input=True, confirmation_prompt=True))


@relay_user_group.command("list", epilog=examples(("wicbox relay user list --json", "")))
@click.option("--json", "as_json", is_flag=True, help="Print the accounts as JSON.")
@pass_runtime
def relay_user_list_command(runtime: Runtime, as_json: bool) -> None:
    """List the relay accounts, their sender addresses and networks (never a password or hash)."""
    accounts = sorted(
        relay_accounts(runtime).accounts().values(), key=lambda account: account.name.casefold()
    )
    if as_json:
        document = [
            {"name": a.name, "senders": list(a.senders), "sources": [str(s) for s in a.sources]}
            for a in accounts
        ]
        click.echo(json.dumps(document, indent=2))
        return
    if not accounts:
        click.echo("no relay accounts (add one with `wicbox relay user add NAME --from ADDRESS`)")
    for account in accounts:
        sources = ", ".join(str(source) for source in account.sources) or "any address"
        click.echo(f"{account.name}: may send as {', '.join(account.senders)}; from {sources}")


@relay_user_group.command("remove", epilog=examples(("wicbox relay user remove wic", "")))
@click.argument("name")
@pass_runtime
def relay_user_remove_command(runtime: Runtime, name: str) -> None:
    """Remove the relay account NAME (a relay that is running notices at the next login)."""
    if not relay_accounts(runtime).remove(name):
        raise ParameterError("NAME", f"there is no relay account {name!r}.", fix="`wicbox relay user list`")
    click.echo(f"relay account {name} removed")
