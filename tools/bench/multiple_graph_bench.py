"""MULTIPLE per-mailbox cost over Microsoft Graph (issue 19): the cases of
:mod:`tools.bench.multiple_bench` on the Graph emulator instead of Dovecot (not a test; prints a table).

    python -m tools.bench.multiple_graph_bench [--backend sqlite|postgresql|both] [--baseline REV]
                                               [--mailboxes N] [--mails-each M] [--empty E]
                                               [--repeats R] [--workers W] [--corpus DIR]

The test bed of ``multiple_bench`` plus the Graph emulator on the same address; application
permissions (client secret, one app token, ``/users/{mailbox}``), SCOPE Mail.ReadWrite so AUTO
picks Graph. Per backend (a fresh database for every run) three cases: SINGLE (500 mails in the
global mailbox), MULTIPLE (the same mails as 100 project mailboxes x 5) and EMPTY (500 project
mailboxes without mail: the run lists them in ``$batch`` requests of 20 and opens none). Before
each run the emulator is reset and holds exactly the case's mailboxes and mails (one second apart,
oldest first). Every run is checked (all mails filed, every Inbox empty, no mailbox failed).
Targets as over IMAP: MULTIPLE at most 1.5x of SINGLE, EMPTY under 30 s. ``--baseline REV`` and
``--revision REV`` as in ``multiple_bench``.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass

from tools.bench.bench_bed import BenchBed
from tools.bench.bench_mails import benchmark_mails, corpus_root
from tools.bench.contenders import WicboxInstall, new_install
from tools.bench.graph_bench import FIRST_RECEIVED, INBOX, graph_bed
from tools.bench.modes_bench import ModeCase
from tools.bench.multiple_bench import (
    Options,
    Progress,
    Row,
    Tree,
    _cap,
    _expect,
    _filed,
    _interrupt,
    build_cases,
    export_tree,
    fresh_database,
    parse_options,
    progress_to_stderr,
    report_lines,
    run_wicbox,
)
from tools.testbed.graph import GraphEmulator
from wicbox_bridge.config.dbtarget import DatabaseTarget
from wicbox_bridge.store import open_store
from wicbox_bridge.store.parameters import set_parameter


@dataclass(frozen=True)
class GraphBed:
    bed: BenchBed
    graph: GraphEmulator


def seed_graph(graph: GraphEmulator, global_mailbox: str, case: ModeCase) -> int:
    """A fresh emulator holding the case's mailboxes (and the global one) and mails; the mails."""
    graph.reset()
    graph.add_mailbox(global_mailbox)
    moment = FIRST_RECEIVED
    for _project, mailbox, mails in case.mailboxes:
        if mailbox != global_mailbox:
            graph.add_mailbox(mailbox)
        for raw in mails:
            graph.add_message(mailbox, INBOX, raw, received=moment)
            moment += dt.timedelta(seconds=1)
    return sum(len(graph.messages(mailbox, INBOX)) for _project, mailbox, _mails in case.mailboxes)


def use_graph(target: DatabaseTarget, graph: GraphEmulator) -> None:
    """On top of multiple_bench's application permissions: Graph (AUTO picks it for Mail.ReadWrite)."""
    with open_store(target) as store:
        set_parameter(store, "WICBOX_MAILCLIENT_SCOPE", "Mail.ReadWrite")
        set_parameter(store, "WICBOX_MAILCLIENT_GRAPHURL", graph.base_url)


def timed_run(
    beds: GraphBed, install: WicboxInstall, tree: Tree, backend: str, case: ModeCase, options: Options
) -> float:
    """One checked ``wicbox run`` of the case over Graph into a fresh database; its wall time."""
    bed, graph = beds.bed, beds.graph
    with fresh_database(bed, install, backend, case, options.workers) as target:
        use_graph(target, graph)
        _expect(seed_graph(graph, bed.mailbox, case), case.mail_count, "the Graph Inboxes hold")
        what = f"wicbox run over Graph ({tree.label}, {backend}, {case.mode})"
        child = run_wicbox(install, tree, _cap(case)).require_success(what)
        report = json.loads(child.stdout)
        _expect(report["counts"]["failed_mailboxes"], 0, f"{what} failed in")
        _expect(report["counts"]["mailboxes"], len(case.mailboxes), f"{what} read")
        _expect(report["counts"]["filed"], case.mail_count, f"{what} filed")
        _expect(_filed(target), case.mail_count, "the database holds")
        left = sum(len(graph.messages(mailbox, INBOX)) for _project, mailbox, _mails in case.mailboxes)
        _expect(left, 0, "the Graph Inboxes still hold")
    return child.seconds


def measure(
    beds: GraphBed, tree: Tree, backend: str, case: ModeCase, options: Options, progress: Progress
) -> Row:
    install = new_install(beds.bed)
    progress(f"{tree.label} {backend} {case.mode} (Graph): cold run")
    timed_run(beds, install, tree, backend, case, options)
    warm = []
    for number in range(1, options.repeats + 1):
        progress(f"{tree.label} {backend} {case.mode} (Graph): warm run {number} of {options.repeats}")
        warm.append(timed_run(beds, install, tree, backend, case, options))
    return Row(backend, tree.label, case.mode, len(case.mailboxes), case.mail_count, tuple(warm))


def run_multiple_graph(options: Options, progress: Progress) -> list[str]:
    progress("generating mails")
    mails = benchmark_mails(options.mailboxes * options.mails_each, corpus_root(options.corpus))
    progress("starting the test bed (identity platform, Graph emulator, Dovecot, PostgreSQL)")
    rows: list[Row] = []
    with graph_bed() as (bed, graph):
        beds = GraphBed(bed, graph)
        trees = [Tree("working tree") if options.revision is None else export_tree(bed, options.revision)]
        if options.baseline is not None:
            trees.insert(0, export_tree(bed, options.baseline))
        cases = build_cases(bed, mails, options)
        for backend in options.backends:  # each case before and after back to back: the same load
            rows += [
                measure(beds, tree, backend, case, options, progress) for case in cases for tree in trees
            ]
        progress("stopping the test bed")
    lines = report_lines(rows, options)
    lines[0] = lines[0].replace(
        "== MULTIPLE per-mailbox cost:", "== MULTIPLE per-mailbox cost over Graph:", 1
    )
    return lines


def main_with(options: Options) -> int:
    """Run and print; 130 when interrupted (everything started is stopped and removed)."""
    load_before = os.getloadavg()[0]
    started = time.monotonic()
    try:
        lines = run_multiple_graph(options, progress_to_stderr)
    except KeyboardInterrupt:
        progress_to_stderr("interrupted; the test bed is stopped and its files removed")
        return 130
    for line in lines:
        print(line)
    print(
        f"machine: {os.cpu_count()} CPUs; 1-minute load average {load_before:.2f} before, "
        f"{os.getloadavg()[0]:.2f} after; total {time.monotonic() - started:.0f} s"
    )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    options = parse_options(None if argv is None else list(argv))
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _interrupt)
    return main_with(options)


if __name__ == "__main__":
    sys.exit(main())
