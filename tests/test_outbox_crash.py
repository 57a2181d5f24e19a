"""`wicbox send` killed at random moments sends every outbox mail exactly once.

Each delivery is a real process, killed with SIGKILL either at a random moment or right after the
server accepted its k-th mail (between the server's 250 and the SENT update: the window the outbox
must close). Later runs finish the work. The mails go to the sending mailbox itself, so the lookup
of interrupted rows can search the mailbox (docs/sending.md); the server's accepted() list must
then hold every row's Message-ID exactly once. Set WICBOX_CRASH_SEED to replay a failed run.
"""

from __future__ import annotations

import datetime as dt
import os
import random
import subprocess
import sys
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.plugins.wic import Mailroom
from tests.test_send_test import RECIPIENT, SENDER, Sendroom, make_sendroom
from tools.testbed.graph import GraphEmulator
from tools.testbed.idp import IdentityPlatformEmulator, SeededDirectory
from tools.testbed.smtp import SmtpServer
from wicbox_bridge.mail.outgoing import message_id_of
from wicbox_bridge.store.outbox import OutboxStatus, enqueue, rows_with_status

pytestmark = [pytest.mark.testbed, pytest.mark.slow]


def slow_down_marking_sent(sendroom: Sendroom) -> None:
    """Make the SENT update take some 100 ms (test only), so kills aimed right after the server's
    250 land before it, in the window the outbox must close."""
    with sendroom.room.wic.store() as store:
        store.execute(
            "CREATE TRIGGER TEST_SLOW_SENT BEFORE UPDATE OF STATUS ON WICBOX_OUTBOX "
            "WHEN NEW.STATUS = 'SENT' BEGIN SELECT length(hex(randomblob(30000000))); END"
        )


@pytest.fixture
def sendroom(mailroom: Mailroom, smtp_clean: SmtpServer) -> Sendroom:
    return make_sendroom(mailroom, smtp_clean)


SEED_VARIABLE = "WICBOX_CRASH_SEED"
ROWS = 24
KILLS = 10
ACCEPTED_LINE = "wicbox.smtp: SMTP DATA: 250"
PROCESS_TIMEOUT_S = 60.0
OPEN_STATUSES = (OutboxStatus.PENDING, OutboxStatus.SENDING)


@dataclass
class SendProcess:
    process: subprocess.Popen[bytes]
    output_path: Path

    def output(self) -> str:
        return self.output_path.read_text(encoding="utf-8", errors="replace")

    def accepted_so_far(self, line: str = ACCEPTED_LINE) -> int:
        return self.output().count(line)

    def kill(self) -> None:
        self.process.kill()
        self.process.wait(timeout=PROCESS_TIMEOUT_S)


def start_send(room: Sendroom, name: str) -> SendProcess:
    wic = room.room.wic
    env = {key: value for key, value in os.environ.items() if key != "WICBOX_CONFIG"}
    env["WICBOX_HOME"] = str(wic.cli_runner.home)
    output_path = wic.cli_runner.cwd / f"{name}.log"
    with output_path.open("wb") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "wicbox_bridge", "--config", str(wic.config), "-v", "send"],
            cwd=wic.cli_runner.cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    return SendProcess(process, output_path)


def kill_at(sending: SendProcess, rng: random.Random, accepted_line: str = ACCEPTED_LINE) -> str:
    """Kill at a random moment, or right after the server accepted a random number of mails."""
    deadline = time.monotonic() + PROCESS_TIMEOUT_S
    if rng.random() < 0.4:
        time.sleep(rng.uniform(0.2, 2.5))
        sending.kill()
        return "at a random moment"
    target = rng.randint(1, 4)
    while sending.process.poll() is None and time.monotonic() < deadline:
        if sending.accepted_so_far(accepted_line) >= target:
            break
        time.sleep(0.001)
    sending.kill()
    return f"after the server's 250 for mail {target}"


def finish(room: Sendroom, context: str) -> None:
    for attempt in range(4):
        done = start_send(room, f"finish-{attempt}")
        code = done.process.wait(timeout=PROCESS_TIMEOUT_S)
        assert code == 0, f"{done.output()}\n{context}"
        with room.room.wic.store() as store:
            open_rows = [rows_with_status(store, status) for status in OPEN_STATUSES]
        if not any(open_rows):
            return
    raise AssertionError(f"outbox not empty after the finishing runs {context}")


def test_killed_sends_deliver_every_mail_exactly_once(sendroom: Sendroom) -> None:
    seed = int(os.environ.get(SEED_VARIABLE) or random.SystemRandom().randrange(1 << 30))
    rng = random.Random(seed)
    context = f"({SEED_VARIABLE}={seed})"
    with sendroom.room.wic.store() as store:
        for number in range(ROWS):
            cc = "Extern <extern@elders.example>" if number % 3 == 0 else ""
            enqueue(
                store,
                from_addr=SENDER,
                to=SENDER,
                cc=cc,
                subject=f"Outbox {number}",
                body_text=f"Bericht {number}",
            )
    slow_down_marking_sent(sendroom)
    moments = []
    for kill in range(KILLS):
        moments.append(kill_at(start_send(sendroom, f"killed-{kill}"), rng))
    finish(sendroom, f"{context} kills: {moments}")

    with sendroom.room.wic.store() as store:
        rows = rows_with_status(store, OutboxStatus.SENT)
    assert len(rows) == ROWS, context
    expected = {row.message_id for row in rows}
    assert None not in expected and len(expected) == ROWS, context
    at_server = Counter(message_id_of(mail.raw) for mail in sendroom.smtp.accepted())
    assert set(at_server) == expected, context
    doubled = {message_id: count for message_id, count in at_server.items() if count > 1}
    assert doubled == {}, f"sent twice {context} kills: {moments}"
    delivered = Counter(message_id_of(message.raw) for message in sendroom.dovecot.messages(SENDER))
    assert delivered == Counter(dict.fromkeys(expected, 1)), context
    confirmed = [row for row in rows if row.last_error and "found by its Message-ID" in row.last_error]
    assert confirmed, f"no kill landed between the server's 250 and the update {context} kills: {moments}"


# ---------------------------------------------------------------------------------- the Graph route

GRAPH_ACCEPTED_LINE = "Graph sendMail: 202 Accepted"


def test_killed_sends_through_graph_deliver_every_mail_exactly_once(
    sendroom: Sendroom,
    graph_clean: GraphEmulator,
    idp_clean: IdentityPlatformEmulator,
    idp_directory: SeededDirectory,
) -> None:
    """The same on the Graph route: kills right after Graph's 202 are resolved by looking the mail
    up in Sent Items through Graph (internetMessageId), so nothing is submitted twice."""
    seed = int(os.environ.get(SEED_VARIABLE) or random.SystemRandom().randrange(1 << 30))
    rng = random.Random(seed)
    context = f"({SEED_VARIABLE}={seed})"
    wic = sendroom.room.wic
    client_id, secret = str(uuid.uuid4()), f"Sx~{uuid.uuid4().hex}"
    idp_clean.add_application(
        client_id,
        idp_directory.tenant_id,
        "WICBOX mail (Graph, sends)",
        secrets={secret: dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=30)},
        app_roles={"https://graph.microsoft.com": ("Mail.ReadWrite", "Mail.Send")},
    )
    graph_clean.add_mailbox(SENDER)
    wic.set_params(
        {
            "WICBOX_MAILCLIENT_CLIENTID": client_id,
            "WICBOX_MAILCLIENT_CLIENTSECRET": secret,
            "WICBOX_MAILCLIENT_PASSWORD": None,
            "WICBOX_MAILCLIENT_SCOPE": "Mail.ReadWrite",  # Graph reads: the lookup goes through Graph
            "WICBOX_MAILCLIENT_GRAPHURL": graph_clean.base_url,
            "WICBOX_MAILCLIENT_SENDPROTOCOL": "GRAPH",
        }
    )
    with wic.store() as store:
        for number in range(ROWS):
            enqueue(
                store,
                from_addr=SENDER,
                to=RECIPIENT,
                subject=f"Graph {number}",
                body_text=f"Bericht {number}",
            )
    slow_down_marking_sent(sendroom)
    moments = []
    for kill in range(KILLS):
        moments.append(kill_at(start_send(sendroom, f"graph-killed-{kill}"), rng, GRAPH_ACCEPTED_LINE))
    finish(sendroom, f"{context} kills: {moments}")

    with wic.store() as store:
        rows = rows_with_status(store, OutboxStatus.SENT)
    assert len(rows) == ROWS, context
    expected = {row.message_id for row in rows}
    assert None not in expected and len(expected) == ROWS, context
    submitted = Counter(message_id_of(sent.raw) for sent in graph_clean.submitted(SENDER))
    doubled = {message_id: count for message_id, count in submitted.items() if count > 1}
    assert doubled == {}, f"sent twice {context} kills: {moments}"
    assert set(submitted) == expected, context
    assert sendroom.smtp.accepted() == [], "the Graph route never used SMTP"
    confirmed = [row for row in rows if row.last_error and "found by its Message-ID" in row.last_error]
    assert confirmed, f"no kill landed between Graph's 202 and the update {context} kills: {moments}"
