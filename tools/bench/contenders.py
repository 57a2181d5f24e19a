"""The three contenders of the IMAP benchmark, each run as a child process on the same mails:

* the floor: :mod:`tools.bench.floor_fetch` (batched ``UID FETCH``, nothing parsed or stored);
* ``wicbox run``: end to end into PostgreSQL over ODBC, mails moved to WICBOX/Processed;
* getmail6: the same mails over XOAUTH2 into a Maildir, deleted on the server (as ``nobody``:
  getmail refuses Maildir delivery as root).

Before each contender INBOX gets a fresh copy of the seeded mails; after it the result is
checked (every mail read, filed or delivered), so a broken run cannot pass as a fast one.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tools.bench.bench_bed import BenchBed, inbox_count, restore_inbox
from tools.bench.measure import ChildRun, run_child
from tools.testbed.postgres import PostgresServer
from tools.testbed.wic_config import write_config as write_wic_config
from wicbox_bridge.config.dbtarget import OdbcTarget
from wicbox_bridge.secret import Secret
from wicbox_bridge.store import init_schema, open_store
from wicbox_bridge.store.parameters import set_parameter

REPO_ROOT = Path(__file__).resolve().parents[2]
GETMAIL_USER = "nobody"
# getmail6 installs its SIGCHLD handler only after fork()ing the Maildir delivery child; a child
# that ends first is never noticed and getmail gives up after its ``timeout`` ("waiting child pid
# ... timed out", getmail6 issue #226). Pinned to one CPU the parent runs first after fork(), which
# makes the race rare (getmail never runs parent and child at once anyway); a lost race is retried.
GETMAIL_ATTEMPTS = 3
GETMAIL_TIMEOUT_S = 20


@dataclass(frozen=True)
class Measurement:
    """One contender's run: wall time of the whole command and its peak RSS."""

    contender: str
    mails: int
    seconds: float
    peak_rss_mb: float
    note: str = ""
    cpu_seconds: float = 0.0

    @property
    def mails_per_second(self) -> float:
        return self.mails / self.seconds if self.seconds else 0.0


# ---- the floor --------------------------------------------------------------------------------
def measure_floor(bed: BenchBed, token_file: Path, expected: int, *, trace_off: bool = False) -> Measurement:
    """The floor as imapclient fetches by default, or (``trace_off``) with imaplib's protocol trace
    off as ``wicbox run`` has it (see :func:`tools.bench.floor_fetch.fetch_all`)."""
    restore_inbox(bed)
    argv = [
        sys.executable, "-m", "tools.bench.floor_fetch", "--host", bed.imap_host,
        "--port", str(bed.imaps_port), "--ca", str(bed.pki.ca_cert), "--user", bed.mailbox,
        "--token-file", str(token_file), *(["--trace-off"] if trace_off else []),
    ]  # fmt: skip
    child = run_child(argv, cwd=REPO_ROOT).require_success("the floor fetch")
    answer = json.loads(child.stdout)
    _expect(answer["mails"], expected, "the floor fetched")
    note = f"fetch loop alone {answer['fetch_seconds']:.2f} s, {answer['bytes'] / 2**20:.1f} MB"
    label = "floor, imaplib trace off" if trace_off else "floor: imapclient UID FETCH"
    return Measurement(label, expected, child.seconds, child.peak_rss_mb, note, child.cpu_seconds)


# ---- wicbox run -------------------------------------------------------------------------------
@dataclass(frozen=True)
class WicboxInstall:
    """One WIC installation: its WicGlobal.config (fixed path, so a fixed state directory) and the
    WICBOX_HOME that holds the token cache between runs."""

    root: Path

    @property
    def config(self) -> Path:
        return self.root / "WicGlobal.config"

    @property
    def home(self) -> Path:
        return self.root / "home"

    @property
    def work(self) -> Path:
        return self.root / "work"


def new_install(bed: BenchBed) -> WicboxInstall:
    install = WicboxInstall(bed.root / f"wic-{uuid.uuid4().hex[:8]}")
    for directory in (install.root, install.home, install.work):
        directory.mkdir()
    return install


def wicman_parameters(bed: BenchBed) -> dict[str, str | None]:
    """SINGLE mode, OAuth2 with delegated permissions, the benchmark mailbox in Dovecot over IMAPS."""
    directory = bed.directory
    return {
        "WICBOXACCOUNTMODE": "SINGLE",
        "WICBOXMETHOD": "OAuth2",
        "WICBOX_MAILCLIENT_SCOPE": "https://outlook.office.com/IMAP.AccessAsUser.All",
        "WICBOX_MAILCLIENT_CLIENTID": directory.public_client_id,
        "WICBOX_MAILCLIENT_TENANTID": directory.tenant_id,
        "WICBOX_MAILCLIENT_USERNAME": directory.mailbox.upn,
        "WICBOX_MAILCLIENT_PASSWORD": directory.mailbox.password,
        "WICBOX_MAILCLIENT_AUTHORITYHOST": bed.idp.base_url,
        "WICBOX_MAILCLIENT_IMAPHOST": f"{bed.imap_host}:{bed.imaps_port}",
        "WICBOX_MAILCLIENT_IMAPTLS": "IMPLICIT",
    }


def write_config(path: Path, connection_string: str, max_mails: int, bed: BenchBed) -> None:
    """WicGlobal.config as KPD deploys it (the WIC connection string and the per-run cap), naming the
    bed's loopback servers (WicBoxAllowedHosts, its Graph emulator shares the address) and its CA."""
    write_wic_config(
        path,
        connection_string,
        max_mails=str(max_mails),
        allowed_hosts=(bed.imap_host,),
        ca_bundle=bed.pki.ca_cert,
    )


def odbc_target(server: PostgresServer, database: str) -> OdbcTarget:
    description = f"benchmark database {database}"
    return OdbcTarget(Secret(server.connection_string(database)), "postgresql", description)


def prepare_database(bed: BenchBed, install: WicboxInstall, max_mails: int) -> str:
    """A fresh database with the schema and the parameters; the config points at it. Its name."""
    name = f"wicbox_bench_{uuid.uuid4().hex[:12]}"
    bed.postgres.create_database(name)
    with open_store(odbc_target(bed.postgres, name)) as store:
        init_schema(store)
        for parameter, value in wicman_parameters(bed).items():
            set_parameter(store, parameter, value)
    write_config(install.config, bed.postgres.connection_string(name), max_mails, bed)
    return name


def filed_count(bed: BenchBed, database: str) -> int:
    with open_store(odbc_target(bed.postgres, database)) as store:
        rows = store.query("SELECT COUNT(*) FROM WICBOX_MAIL WHERE STATUS = 'FILED'")
    return int(rows[0][0])


def run_wicbox(install: WicboxInstall, max_mails: int, *, profile_to: Path | None = None) -> ChildRun:
    """``python -m wicbox_bridge --config FILE run --max-mails N --json`` (under cProfile in every
    thread if asked: :mod:`tools.bench.thread_profile`)."""
    env = {**os.environ, "WICBOX_HOME": str(install.home)}
    env.pop("WICBOX_CONFIG", None)
    command = [
        "wicbox_bridge", "--config", str(install.config), "run", "--max-mails", str(max_mails), "--json",
    ]  # fmt: skip
    if profile_to is None:
        argv = [sys.executable, "-m", *command]
    elif profile_to.suffix == ".folded":  # sampled with py-spy (folded stacks), not traced
        spy = shutil.which("py-spy", path=str(Path(sys.executable).parent)) or "py-spy"
        argv = [spy, "record", "--gil", "--rate", "250", "--format", "raw", "--output", str(profile_to)]
        argv += ["--", sys.executable, "-m", *command]
    else:
        argv = [sys.executable, str(Path(__file__).with_name("thread_profile.py")), str(profile_to), *command]
    return run_child(argv, env=env, cwd=install.work)


def measure_wicbox(
    bed: BenchBed, install: WicboxInstall, label: str, expected: int, *, profile_to: Path | None = None
) -> Measurement:
    """One ``wicbox run`` of all mails into a fresh database (a filed mail would be a duplicate)."""
    database = prepare_database(bed, install, expected)
    try:
        restore_inbox(bed)
        child = run_wicbox(install, expected, profile_to=profile_to).require_success("wicbox run")
        stdout = child.stdout  # py-spy adds lines of its own around the report
        report: dict[str, Any] = json.loads(stdout[stdout.find("{") : stdout.rfind("}") + 1])
        _expect(report["counts"]["filed"], expected, "wicbox run filed")
        _expect(filed_count(bed, database), expected, "the database holds")
        _expect(inbox_count(bed), 0, "INBOX still holds")
    finally:
        bed.postgres.drop_database(database)
    note = f"run report {report['seconds']:.2f} s"
    return Measurement(label, expected, child.seconds, child.peak_rss_mb, note, child.cpu_seconds)


# ---- getmail6 ---------------------------------------------------------------------------------
def getmail_rc(bed: BenchBed, workdir: Path) -> str:
    token, ca_file, maildir = workdir / "token", workdir / "ca.pem", workdir / "Maildir"
    return f"""[retriever]
type = SimpleIMAPSSLRetriever
server = {bed.imap_host}
port = {bed.imaps_port}
username = {bed.mailbox}
use_xoauth2 = True
password_command = ("/bin/cat", "{token}")
ca_certs = {ca_file}
mailboxes = ("INBOX",)

[destination]
type = Maildir
path = {maildir}/

timeout = {GETMAIL_TIMEOUT_S}

[options]
verbose = 0
read_all = true
delete = true
message_log_syslog = false
"""


def prepare_getmail(bed: BenchBed, token: str) -> Path:
    """getmail's directory (rc file, token, CA, Maildir), all owned by ``nobody``."""
    account = pwd.getpwnam(GETMAIL_USER)
    workdir = bed.root / f"getmail-{uuid.uuid4().hex[:8]}"
    paths = [workdir, workdir / "Maildir", *(workdir / "Maildir" / sub for sub in ("new", "cur", "tmp"))]
    for directory in paths:
        directory.mkdir(mode=0o700)
    (workdir / "token").write_text(token, encoding="ascii")
    shutil.copyfile(bed.pki.ca_cert, workdir / "ca.pem")
    (workdir / "getmailrc").write_text(getmail_rc(bed, workdir), encoding="utf-8")
    for path in [*paths, workdir / "token", workdir / "ca.pem", workdir / "getmailrc"]:
        os.chown(path, account.pw_uid, account.pw_gid)
    return workdir


def getmail_command(workdir: Path) -> list[str]:
    """getmail as ``nobody``, pinned to one CPU (see :data:`GETMAIL_ATTEMPTS`)."""
    return [
        "taskset", "--cpu-list", "0", "runuser", "-u", GETMAIL_USER, "--",
        "getmail", "--getmaildir", str(workdir), "--rcfile", str(workdir / "getmailrc"),
    ]  # fmt: skip


def measure_getmail(bed: BenchBed, token: str, expected: int) -> Measurement:
    """getmail6 into a Maildir; a run that lost getmail's fork race is repeated on fresh mails."""
    failures: list[str] = []
    for _attempt in range(GETMAIL_ATTEMPTS):
        workdir = prepare_getmail(bed, token)
        try:
            restore_inbox(bed)
            child = run_child(getmail_command(workdir))
            if child.exit_code != 0:
                failures.append(child.stderr.strip().splitlines()[-1] if child.stderr.strip() else "")
                continue
            _expect(len(list((workdir / "Maildir" / "new").iterdir())), expected, "getmail delivered")
            _expect(inbox_count(bed), 0, "INBOX still holds")
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
        note = f"after {len(failures)} failed attempt(s): {failures[-1]}" if failures else ""
        return Measurement(
            "getmail6 (XOAUTH2, Maildir)", expected, child.seconds, child.peak_rss_mb, note, child.cpu_seconds
        )
    raise RuntimeError(f"getmail failed {GETMAIL_ATTEMPTS} times: {'; '.join(failures)}")


def _expect(actual: int, expected: int, what: str) -> None:
    if actual != expected:
        raise RuntimeError(f"{what} {actual} mails, expected {expected}: the measurement is void")
