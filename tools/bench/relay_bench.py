"""Relay intake benchmark: messages of about 20 KB from concurrent SMTP clients into the outbox, as a
ratio to an aiosmtpd server that discards the same messages, both measured in this run.

    python -m tools.bench.relay_bench [--messages 2000] [--clients 4] [--size-kb 20] [--backend both]

Each client logs in once (AUTH PLAIN) and sends its share over one connection, as a WIC server with
a busy outbox does. The relay runs in this process with its real gate (account file with scrypt,
sender and header checks, one committed outbox row per message) on SQLite and on a private
PostgreSQL over ODBC; delivery is not started (only the intake is measured). The sink is aiosmtpd
with a handler that answers 250 and keeps nothing. Sink and relay are measured alternately
(``--rounds``), the best of each counts. Target: at least 0.5 of the sink's rate.
"""

from __future__ import annotations

import argparse
import smtplib
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from tools.testbed.ports import free_port
from tools.testbed.postgres import running_postgres
from wicbox_bridge.adapters.smtp_relay import RelayServerSettings, SmtpRelayServer
from wicbox_bridge.auth.relay_accounts import RelayAccount, RelayAccountFile, hash_password
from wicbox_bridge.config.dbtarget import DatabaseTarget, OdbcTarget, SqliteTarget
from wicbox_bridge.secret import Secret
from wicbox_bridge.send.relay import OutboxRelayGate
from wicbox_bridge.store import Store, open_store
from wicbox_bridge.store.schema import init_schema

HOST = "127.0.0.1"
SENDER = "wic@klant.example"
USER, PASSWORD = "bench", "Bench-wachtwoord-2026"
TARGET_RATIO = 0.5


def message(number: int, size_kb: int) -> bytes:
    line = b"Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor.\r\n"
    body = line * max(1, size_kb * 1024 // len(line))
    head = (
        f"From: WIC <{SENDER}>\r\nTo: klant{number}@elders.example\r\nSubject: Bericht {number}\r\n"
        f"Message-ID: <bench-{number}@wic.klant.example>\r\n\r\n"
    ).encode()
    return head + body


def send_all(port: int, messages: int, clients: int, size_kb: int, login: bool) -> float:
    """Seconds for ``clients`` threads to send ``messages`` in all over one connection each."""
    errors: list[BaseException] = []
    start = threading.Barrier(clients + 1)

    def client(first: int) -> None:
        try:
            with smtplib.SMTP(HOST, port, timeout=60) as connection:
                if login:
                    connection.login(USER, PASSWORD)
                start.wait()
                for number in range(first, messages, clients):
                    connection.sendmail(SENDER, [f"klant{number}@elders.example"], message(number, size_kb))
        except BaseException as exc:  # reported below
            errors.append(exc)
            start.abort()

    threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
    for thread in threads:
        thread.start()
    start.wait()
    began = time.perf_counter()
    for thread in threads:
        thread.join()
    if errors:
        raise RuntimeError(f"a client failed: {errors[0]!r}")
    return time.perf_counter() - began


class _Discard:
    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        return "250 OK"


def sink_seconds(options: argparse.Namespace) -> float:
    port = free_port(HOST)
    controller = Controller(_Discard(), hostname=HOST, port=port, data_size_limit=35 * 1024 * 1024)
    controller.start()
    try:
        return send_all(port, options.messages, options.clients, options.size_kb, login=False)
    finally:
        controller.stop()


def relay_seconds(options: argparse.Namespace, target: DatabaseTarget, root: Path) -> tuple[float, int]:
    with open_store(target) as store:
        init_schema(store)
    accounts = RelayAccountFile(root / f"accounts-{time.monotonic_ns()}.json")
    accounts.add(RelayAccount(USER, hash_password(Secret(PASSWORD)), senders=(SENDER,)))
    opener: Callable[[], AbstractContextManager[Store]] = lambda: open_store(target)  # noqa: E731
    gate = OutboxRelayGate(accounts, opener)
    port = free_port(HOST)
    with SmtpRelayServer(RelayServerSettings(host=HOST, port=port), gate):
        seconds = send_all(port, options.messages, options.clients, options.size_kb, login=True)
    with open_store(target) as store:
        row = store.query_one("SELECT COUNT(*) FROM WICBOX_OUTBOX")
    return seconds, int(row[0]) if row else 0


@dataclass(frozen=True)
class Result:
    backend: str
    relay_s: float
    sink_s: float
    stored: int

    def line(self, messages: int) -> str:
        """Rates of the best round of each, their ratio, and the rows stored over all rounds."""
        ratio = self.sink_s / self.relay_s
        verdict = "PASS" if ratio >= TARGET_RATIO else "FAIL"
        return (
            f"{self.backend:<10} relay {messages / self.relay_s:7.0f} msg/s, "
            f"sink {messages / self.sink_s:7.0f} msg/s, ratio {ratio:.2f} "
            f"(target >= {TARGET_RATIO}: {verdict}); rows stored {self.stored}"
        )


@contextmanager
def targets(backend: str, root: Path) -> Iterator[list[tuple[str, DatabaseTarget]]]:
    found: list[tuple[str, DatabaseTarget]] = []
    if backend in ("sqlite", "both"):
        found.append(("sqlite", SqliteTarget(root / "relay.db")))
    if backend in ("postgresql", "both"):
        with running_postgres() as server:
            server.create_database("relaybench")
            connection = server.connection_string("relaybench")
            found.append(("postgresql", OdbcTarget(Secret(connection), "postgresql", "relay bench")))
            yield found
            return
    yield found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--size-kb", type=int, default=20)
    parser.add_argument("--backend", choices=("sqlite", "postgresql", "both"), default="both")
    parser.add_argument("--rounds", type=int, default=3, help="measurements of each; the best counts")
    options = parser.parse_args(argv)
    results = []
    with (
        tempfile.TemporaryDirectory(prefix="relay-bench-") as scratch,
        targets(options.backend, Path(scratch)) as found,
    ):
        for backend, target in found:
            sinks, relays, stored = [], [], 0
            for _ in range(options.rounds):  # alternately, so both see the same machine load
                sinks.append(sink_seconds(options))
                seconds, stored = relay_seconds(options, target, Path(scratch))
                relays.append(seconds)
            results.append(Result(backend, min(relays), min(sinks), stored))
            print(results[-1].line(options.messages), flush=True)
    expected = options.messages * options.rounds
    failed = [r for r in results if r.sink_s / r.relay_s < TARGET_RATIO or r.stored != expected]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
