"""`wicbox run` in SINGLE mode end to end: Dovecot over IMAPS with XOAUTH2 tokens from the real msal."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from tests.helpers.mailgen import make_mail
from tests.plugins.wic import Mailroom
from wicbox_bridge.config.paths import machine_state_dir_for
from wicbox_bridge.run.runlock import RunLock


def _run(mailroom: Mailroom, *args: str) -> tuple[int, str]:
    result = mailroom.wic.cli("run", *args)
    return result.exit_code, result.output


def test_run_files_every_mail_and_moves_it(mailroom: Mailroom) -> None:
    raws = [make_mail(n) for n in range(5)]
    mailroom.deliver(raws)
    code, output = _run(mailroom)
    assert code == 0, output
    assert "fetched 5, filed 5" in output
    filed = mailroom.filed()
    assert [row.raw for row in filed] == raws
    assert all(row.status == "FILED" for row in filed)
    assert [row.sha256 for row in filed] == [hashlib.sha256(raw).hexdigest() for raw in raws]
    assert mailroom.messages("INBOX") == []
    assert [m.raw for m in mailroom.messages("WICBOX/Processed")] == raws


def test_a_second_run_finds_nothing(mailroom: Mailroom) -> None:
    mailroom.deliver([make_mail(1)])
    assert _run(mailroom)[0] == 0
    code, output = _run(mailroom)
    assert code == 0
    assert "fetched 0" in output
    assert len(mailroom.filed()) == 1


def test_cap_drains_a_backlog_oldest_first(mailroom: Mailroom) -> None:
    raws = [make_mail(n) for n in range(250)]
    mailroom.deliver(raws)
    fetched = []
    for _ in range(4):
        result = mailroom.wic.cli("run", "--json")
        assert result.exit_code == 0, result.output
        fetched.append(json.loads(result.stdout)["counts"]["fetched"])
    assert fetched == [100, 100, 50, 0]  # WicBoxMaxMailsPerRun defaults to 100
    assert [row.raw for row in mailroom.filed()] == raws


def test_max_mails_lowers_the_cap_but_never_raises_it(mailroom: Mailroom) -> None:
    mailroom.deliver([make_mail(n) for n in range(120)])
    code, output = _run(mailroom, "--max-mails", "7")
    assert code == 0
    assert "fetched 7" in output
    code, output = _run(mailroom, "--max-mails", "500")
    assert "above WicBoxMaxMailsPerRun (100)" in output
    assert "fetched 100" in output


def test_routing_by_recipient_subject_and_unassigned(mailroom: Mailroom) -> None:
    mailroom.wic.add_project(1, "ALPHA", mailbox="alpha@klant.example")
    mailroom.wic.add_project(2, "BRAVO")
    mailroom.deliver(
        [
            make_mail(1, to="Alpha <ALPHA@klant.example>"),
            make_mail(2, subject="RE: [bravo] dossier"),
            make_mail(3, subject="geen project"),
        ]
    )
    code, output = _run(mailroom)
    assert code == 0, output
    assert [row.project_id for row in mailroom.filed()] == [1, 2, None]
    assert "(1 unassigned)" in output


def test_dry_run_changes_nothing(mailroom: Mailroom) -> None:
    mailroom.wic.add_project(1, "ALPHA", mailbox="alpha@klant.example")
    mailroom.deliver([make_mail(1, to="alpha@klant.example"), make_mail(2)])
    code, output = _run(mailroom, "--dry-run")
    assert code == 0, output
    assert "would-file -> ALPHA" in output
    assert "would-file -> unassigned" in output
    assert mailroom.filed() == []
    assert len(mailroom.messages("INBOX")) == 2
    assert "WICBOX/Processed" not in mailroom.dovecot.folders(mailroom.mailbox)


def test_after_process_delete(mailroom: Mailroom) -> None:
    mailroom.wic.set_params({"WICBOX_MAILCLIENT_AFTERPROCESS": "DELETE"})
    mailroom.deliver([make_mail(1), make_mail(2)])
    assert _run(mailroom)[0] == 0
    assert mailroom.messages("INBOX") == []
    assert len(mailroom.filed()) == 2


def test_after_process_seen_keeps_mail_and_skips_it_next_time(mailroom: Mailroom) -> None:
    mailroom.wic.set_params({"WICBOX_MAILCLIENT_AFTERPROCESS": "SEEN"})
    mailroom.deliver([make_mail(1), make_mail(2)])
    assert _run(mailroom)[0] == 0
    inbox = mailroom.messages("INBOX")
    assert len(inbox) == 2
    assert all("\\Seen" in message.flags for message in inbox)
    code, output = _run(mailroom)
    assert code == 0
    assert "fetched 0" in output
    assert len(mailroom.filed()) == 2


def test_mail_found_again_is_acknowledged_not_filed_twice(mailroom: Mailroom) -> None:
    raw = make_mail(1)
    mailroom.deliver([raw])
    assert _run(mailroom)[0] == 0
    mailroom.deliver([raw])  # the same bytes again, as after a crash between commit and MOVE
    code, output = _run(mailroom)
    assert code == 0
    assert "duplicates acknowledged 1" in output
    assert len(mailroom.filed()) == 1
    assert mailroom.messages("INBOX") == []


def test_mail_without_message_id_still_dedupes(mailroom: Mailroom) -> None:
    raw = make_mail(1, message_id=False)
    mailroom.deliver([raw, raw])
    code, output = _run(mailroom)
    assert code == 0, output
    assert "filed 1" in output
    assert "duplicates acknowledged 1" in output
    assert len(mailroom.filed()) == 1


def test_json_report_and_run_row(mailroom: Mailroom) -> None:
    mailroom.deliver([make_mail(1)])
    result = mailroom.wic.cli("run", "--json")
    assert result.exit_code == 0
    report = json.loads(result.stdout)
    assert report["counts"]["filed"] == 1
    assert report["outcome"] == "OK"
    with mailroom.wic.store() as store:
        row = store.query_one(
            "SELECT OUTCOME, FILED, MODE FROM WICBOX_RUN WHERE RUN_ID = ?", (report["run_id"],)
        )
    assert row == ("OK", 1, "SINGLE")


def test_second_concurrent_run_exits_5(mailroom: Mailroom) -> None:
    state_dir = _state_dir(mailroom)
    with RunLock(state_dir):
        code, output = _run(mailroom)
    assert code == 5
    assert "another wicbox run" in output


def test_a_run_lock_that_cannot_be_opened_names_the_file_and_the_fix(mailroom: Mailroom) -> None:
    mailroom.deliver([make_mail(1)])
    lock = _state_dir(mailroom) / "run.lock"
    lock.mkdir(parents=True)  # cannot be opened as a file, like one another account owns
    code, output = _run(mailroom)
    assert code == 2
    assert f"cannot open the run lock {lock}" in output
    assert "give the account that runs wicbox write access" in output
    assert mailroom.filed() == []  # nothing was read


def _state_dir(mailroom: Mailroom) -> Path:
    return machine_state_dir_for(mailroom.wic.config, env={"WICBOX_HOME": str(mailroom.wic.cli_runner.home)})


def test_wrong_password_fails_with_exit_3_and_keeps_the_mail(mailroom: Mailroom) -> None:
    mailroom.wic.set_params({"WICBOX_MAILCLIENT_PASSWORD": "niet-juist-123"})
    mailroom.deliver([make_mail(1)])
    code, output = _run(mailroom)
    assert code == 3, output
    assert output.count("AADSTS50126") == 1, output  # the error and its fix once, not also as a log line
    assert (
        "wicbox: fix: run `wicbox params set WICBOX_MAILCLIENT_PASSWORD --prompt` with the current "
        "password of" in output
    )
    assert len(mailroom.messages("INBOX")) == 1
    assert mailroom.filed() == []


def test_imap_unreachable_exits_4(mailroom: Mailroom) -> None:
    mailroom.wic.set_params({"WICBOX_MAILCLIENT_IMAPHOST": f"{mailroom.dovecot.host}:1"})
    code, output = _run(mailroom)
    assert code == 4, output
