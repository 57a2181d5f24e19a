"""Where a kill is aimed, and what it hit.

A kill is aimed by following the process's log (``-v``): before the server accepted the k-th mail
(a random moment after the outbox logged its submission), right after the server's answer for the
k-th mail (SMTP's ``250`` after DATA, Graph's ``202``: the SENT update is then in progress, slowed
down by a test trigger), during the lookup of the j-th interrupted mail, or at a random moment.

What it hit is read from the database and the server afterwards, not from the aim: once the server
has finished with the killed client, a row this process claimed that is still SENDING (one that was
not SENDING before, or an interrupted one it looked up, did not find and took again) was killed
before the server accepted it (the server does not have it) or after (it does); an interrupted row
still SENDING whose lookup was the last thing the process logged about it was killed during the
lookup; anything else was a kill with nothing in flight.
"""

from __future__ import annotations

import random
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import Enum

from tools.crash.bed import CrashBed, Installation, Route
from tools.crash.process import SendProcess, start_send
from wicbox_bridge.store.outbox import OutboxStatus, rows_with_status


class Aim(str, Enum):
    BEFORE_ACCEPT = "before accept"
    AFTER_ACCEPT = "after accept"
    DURING_LOOKUP = "during lookup"
    ANYWHERE = "anywhere"


class Hit(str, Enum):
    """What a kill interrupted, as observed."""

    BEFORE_ACCEPT = "before accept"
    AFTER_ACCEPT = "after accept"
    DURING_LOOKUP = "during lookup"
    ELSEWHERE = "elsewhere"  # nothing in flight: start-up, sign-in, between two mails
    FINISHED = "finished first"  # the process ended before the kill came


WINDOW_KINDS = (Hit.BEFORE_ACCEPT, Hit.AFTER_ACCEPT, Hit.DURING_LOOKUP)
SUBMITTING = re.compile(r"wicbox\.outbox: Outbox mail \d+: submitting ")
ACCEPTED = {
    Route.SMTP: re.compile(r"wicbox\.smtp: SMTP DATA: 250 "),
    Route.GRAPH: re.compile(r"wicbox\.graph: Graph sendMail: 202 Accepted"),
}
LOOKING = re.compile(r"wicbox\.outbox: Outbox mail (\d+) was interrupted during its submission: looking for")
SENT_AGAIN = re.compile(r"wicbox\.outbox: Outbox mail (\d+) is not in the sending mailbox: it is sent again")
# From the outbox's "submitting" line to the server's answer takes some 15-40 ms on the SMTP route
# (connection, TLS, AUTH, MAIL, RCPT, DATA, the server storing the mail) and 6-15 ms on the Graph
# route; a kill aimed before acceptance lands at a random moment in the first part of that.
BEFORE_ACCEPT_WINDOW_S = {Route.SMTP: 0.008, Route.GRAPH: 0.003}
LOOKUP_WINDOW_S = 0.004
ANYWHERE_S = 1.5
AIM_WEIGHTS = {Aim.BEFORE_ACCEPT: 3, Aim.AFTER_ACCEPT: 3, Aim.DURING_LOOKUP: 2, Aim.ANYWHERE: 2}


@dataclass(frozen=True)
class Kill:
    """One killed ``wicbox send``: the aim, what it hit, the row it hit (if any) and the process's log."""

    number: int
    aim: Aim
    target: int
    hit: Hit
    outbox_id: int | None
    exit_code: int | None  # when the process ended on its own
    log_name: str

    def describe(self) -> str:
        row = f", row {self.outbox_id}" if self.outbox_id is not None else ""
        return f"#{self.number} aimed {self.aim.value} ({self.target}): {self.hit.value}{row}"


def plan_aims(kills: int, rng: random.Random) -> list[Aim]:
    """Every window aimed at about one kill in six (at least once), the rest drawn by weight; the
    last kills go to windows no kill has hit yet (:func:`cover_missing_windows`)."""
    each = max(1, kills // 6)
    aims = [Aim.BEFORE_ACCEPT, Aim.AFTER_ACCEPT, Aim.DURING_LOOKUP] * each
    aims += rng.choices(list(AIM_WEIGHTS), weights=list(AIM_WEIGHTS.values()), k=max(0, kills - len(aims)))
    rng.shuffle(aims)
    return aims[:kills]


def cover_missing_windows(aims: list[Aim], done: Sequence[Kill]) -> None:
    """When no more kills are left than windows not hit yet, aim the rest at those windows."""
    hit = {kill.hit for kill in done}
    missing = [Aim(window.value) for window in WINDOW_KINDS if window not in hit]
    if missing and len(aims) <= len(missing):
        aims[:] = missing[: len(aims)]


def take_aim(aims: list[Aim], lookup_possible: bool) -> Aim:
    """The next aim; a lookup needs an interrupted row, so without one it waits behind another aim."""
    if lookup_possible or aims[0] is not Aim.DURING_LOOKUP:
        return aims.pop(0)
    for index, aim in enumerate(aims):
        if aim is not Aim.DURING_LOOKUP:
            return aims.pop(index)
    aims.pop(0)
    return Aim.AFTER_ACCEPT


def sending_rows(installation: Installation) -> dict[int, str | None]:
    """The rows SENDING now: OUTBOX_ID to MESSAGE_ID."""
    with installation.store() as store:
        return {row.outbox_id: row.message_id for row in rows_with_status(store, OutboxStatus.SENDING)}


@dataclass(frozen=True)
class KillContext:
    bed: CrashBed
    installation: Installation
    route: Route
    rng: random.Random
    max_target: int
    at_server: Callable[[], set[str]]  # the Message-IDs the route's server has accepted


def kill_once(context: KillContext, number: int, aim: Aim) -> Kill:
    """Start ``wicbox send``, kill it as aimed, and find out what the kill hit."""
    rng = context.rng
    before = sending_rows(context.installation)
    target = (
        rng.randint(1, max(1, len(before)))
        if aim is Aim.DURING_LOOKUP
        else rng.randint(1, context.max_target)
    )
    name = f"killed-{number:03d}"
    mark = context.bed.server_mark(context.route)
    process = start_send(context.installation, name)
    _aim(process, context.route, aim, target, rng)
    alive = process.kill()
    context.bed.wait_until_idle(context.route, since=mark)
    context.installation.wait_until_database_idle()
    after = sending_rows(context.installation)
    if not alive:
        return Kill(number, aim, target, Hit.FINISHED, None, process.process.returncode, name)
    hit, outbox_id = _hit(process, before, after, context.at_server)
    return Kill(number, aim, target, hit, outbox_id, None, name)


def _aim(process: SendProcess, route: Route, aim: Aim, target: int, rng: random.Random) -> None:
    if aim is Aim.ANYWHERE:
        time.sleep(rng.uniform(0.0, ANYWHERE_S))
    elif aim is Aim.AFTER_ACCEPT:
        process.wait_for(lambda: process.count(ACCEPTED[route]) >= target)
    elif aim is Aim.BEFORE_ACCEPT:
        if process.wait_for(lambda: process.count(SUBMITTING) >= target):
            time.sleep(rng.uniform(0.0, BEFORE_ACCEPT_WINDOW_S[route]))
    elif process.wait_for(lambda: process.count(LOOKING) >= target):
        time.sleep(rng.uniform(0.0, LOOKUP_WINDOW_S))


def _hit(
    process: SendProcess,
    before: dict[int, str | None],
    after: dict[int, str | None],
    at_server: Callable[[], set[str]],
) -> tuple[Hit, int | None]:
    taken_again = {int(match[1]) for line in process.lines() if (match := SENT_AGAIN.search(line))}
    claimed = sorted(outbox_id for outbox_id in after if outbox_id not in before or outbox_id in taken_again)
    if len(claimed) > 1:
        raise AssertionError(f"one process had {len(claimed)} mails in flight at once: {claimed}")
    if claimed:
        message_id = after[claimed[0]]
        accepted = message_id is not None and message_id in at_server()
        return (Hit.AFTER_ACCEPT if accepted else Hit.BEFORE_ACCEPT), claimed[0]
    looked_up = _last_looked_up(process)
    if looked_up is not None and looked_up in after:
        return Hit.DURING_LOOKUP, looked_up
    return Hit.ELSEWHERE, None


def _last_looked_up(process: SendProcess) -> int | None:
    """The row whose lookup was the last thing the process logged about it (no outcome yet)."""
    lines = process.lines()
    started = [(index, int(match[1])) for index, line in enumerate(lines) if (match := LOOKING.search(line))]
    if not started:
        return None
    index, outbox_id = started[-1]
    mention = re.compile(rf"Outbox mail {outbox_id}\b")
    if any(mention.search(line) for line in lines[index + 1 :]):
        return None
    return outbox_id
