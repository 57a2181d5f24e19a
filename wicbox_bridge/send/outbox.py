"""``wicbox send``: delivering the outbox, each mail at most once even when the process is killed.

For each due row: build the message (or take RAW_MIME as given), record STATUS = SENDING with the
Message-ID and commit, submit, then record SENT (or FAILED with the server's answer, or PENDING
again with a later NEXT_ATTEMPT_AT for an answer worth retrying). A row found SENDING when a
delivery starts was interrupted between those commits: it is looked up by its Message-ID in the
sending mailbox over IMAP (Sent Items, and the mailbox's own folders when it was among the
recipients). Found: SENT without sending again. Not found, or nothing to look in: PENDING again,
re-sent with the same Message-ID. What remains possible is described in docs/sending.md.

Exchange Online accepts at most 30 messages a minute per mailbox: :class:`SubmissionPacer` keeps
every sending mailbox under that limit, counting the mails recent runs sent as well.

Several hosts: only the holder of the outbox's lease delivers (``OutboxJob.fence``, taken by the
command line). That is what makes the Message-ID lookup sound across hosts: a row found SENDING by
the lease holder was left by a delivery that ended or lost the lease, never by one still
submitting on another host. Every claim (PENDING -> SENDING) checks the fence in its transaction,
so a host that stalled past its lease claims, and so submits, nothing more (LeaseLost ends its
delivery). What stays possible: a host that stalls for longer than the lease between its claim
and the submission itself (a single statement apart) submits after the new holder has looked the
row up; docs/sending.md lists it with the other remaining cases.
"""

from __future__ import annotations

import collections
import datetime as dt
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from wicbox_bridge.adapters.base import Sender, refuse_unsafe_message_id
from wicbox_bridge.auth.accounts import MailboxAccount
from wicbox_bridge.errors import (
    AuthenticationError,
    BridgeError,
    ConfigurationError,
    ConnectionFailure,
    DatabaseError,
    ExitCode,
    SendError,
)
from wicbox_bridge.mail.outgoing import (
    Envelope,
    OutgoingMail,
    build_message,
    envelope_of_raw,
    message_id_of,
    parse_addresses,
)
from wicbox_bridge.store.base import Store
from wicbox_bridge.store.leases import Fence, fenced
from wicbox_bridge.store.outbox import (
    OutboxRow,
    OutboxStatus,
    attachments_of,
    claim_for_sending,
    due_rows,
    mark_failed,
    mark_sent,
    park_unknown,
    recipients_sent_since,
    reschedule,
    rows_with_status,
    sent_since,
)

log = logging.getLogger("wicbox.outbox")

EXCHANGE_LIMIT_PER_MINUTE = 30
EXCHANGE_RECIPIENTS_PER_DAY = 10_000
DAY_S = 24 * 3600.0
ROW_LABELS: Mapping[str, str] = {
    "from": "WICBOX_OUTBOX.FROM_ADDR",
    "to": "WICBOX_OUTBOX.TO_ADDRS",
    "cc": "WICBOX_OUTBOX.CC_ADDRS",
    "bcc": "WICBOX_OUTBOX.BCC_ADDRS",
    "subject": "WICBOX_OUTBOX.SUBJECT",
}


class SentLookup(Protocol):
    """Tells whether a mail with this Message-ID reached the server (Sent Items, a recipient's folders).

    ``True``: found; ``False``: looked everywhere it could be, not there. Raises BridgeError when
    the mailbox cannot be searched right now.
    """

    def find(self, message_id: str, recipients: Sequence[str]) -> bool: ...


@dataclass(frozen=True)
class OutboxSettings:
    """Limits of one ``wicbox send``.

    ``per_window``/``window_s``: the submission limit per sending mailbox (Exchange: 30 a minute).
    A run waits for the window when that takes at most ``max_wait_s``, else it leaves the rest
    for the next run. Transient failures are retried after ``retry_base_s``, doubling per attempt
    up to ``retry_max_s``; after ``max_attempts`` attempts a row is FAILED.
    """

    per_window: int = EXCHANGE_LIMIT_PER_MINUTE
    window_s: float = 60.0
    recipients_per_day: int = EXCHANGE_RECIPIENTS_PER_DAY
    max_messages: int = 500
    max_wait_s: float = 65.0
    max_attempts: int = 8
    retry_base_s: float = 60.0
    retry_max_s: float = 6 * 3600.0

    def __post_init__(self) -> None:
        limits = (self.per_window, self.max_messages, self.max_attempts, self.recipients_per_day)
        if min(limits) < 1 or self.window_s <= 0:
            raise ConfigurationError(
                "OutboxSettings: per_window, window_s, max_messages, max_attempts and recipients_per_day "
                "must be positive.",
                fix="use positive limits",
            )

    def retry_delay_s(self, attempts: int) -> float:
        """Seconds before attempt ``attempts + 1`` (``attempts`` made so far, at least 1)."""
        return float(min(self.retry_max_s, self.retry_base_s * 2 ** max(0, attempts - 1)))


class SubmissionPacer:
    """A sliding window per sending mailbox: at most ``per_window`` submissions in ``window_s``.

    Times are seconds (wall clock, so sends of earlier runs recorded in the database count too).
    """

    def __init__(self, per_window: int, window_s: float) -> None:
        self.per_window = per_window
        self.window_s = window_s
        self._sent: dict[str, collections.deque[float]] = {}

    def _window(self, mailbox: str, now: float) -> collections.deque[float]:
        sent = self._sent.setdefault(mailbox.casefold(), collections.deque())
        while sent and now - sent[0] >= self.window_s:
            sent.popleft()
        return sent

    def wait_s(self, mailbox: str, now: float) -> float:
        """How long to wait before the next submission from ``mailbox`` (0: now)."""
        sent = self._window(mailbox, now)
        if len(sent) < self.per_window:
            return 0.0
        return max(0.0, sent[len(sent) - self.per_window] + self.window_s - now)

    def record(self, mailbox: str, at: float) -> None:
        sent = self._sent.setdefault(mailbox.casefold(), collections.deque())
        sent.append(at)
        if len(sent) > 1 and sent[-2] > at:
            self._sent[mailbox.casefold()] = collections.deque(sorted(sent))


@dataclass
class OutboxReport:
    """What one delivery did; ``problems`` are the errors that stopped a mailbox or the run."""

    sent: int = 0
    failed: int = 0
    retry_later: int = 0
    confirmed: int = 0
    resend: int = 0
    deferred: int = 0
    parked: int = 0
    problems: list[BridgeError] = field(default_factory=list)

    @property
    def exit_code(self) -> ExitCode:
        for error in self.problems:
            if error.exit_code is not ExitCode.PARTIAL:
                return error.exit_code
        return ExitCode.PARTIAL if self.problems or self.failed else ExitCode.OK

    def summary(self) -> str:
        return (
            f"outbox: sent {self.sent}, failed {self.failed}, retry later {self.retry_later}, "
            f"deferred by the rate limit {self.deferred}; interrupted earlier: confirmed sent "
            f"{self.confirmed}, to send again {self.resend}, held as unknown {self.parked}"
        )


AccountFor = Callable[[str | None], MailboxAccount]
SenderFor = Callable[[MailboxAccount], Sender]
LookupFor = Callable[[MailboxAccount], SentLookup | None]


@dataclass(frozen=True)
class OutboxJob:
    """Everything a delivery needs, built by the command line."""

    store: Store
    account_for: AccountFor
    sender_for: SenderFor
    lookup_for: LookupFor
    settings: OutboxSettings = field(default_factory=OutboxSettings)
    clock: Callable[[], float] = time.time
    sleep: Callable[[float], None] = time.sleep
    fence: Fence | None = None  # the outbox's lease (several hosts); None: this process alone delivers


@dataclass(frozen=True)
class PreparedMail:
    raw: bytes
    envelope: Envelope
    message_id: str | None


def _utc(seconds: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(seconds, dt.timezone.utc)


# --------------------------------------------------------------------------- preparing a row


def prepare(store: Store, row: OutboxRow, default_sender: str) -> PreparedMail:
    """The bytes and envelope of a row (raises ParameterError for a row that cannot be sent)."""
    if row.message_id is not None:
        refuse_unsafe_message_id(row.message_id)
    if row.raw_mime is not None:
        return _prepare_raw(row, default_sender)
    mail = OutgoingMail(
        from_addr=row.from_addr or default_sender,
        to=row.to_addrs,
        cc=row.cc_addrs,
        bcc=row.bcc_addrs,
        subject=row.subject,
        body_text=row.body_text,
        body_html=row.body_html,
        attachments=attachments_of(store, row.outbox_id),
    )
    built = build_message(mail, message_id=row.message_id, date=row.created_at, labels=ROW_LABELS)
    return PreparedMail(built.as_bytes(), built.envelope, built.message_id)


def _prepare_raw(row: OutboxRow, default_sender: str) -> PreparedMail:
    raw = row.raw_mime or b""
    own = envelope_of_raw(raw)
    columns = [
        address.addr_spec
        for name in ("to", "cc", "bcc")
        for address in parse_addresses(ROW_LABELS[name], getattr(row, f"{name}_addrs"))
    ]
    if row.from_addr:
        sender = parse_addresses(ROW_LABELS["from"], row.from_addr)[0].addr_spec
    else:
        sender = own.sender if own else default_sender
    recipients = tuple(dict.fromkeys(columns)) if columns else (own.recipients if own else ())
    if not recipients:
        raise SendError(
            "RAW_MIME names no recipient and TO_ADDRS/CC_ADDRS/BCC_ADDRS are empty.",
            permanent=True,
            fix="fill in TO_ADDRS (the envelope recipients) for the row",
        )
    return PreparedMail(raw, Envelope(sender, recipients), message_id_of(raw))


# --------------------------------------------------------------------------- the delivery


class _Delivery:
    """One ``wicbox send``: resolve interrupted rows, then deliver the due ones."""

    def __init__(self, job: OutboxJob) -> None:
        self.job = job
        self.report = OutboxReport()
        self.pacer = SubmissionPacer(job.settings.per_window, job.settings.window_s)
        self.stopped: set[str] = set()
        self.daily: dict[str, int] = {}  # recipients sent per mailbox (casefolded) in the last 24 h

    def run(self) -> OutboxReport:
        self._resolve_interrupted()
        self._seed_pacer()
        self._seed_daily()
        now = _utc(self.job.clock())
        for row in due_rows(self.job.store, now, self.job.settings.max_messages):
            try:
                self._deliver(row)
            except ConfigurationError as error:  # the same for every row: stop here
                if error not in self.report.problems:
                    self.report.problems.append(error)
                break
        return self.report

    # ---- interrupted rows ------------------------------------------------------------------
    def _resolve_interrupted(self) -> None:
        for row in rows_with_status(self.job.store, OutboxStatus.SENDING):
            self._resolve(row)

    def _resolve(self, row: OutboxRow) -> None:
        """Look an interrupted row up: SENT when found, PENDING again when not, UNKNOWN when it cannot be."""
        try:
            account = self.job.account_for(row.from_addr)
            log.info(
                "Outbox mail %s was interrupted during its submission: looking for %s in %s",
                row.outbox_id,
                row.message_id or "(no Message-ID)",
                account.mailbox,
            )
            found, recipients = self._look_up(row, account)
        except AuthenticationError as error:  # the mailbox may not be read: the answer cannot be had
            self._park(row, f"the mailbox cannot be searched ({error.message})")
            return
        except (ConfigurationError, ConnectionFailure, SendError) as error:
            log.warning(
                "Outbox mail %s was interrupted and cannot be checked now: %s",
                row.outbox_id,
                error.message,
            )
            self.report.problems.append(error)
            return
        if found is None:
            self._park(row, "there is no way to search the sending mailbox for it")
        elif found:
            note = "interrupted after submission; found by its Message-ID, not sent again"
            mark_sent(self.job.store, row.outbox_id, _utc(self.job.clock()), note, recipients=recipients)
            log.info("Outbox mail %s was sent before the interruption: SENT, not sent again", row.outbox_id)
            self.report.confirmed += 1
        else:
            note = "interrupted during submission; not found by its Message-ID: sent again"
            reschedule(self.job.store, row.outbox_id, note, None)
            log.info("Outbox mail %s is not in the sending mailbox: it is sent again", row.outbox_id)
            self.report.resend += 1

    def _park(self, row: OutboxRow, why: str) -> None:
        """Sent or not cannot be told: hold it (UNKNOWN) rather than risk sending it twice."""
        reason = (
            f"interrupted during submission, and {why}: held, not sent again; if it did not arrive, "
            f"release it with `wicbox send --release {row.outbox_id}`"
        )
        log.warning("Outbox mail %s: %s", row.outbox_id, reason)
        park_unknown(self.job.store, row.outbox_id, reason)
        self.report.parked += 1

    def _look_up(self, row: OutboxRow, account: MailboxAccount) -> tuple[bool | None, int]:
        """Found (True) or not (False) in the sending mailbox, None: it cannot be searched; and the
        number of envelope recipients (what the daily limit counts once it is SENT)."""
        prepared = prepare(self.job.store, row, account.mailbox)
        recipients = prepared.envelope.recipients
        if row.message_id is None:
            return False, len(recipients)
        lookup = self.job.lookup_for(account)
        if lookup is None:
            return None, len(recipients)
        return lookup.find(row.message_id, recipients), len(recipients)

    def _seed_pacer(self) -> None:
        now = self.job.clock()
        for from_addr, sent_at in sent_since(self.job.store, _utc(now - self.job.settings.window_s)):
            try:
                mailbox = self.job.account_for(from_addr).mailbox
            except ConfigurationError:
                continue
            self.pacer.record(mailbox, sent_at.timestamp())

    def _seed_daily(self) -> None:
        since = _utc(self.job.clock() - DAY_S)
        for from_addr, count in recipients_sent_since(self.job.store, since):
            try:
                mailbox = self.job.account_for(from_addr).mailbox
            except ConfigurationError:
                continue
            self.daily[mailbox.casefold()] = self.daily.get(mailbox.casefold(), 0) + count

    def _within_daily_limit(self, mailbox: str, recipients: int) -> bool:
        """Exchange's 10,000 recipients a day per mailbox: a mail that would pass it waits (PENDING)."""
        used = self.daily.get(mailbox.casefold(), 0)
        if used + recipients <= self.job.settings.recipients_per_day:
            return True
        log.warning(
            "%s has sent to %d recipients in the last 24 hours; the next mail (%d) waits so that Exchange "
            "Online's limit of %d a day is kept",
            mailbox,
            used,
            recipients,
            self.job.settings.recipients_per_day,
        )
        self.stopped.add(mailbox.casefold())
        return False

    # ---- one row ---------------------------------------------------------------------------
    def _claim(self, outbox_id: int, message_id: str | None) -> bool:
        """PENDING -> SENDING; under the outbox's lease, in a transaction that checks it first."""
        if self.job.fence is None:
            return claim_for_sending(self.job.store, outbox_id, message_id)
        with fenced(self.job.store, self.job.fence):
            return claim_for_sending(self.job.store, outbox_id, message_id)

    def _deliver(self, row: OutboxRow) -> None:
        store = self.job.store
        account = self.job.account_for(row.from_addr)
        mailbox = account.mailbox.casefold()
        if mailbox in self.stopped or not self._paced(account.mailbox):
            self.report.deferred += 1
            return
        try:
            prepared = prepare(store, row, account.mailbox)
        except (ConfigurationError, SendError) as error:
            mark_failed(store, row.outbox_id, str(error))
            self.report.failed += 1
            log.warning("Outbox mail %s cannot be sent: %s", row.outbox_id, error)
            return
        recipients = len(prepared.envelope.recipients)
        if not self._within_daily_limit(account.mailbox, recipients):
            self.report.deferred += 1
            return
        if not self._claim(row.outbox_id, prepared.message_id):
            return  # taken by another sender meanwhile
        log.info(
            "Outbox mail %s: submitting %s from %s to %d recipient(s)",
            row.outbox_id,
            prepared.message_id or "(no Message-ID)",
            account.mailbox,
            recipients,
        )
        try:
            self.job.sender_for(account).send(
                prepared.raw, prepared.envelope.sender, list(prepared.envelope.recipients)
            )
        except BridgeError as error:
            self._failed(row, account, error)
            return
        now = self.job.clock()
        mark_sent(store, row.outbox_id, _utc(now), recipients=recipients)
        self.pacer.record(account.mailbox, now)
        self.daily[mailbox] = self.daily.get(mailbox, 0) + recipients
        self.report.sent += 1

    def _paced(self, mailbox: str) -> bool:
        wait = self.pacer.wait_s(mailbox, self.job.clock())
        if wait <= 0:
            return True
        if wait > self.job.settings.max_wait_s:
            self.stopped.add(mailbox.casefold())
            return False
        log.info(
            "Waiting %.1f s: %s reached %d mails in %.0f s",
            wait,
            mailbox,
            self.job.settings.per_window,
            self.job.settings.window_s,
        )
        self.job.sleep(wait)
        return True

    def _failed(self, row: OutboxRow, account: MailboxAccount, error: BridgeError) -> None:
        store, settings = self.job.store, self.job.settings
        attempts = row.attempts + 1
        if isinstance(error, DatabaseError):
            raise error
        if isinstance(error, ConnectionFailure):
            # The connection broke, perhaps after the server took the mail: the row stays
            # SENDING and the next delivery looks it up before sending it again.
            self._stop(account, error)
            return
        if isinstance(error, SendError):
            if error.permanent or attempts >= settings.max_attempts:
                given_up = "" if error.permanent else f" (gave up after {attempts} attempts)"
                mark_failed(store, row.outbox_id, f"{error}{given_up}")
                self.report.failed += 1
                return
            later = _utc(self.job.clock() + settings.retry_delay_s(attempts))
            reschedule(store, row.outbox_id, str(error), later)
            self.report.retry_later += 1
            self._stop(account, error)
            return
        # Sign-in or configuration: not this mail's fault; due again as soon as it is fixed.
        reschedule(store, row.outbox_id, str(error), None)
        self.report.retry_later += 1
        self._stop(account, error)
        if isinstance(error, ConfigurationError):
            raise error

    def _stop(self, account: MailboxAccount, error: BridgeError) -> None:
        """No more mail from this mailbox in this run (its next mails would meet the same answer)."""
        log.warning("Stopped sending from %s for this run: %s", account.mailbox, error.message)
        self.stopped.add(account.mailbox.casefold())
        if not isinstance(error, SendError):
            self.report.problems.append(error)


def deliver_outbox(job: OutboxJob) -> OutboxReport:
    """Resolve interrupted rows, then deliver the due ones within the limits of ``job.settings``."""
    return _Delivery(job).run()
