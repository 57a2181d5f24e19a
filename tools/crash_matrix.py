"""``python -m tools.crash_matrix --kills 50 --rows 200``: the outbox crash matrix at full size.

Starts a test bed of its own (a loopback PKI, the identity-platform emulator on port 443 of a private
127.x.y.z address, Dovecot, the SMTP server that keeps Sent Items in Dovecot, the Graph emulator and,
for the PostgreSQL cells, a private PostgreSQL), runs every cell of route {SMTP, GRAPH} x database
{SQLite, PostgreSQL} with the code of tools/crash (the code tests/test_outbox_crash.py runs at CI
size), and prints per cell: rows, kills by what they hit, lost, sent twice, confirmed by lookup,
parked UNKNOWN and seconds, then any problem. Exit code 0 when every cell is clean, 1 otherwise.
Like the test bed, it runs as root. ``--seed`` (or WICBOX_CRASH_SEED) replays the aims of a run.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import random
import shutil
import sys
import tempfile
import uuid
from collections.abc import Iterator, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

from tools.crash.bed import CrashBed, Installation, Route
from tools.crash.cell import SEED_VARIABLE, CellPlan, CellResult, run_cell
from tools.crash.report import header, line, problems
from tools.testbed.graph import GraphEmulator
from tools.testbed.mailbed import start_mail_bed
from tools.testbed.postgres import PostgresServer, running_postgres
from tools.testbed.wic_config import write_config
from wicbox_bridge.config.dbtarget import DatabaseTarget, OdbcTarget, SqliteTarget
from wicbox_bridge.secret import Secret
from wicbox_bridge.store import init_schema, open_store

DATABASES = ("sqlite", "postgresql")


@dataclass
class MatrixBed:
    """The servers, PostgreSQL once a cell needs it, and the scratch directory of the cells."""

    root: Path
    bed: CrashBed
    stack: ExitStack
    postgres: PostgresServer | None = None

    def clean(self) -> None:
        self.bed.dovecot.reset()
        self.bed.smtp.reset()
        self.bed.graph.reset()

    def database(self, kind: str, name: str) -> tuple[str, DatabaseTarget]:
        if kind == "sqlite":
            path = self.root / name / "wic.db"
            return f"sqlite:///{path}", SqliteTarget(path)
        if self.postgres is None:
            self.postgres = self.stack.enter_context(running_postgres())
        database = f"wicbox_crash_{uuid.uuid4().hex[:12]}"
        self.postgres.create_database(database)
        self.stack.callback(self.postgres.drop_database, database)
        connection = self.postgres.connection_string(database)
        target = OdbcTarget(Secret(connection), "postgresql", f"PostgreSQL database {database}")
        return connection, target

    def installation(self, kind: str, name: str) -> Installation:
        directory = self.root / name
        home, work = directory / "home", directory / "work"
        for folder in (home, work):
            folder.mkdir(parents=True)
        connection, target = self.database(kind, name)
        bed = self.bed
        config = write_config(
            directory / "WicGlobal.config",
            connection,
            allowed_hosts=(
                bed.dovecot.host,
                bed.smtp.host,
                bed.graph.host,
            ),  # the identity emulator shares it
            ca_bundle=bed.pki.ca_cert,
        )
        with open_store(target) as store:
            init_schema(store)
        return Installation(config, target, home, work)


@contextlib.contextmanager
def running_matrix_bed() -> Iterator[MatrixBed]:
    """Start every server; stop them all and remove their files however the block ends."""
    with ExitStack() as stack:
        root = Path(tempfile.mkdtemp(prefix="wicbox-crash-"))
        stack.callback(shutil.rmtree, root, ignore_errors=True)
        bed = start_mail_bed(stack, root)
        graph = stack.enter_context(GraphEmulator(bed.pki, bed.address))
        yield MatrixBed(root, CrashBed(bed.pki, bed.idp, bed.directory, bed.dovecot, bed.smtp, graph), stack)


def parse_arguments(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m tools.crash_matrix", description=__doc__.split("\n")[0])
    parser.add_argument("--kills", type=int, default=50, help="kills per cell (default 50)")
    parser.add_argument("--rows", type=int, default=200, help="outbox rows per cell (default 200)")
    parser.add_argument(
        "--seed", type=int, default=None, help=f"replay a run (default: {SEED_VARIABLE} or random)"
    )
    parser.add_argument("--route", choices=[route.value.lower() for route in Route], action="append")
    parser.add_argument("--database", choices=DATABASES, action="append")
    arguments = parser.parse_args(argv)
    if arguments.kills < 3 or arguments.rows < arguments.kills:
        parser.error("give at least 3 kills and at least as many rows as kills")
    return arguments


def main(argv: Sequence[str] | None = None) -> int:
    arguments = parse_arguments(sys.argv[1:] if argv is None else argv)
    logging.getLogger("mail.log").setLevel(logging.CRITICAL)  # aiosmtpd: clients killed mid-session
    seed = arguments.seed or int(os.environ.get(SEED_VARIABLE) or random.SystemRandom().randrange(1 << 30))
    routes = [Route(route.upper()) for route in arguments.route or [route.value for route in Route]]
    databases = arguments.database or list(DATABASES)
    print(
        f"crash matrix: {arguments.kills} kills over {arguments.rows} rows per cell ({SEED_VARIABLE}={seed})"
    )
    print(header(), flush=True)
    results: list[CellResult] = []
    with running_matrix_bed() as matrix:
        for database in databases:
            for route in routes:
                matrix.clean()
                installation = matrix.installation(database, f"{route.value.lower()}-{database}")
                result = run_cell(
                    matrix.bed, installation, CellPlan(route, arguments.rows, arguments.kills, seed)
                )
                results.append(result)
                print(line(result), flush=True)
    found = problems(results)
    for problem in found:
        print(problem)
    print(
        f"{len(found)} problem(s) ({SEED_VARIABLE}={seed})" if found else "every cell: 0 lost, 0 sent twice"
    )
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
