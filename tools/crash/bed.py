"""What a crash cell runs against: the test bed's servers, and one WIC installation."""

from __future__ import annotations

import time
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

from tools.testbed.dovecot import DovecotServer
from tools.testbed.graph import GraphEmulator
from tools.testbed.idp import IdentityPlatformEmulator, SeededDirectory
from tools.testbed.pki import LoopbackPki
from tools.testbed.smtp import SmtpServer
from wicbox_bridge.config.dbtarget import DatabaseTarget, SqliteTarget
from wicbox_bridge.store import DbApiStore, open_store

POLL_S = 0.005
OTHER_SESSIONS = (
    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
)


class Route(str, Enum):
    """WICBOX_MAILCLIENT_SENDPROTOCOL of a cell."""

    SMTP = "SMTP"
    GRAPH = "GRAPH"


@dataclass(frozen=True)
class CrashBed:
    """The running servers (pytest's session fixtures, or the ones tools.crash_matrix starts).

    The SMTP server delivers into Dovecot and keeps a copy in the sender's Sent Items there.
    """

    pki: LoopbackPki
    idp: IdentityPlatformEmulator
    directory: SeededDirectory
    dovecot: DovecotServer
    smtp: SmtpServer
    graph: GraphEmulator

    def server_mark(self, route: Route) -> int:
        """The route's server's connections so far: take it before a process starts."""
        return self.smtp.connections_so_far() if route is Route.SMTP else self.graph.connections_so_far()

    def wait_until_idle(self, route: Route, since: int, timeout_s: float = 10.0) -> None:
        """Wait until the route's server is done with the connections after ``since`` (a killed process's)."""
        server = self.smtp if route is Route.SMTP else self.graph
        if not server.wait_until_idle(timeout_s, since=since):
            raise AssertionError(f"the {route.value} server was still busy {timeout_s:.0f} s after the kill")


@dataclass(frozen=True)
class Installation:
    """One cell's WIC: WicGlobal.config, its database with the schema, the directories of its processes."""

    config: Path
    target: DatabaseTarget
    home: Path  # WICBOX_HOME: the token cache and the machine-wide state (send lock)
    work: Path  # working directory; each process's output is kept here

    @property
    def database(self) -> str:
        return "SQLite" if isinstance(self.target, SqliteTarget) else "PostgreSQL"

    def store(self) -> DbApiStore:
        return open_store(self.target)

    def wait_until_database_idle(self, timeout_s: float = 10.0) -> None:
        """Wait until no other session is connected to the database (after a kill): PostgreSQL
        finishes, or aborts, a killed client's statement on its own; then its outcome is final. (A
        killed process's SQLite transaction is rolled back by the next one to open the file.)"""
        if isinstance(self.target, SqliteTarget):
            return
        deadline = time.monotonic() + timeout_s
        with self.store() as store:
            while (found := store.query_one(OTHER_SESSIONS)) is not None and int(found[0]) > 0:
                if time.monotonic() > deadline:
                    raise AssertionError(
                        f"a killed process's database session lived on for {timeout_s:.0f} s"
                    )
                time.sleep(POLL_S)
