"""A bounded soak of the relay process: 5,000 messages from 4 clients, some connections dropped in
the middle of DATA; the relay's memory and open files stay flat and it still answers at the end.

Existing relays are known for hanging after days; this is what can be run in a test suite: the
same code paths many times over (login, envelope, group commit, dropped clients, the delivery
thread waking), with the relay process's resident memory and file descriptors read from /proc.
"""

from __future__ import annotations

import smtplib
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.test_relay import RELAY_PASSWORD, RELAY_USER, Relay, relay_for, sendroom  # noqa: F401 - fixtures
from tests.test_send_test import SENDER

pytestmark = [pytest.mark.testbed, pytest.mark.slow]

MESSAGES = 5000
CLIENTS = 4
PER_CONNECTION = 100
DROP_EVERY = 250  # every 250th message of a client is cut off in the middle of DATA
CHECKPOINTS = (1000, 3000)  # and the end
RSS_GROWTH_LIMIT_KB = 12 * 1024


@dataclass(frozen=True)
class Footprint:
    rss_kb: int
    open_files: int
    threads: int


def footprint(pid: int) -> Footprint:
    status = dict(
        line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line
    )
    return Footprint(
        rss_kb=int(status["VmRSS"].split()[0]),
        open_files=len(list(Path(f"/proc/{pid}/fd").iterdir())),
        threads=int(status["Threads"]),
    )


def soak_mail(number: int) -> bytes:
    body = b"Regel van een bericht dat WIC via de relay verstuurt.\r\n" * 60
    return (
        f"From: WIC <{SENDER}>\r\nTo: klant{number % 97}@elders.example\r\nSubject: Soak {number}\r\n\r\n"
    ).encode() + body


@dataclass
class Progress:
    """Messages answered 250 so far, with events for the checkpoints (the test waits on them)."""

    accepted: int = 0
    dropped: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)
    reached: dict[int, threading.Event] = field(
        default_factory=lambda: {n: threading.Event() for n in CHECKPOINTS}
    )
    release: dict[int, threading.Event] = field(
        default_factory=lambda: {n: threading.Event() for n in CHECKPOINTS}
    )

    def one_more(self) -> int:
        with self.lock:
            self.accepted += 1
            return self.accepted


def drop_in_data(relay: Relay, number: int) -> None:
    """Log in, start DATA, send half a message and close the socket without a word."""
    with socket.create_connection((relay.host, relay.port), timeout=30) as connection:
        client = smtplib.SMTP()
        client.sock, client.file = connection, connection.makefile("rb")
        client.getreply()
        client.login(RELAY_USER, RELAY_PASSWORD)
        client.mail(SENDER)
        client.rcpt("klant@elders.example")
        assert client.docmd("DATA")[0] == 354
        connection.sendall(soak_mail(number)[:700])


def run_client(relay: Relay, first: int, progress: Progress, errors: list[BaseException]) -> None:
    numbers = list(range(first, MESSAGES, CLIENTS))
    try:
        for start in range(0, len(numbers), PER_CONNECTION):
            with relay.logged_in() as client:
                for number in numbers[start : start + PER_CONNECTION]:
                    if number % DROP_EVERY == first:
                        drop_in_data(relay, number)
                        with progress.lock:
                            progress.dropped += 1
                        continue
                    client.sendmail(SENDER, [f"klant{number % 97}@elders.example"], soak_mail(number))
                    count = progress.one_more()
                    if count in progress.reached:
                        progress.reached[count].set()
                        progress.release[count].wait(60)
    except BaseException as exc:  # reported by the test
        errors.append(exc)
        for event in (*progress.reached.values(), *progress.release.values()):
            event.set()


def test_relay_memory_and_open_files_stay_flat_over_5000_messages(
    relay_for: Callable[..., Relay],  # noqa: F811 - the fixture
) -> None:
    relay = relay_for(verbosity="-v")
    pid = relay.process.process.pid
    progress, errors = Progress(), []
    clients = [
        threading.Thread(target=run_client, args=(relay, first, progress, errors), daemon=True)
        for first in range(CLIENTS)
    ]
    for thread in clients:
        thread.start()
    seen: dict[int, Footprint] = {}
    for checkpoint in CHECKPOINTS:
        assert progress.reached[checkpoint].wait(120), f"{checkpoint} messages not reached: {errors}"
        seen[checkpoint] = footprint(pid)  # one client waits here; the others go on
        progress.release[checkpoint].set()
    for thread in clients:
        thread.join(300)
    assert errors == [], errors[:3]
    seen[MESSAGES] = footprint(pid)

    expected = MESSAGES - progress.dropped
    assert progress.accepted == expected and progress.dropped >= CLIENTS
    with relay.wic.store() as store:
        row = store.query_one("SELECT COUNT(*) FROM WICBOX_OUTBOX")
    assert row is not None and int(row[0]) == expected  # nothing of a dropped message was stored
    with relay.client() as client:  # still answering
        assert client.noop()[0] == 250
    first, last = seen[CHECKPOINTS[0]], seen[MESSAGES]
    report = ", ".join(
        f"{n}: {f.rss_kb // 1024} MB, {f.open_files} files, {f.threads} threads" for n, f in seen.items()
    )
    print(f"relay footprint at {report}")
    assert last.rss_kb - first.rss_kb < RSS_GROWTH_LIMIT_KB, report
    assert last.open_files <= first.open_files + 2, report
    assert last.threads <= first.threads + 1, report
