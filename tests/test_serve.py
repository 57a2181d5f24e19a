"""`wicbox serve` as a real process against the test bed: mail appended while it runs is filed
(IMAP IDLE on Dovecot, Graph delta polling on the emulator), mail that arrives while the connection
is down is filed after the reconnect, a project mailbox added in WICMan is picked up, a Graph delta
token the server forgot (410) leads to a resync, and SIGTERM ends it with exit code 0 within 10 s.

Nothing here is timed: the tests wait on the database and on the process's output."""

from __future__ import annotations

import datetime as dt
import json
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers.mailgen import make_mail
from tests.helpers.processes import WicboxProcess, run_wicbox, start_wicbox, wait_for_line
from tests.helpers.waiting import wait_until
from tests.plugins.graph import GraphRoom
from tests.plugins.wic import Mailroom
from tests.test_relay import Relay, old_wic_mail, sendroom
from tests.test_send_test import RECIPIENT, SENDER, Sendroom
from tools.testbed.imap_faults import ImapFaultProxy, running_fault_proxy
from tools.testbed.pki import LoopbackPki
from tools.testbed.ports import free_port
from wicbox_bridge.schedule.pause import pause_runs
from wicbox_bridge.serve.heartbeat import HEARTBEAT_FILE_NAME
from wicbox_bridge.serve.service import ServeSettings
from wicbox_bridge.store.outbox import OutboxStatus

pytestmark = pytest.mark.testbed
__all__ = ["sendroom"]  # the fixture, with a relay account for SENDER

ALPHA = "project-alpha@klant.example"
STOP_WITHIN_S = 10.0
HEARTBEAT_S = ServeSettings().heartbeat_s  # serve looks at the pause marker with every heartbeat
FILED_WITHIN_S = 60.0  # only ends a hanging test; nothing is asserted about the time


@pytest.fixture
def serving() -> Iterator[list[WicboxProcess]]:
    """The serve processes a test starts; killed if the test leaves one running."""
    started: list[WicboxProcess] = []
    yield started
    for process in started:
        if process.process.poll() is None:
            process.kill()


def start_serve(room: Mailroom | GraphRoom, serving: list[WicboxProcess], *args: str) -> WicboxProcess:
    process = start_wicbox(room.wic, "serve", "--reload-seconds", "1", *args, name="serve")
    serving.append(process)
    assert wait_for_line(process, "wicbox serve: watching") is not None, process.output()
    return process


def stop(process: WicboxProcess) -> None:
    process.process.send_signal(signal.SIGTERM)
    assert process.wait(STOP_WITHIN_S) == 0, process.output()
    assert "wicbox serve: stopped" in process.output()


def wait_filed(room: Mailroom | GraphRoom, count: int, process: WicboxProcess) -> None:
    wait_until(
        lambda: len(room.filed()) >= count or process.process.poll() is not None,
        f"{count} mail(s) filed by serve",
        FILED_WITHIN_S,
    )
    assert len(room.filed()) == count, process.output()


def heartbeat(room: Mailroom | GraphRoom) -> dict[str, object] | None:
    found = sorted(Path(room.wic.cli_runner.home).rglob(HEARTBEAT_FILE_NAME))
    if not found:
        return None
    document = json.loads(found[0].read_text(encoding="utf-8"))
    assert isinstance(document, dict)
    return document


def watched_how(room: Mailroom | GraphRoom) -> list[object]:
    beat = heartbeat(room)
    mailboxes = beat["mailboxes"] if beat else []
    assert isinstance(mailboxes, list)
    return [entry["how"] for entry in mailboxes]


def test_mail_appended_while_serve_runs_is_filed_and_sigterm_ends_it(
    mailroom: Mailroom, serving: list[WicboxProcess]
) -> None:
    mailroom.deliver([make_mail(1)])  # before the start: the first pass catches up
    process = start_serve(mailroom, serving)
    wait_filed(mailroom, 1, process)
    wait_until(lambda: watched_how(mailroom) == ["IDLE"], "the heartbeat shows the IDLE watch")
    mailroom.deliver([make_mail(2)])
    wait_filed(mailroom, 2, process)
    assert mailroom.messages("INBOX") == []
    wait_until(lambda: served(mailroom)["mailboxes"][0]["filed"] == 2, "the heartbeat counts 2 filed")
    block = served(mailroom)
    assert block["alive"] is True
    [mailbox] = block["mailboxes"]
    assert mailbox["watched_by"] == "IDLE"
    assert mailbox["last_error"] is None
    assert isinstance(mailbox["last_latency_seconds"], float)
    assert 0 <= mailbox["last_latency_seconds"] < FILED_WITHIN_S
    _code, text = run_wicbox(mailroom.wic, "status")
    assert "Serve: running" in text, text
    assert "IDLE; last pass" in text, text
    stop(process)


def test_serve_ends_cleanly_once_runs_are_paused(mailroom: Mailroom, serving: list[WicboxProcess]) -> None:
    """`wicbox schedule stop` pauses the configuration: serve notices the marker with its next
    heartbeat and stops as on SIGTERM (on Windows there is no SIGTERM: this is how it ends)."""
    process = start_serve(mailroom, serving)
    wait_until(lambda: heartbeat(mailroom) is not None, "the first heartbeat")
    [beat_file] = sorted(Path(mailroom.wic.cli_runner.home).rglob(HEARTBEAT_FILE_NAME))
    pause_runs(beat_file.parent, at=dt.datetime.now().astimezone(), by="the test")
    assert process.wait(HEARTBEAT_S + STOP_WITHIN_S) == 0, process.output()
    output = process.output()
    assert "paused by `wicbox schedule stop`" in output and "wicbox serve stops" in output, output
    assert "wicbox serve: stopped" in output


def served(room: Mailroom | GraphRoom) -> dict[str, Any]:
    """The serve block of `wicbox status --json`, from a real status process."""
    _code, output = run_wicbox(room.wic, "status", "--json")
    block = json.loads(output[output.index("{") :])["serve"]
    assert isinstance(block, dict), output
    return block


def test_mail_that_arrives_during_a_disconnect_is_filed_after_the_reconnect(
    mailroom: Mailroom, loopback_pki: LoopbackPki, serving: list[WicboxProcess]
) -> None:
    dovecot = mailroom.dovecot
    with running_fault_proxy(dovecot.host, dovecot.imaps_port, loopback_pki) as proxy:
        mailroom.wic.set_params({"WICBOX_MAILCLIENT_IMAPHOST": f"{proxy.host}:{proxy.port}"})
        process = start_serve(mailroom, serving)
        wait_until(lambda: watched_how(mailroom) == ["IDLE"], "the IDLE watch is up")
        blind(proxy)
        mailroom.deliver([make_mail(3)])
        wait_until(
            lambda: "connecting again" in process.output() or "yet" in process.output(),
            "serve notices the dropped connection",
            FILED_WITHIN_S,
        )
        assert mailroom.filed() == []
        proxy.refuse_connections(False)
        wait_filed(mailroom, 1, process)
        stop(process)


def blind(proxy: ImapFaultProxy) -> None:
    proxy.refuse_connections()
    proxy.cut_connections()


def test_a_project_mailbox_added_in_wicman_is_picked_up(
    mailroom: Mailroom, serving: list[WicboxProcess]
) -> None:
    wic = mailroom.wic
    wic.set_params({"WICBOXACCOUNTMODE": "MIX"})
    process = start_serve(mailroom, serving)
    assert "watching 1 mailbox(es)" in process.output()
    mailroom.dovecot.add_mailbox(ALPHA)
    password = wic.directory.user(ALPHA).password
    wic.add_project(1, "ALPHA", mailbox=ALPHA, username=ALPHA, password=password)
    assert wait_for_line(process, "watching 2 mailbox(es)") is not None, process.output()
    mailroom.deliver([make_mail(4, to=ALPHA)], user=ALPHA)
    wait_filed(mailroom, 1, process)
    assert [row.project_id for row in mailroom.filed()] == [1]
    stop(process)


def test_graph_delta_polling_files_new_mail_and_resyncs_after_410(
    graphroom: GraphRoom, serving: list[WicboxProcess]
) -> None:
    process = start_serve(graphroom, serving, "--poll-seconds", "1")
    graphroom.deliver([make_mail(5)])
    wait_filed(graphroom, 1, process)
    wait_until(lambda: watched_how(graphroom) == ["delta polling"], "the heartbeat shows delta polling")
    graphroom.graph.expire_delta_tokens()
    graphroom.deliver([make_mail(6)])
    wait_filed(graphroom, 2, process)
    assert graphroom.graph.request_log.entries(status=410), "the forgotten delta token was used"
    stop(process)


def test_a_client_secret_corrected_in_wicman_is_picked_up_without_a_restart(
    graphroom: GraphRoom, serving: list[WicboxProcess]
) -> None:
    graphroom.use_application_permissions()
    wrong = "Sx~a-secret-that-expired-yesterday"
    graphroom.wic.set_params({"WICBOX_MAILCLIENT_CLIENTSECRET": wrong})
    graphroom.deliver([make_mail(7)])
    process = start_serve(graphroom, serving, "--poll-seconds", "1")
    wait_until(lambda: watched_how(graphroom) == ["failing"], "the wrong secret is refused")
    assert graphroom.filed() == []
    right = graphroom.wic.directory.confidential_client_secret
    graphroom.wic.set_params({"WICBOX_MAILCLIENT_CLIENTSECRET": right})
    assert wait_for_line(process, "the sign-in parameters changed in WICMan") is not None, process.output()
    wait_filed(graphroom, 1, process)
    stop(process)
    assert wrong not in process.output()
    assert right not in process.output()


def leases_held(room: Mailroom | GraphRoom) -> list[object]:
    document = heartbeat(room)
    mailboxes = [] if document is None else document.get("mailboxes")
    assert isinstance(mailboxes, list)
    return [entry.get("lease_held") for entry in mailboxes]


def test_a_run_beside_serve_shares_through_the_leases_and_serve_releases_them_on_sigterm(
    mailroom: Mailroom, serving: list[WicboxProcess]
) -> None:
    process = start_serve(mailroom, serving, "--lease-seconds", "600")
    wait_until(lambda: leases_held(mailroom) == [True], "serve holds the mailbox's lease")
    code, output = run_wicbox(mailroom.wic, "run")
    assert code == 5, output  # its one mailbox is serve's: nothing left to this run
    assert "holds its lease" in output or "reads it" in output, output
    mailroom.deliver([make_mail(8)])
    wait_filed(mailroom, 1, process)
    stop(process)
    mailroom.deliver([make_mail(9)])
    code, output = run_wicbox(mailroom.wic, "run")  # released on SIGTERM: no wait for the 600 s
    assert code == 0, output
    assert len(mailroom.filed()) == 2


def test_serve_with_relay_delivers_a_relayed_mail_and_files_new_mail(
    sendroom: Sendroom, serving: list[WicboxProcess]
) -> None:
    host = sendroom.smtp.host
    port = free_port(host)
    process = start_serve(sendroom.room, serving, "--relay", "--relay-listen", f"{host}:{port}")
    assert f"relay listening on {host}:{port}" in process.output()
    relay = Relay(sendroom.room.wic, host, port, process)
    raw = old_wic_mail()
    with relay.logged_in() as client:
        assert client.sendmail(SENDER, [RECIPIENT], raw) == {}
    wait_until(lambda: len(sendroom.smtp.accepted()) == 1, "the relayed mail reaches the SMTP server")
    assert sendroom.smtp.accepted()[0].raw == raw
    wait_until(lambda: len(relay.rows(OutboxStatus.SENT)) == 1, "the row is marked SENT")
    sendroom.room.deliver([make_mail(8)])
    wait_filed(sendroom.room, 1, process)
    stop(process)
