"""Two `wicbox send` processes as two hosts on one PostgreSQL database (each its own WICBOX_HOME,
so its own send lock: only the outbox's lease keeps them apart) never deliver a row twice, also
when some rows were left SENDING by an interrupted delivery (which a second host, without the
lease, would look up and send again while the first is still submitting)."""

from __future__ import annotations

import re
import shutil
import subprocess
from collections import Counter
from pathlib import Path

import pytest

from tests.helpers.processes import RUN_TIMEOUT_S, wicbox_command, wicbox_environment
from tests.plugins.wic import Mailroom
from tests.test_send_test import RECIPIENT, SENDER, Sendroom, make_sendroom
from tools.testbed.smtp import SmtpServer
from wicbox_bridge.mail.outgoing import message_id_of
from wicbox_bridge.store.outbox import OutboxStatus, enqueue

pytestmark = [pytest.mark.testbed, pytest.mark.slow]

MAILS = 24  # under Exchange's 30 a minute: no pacing wait
INTERRUPTED = 4


@pytest.fixture
def sendroom(mailroom: Mailroom, smtp_clean: SmtpServer) -> Sendroom:
    return make_sendroom(mailroom, smtp_clean)


def _start_send(room: Sendroom, home: Path, name: str) -> tuple[subprocess.Popen[bytes], Path]:
    wic = room.room.wic
    output = wic.cli_runner.cwd / f"{name}.log"
    env = {**wicbox_environment(wic), "WICBOX_HOME": str(home)}
    with output.open("wb") as sink:
        process = subprocess.Popen(
            wicbox_command(wic, ["-v", "send"]),
            cwd=wic.cli_runner.cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    return process, output


@pytest.mark.parametrize("wic_backend", ["postgresql-odbc"])
def test_two_hosts_sending_at_once_deliver_every_row_once(sendroom: Sendroom, tmp_path: Path) -> None:
    wic = sendroom.room.wic
    with wic.store() as store:
        ids = [
            enqueue(store, from_addr=SENDER, to=RECIPIENT, subject=f"Outbox {number}", body_text="Inhoud")
            for number in range(MAILS)
        ]
        for outbox_id in ids[:INTERRUPTED]:  # left SENDING by a delivery killed before its submission
            store.execute(
                "UPDATE WICBOX_OUTBOX SET STATUS = ?, MESSAGE_ID = ? WHERE OUTBOX_ID = ?",
                (OutboxStatus.SENDING.value, f"<interrupted-{outbox_id}@klant.example>", outbox_id),
            )
    other_home = tmp_path / "other-host"
    shutil.copytree(wic.cli_runner.home, other_home)  # the second host: its own state, its own locks
    sends = [_start_send(sendroom, wic.cli_runner.home, "first"), _start_send(sendroom, other_home, "second")]
    codes = [process.wait(timeout=RUN_TIMEOUT_S) for process, _ in sends]
    outputs = "\n".join(f"--- {path.name}\n{path.read_text(errors='replace')}" for _, path in sends)
    assert all(code in (0, 5) for code in codes), outputs
    with wic.store() as store:
        statuses = dict(store.query("SELECT OUTBOX_ID, STATUS FROM WICBOX_OUTBOX"))
    if any(code == 5 for code in codes):
        assert "another wicbox delivers the outbox" in outputs
    # one host at a time: the other was refused (exit 5) or came after the first had sent everything
    senders = [int(count) for count in re.findall(r"outbox: sent (\d+)", outputs) if int(count) > 0]
    assert senders == [MAILS], outputs
    accepted = Counter(message_id_of(mail.raw) for mail in sendroom.smtp.accepted())
    twice = {message_id: count for message_id, count in accepted.items() if count > 1}
    assert twice == {}, f"delivered more than once: {twice}\n{outputs}"
    assert {statuses[outbox_id] for outbox_id in ids} == {OutboxStatus.SENT.value}, outputs
    assert len(accepted) == MAILS, outputs
