"""A cell's verdict, from the database and from what the servers received.

- lost: a row whose mail never reached the server; sent twice: a mail the server took more than once;
- every recipient got each mail once (the server's envelope on SMTP, the recipients Graph took from
  the headers), and the ones with a mailbox in the test bed have it once in their inbox (SMTP);
- each mail is once in its sender's Sent Items;
- confirmed by lookup: rows found by their Message-ID after an interruption; parked: rows UNKNOWN;
- the kills agree with the rows: a mail killed after the server accepted it was confirmed by the
  lookup (not sent again), one killed before was submitted again (a second attempt);
- each window (before accept, after accept, during lookup) was hit at least once, else the cell
  proves nothing about it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from tools.crash.bed import CrashBed, Installation, Route
from tools.crash.kills import WINDOW_KINDS, Hit, Kill
from tools.crash.scenario import PlannedMail
from tools.testbed.dovecot import SENT_ITEMS
from wicbox_bridge.mail.outgoing import message_id_of
from wicbox_bridge.store.outbox import OutboxRow, OutboxStatus, rows_with_status

CONFIRMED_NOTE = "found by its Message-ID"
SHOWN = 5  # examples per problem


@dataclass(frozen=True)
class Received:
    """What the route's server took: submissions per Message-ID, and per (Message-ID, recipient)."""

    mails: Counter[str | None]
    deliveries: Counter[tuple[str | None, str]]

    @property
    def message_ids(self) -> set[str]:
        return {message_id for message_id in self.mails if message_id is not None}


@dataclass(frozen=True)
class Verdict:
    lost: int
    twice: int
    confirmed: int
    parked: int
    problems: tuple[str, ...]


def received(bed: CrashBed, route: Route, senders: Iterable[str]) -> Received:
    mails: Counter[str | None] = Counter()
    deliveries: Counter[tuple[str | None, str]] = Counter()
    if route is Route.SMTP:
        submissions = [(mail.raw, mail.rcpt_tos) for mail in bed.smtp.accepted()]
    else:
        submissions = [
            (sent.raw, sent.recipients) for sender in senders for sent in bed.graph.submitted(sender)
        ]
    for raw, recipients in submissions:
        message_id = message_id_of(raw)
        mails[message_id] += 1
        deliveries.update((message_id, recipient.casefold()) for recipient in recipients)
    return Received(mails, deliveries)


def all_rows(installation: Installation) -> dict[int, OutboxRow]:
    with installation.store() as store:
        return {row.outbox_id: row for status in OutboxStatus for row in rows_with_status(store, status)}


def judge(
    bed: CrashBed,
    installation: Installation,
    route: Route,
    planned: Sequence[PlannedMail],
    kills: Sequence[Kill],
) -> Verdict:
    rows = all_rows(installation)
    senders = sorted({mail.sender for mail in planned})
    server = received(bed, route, senders)
    problems: list[str] = []
    ids = {mail.outbox_id: rows[mail.outbox_id].message_id for mail in planned}
    unsent = [
        f"{row.outbox_id} {row.status.value}" for row in rows.values() if row.status is not OutboxStatus.SENT
    ]
    _problem(problems, "rows not SENT", unsent)
    lost = [str(outbox_id) for outbox_id, message_id in ids.items() if not server.mails[message_id]]
    _problem(problems, "mails lost (never reached the server)", lost)
    twice = [f"{message_id} x{count}" for message_id, count in server.mails.items() if count > 1]
    _problem(problems, "mails sent more than once", twice)
    strangers = sorted(server.message_ids - {message_id for message_id in ids.values() if message_id})
    _problem(problems, "mails at the server that no row sent", strangers)
    other = Route.GRAPH if route is Route.SMTP else Route.SMTP
    strays = [str(message_id) for message_id in received(bed, other, senders).mails]
    _problem(problems, f"mails that went through {other.value} instead", strays)
    _problem(problems, "recipients who did not get a mail exactly once", _recipients(planned, ids, server))
    _problem(problems, "Sent Items not holding each mail once", _sent_items(bed, route, planned, ids))
    if route is Route.SMTP:
        _problem(problems, "inboxes not holding each mail once", _inboxes(bed, planned, ids, set(senders)))
    _problem(problems, "kills that disagree with the rows", _kills_agree(kills, rows))
    hits = Counter(kill.hit for kill in kills)
    missed = [hit.value for hit in WINDOW_KINDS if not hits[hit]]
    _problem(problems, "windows no kill landed in (the cell proves nothing about them)", missed)
    exits = [f"{kill.log_name} exited {kill.exit_code}" for kill in kills if kill.exit_code not in (None, 0)]
    _problem(problems, "killed processes that failed on their own first", exits)
    confirmed = sum(1 for row in rows.values() if CONFIRMED_NOTE in (row.last_error or ""))
    parked = sum(1 for row in rows.values() if row.status is OutboxStatus.UNKNOWN)
    return Verdict(len(lost), len(twice), confirmed, parked, tuple(problems))


def _problem(problems: list[str], what: str, examples: Sequence[str]) -> None:
    if examples:
        shown = ", ".join(examples[:SHOWN]) + (", ..." if len(examples) > SHOWN else "")
        problems.append(f"{len(examples)} {what}: {shown}")


def _recipients(planned: Sequence[PlannedMail], ids: dict[int, str | None], server: Received) -> list[str]:
    wrong = []
    for mail in planned:
        for recipient in mail.recipients:
            count = server.deliveries[(ids[mail.outbox_id], recipient.casefold())]
            if count != 1:
                wrong.append(f"row {mail.outbox_id} to {recipient} x{count}")
    return wrong


def _sent_items(
    bed: CrashBed, route: Route, planned: Sequence[PlannedMail], ids: dict[int, str | None]
) -> list[str]:
    wrong = []
    for sender in sorted({mail.sender for mail in planned}):
        if route is Route.SMTP:
            raws = [message.raw for message in bed.dovecot.messages(sender, SENT_ITEMS)]
        else:
            raws = [message.raw for message in bed.graph.messages(sender, SENT_ITEMS)]
        kept = Counter(message_id_of(raw) for raw in raws)
        expected = Counter({ids[mail.outbox_id]: 1 for mail in planned if mail.sender == sender})
        if kept != expected:
            extra, missing = sum((kept - expected).values()), sum((expected - kept).values())
            wrong.append(f"{sender}: {extra} extra, {missing} missing")
    return wrong


def _inboxes(
    bed: CrashBed, planned: Sequence[PlannedMail], ids: dict[int, str | None], local: set[str]
) -> list[str]:
    inboxes = {
        mailbox: Counter(message_id_of(m.raw) for m in bed.dovecot.messages(mailbox)) for mailbox in local
    }
    wrong = []
    for mail in planned:
        for recipient in mail.recipients:
            if recipient in local and inboxes[recipient][ids[mail.outbox_id]] != 1:
                wrong.append(
                    f"row {mail.outbox_id} in {recipient} x{inboxes[recipient][ids[mail.outbox_id]]}"
                )
    return wrong


def _kills_agree(kills: Sequence[Kill], rows: dict[int, OutboxRow]) -> list[str]:
    wrong = []
    for kill in kills:
        row = rows.get(kill.outbox_id) if kill.outbox_id is not None else None
        if row is None:
            continue
        if kill.hit is Hit.AFTER_ACCEPT and CONFIRMED_NOTE not in (row.last_error or ""):
            wrong.append(f"{kill.describe()} but the row was not confirmed by the lookup ({row.last_error})")
        if kill.hit is Hit.BEFORE_ACCEPT and row.attempts < 2:
            wrong.append(f"{kill.describe()} but the row was submitted only {row.attempts} time(s)")
    return wrong
