"""Microsoft Graph benchmark of ``wicbox run`` against its floor (not a test; prints a table).

    python -m tools.bench.graph_bench [--mails N] [--no-imap] [--corpus DIR]
    python -m tools.bench.run_bench --graph [--mails N] [--corpus DIR]

Starts the loopback test bed of the IMAP benchmark (identity-platform emulator, Dovecot, a private
PostgreSQL over ODBC) plus the Graph emulator on the same 127.x.y.z address, and puts the same N
mixed mails (default 1000) into the Graph emulator's global mailbox before each contender:

* the floor: one delegated Graph token from the identity platform (msal), then a plain loop with
  requests: list the Inbox (``$select=id``, ``$top=1000``, following ``@odata.nextLink``) and
  ``GET /me/messages/{id}/$value`` for each, 4 requests at once like the adapter, bytes discarded.
  It runs as a child process of this same module (``graph_bench floor ...``), which therefore
  imports only the standard library and requests at the top; the test bed is imported where it
  is used, so the floor pays no import it does not need;
* ``wicbox run`` over Graph (SCOPE Mail.ReadWrite, so AUTO picks GRAPH; delegated permissions)
  end to end into PostgreSQL over ODBC with MOVE to WICBOX/Processed: first on a fresh state
  directory (the token comes from the identity platform), then warm (the measured one).

Unless ``--no-imap``, the same mails then go through the IMAP benchmark's floor and warm
``wicbox run`` on Dovecot, for comparison. Every result is checked (all N fetched or filed, the
Inbox empty, all N in WICBOX/Processed), so a broken run cannot pass as a fast one. Targets as for
IMAP: ``wicbox run`` within 2x of the floor; peak memory under 3x the largest mail + 80 MB.
Everything started is stopped and removed at the end, also on Ctrl-C and SIGTERM.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import requests

if TYPE_CHECKING:
    from tools.bench.bench_bed import BenchBed
    from tools.bench.bench_report import CaseResult
    from tools.bench.contenders import Measurement, WicboxInstall
    from tools.testbed.graph import GraphEmulator

FLOOR_CONCURRENCY = 4  # Exchange Online's limit per mailbox, what the adapter uses
FLOOR_PAGE = 1000  # Graph's largest $top for messages
GRAPH_SCOPE = "https://graph.microsoft.com/Mail.ReadWrite"
INBOX = "Inbox"
PROCESSED = "WICBOX/Processed"
FIRST_RECEIVED = dt.datetime(2026, 11, 2, 9, 0, tzinfo=dt.timezone.utc)
REQUEST_TIMEOUT_S = (10.0, 60.0)
DEFAULT_MAILS = 1000

Progress = Callable[[str], None]


# ---- the floor (a child process: standard library and requests only) ---------------------------
def floor_session(ca_file: str, token: str) -> requests.Session:
    session = requests.Session()
    session.verify = ca_file
    session.trust_env = False  # REQUESTS_CA_BUNDLE would override ``verify``
    session.headers["Authorization"] = f"Bearer {token}"
    return session


def list_inbox(session: requests.Session, api_root: str) -> list[str]:
    """Every message id of the Inbox, page by page."""
    url: str | None = f"{api_root}/me/mailFolders/inbox/messages"
    params: dict[str, str] | None = {"$select": "id", "$top": str(FLOOR_PAGE)}
    ids: list[str] = []
    while url is not None:
        reply = session.get(url, params=params, timeout=REQUEST_TIMEOUT_S)
        reply.raise_for_status()
        page = reply.json()
        ids += [str(item["id"]) for item in page["value"]]
        url, params = page.get("@odata.nextLink"), None
    return ids


def fetch_all(ca_file: str, token: str, api_root: str, ids: Sequence[str]) -> int:
    """``GET /me/messages/{id}/$value`` for every id, FLOOR_CONCURRENCY at once; the bytes read."""
    local = threading.local()

    def fetch(message_id: str) -> int:
        if not hasattr(local, "session"):
            local.session = floor_session(ca_file, token)
        url = f"{api_root}/me/messages/{quote(message_id, safe='')}/$value"
        reply = local.session.get(url, timeout=REQUEST_TIMEOUT_S)
        reply.raise_for_status()
        return len(reply.content)

    with ThreadPoolExecutor(FLOOR_CONCURRENCY, thread_name_prefix="floor") as pool:
        return sum(pool.map(fetch, ids))


def floor_main(argv: list[str]) -> int:
    """``graph_bench floor --url BASE --ca CA.pem --token-file F``: one JSON line on stdout."""
    arguments = argparse.ArgumentParser(prog="graph_bench floor", description="the Graph floor fetch")
    arguments.add_argument("--url", required=True, help="the Graph base URL (without /v1.0)")
    arguments.add_argument("--ca", required=True, help="CA certificate (PEM) of the Graph server")
    arguments.add_argument("--token-file", required=True, type=Path)
    options = arguments.parse_args(argv)
    token = options.token_file.read_text(encoding="ascii").strip()
    api_root = f"{options.url.rstrip('/')}/v1.0"
    started = time.perf_counter()
    with floor_session(options.ca, token) as session:
        ids = list_inbox(session, api_root)
    listed = time.perf_counter()
    size = fetch_all(options.ca, token, api_root, ids)
    ended = time.perf_counter()
    figures = {
        "mails": len(ids),
        "bytes": size,
        "list_seconds": round(listed - started, 4),
        "fetch_seconds": round(ended - listed, 4),
    }
    print(json.dumps(figures))
    return 0


# ---- the Graph mailbox ---------------------------------------------------------------------------
def restore_graph_inbox(graph: GraphEmulator, upn: str, mails: Sequence[bytes]) -> int:
    """A fresh global mailbox holding ``mails`` in its Inbox (one second apart, oldest first);
    the emulator's request log and concurrency peaks start empty too. The Inbox's count."""
    graph.reset()
    graph.add_mailbox(upn)
    for number, raw in enumerate(mails):
        graph.add_message(upn, INBOX, raw, received=FIRST_RECEIVED + dt.timedelta(seconds=number))
    return len(graph.messages(upn, INBOX))


def graph_token(bed: BenchBed) -> str:
    """A delegated Graph token (Mail.ReadWrite) for the benchmark mailbox, through the real msal."""
    import msal

    session = requests.Session()
    session.verify = str(bed.pki.ca_cert)
    session.trust_env = False
    with session:
        app = msal.PublicClientApplication(
            bed.directory.public_client_id,
            authority=bed.directory.authority,
            http_client=session,
            instance_discovery=False,
        )
        answer = app.acquire_token_by_username_password(
            bed.directory.mailbox.upn, bed.directory.mailbox.password, scopes=[GRAPH_SCOPE]
        )
    token = answer.get("access_token")
    if not isinstance(token, str):
        raise RuntimeError(
            f"the emulator refused a token: {answer.get('error')}: {answer.get('error_description')}"
        )
    return token


# ---- the contenders --------------------------------------------------------------------------------
def measure_graph_floor(bed: BenchBed, graph: GraphEmulator, mails: Sequence[bytes]) -> Measurement:
    from tools.bench.contenders import REPO_ROOT, Measurement
    from tools.bench.measure import run_child

    token_file = bed.root / "graph-floor-token"
    token_file.write_text(graph_token(bed), encoding="ascii")
    token_file.chmod(0o600)
    _expect(restore_graph_inbox(graph, bed.mailbox, mails), len(mails), "the Graph Inbox holds")
    argv = [
        sys.executable, "-m", "tools.bench.graph_bench", "floor", "--url", graph.base_url,
        "--ca", str(bed.pki.ca_cert), "--token-file", str(token_file),
    ]  # fmt: skip
    child = run_child(argv, cwd=REPO_ROOT).require_success("the Graph floor fetch")
    answer = json.loads(child.stdout)
    _expect(answer["mails"], len(mails), "the Graph floor fetched")
    if answer["bytes"] != sum(map(len, mails)):
        raise RuntimeError(f"the Graph floor read {answer['bytes']} bytes, not the seeded ones")
    note = f"list {answer['list_seconds']:.2f} s + fetch {answer['fetch_seconds']:.2f} s"
    return Measurement(
        "floor: requests list + $value x4",
        len(mails),
        child.seconds,
        child.peak_rss_mb,
        note,
        child.cpu_seconds,
    )


def graph_parameters(graph: GraphEmulator) -> dict[str, str | None]:
    """On top of the IMAP benchmark's delegated parameters: Mail.ReadWrite, so AUTO picks GRAPH."""
    return {"WICBOX_MAILCLIENT_SCOPE": "Mail.ReadWrite", "WICBOX_MAILCLIENT_GRAPHURL": graph.base_url}


def prepare_graph_database(bed: BenchBed, graph: GraphEmulator, install: WicboxInstall, count: int) -> str:
    from tools.bench.contenders import odbc_target, prepare_database
    from wicbox_bridge.store import open_store
    from wicbox_bridge.store.parameters import set_parameter

    database = prepare_database(bed, install, count)
    with open_store(odbc_target(bed.postgres, database)) as store:
        for name, value in graph_parameters(graph).items():
            set_parameter(store, name, value)
    return database


def measure_graph_wicbox(
    bed: BenchBed, graph: GraphEmulator, install: WicboxInstall, label: str, mails: Sequence[bytes]
) -> Measurement:
    """One checked ``wicbox run`` over Graph into a fresh database."""
    from tools.bench.contenders import Measurement, filed_count, run_wicbox

    count = len(mails)
    database = prepare_graph_database(bed, graph, install, count)
    try:
        _expect(restore_graph_inbox(graph, bed.mailbox, mails), count, "the Graph Inbox holds")
        child = run_wicbox(install, count).require_success("wicbox run over Graph")
        report: dict[str, Any] = json.loads(child.stdout)
        _expect(report["counts"]["filed"], count, "wicbox run over Graph filed")
        _expect(filed_count(bed, database), count, "the database holds")
        _expect(len(graph.messages(bed.mailbox, INBOX)), 0, "the Graph Inbox still holds")
        _expect(len(graph.messages(bed.mailbox, PROCESSED)), count, f"{PROCESSED} holds")
        throttled = graph.request_log.count(status=429)
    finally:
        bed.postgres.drop_database(database)
    note = f"run report {report['seconds']:.2f} s; {throttled} throttled request(s)"
    return Measurement(label, count, child.seconds, child.peak_rss_mb, note, child.cpu_seconds)


def measure_graph(
    bed: BenchBed, graph: GraphEmulator, mails: Sequence[bytes], progress: Progress
) -> CaseResult:
    from tools.bench.bench_report import CaseResult
    from tools.bench.contenders import new_install

    install = new_install(bed)
    progress("Graph: floor")
    floor = measure_graph_floor(bed, graph, mails)
    progress("Graph: wicbox run, first run (token from the identity platform)")
    first = measure_graph_wicbox(bed, graph, install, "wicbox run, first (new token)", mails)
    progress("Graph: wicbox run, warm")
    warm = measure_graph_wicbox(bed, graph, install, "wicbox run, warm (measured)", mails)
    sizes = list(map(len, mails))
    return CaseResult("Graph, mixed mails", len(mails), sum(sizes), max(sizes), floor, warm, None, (first,))


def measure_imap(bed: BenchBed, mails: Sequence[bytes], progress: Progress) -> CaseResult:
    """The IMAP benchmark's floor and ``wicbox run`` (first and warm) on the same mails."""
    from tools.bench.bench_bed import delegated_token, seed_template
    from tools.bench.bench_report import CaseResult
    from tools.bench.contenders import measure_floor, measure_wicbox, new_install

    progress(f"IMAP: seeding {len(mails)} mails into Dovecot")
    seed_template(bed, mails)
    token_file = bed.root / "imap-floor-token"
    token_file.write_text(delegated_token(bed), encoding="ascii")
    token_file.chmod(0o600)
    progress("IMAP: floor")
    floor = measure_floor(bed, token_file, len(mails))
    install = new_install(bed)
    progress("IMAP: wicbox run, first run")
    first = measure_wicbox(bed, install, "wicbox run, first (new token)", len(mails))
    progress("IMAP: wicbox run, warm")
    warm = measure_wicbox(bed, install, "wicbox run, warm (measured)", len(mails))
    sizes = list(map(len, mails))
    return CaseResult("IMAP, the same mails", len(mails), sum(sizes), max(sizes), floor, warm, None, (first,))


# ---- the run and its report ------------------------------------------------------------------------
@dataclass(frozen=True)
class GraphOptions:
    mails: int = DEFAULT_MAILS
    corpus: Path | None = None
    imap: bool = True


@contextmanager
def graph_bed() -> Iterator[tuple[BenchBed, GraphEmulator]]:
    """The IMAP benchmark's test bed and the Graph emulator on its address; all stopped at the end."""
    from tools.bench.bench_bed import running_bed
    from tools.testbed.graph import GraphEmulator

    with running_bed() as bed, GraphEmulator(bed.pki, bed.imap_host) as graph:
        yield bed, graph


def run_graph(options: GraphOptions, progress: Progress) -> list[CaseResult]:
    """Start the test bed, measure, stop it; the Graph case (and the IMAP one unless ``--no-imap``)."""
    from tools.bench.bench_mails import benchmark_mails, corpus_root

    progress("generating mails")
    mails = benchmark_mails(options.mails, corpus_root(options.corpus))
    progress("starting the test bed (identity platform, Graph emulator, Dovecot, PostgreSQL)")
    with graph_bed() as (bed, graph):
        progress(f"Graph: {len(mails)} mails, {sum(map(len, mails)) / 2**20:.1f} MB")
        cases = [measure_graph(bed, graph, mails, progress)]
        if options.imap:
            cases.append(measure_imap(bed, mails, progress))
        progress("stopping the test bed")
    return cases


def comparison_lines(graph: CaseResult, imap: CaseResult) -> list[str]:
    """Graph against IMAP on the same mails: the floors and the measured runs."""
    return [
        "",
        "== Graph vs IMAP on the same mails",
        f"  floor:               Graph {graph.floor.seconds:.2f} s, IMAP {imap.floor.seconds:.2f} s "
        f"({graph.floor.seconds / imap.floor.seconds:.2f}x)",
        f"  wicbox run (warm):   Graph {graph.wicbox.seconds:.2f} s, IMAP {imap.wicbox.seconds:.2f} s "
        f"({graph.wicbox.seconds / imap.wicbox.seconds:.2f}x)",
        f"  wicbox run minus its floor: Graph {graph.wicbox.seconds - graph.floor.seconds:.2f} s, "
        f"IMAP {imap.wicbox.seconds - imap.floor.seconds:.2f} s",
    ]


def report(cases: Sequence[CaseResult]) -> list[str]:
    from tools.bench.bench_report import report_lines

    lines = report_lines(cases)
    if len(cases) == 2:
        lines += comparison_lines(cases[0], cases[1])
    return lines


def progress_to_stderr(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def main_with(options: GraphOptions) -> int:
    """Run and print; 130 when interrupted (everything started is stopped and removed)."""
    started = time.monotonic()
    load_before = os.getloadavg()[0]
    try:
        cases = run_graph(options, progress_to_stderr)
    except KeyboardInterrupt:
        progress_to_stderr("interrupted; the test bed is stopped and its files removed")
        return 130
    for line in report(cases):
        print(line)
    print(
        f"\nmachine: {os.cpu_count()} CPUs; 1-minute load average {load_before:.2f} before, "
        f"{os.getloadavg()[0]:.2f} after; total benchmark time {time.monotonic() - started:.0f} s"
    )
    return 0


def _expect(actual: int, expected: int, what: str) -> None:
    if actual != expected:
        raise RuntimeError(f"{what} {actual} mails, expected {expected}: the measurement is void")


def _mail_count(text: str) -> int:
    from wicbox_bridge.commands.run import MAX_MAILS_LIMIT

    value = int(text)
    if not 2 <= value <= MAX_MAILS_LIMIT:
        raise argparse.ArgumentTypeError(f"between 2 and {MAX_MAILS_LIMIT} (the cap of one wicbox run)")
    return value


def parse_options(argv: list[str] | None) -> GraphOptions:
    arguments = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    arguments.add_argument("--mails", type=_mail_count, default=DEFAULT_MAILS, help="mails (default 1000)")
    arguments.add_argument("--no-imap", dest="imap", action="store_false", help="skip the IMAP comparison")
    arguments.add_argument("--corpus", type=Path, help="the test corpus (default: WICBOX_MAIL_CORPUS)")
    parsed = arguments.parse_args(argv)
    return GraphOptions(parsed.mails, parsed.corpus, parsed.imap)


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    arguments = sys.argv[1:] if argv is None else argv
    if arguments[:1] == ["floor"]:
        return floor_main(arguments[1:])
    options = parse_options(arguments)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _interrupt)
    return main_with(options)


if __name__ == "__main__":
    sys.exit(main())
