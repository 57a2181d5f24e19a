"""One cell of the crash matrix: prepare, kill ``wicbox send`` again and again, finish, judge."""

from __future__ import annotations

import dataclasses
import random
import time
from collections import Counter
from dataclasses import dataclass

from tools.crash.bed import CrashBed, Installation, Route
from tools.crash.kills import (
    Hit,
    Kill,
    KillContext,
    cover_missing_windows,
    kill_once,
    plan_aims,
    sending_rows,
    take_aim,
)
from tools.crash.process import start_send
from tools.crash.scenario import prepare_cell, senders_for
from tools.crash.verdict import Verdict, judge, received
from wicbox_bridge.store.outbox import OutboxStatus, rows_with_status

SEED_VARIABLE = "WICBOX_CRASH_SEED"  # replays the random choices (aims, targets, moments) of a run
FINISHING_RUNS = 4


@dataclass(frozen=True)
class CellPlan:
    route: Route
    rows: int
    kills: int
    seed: int


@dataclass(frozen=True)
class CellResult:
    plan: CellPlan
    database: str
    kills: tuple[Kill, ...]
    verdict: Verdict
    seconds: float

    @property
    def name(self) -> str:
        return f"{self.plan.route.value} / {self.database}"

    @property
    def hits(self) -> Counter[Hit]:
        return Counter(kill.hit for kill in self.kills)

    @property
    def problems(self) -> tuple[str, ...]:
        return self.verdict.problems

    def replay(self) -> str:
        return f"{SEED_VARIABLE}={self.plan.seed}"

    def kill_log(self) -> str:
        return "; ".join(kill.describe() for kill in self.kills)


def run_cell(bed: CrashBed, installation: Installation, plan: CellPlan) -> CellResult:
    """Run one cell on a fresh installation (schema created, nothing else) and a clean test bed."""
    started = time.monotonic()
    rng = random.Random(f"{plan.seed}/{plan.route.value}/{installation.database}")
    planned = prepare_cell(bed, installation, plan.route, plan.rows)
    senders = senders_for(plan.rows)
    context = KillContext(
        bed,
        installation,
        plan.route,
        rng,
        max_target=plan.rows // plan.kills + 1,  # the kills take about half the rows
        at_server=lambda: received(bed, plan.route, senders).message_ids,
    )
    aims = plan_aims(plan.kills, rng)
    kills: list[Kill] = []
    for number in range(1, plan.kills + 1):
        cover_missing_windows(aims, kills)
        aim = take_aim(aims, lookup_possible=bool(sending_rows(installation)))
        kills.append(kill_once(context, number, aim))
    unfinished = finish(installation)
    verdict = judge(bed, installation, plan.route, planned, kills)
    verdict = dataclasses.replace(verdict, problems=(*unfinished, *verdict.problems))
    return CellResult(plan, installation.database, tuple(kills), verdict, time.monotonic() - started)


def finish(installation: Installation) -> list[str]:
    """``wicbox send`` until nothing is PENDING or SENDING; the problems of runs that did not end well."""
    problems = []
    for attempt in range(FINISHING_RUNS):
        process = start_send(installation, f"finish-{attempt}")
        code = process.wait()
        if code != 0:
            problems.append(f"finishing run {attempt} exited {code}: {process.output()[-2000:]}")
        with installation.store() as store:
            open_rows = [
                rows_with_status(store, status) for status in (OutboxStatus.PENDING, OutboxStatus.SENDING)
            ]
        if not any(open_rows):
            return problems
    problems.append(f"the outbox was not empty after {FINISHING_RUNS} finishing runs")
    return problems
