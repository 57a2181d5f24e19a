"""A private, throw-away PostgreSQL cluster for the tests, reached over ODBC (psqlODBC).

The cluster lives in its own temporary directory (data, log, unix socket), listens only on
127.0.0.1 at a free port, runs with ``fsync=off`` and is stopped with a fast shutdown by the code
that started it; the directory is removed afterwards. PostgreSQL refuses to run as root, so when
the tests run as root every server command runs as the ``postgres`` OS user (``runuser``).

Tests connect with a password-authenticated role (``scram-sha-256``) through the
``PostgreSQL Unicode`` ODBC driver, exactly like the product connects to SQL Server.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import re
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pyodbc

from tools.testbed.ports import free_port

ODBC_DRIVER = "PostgreSQL Unicode"
SERVER_OS_USER = "postgres"
ROLE = "wicbox_test"
PG_BIN_ENV = "WICBOX_TEST_PG_BIN"
_DATABASE_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
_START_ATTEMPTS = 3


class PostgresUnavailable(RuntimeError):
    """The PostgreSQL server binaries or the psqlODBC driver are not installed."""


def find_bin_dir() -> Path:
    """The directory holding initdb/pg_ctl: ``$WICBOX_TEST_PG_BIN``, Debian's newest, or PATH."""
    configured = os.environ.get(PG_BIN_ENV)
    if configured:
        if not (Path(configured) / "initdb").exists():
            raise PostgresUnavailable(f"{PG_BIN_ENV}={configured} holds no initdb")
        return Path(configured)
    debian = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parts[-3]))
    if debian:
        return debian[-1].parent
    on_path = shutil.which("initdb")
    if on_path:
        return Path(on_path).parent
    raise PostgresUnavailable(f"initdb not found: install postgresql or set {PG_BIN_ENV}")


def require_odbc_driver() -> None:
    if ODBC_DRIVER not in pyodbc.drivers():
        raise PostgresUnavailable(
            f"ODBC driver {ODBC_DRIVER!r} not installed (installed: {', '.join(pyodbc.drivers()) or 'none'})"
        )


def free_loopback_port() -> int:
    return free_port("127.0.0.1")


def odbc_connection_string(host: str, port: int, database: str, user: str, password: str) -> str:
    """A DSN-less psqlODBC connection string."""
    return f"DRIVER={{{ODBC_DRIVER}}};SERVER={host};PORT={port};DATABASE={database};UID={user};PWD={password}"


def _running_as_root() -> bool:
    return os.geteuid() == 0


def _as_server_user(command: Sequence[str]) -> list[str]:
    if _running_as_root():
        return ["runuser", "-u", SERVER_OS_USER, "--", *command]
    return list(command)


def _give_to_server_user(path: Path) -> None:
    if _running_as_root():
        account = pwd.getpwnam(SERVER_OS_USER)
        os.chown(path, account.pw_uid, account.pw_gid)


def _run(command: Sequence[str], *, stdin: str | None = None) -> None:
    result = subprocess.run(
        _as_server_user(command), input=stdin, capture_output=True, text=True, check=False, timeout=120
    )
    if result.returncode != 0:
        raise RuntimeError(f"{command[0]} failed ({result.returncode}): {result.stderr.strip()}")


@dataclass(frozen=True)
class PostgresServer:
    """A running private cluster. ``password`` is the test role's throw-away password."""

    bin_dir: Path
    base_dir: Path
    host: str
    port: int
    role: str
    password: str

    @property
    def data_dir(self) -> Path:
        return self.base_dir / "data"

    @property
    def log_file(self) -> Path:
        return self.base_dir / "server.log"

    @property
    def pid(self) -> int:
        """The postmaster's process id (first line of postmaster.pid)."""
        return int((self.data_dir / "postmaster.pid").read_text().splitlines()[0])

    def connection_string(self, database: str) -> str:
        return odbc_connection_string(self.host, self.port, database, self.role, self.password)

    def _admin(self) -> pyodbc.Connection:
        return pyodbc.connect(self.connection_string("postgres"), autocommit=True, timeout=10)

    def create_database(self, name: str) -> None:
        """A fresh, empty database owned by the test role (template0: nothing inherited)."""
        _check_database_name(name)
        with contextlib.closing(self._admin()) as conn:
            conn.execute(f"CREATE DATABASE {name} TEMPLATE template0 ENCODING 'UTF8'")

    def drop_database(self, name: str) -> None:
        """Drop a database, ending connections a failed test may have left open."""
        _check_database_name(name)
        with contextlib.closing(self._admin()) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")

    def is_running(self) -> bool:
        """Whether the postmaster of this cluster runs (``pg_ctl status``)."""
        command = _as_server_user([str(self.bin_dir / "pg_ctl"), "-D", str(self.data_dir), "status"])
        return subprocess.run(command, capture_output=True, check=False, timeout=30).returncode == 0

    def halt(self) -> None:
        """Stop the server as an outage would (fast shutdown: open sessions are ended, their
        transactions rolled back) but keep the cluster, so :meth:`start` brings it back."""
        _run([str(self.bin_dir / "pg_ctl"), "-D", str(self.data_dir), "-m", "fast", "-w", "stop"])

    def start(self) -> None:
        """Start a halted cluster again, on the same port and data directory."""
        pg_ctl = str(self.bin_dir / "pg_ctl")
        try:
            _run([pg_ctl, "-D", str(self.data_dir), "-l", str(self.log_file), "-w", "start"])
        except RuntimeError as exc:
            log = self.log_file.read_text(errors="replace")[-2000:] if self.log_file.exists() else ""
            raise RuntimeError(f"PostgreSQL did not start again on port {self.port}: {exc}\n{log}") from exc

    def stop(self) -> None:
        """Fast shutdown by pg_ctl; the postmaster's PID is killed if it is still there."""
        pid = self.pid if (self.data_dir / "postmaster.pid").exists() else None
        with contextlib.suppress(RuntimeError, subprocess.TimeoutExpired):
            _run([str(self.bin_dir / "pg_ctl"), "-D", str(self.data_dir), "-m", "fast", "-w", "stop"])
        if pid is not None:
            _kill_if_alive(pid)
        shutil.rmtree(self.base_dir, ignore_errors=True)


def _check_database_name(name: str) -> None:
    if not _DATABASE_NAME.match(name):
        raise ValueError(f"not a plain lower-case database name: {name!r}")


def _kill_if_alive(pid: int) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


def _init_cluster(bin_dir: Path, base_dir: Path) -> None:
    data_dir = base_dir / "data"
    _run([
        str(bin_dir / "initdb"), "-D", str(data_dir), "-U", "postgres", "-E", "UTF8", "--locale=C",
        "--auth-local=trust", "--auth-host=scram-sha-256", "--no-sync", "--no-instructions",
    ])  # fmt: skip
    (data_dir / "pg_hba.conf").write_text(
        "local all all trust\nhost all all 127.0.0.1/32 scram-sha-256\n", encoding="utf-8"
    )


def _write_settings(data_dir: Path, port: int) -> None:
    settings = {
        "listen_addresses": "'127.0.0.1'",
        "port": str(port),
        "unix_socket_directories": f"'{data_dir}'",
        "fsync": "off",
        "synchronous_commit": "off",
        "full_page_writes": "off",
        "max_connections": "60",
        "shared_buffers": "32MB",
        "logging_collector": "off",
        # An autovacuum worker (a superuser's process) in a database about to be dropped made
        # DROP DATABASE ... WITH (FORCE) fail for the test role ("must be a member of the role
        # whose process is being terminated or member of pg_signal_backend"); the test bed's
        # databases live for minutes and need no vacuuming, and benchmarks run without its CPU.
        "autovacuum": "off",
    }
    text = "".join(f"{key} = {value}\n" for key, value in settings.items())
    (data_dir / "postgresql.auto.conf").write_text(text, encoding="utf-8")


def _start(bin_dir: Path, base_dir: Path) -> int:
    """Start on a free port, retrying when another process grabbed the port first."""
    data_dir = base_dir / "data"
    log_file = base_dir / "server.log"
    last_error: RuntimeError | None = None
    for _ in range(_START_ATTEMPTS):
        port = free_loopback_port()
        _write_settings(data_dir, port)
        try:
            _run([str(bin_dir / "pg_ctl"), "-D", str(data_dir), "-l", str(log_file), "-w", "start"])
        except RuntimeError as exc:
            last_error = exc
            continue
        return port
    log = log_file.read_text(errors="replace")[-2000:] if log_file.exists() else ""
    raise RuntimeError(f"PostgreSQL did not start: {last_error}\n{log}")


def _create_role(bin_dir: Path, base_dir: Path, port: int, password: str) -> None:
    # The password travels on stdin, not on a command line other processes can read.
    sql = f"CREATE ROLE {ROLE} LOGIN CREATEDB PASSWORD '{password}';\n"
    _run(
        [str(bin_dir / "psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", str(base_dir / "data"),
         "-p", str(port), "-U", "postgres", "-d", "postgres", "-f", "-"],
        stdin=sql,
    )  # fmt: skip


def start_postgres() -> PostgresServer:
    """Create and start a private cluster with a password-authenticated role for ODBC."""
    bin_dir = find_bin_dir()
    require_odbc_driver()
    base_dir = Path(tempfile.mkdtemp(prefix="wicbox-pg-"))
    _give_to_server_user(base_dir)
    started = False
    try:
        _init_cluster(bin_dir, base_dir)
        port = _start(bin_dir, base_dir)
        started = True
        password = secrets.token_urlsafe(18)
        _create_role(bin_dir, base_dir, port, password)
        return PostgresServer(bin_dir, base_dir, "127.0.0.1", port, ROLE, password)
    except BaseException:
        if started:
            PostgresServer(bin_dir, base_dir, "127.0.0.1", 0, ROLE, "").stop()
        shutil.rmtree(base_dir, ignore_errors=True)
        raise


@contextlib.contextmanager
def running_postgres() -> Iterator[PostgresServer]:
    server = start_postgres()
    try:
        yield server
    finally:
        server.stop()
