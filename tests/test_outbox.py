"""The outbox: `wicbox send` against the test bed (SQLite and PostgreSQL), its scheduling decisions
with a controlled clock, retries, permanent failures, the submission limit and interrupted rows."""

from __future__ import annotations

import datetime as dt
import email
import email.policy
import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import pytest

from tests.plugins.postgres import BACKENDS
from tests.plugins.wic import Mailroom, application_parameters
from tests.test_send_test import RECIPIENT, SENDER, Sendroom, assert_no_secrets, make_sendroom
from tools.testbed.dovecot import SENT_ITEMS
from tools.testbed.idp import IdentityPlatformEmulator
from tools.testbed.pki import LoopbackPki
from tools.testbed.smtp import AUTH_DISABLED_FOR_TENANT, TRANSIENT_FAILURE, SmtpServer
from wicbox_bridge.adapters.smtp import SmtpSettings
from wicbox_bridge.commands._build import provider_factory, sent_lookup_factory, smtp_sender, token_service
from wicbox_bridge.commands.send import SendingAccounts, SendLock
from wicbox_bridge.config.params import parse_parameters
from wicbox_bridge.config.paths import machine_state_dir_for
from wicbox_bridge.logs.redact import Redactor
from wicbox_bridge.mail.outgoing import OutgoingAttachment, OutgoingMail, build_message, message_id_of
from wicbox_bridge.runtime import Invocation, Runtime
from wicbox_bridge.send.outbox import OutboxJob, OutboxReport, OutboxSettings, SubmissionPacer, deliver_outbox
from wicbox_bridge.store import Store
from wicbox_bridge.store.outbox import OutboxRow, OutboxStatus, enqueue, get_row
from wicbox_bridge.store.parameters import read_parameters

pytestmark = pytest.mark.testbed


@pytest.fixture
def sendroom(mailroom: Mailroom, smtp_clean: SmtpServer) -> Sendroom:
    return make_sendroom(mailroom, smtp_clean)


RECIPIENT_UNKNOWN = "550 5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient not found by SMTP address lookup"


# ---------------------------------------------------------------------------------- pure decisions

PACER_CASES = {
    # (sent at, now, expected wait) with 3 per 10 s
    "empty": ((), 100.0, 0.0),
    "room-left": ((95.0, 96.0), 100.0, 0.0),
    "full": ((95.0, 96.0, 97.0), 100.0, 5.0),
    "oldest-expired": ((90.0, 96.0, 97.0), 100.0, 0.0),
    "exactly-at-window": ((90.0, 91.0, 92.0), 100.0, 0.0),
    "out-of-order": ((97.0, 95.0, 96.0), 100.0, 5.0),
    "more-than-limit": ((94.0, 96.0, 97.0, 98.0), 100.0, 6.0),
}


@pytest.mark.parametrize(("sent", "now", "wait"), PACER_CASES.values(), ids=PACER_CASES.keys())
def test_pacer_waits_until_the_window_has_room(sent: tuple[float, ...], now: float, wait: float) -> None:
    pacer = SubmissionPacer(per_window=3, window_s=10.0)
    for at in sent:
        pacer.record("WICBOX@klant.example", at)
    assert pacer.wait_s("wicbox@klant.example", now) == pytest.approx(wait)
    assert pacer.wait_s("other@klant.example", now) == 0.0


@pytest.mark.parametrize(
    ("attempts", "delay"), [(1, 60.0), (2, 120.0), (3, 240.0), (9, 15360.0), (20, 21600.0)]
)
def test_retry_delay_doubles_up_to_six_hours(attempts: int, delay: float) -> None:
    assert OutboxSettings().retry_delay_s(attempts) == delay


def test_report_exit_codes() -> None:
    assert OutboxReport(sent=3).exit_code == 0
    assert OutboxReport(retry_later=2).exit_code == 0
    assert OutboxReport(failed=1).exit_code == 1


# ---------------------------------------------------------------------------------- helpers


def _enqueue(room: Sendroom, count: int = 1, **values: object) -> list[int]:
    defaults: dict[str, object] = {"from_addr": SENDER, "to": RECIPIENT, "body_text": "Inhoud"}
    with room.room.wic.store() as store:
        return [
            enqueue(store, **{"subject": f"Outbox {number}", **defaults, **values})  # type: ignore[arg-type]
            for number in range(count)
        ]


def _rows(room: Sendroom, ids: list[int]) -> list[OutboxRow]:
    with room.room.wic.store() as store:
        rows = [get_row(store, outbox_id) for outbox_id in ids]
    assert all(row is not None for row in rows)
    return [row for row in rows if row is not None]


def _accepted_ids(room: Sendroom) -> list[str | None]:
    return [message_id_of(mail.raw) for mail in room.smtp.accepted()]


@dataclass
class FakeTime:
    """A clock that only moves when the code under test sleeps (or the test says so)."""

    now: float = 1_900_000_000.0
    sleeps: list[float] = field(default_factory=list)

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


@contextmanager
def library_job(room: Sendroom, fake: FakeTime, **settings: object) -> Iterator[OutboxJob]:
    """The job `wicbox send` builds, with a controlled clock and a sender that does not back off."""
    wic = room.room.wic
    env = {"WICBOX_HOME": str(wic.cli_runner.home)}
    runtime = Runtime(Invocation(wic.config, env, wic.cli_runner.cwd, wic.cli_runner.cwd), Redactor())
    with wic.store() as store:
        params = parse_parameters(read_parameters(store), wic.endpoints()).parameters
        accounts = SendingAccounts(params, store)
        with token_service(runtime, params) as service:
            provider_for = provider_factory(service, params)
            smtp = SmtpSettings.from_parameters(params, transient_retries=0)
            yield OutboxJob(
                store=store,
                account_for=accounts.account_for,
                sender_for=lambda account: smtp_sender(params, account, provider_for, settings=smtp),
                lookup_for=sent_lookup_factory(params, provider_for),
                settings=OutboxSettings(**settings),  # type: ignore[arg-type]
                clock=fake.clock,
                sleep=fake.sleep,
            )


# ---------------------------------------------------------------------------------- `wicbox send`


@pytest.mark.parametrize("wic_backend", BACKENDS)
def test_send_delivers_text_html_attachments_and_raw_mime(sendroom: Sendroom) -> None:
    (html_id,) = _enqueue(
        sendroom,
        subject="Dossier 2026/17 — één bijlage",
        body_text="Beste,\r\nzie bijlage.",
        body_html="<p>Beste, zie <b>bijlage</b>.</p>",
        cc="Team <team@elders.example>",
        bcc="geheim@elders.example",
        attachments=[OutgoingAttachment("verslag één.pdf", "application/pdf", b"%PDF\x00\xff")],
    )
    raw = build_message(
        OutgoingMail(SENDER, RECIPIENT, "Zelf gebouwd", body_text="raw"), message_id="<raw-1@klant.example>"
    ).as_bytes()
    (raw_id,) = _enqueue(sendroom, raw_mime=raw, to="", subject="", body_text=None)
    result = sendroom.cli("send")
    assert result.exit_code == 0, result.output
    assert "sent 2, failed 0" in result.output
    html_row, raw_row = _rows(sendroom, [html_id, raw_id])
    assert (html_row.status, raw_row.status) == (OutboxStatus.SENT, OutboxStatus.SENT)
    assert raw_row.message_id == "<raw-1@klant.example>"
    assert _accepted_ids(sendroom) == [html_row.message_id, "<raw-1@klant.example>"]
    first, second = sendroom.smtp.accepted()
    assert set(first.rcpt_tos) == {RECIPIENT, "team@elders.example", "geheim@elders.example"}
    assert b"geheim@elders.example" not in first.raw
    assert second.raw == raw  # sent exactly as given
    [stored, _raw] = sendroom.dovecot.messages(RECIPIENT)
    parsed = email.message_from_bytes(stored.raw, policy=email.policy.default)
    assert str(parsed["Subject"]) == "Dossier 2026/17 — één bijlage"
    assert [part.get_filename() for part in parsed.iter_attachments()] == ["verslag één.pdf"]  # type: ignore[attr-defined]
    again = sendroom.cli("send")
    assert "sent 0" in again.output and len(sendroom.smtp.accepted()) == 2


def test_permanent_failures_are_recorded_and_the_rest_is_sent(sendroom: Sendroom) -> None:
    (refused,) = _enqueue(sendroom, to="onbekend@klant.example")
    (injected,) = _enqueue(sendroom, subject="Hallo\r\nBcc: spion@elders.example")
    (fine,) = _enqueue(sendroom)
    sendroom.smtp.script_reply("RCPT", RECIPIENT_UNKNOWN)
    result = sendroom.cli("send")
    assert result.exit_code == 1, result.output
    refused_row, injected_row, fine_row = _rows(sendroom, [refused, injected, fine])
    assert refused_row.status is OutboxStatus.FAILED
    assert refused_row.last_error is not None and "550 5.1.10" in refused_row.last_error
    assert "onbekend@klant.example" in refused_row.last_error
    assert injected_row.status is OutboxStatus.FAILED
    assert injected_row.last_error is not None
    assert "WICBOX_OUTBOX.SUBJECT: contains a line break" in injected_row.last_error
    assert fine_row.status is OutboxStatus.SENT
    assert _accepted_ids(sendroom) == [fine_row.message_id]


def test_sign_in_refused_keeps_the_mail_due_and_exits_3(sendroom: Sendroom) -> None:
    ids = _enqueue(sendroom, 2)
    sendroom.smtp.script_reply("AUTH", AUTH_DISABLED_FOR_TENANT)
    result = sendroom.cli("send")
    assert result.exit_code == 3, result.output
    assert "Set-CASMailbox -Identity wicbox@klant.example -SmtpClientAuthenticationDisabled $false" in (
        result.output
    )
    rows = _rows(sendroom, ids)
    assert [row.status for row in rows] == [OutboxStatus.PENDING, OutboxStatus.PENDING]
    assert [row.next_attempt_at for row in rows] == [None, None]
    assert rows[0].last_error is not None and "5.7.139" in rows[0].last_error
    assert sendroom.cli("send").exit_code == 0  # fixed: both go out with the next run
    assert len(sendroom.smtp.accepted()) == 2
    assert_no_secrets(result.output, *sendroom.secrets())


def test_exchange_quota_answer_postpones_that_mailbox(sendroom: Sendroom) -> None:
    ids = _enqueue(sendroom, 5)
    sendroom.smtp.enable_submission_quota(per_minute=3)
    before = dt.datetime.now(dt.timezone.utc)
    result = sendroom.cli("send")
    assert result.exit_code == 0, result.output
    assert "sent 3, failed 0, retry later 1, deferred by the rate limit 1" in result.output
    rows = _rows(sendroom, ids)
    assert [row.status for row in rows] == [OutboxStatus.SENT] * 3 + [OutboxStatus.PENDING] * 2
    quota_row = rows[3]
    assert quota_row.last_error is not None and "SubmissionQuotaExceeded" in quota_row.last_error
    assert quota_row.next_attempt_at is not None
    assert quota_row.next_attempt_at - before >= dt.timedelta(seconds=59)
    assert rows[4].attempts == 0 and rows[4].next_attempt_at is None


def test_the_submission_limit_is_kept_without_the_server_refusing(sendroom: Sendroom) -> None:
    """30 a minute per mailbox: the server counts the same (on the same controlled clock) and never
    has to refuse; the client waits the minute out instead of failing a mail."""
    fake = FakeTime()
    sendroom.smtp.enable_submission_quota(per_minute=30, window_s=60.0, clock=fake.clock)
    ids = _enqueue(sendroom, 33)
    with library_job(sendroom, fake) as job:
        report = deliver_outbox(job)
    assert (report.sent, report.failed, report.retry_later) == (33, 0, 0)
    assert fake.sleeps == [pytest.approx(60.0)]
    assert all(row.status is OutboxStatus.SENT for row in _rows(sendroom, ids))


def test_one_send_at_a_time(sendroom: Sendroom) -> None:
    wic = sendroom.room.wic
    _enqueue(sendroom)
    with SendLock(machine_state_dir_for(wic.config, env={"WICBOX_HOME": str(wic.cli_runner.home)})):
        result = sendroom.cli("send")
    assert result.exit_code == 5, result.output
    assert "another wicbox send" in result.output
    assert sendroom.smtp.accepted() == []


# ---------------------------------------------------------------------------------- a controlled clock


def test_rate_limit_decisions_with_a_controlled_clock(sendroom: Sendroom) -> None:
    ids = _enqueue(sendroom, 33)
    fake = FakeTime()
    with library_job(sendroom, fake, max_messages=30) as job:
        assert deliver_outbox(job).sent == 30
    assert fake.sleeps == []
    # The next run counts the 30 sent in the last minute (from SENT_AT): a wait of 60 s is too long
    # for a run allowed to wait 10 s, so it leaves the mails for later ...
    with library_job(sendroom, fake, max_wait_s=10.0) as job:
        report = deliver_outbox(job)
    assert (report.sent, report.deferred) == (0, 3)
    # ... and one allowed to wait a minute waits exactly until the oldest send leaves the window.
    with library_job(sendroom, fake) as job:
        report = deliver_outbox(job)
    assert (report.sent, report.deferred) == (3, 0)
    assert fake.sleeps == [pytest.approx(60.0)]
    assert all(row.status is OutboxStatus.SENT for row in _rows(sendroom, ids))
    assert len(sendroom.smtp.accepted()) == 33


def test_transient_answer_is_retried_later_with_backoff(sendroom: Sendroom) -> None:
    (outbox_id,) = _enqueue(sendroom)
    sendroom.smtp.script_reply("DATA", TRANSIENT_FAILURE, times=2)
    fake = FakeTime()
    for attempt, delay in ((1, 60), (2, 120)):
        with library_job(sendroom, fake) as job:
            report = deliver_outbox(job)
        assert report.retry_later == 1
        [row] = _rows(sendroom, [outbox_id])
        assert (row.status, row.attempts) == (OutboxStatus.PENDING, attempt)
        assert row.last_error is not None and "451 4.4.4" in row.last_error
        assert row.next_attempt_at == dt.datetime.fromtimestamp(fake.now + delay, dt.timezone.utc)
        with library_job(sendroom, fake) as job:
            assert deliver_outbox(job).sent == 0  # not due yet
        fake.now += delay
    with library_job(sendroom, fake) as job:
        assert deliver_outbox(job).sent == 1
    [row] = _rows(sendroom, [outbox_id])
    assert row.status is OutboxStatus.SENT
    assert _accepted_ids(sendroom) == [row.message_id]


def test_transient_answers_give_up_after_max_attempts(sendroom: Sendroom) -> None:
    (outbox_id,) = _enqueue(sendroom)
    sendroom.smtp.script_reply("DATA", TRANSIENT_FAILURE, times=3)
    fake = FakeTime()
    for _ in range(3):
        with library_job(sendroom, fake, max_attempts=3) as job:
            deliver_outbox(job)
        fake.now += 10_000
    [row] = _rows(sendroom, [outbox_id])
    assert row.status is OutboxStatus.FAILED
    assert row.last_error is not None and "gave up after 3 attempts" in row.last_error


# ---------------------------------------------------------------------------------- interrupted rows


def _interrupt(store: Store, outbox_id: int, message_id: str) -> None:
    store.execute(
        "UPDATE WICBOX_OUTBOX SET STATUS = 'SENDING', MESSAGE_ID = ?, ATTEMPTS = 1 WHERE OUTBOX_ID = ?",
        (message_id, outbox_id),
    )


def test_interrupted_row_found_in_sent_items_is_not_sent_again(sendroom: Sendroom) -> None:
    found, missing = _enqueue(sendroom, 2, cc="Team <team@elders.example>", bcc="archief@elders.example")
    with sendroom.room.wic.store() as store:
        _interrupt(store, found, "<al-verzonden@klant.example>")
        _interrupt(store, missing, "<nooit-aangekomen@klant.example>")
    copy = build_message(
        OutgoingMail(SENDER, RECIPIENT, "Outbox 0", body_text="Inhoud"),
        message_id="<al-verzonden@klant.example>",
    ).as_bytes()
    sendroom.dovecot.append(SENDER, "Sent Items", copy)
    result = sendroom.cli("send")
    assert result.exit_code == 0, result.output
    assert "confirmed sent 1, to send again 1" in result.output
    found_row, missing_row = _rows(sendroom, [found, missing])
    assert found_row.status is OutboxStatus.SENT
    assert found_row.last_error is not None and "not sent again" in found_row.last_error
    assert missing_row.status is OutboxStatus.SENT
    assert _accepted_ids(sendroom) == ["<nooit-aangekomen@klant.example>"]  # the same Message-ID
    with sendroom.room.wic.store() as store:  # the daily limit counts the confirmed one's recipients too
        counts = store.query("SELECT RECIPIENT_COUNT FROM WICBOX_OUTBOX ORDER BY OUTBOX_ID")
    assert [row[0] for row in counts] == [3, 3]


def test_interrupted_mail_to_the_sending_mailbox_is_found_in_its_inbox(sendroom: Sendroom) -> None:
    (outbox_id,) = _enqueue(sendroom, to=SENDER)
    assert sendroom.cli("send").exit_code == 0
    [row] = _rows(sendroom, [outbox_id])
    assert row.message_id is not None
    assert len(sendroom.dovecot.messages(SENDER, SENT_ITEMS)) == 1
    with sendroom.dovecot.admin_session(SENDER) as admin:  # its Sent Items copy was deleted since
        admin.select_folder(SENT_ITEMS)
        admin.delete_messages(admin.search("ALL"))
        admin.expunge()
    with sendroom.room.wic.store() as store:  # as if killed between the server's 250 and the update
        _interrupt(store, outbox_id, row.message_id)
    result = sendroom.cli("send")
    assert "confirmed sent 1" in result.output, result.output
    assert len(sendroom.smtp.accepted()) == 1


# ---------------------------------------------------------------------------------- `wicbox run` sends too


def test_the_scheduled_run_delivers_the_outbox_after_reading(sendroom: Sendroom) -> None:
    ids = _enqueue(sendroom, count=2)
    sendroom.room.deliver([b"From: a@elders.example\r\nTo: wicbox@klant.example\r\nSubject: in\r\n\r\nx\r\n"])
    skipped = sendroom.cli("run", "--no-send")
    assert skipped.exit_code == 0, skipped.output
    assert sendroom.smtp.accepted() == [] and "outbox:" not in skipped.output

    result = sendroom.cli("run")

    assert result.exit_code == 0, result.output
    assert "outbox: sent 2, failed 0" in result.output
    assert [row.status for row in _rows(sendroom, ids)] == [OutboxStatus.SENT, OutboxStatus.SENT]
    assert len(sendroom.smtp.accepted()) == 2
    quiet = sendroom.cli("run")  # nothing due: no sign-in to SMTP, no outbox line
    assert quiet.exit_code == 0 and "outbox:" not in quiet.output
    assert len(sendroom.smtp.accepted()) == 2


def test_a_run_leaves_the_outbox_to_a_busy_send_and_reports_a_failed_delivery(sendroom: Sendroom) -> None:
    wic = sendroom.room.wic
    _enqueue(sendroom)
    with SendLock(machine_state_dir_for(wic.config, env={"WICBOX_HOME": str(wic.cli_runner.home)})):
        busy = sendroom.cli("run")
    assert busy.exit_code == 0, busy.output  # the reading went fine; the send in progress delivers
    assert sendroom.smtp.accepted() == []
    sendroom.smtp.script_reply("AUTH", AUTH_DISABLED_FOR_TENANT)
    refused = sendroom.cli("run", "--json")
    assert refused.exit_code == 3, refused.output  # the reading was fine: the delivery's code counts
    assert refused.stdout.lstrip().startswith("{"), "--json keeps stdout for the run report"
    assert "SmtpClientAuthenticationDisabled $false" in refused.stderr
    assert sendroom.smtp.accepted() == []
    assert sendroom.cli("run").exit_code == 0  # fixed: it goes out with the next run
    assert len(sendroom.smtp.accepted()) == 1


def test_the_daily_recipient_limit_holds_mails_back_without_failing_them(sendroom: Sendroom) -> None:
    """Exchange's 10,000 recipients a day per mailbox, here 5: counted across runs from RECIPIENT_COUNT."""
    ids = _enqueue(sendroom, 4, cc="Team <team@elders.example>")  # 2 recipients each
    fake = FakeTime()
    with library_job(sendroom, fake, recipients_per_day=5) as job:
        report = deliver_outbox(job)
    assert (report.sent, report.deferred, report.failed) == (2, 2, 0)  # the 4th waits behind the 3rd
    rows = _rows(sendroom, ids)
    assert [row.status for row in rows] == [OutboxStatus.SENT] * 2 + [OutboxStatus.PENDING] * 2
    assert all(row.attempts == 0 for row in rows[2:]), "held back, not a failed attempt"
    fake.now += 3600.0  # an hour later the day is still full: the count comes from the database
    with library_job(sendroom, fake, recipients_per_day=5) as job:
        assert deliver_outbox(job).sent == 0
    fake.now += 24 * 3600.0
    with library_job(sendroom, fake, recipients_per_day=5) as job:
        assert deliver_outbox(job).sent == 2
    assert all(row.status is OutboxStatus.SENT for row in _rows(sendroom, ids))
    assert len(sendroom.smtp.accepted()) == 4


def test_an_interrupted_mail_that_cannot_be_looked_up_is_held_until_released(
    sendroom: Sendroom, idp_clean: IdentityPlatformEmulator, loopback_pki: LoopbackPki
) -> None:
    """The app may send but not read the mailbox (no Add-MailboxPermission): whether the interrupted
    mail went out cannot be told, so it is held as UNKNOWN, never sent twice silently."""
    wic = sendroom.room.wic
    held, due = _enqueue(sendroom, 2)
    with wic.store() as store:
        _interrupt(store, held, "<misschien-verzonden@klant.example>")
    kept = ("WICBOX_MAILCLIENT_IMAPHOST", "WICBOX_MAILCLIENT_IMAPTLS", "WICBOX_MAILCLIENT_SMTPHOST")
    values = application_parameters(idp_clean, wic.directory, loopback_pki)
    wic.set_params({name: value for name, value in values.items() if name not in kept})  # no mailbox grant

    result = sendroom.cli("send")

    assert "held as unknown 1" in result.output, result.output
    held_row, _due_row = _rows(sendroom, [held, due])
    assert held_row.status is OutboxStatus.UNKNOWN
    assert f"wicbox send --release {held}" in (held_row.last_error or "")
    assert all(
        message_id_of(mail.raw) != "<misschien-verzonden@klant.example>" for mail in sendroom.smtp.accepted()
    )
    status = sendroom.cli("status")
    assert f"Outbox: mail {held} is held as UNKNOWN" in status.output
    document = json.loads(sendroom.cli("status", "--json").stdout)
    assert [row["outbox_id"] for row in document["outbox_unknown"]] == [held]

    not_held = sendroom.cli("send", "--release", str(due))
    assert not_held.exit_code == 2 and "not held as UNKNOWN" in not_held.output
    released = sendroom.cli("send", "--release", str(held))
    assert released.exit_code == 0, released.output
    assert _rows(sendroom, [held])[0].status is OutboxStatus.PENDING


def test_an_interrupted_mail_whose_message_id_exchange_rewrote_is_found_by_its_copy(
    sendroom: Sendroom,
) -> None:
    (outbox_id,) = _enqueue(sendroom)
    with sendroom.room.wic.store() as store:
        _interrupt(store, outbox_id, "<origineel-2@klant.example>")
    copy = build_message(
        OutgoingMail(SENDER, RECIPIENT, "Outbox 0", body_text="Inhoud"),
        message_id="<origineel-2@klant.example>",
    ).as_bytes()
    assert b"X-WICBOX-Message-ID: <origineel-2@klant.example>" in copy
    rewritten = copy.replace(
        b"Message-ID: <origineel-2@klant.example>", b"Message-ID: <AM0PR01MB9.eurprd01.prod.outlook.com>", 1
    )
    sendroom.dovecot.append(SENDER, "Sent Items", rewritten)
    result = sendroom.cli("send")
    assert result.exit_code == 0, result.output
    assert "confirmed sent 1" in result.output
    assert sendroom.smtp.accepted() == []
