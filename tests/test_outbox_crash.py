"""`wicbox send` killed with SIGKILL delivers every outbox mail exactly once: the crash matrix.

Route {SMTP, Graph} x database {SQLite, PostgreSQL}. In each cell real ``wicbox send`` processes are
killed before the server accepted a mail, right after it accepted one and before the SENT update was
committed, while an interrupted mail is being looked up in Sent Items, and at random moments; rows go
out from several sending mailboxes (MULTIPLE mode, each under Exchange's 30 a minute) to external
recipients, to the sending mailbox itself and to another mailbox. Afterwards nothing is lost or sent
twice, each mail is once in its sender's Sent Items and once with each recipient, nothing is held as
UNKNOWN, and every window was hit (tools/crash/verdict.py). The cells run here at CI size;
``python -m tools.crash_matrix`` runs the same code at full size. Set WICBOX_CRASH_SEED to replay
the aims of a failed run (the seed is printed).
"""

from __future__ import annotations

import os
import random

import pytest

from tests.plugins.postgres import BACKENDS
from tests.plugins.wic import WicInstallation
from tools.crash.bed import CrashBed, Installation, Route
from tools.crash.cell import SEED_VARIABLE, CellPlan, run_cell
from tools.crash.kills import Hit
from tools.crash.report import table
from tools.testbed.dovecot import DovecotServer
from tools.testbed.graph import GraphEmulator
from tools.testbed.idp import IdentityPlatformEmulator, SeededDirectory
from tools.testbed.pki import LoopbackPki
from tools.testbed.smtp import SmtpServer

pytestmark = [pytest.mark.testbed, pytest.mark.slow, pytest.mark.crash]

CI_ROWS = 60
CI_KILLS = 9  # per cell, four cells (10 s each with 12); tools.crash_matrix runs the larger plans


@pytest.fixture
def crash_bed(
    loopback_pki: LoopbackPki,
    idp_clean: IdentityPlatformEmulator,
    idp_directory: SeededDirectory,
    dovecot_clean: DovecotServer,
    smtp_clean: SmtpServer,
    graph_clean: GraphEmulator,
) -> CrashBed:
    return CrashBed(loopback_pki, idp_clean, idp_directory, dovecot_clean, smtp_clean, graph_clean)


def installation_of(wic: WicInstallation) -> Installation:
    return Installation(wic.config, wic.target, wic.cli_runner.home, wic.cli_runner.cwd)


@pytest.mark.parametrize("wic_backend", BACKENDS)
@pytest.mark.parametrize("route", list(Route), ids=[route.value.lower() for route in Route])
def test_killed_sends_deliver_every_mail_exactly_once(
    crash_bed: CrashBed, wic: WicInstallation, route: Route, wic_backend: str
) -> None:
    seed = int(os.environ.get(SEED_VARIABLE) or random.SystemRandom().randrange(1 << 30))
    print(f"{SEED_VARIABLE}={seed}")
    result = run_cell(crash_bed, installation_of(wic), CellPlan(route, CI_ROWS, CI_KILLS, seed))
    print("\n".join(table([result])))
    context = f"({result.replay()}) kills: {result.kill_log()}"
    assert result.problems == (), f"{result.problems} {context}"
    verdict = result.verdict
    assert (verdict.lost, verdict.twice, verdict.parked) == (0, 0, 0), context
    assert verdict.confirmed >= result.hits[Hit.AFTER_ACCEPT] >= 1, context
