"""One command against a real SQL Server before the first rollout: wicbox-bridge's database work on a
scratch database that it creates and drops.

    tools/sqlserver-smoke "Data Source=SQL01;Initial Catalog=master;Integrated Security=true"
    tools/sqlserver-smoke "DRIVER={ODBC Driver 18 for SQL Server};SERVER=SQL01;UID=...;PWD=...;Encrypt=yes"

The connection string is written as in WicGlobal.config (.NET SqlClient) or as an ODBC string; its
login needs CREATE DATABASE (dbcreator) on a test server. Steps, each PASS or FAIL with the
server's answer: create a scratch database, `db init`, `db upgrade` (again: nothing to do), a
parameter round-trip (Unicode, a long value, NULL), filing 20 mails (with attachments, one of
9 MB, byte-identical when read back), filing a batch of 120 mails on a table with a trigger (the
batch insert hands back each mail's key through OUTPUT ... INTO, in statements of at most 2100
parameters; each key must lead to its own mail), a batch of mails with 0, 1 and many attachments
filed together in one statement per chunk behind a lease (each attachment on its own mail, in order;
a mail whose attachment the database refuses quarantined alone; the fence folded into the batch,
so a batch of a lost lease files nothing), an outbox round-trip (claim, sent), the leases of
several hosts (taken, refused to another owner, renewed, a fenced filing, a take-over after expiry
with a new fencing token, the old owner's filing refused, a presence row, and two connections
taking one mailbox's lease at once, new or released: exactly one gets it), two processes racing
`db init` on a fresh database (the schema lock: every version applied once), and dropping the
scratch database (also after a failure). Exit code 0 when every step passed.

The test suite runs it against PostgreSQL over ODBC, the nearest thing to SQL Server on its test
bed, so the script itself is known to work; the T-SQL it sends is what is new on a real server.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import datetime as dt
import json
import os
import subprocess
import sys
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace

import pyodbc

from wicbox_bridge.config.connstr import ODBC_QUOTES, Pair, odbc_join, parse_connection_string, tokenize
from wicbox_bridge.config.dbtarget import OdbcTarget
from wicbox_bridge.errors import BridgeError, LeaseLost
from wicbox_bridge.mail.parse import parse_mail
from wicbox_bridge.mail.record import Attachment
from wicbox_bridge.secret import Secret, mask_values
from wicbox_bridge.store import LATEST_VERSION, open_store
from wicbox_bridge.store.base import Store
from wicbox_bridge.store.filing import Filed, file_mails
from wicbox_bridge.store.leases import (
    DatabaseClock,
    Fence,
    Lease,
    LeaseOwner,
    Refused,
    acquire,
    announce,
    live_owners,
    release,
    renew,
    withdraw,
)
from wicbox_bridge.store.mail_insert import NewMail, files_many_rows
from wicbox_bridge.store.mails import MailOrigin, find_mails
from wicbox_bridge.store.outbox import OutboxStatus, claim_for_sending, enqueue, get_row, mark_sent
from wicbox_bridge.store.parameters import read_parameters, set_parameter
from wicbox_bridge.store.schema import init_schema, schema_version, upgrade_schema

MAILS = 20
BATCH = 120  # 3000 parameters: more than one SQL Server statement takes (2100)
# An AFTER INSERT trigger that inserts into a table of its own with an identity: SQL Server refuses a
# bare OUTPUT clause on such a table, and @@IDENTITY would answer the trigger's key.
AUDIT_TRIGGER = {
    "mssql": (
        "CREATE TABLE WICBOX_SMOKE_AUDIT (AUDIT_ID INT IDENTITY(100000, 7) PRIMARY KEY, "
        "MAIL_ID INT NOT NULL)",
        "CREATE TRIGGER TR_WICBOX_SMOKE_AUDIT ON WICBOX_MAIL AFTER INSERT AS BEGIN SET NOCOUNT ON; "
        "INSERT INTO WICBOX_SMOKE_AUDIT (MAIL_ID) SELECT MAIL_ID FROM inserted; END",
    ),
    "postgresql": (
        "CREATE TABLE WICBOX_SMOKE_AUDIT (AUDIT_ID INTEGER GENERATED ALWAYS AS IDENTITY "
        "(START WITH 100000 INCREMENT BY 7) PRIMARY KEY, MAIL_ID INTEGER NOT NULL)",
        "CREATE FUNCTION wicbox_smoke_audit() RETURNS trigger LANGUAGE plpgsql AS "
        "'BEGIN INSERT INTO WICBOX_SMOKE_AUDIT (MAIL_ID) VALUES (NEW.MAIL_ID); RETURN NEW; END'",
        "CREATE TRIGGER TR_WICBOX_SMOKE_AUDIT AFTER INSERT ON WICBOX_MAIL FOR EACH ROW "
        "EXECUTE FUNCTION wicbox_smoke_audit()",
    ),
}
LARGE_ATTACHMENT = 9 * 1024 * 1024  # in parts (over 2 MiB: RAW_MIME.WRITE on SQL Server)
DATABASE_KEYS = ("database", "initial catalog")


@dataclass
class Report:
    """Each step's outcome, printed as it happens."""

    secrets: tuple[str, ...] = ()
    lines: list[tuple[str, bool, str]] = field(default_factory=list)

    def step(self, name: str, action: Callable[[], str]) -> bool:
        started = time.monotonic()
        try:
            detail = action()
            passed = True
        except Exception as exc:  # every failure is reported, the next steps still run
            detail = f"{type(exc).__name__}: {exc}"
            if not isinstance(exc, (BridgeError, AssertionError, pyodbc.Error)):
                detail += "\n" + traceback.format_exc()
            passed = False
        detail = mask_values(detail, self.secrets)
        self.lines.append((name, passed, detail))
        status = "PASS" if passed else "FAIL"
        print(f"[{status}] {name} ({time.monotonic() - started:.1f} s): {detail}", flush=True)
        return passed

    @property
    def passed(self) -> bool:
        return all(passed for _, passed, _ in self.lines)


# --------------------------------------------------------------------------- the scratch database


def with_database(target: OdbcTarget, database: str) -> OdbcTarget:
    """``target`` pointing at ``database`` instead of the one it names."""
    kept = [
        pair
        for pair in tokenize(target.connection_string.reveal(), ODBC_QUOTES)
        if pair.normalized_key not in DATABASE_KEYS
    ]
    text = odbc_join([*kept, Pair("DATABASE", database)], mask_secrets=False)
    described = odbc_join([*kept, Pair("DATABASE", database)], mask_secrets=True)
    return replace(target, connection_string=Secret(text), description=described)


@contextlib.contextmanager
def scratch_database(target: OdbcTarget, report: Report) -> Iterator[OdbcTarget | None]:
    name = f"wicbox_smoke_{uuid.uuid4().hex[:10]}"
    created: list[OdbcTarget] = []

    def create() -> str:
        with contextlib.closing(pyodbc.connect(target.connection_string.reveal(), autocommit=True)) as admin:
            admin.execute(f"CREATE DATABASE {name}")
        created.append(with_database(target, name))
        return f"{name} on {target.description}"

    report.step("create a scratch database", create)
    try:
        yield created[0] if created else None
    finally:
        if created:

            def drop() -> str:
                with contextlib.closing(
                    pyodbc.connect(target.connection_string.reveal(), autocommit=True)
                ) as admin:
                    if target.dialect == "mssql":
                        admin.execute(f"ALTER DATABASE {name} SET SINGLE_USER WITH ROLLBACK IMMEDIATE")
                    admin.execute(f"DROP DATABASE {name}")
                return name

            report.step("drop the scratch database", drop)


# --------------------------------------------------------------------------- the steps


def step_init(store: Store) -> str:
    applied = init_schema(store)
    assert schema_version(store) == LATEST_VERSION, f"version {schema_version(store)}"
    return f"versions {applied} applied, schema version {LATEST_VERSION}"


def step_upgrade(store: Store) -> str:
    applied = upgrade_schema(store)
    assert applied == [], f"applied again: {applied}"
    return "nothing to do (as expected)"


def step_parameters(store: Store) -> str:
    values = {
        "WICBOX_SMOKE_UNICODE": "Dossier café Liège ✓ 日本",
        "WICBOX_SMOKE_LONG": "x" * 3000,
        "WICBOX_SMOKE_EMPTY": None,
    }
    for name, value in values.items():
        set_parameter(store, name, value)
    read = read_parameters(store)
    for name, value in values.items():
        found = next((stored for key, stored in read.items() if key.upper() == name), "missing")
        assert found == value, f"{name}: read back {found!r}"
    return f"{len(values)} values read back unchanged"


def smoke_mail(number: int) -> bytes:
    size = LARGE_ATTACHMENT if number == 0 else 2048 * (number + 1)
    attachment = (bytes(range(256)) * (size // 256 + 1))[:size]
    encoded = base64.encodebytes(attachment).replace(b"\n", b"\r\n")
    return (
        (
            f"From: Klant {number} <klant{number}@elders.example>\r\n"
            "To: wicbox@klant.example\r\n"
            f"Subject: =?utf-8?q?Smoke_test_{number}_caf=C3=A9?=\r\n"
            f"Message-ID: <smoke-{number}-{uuid.uuid4().hex}@elders.example>\r\n"
            "MIME-Version: 1.0\r\n"
            'Content-Type: multipart/mixed; boundary="b1"\r\n\r\n'
            "--b1\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
            f"Bericht {number}: é à ü\r\n"
            "--b1\r\nContent-Type: application/octet-stream\r\n"
            f'Content-Disposition: attachment; filename="bijlage-{number}.bin"\r\n'
            "Content-Transfer-Encoding: base64\r\n\r\n"
        ).encode()
        + encoded
        + b"--b1--\r\n"
    )


def step_filing(store: Store) -> str:
    raws = [smoke_mail(number) for number in range(MAILS)]
    mails = []
    for number, raw in enumerate(raws):
        record = parse_mail(raw)
        origin = MailOrigin(
            "wicbox@klant.example", "INBOX", "imap", f"smoke:{number}", 1, number + 1, dt.datetime.now(dt.UTC)
        )
        mails.append(NewMail(origin, raw, record, None, "smoke"))
    answers = file_mails(store, mailbox="wicbox@klant.example", run_id=None, mails=mails)
    ids = [answer.mail_id for answer in answers]
    assert all(mail_id is not None for mail_id in ids), answers
    for mail_id, raw in zip(ids, raws, strict=True):
        row = store.query_one("SELECT RAW_MIME FROM WICBOX_MAIL WHERE MAIL_ID = ?", (mail_id,))
        assert row is not None and bytes(row[0]) == raw, f"mail {mail_id} differs"
    sizes = store.query(
        "SELECT SIZE_BYTES FROM WICBOX_ATTACHMENT WHERE MAIL_ID = ? ORDER BY POSITION", (ids[0],)
    )
    content = store.query_one("SELECT CONTENT FROM WICBOX_ATTACHMENT WHERE MAIL_ID = ?", (ids[0],))
    assert content is not None and len(bytes(content[0])) == LARGE_ATTACHMENT, "the 9 MB attachment"
    again = file_mails(store, mailbox="wicbox@klant.example", run_id=None, mails=mails)
    assert all(answer.filed is not Filed.NEW for answer in again), "filed twice"
    return f"{MAILS} mails filed byte-identical ({len(sizes)} attachment(s) on the first, 9 MB), none twice"


def step_batch(store: Store) -> str:
    """A batch filed in a few multi-row statements on a table with a trigger, each key its own mail."""
    assert files_many_rows(store), f"the {store.dialect} store files one mail at a time"
    for statement in AUDIT_TRIGGER[store.dialect]:
        store.execute(statement)
    mailbox = "batch@klant.example"
    raws = [
        f"From: klant{number}@elders.example\r\nSubject: Batch {number}\r\nMessage-ID: <batch-{number}-"
        f"{uuid.uuid4().hex}@elders.example>\r\n\r\nBericht {number}\r\n".encode()
        for number in range(BATCH)
    ]
    mails = [
        NewMail(
            MailOrigin(mailbox, "INBOX", "imap", f"batch:{n}", 1, n + 1, None), raw, parse_mail(raw), None, ""
        )
        for n, raw in enumerate(raws)
    ]
    answers = file_mails(store, mailbox=mailbox, run_id=None, mails=mails)
    assert [answer.filed for answer in answers] == [Filed.NEW] * BATCH, answers
    for answer, raw in zip(answers, raws, strict=True):
        row = store.query_one("SELECT RAW_MIME FROM WICBOX_MAIL WHERE MAIL_ID = ?", (answer.mail_id,))
        assert row is not None and bytes(row[0]) == raw, f"MAIL_ID {answer.mail_id} is not its mail"
    audited = store.query_one("SELECT COUNT(*) FROM WICBOX_SMOKE_AUDIT")
    assert audited is not None and int(audited[0]) >= BATCH, "the trigger did not fire"
    return f"{BATCH} mails filed in multi-row statements behind a trigger, each key its own mail"


REFUSED_NAME = "WEIGEREN"
# A CHECK the test adds: the database refuses the attachment row of one mail of the batch.
REFUSE_ATTACHMENT = (
    "ALTER TABLE WICBOX_ATTACHMENT ADD CONSTRAINT CK_WICBOX_SMOKE_REFUSE "
    f"CHECK (FILENAME NOT LIKE '%{REFUSED_NAME}%')"
)


def attached_mail(number: int, count: int, refused: bool = False) -> NewMail:
    head = f"From: klant{number}@elders.example\r\nSubject: Bijlagen {number}\r\n\r\n"
    raw = f"{head}{uuid.uuid4().hex}\r\n".encode()
    attachments = tuple(
        Attachment(
            f"{REFUSED_NAME if refused and index == count - 1 else 'bijlage'}-{number}-{index}.bin",
            "application/octet-stream",
            bytes([number % 256, index % 256]) * (50 * index + 1),
        )
        for index in range(count)
    )
    record = replace(parse_mail(raw), attachments=attachments)
    origin = MailOrigin("bijlagen@klant.example", "INBOX", "imap", f"att:{number}", 1, number + 1, None)
    return NewMail(origin, raw, record, None, "")


def step_attachments(store: Store) -> str:
    """Mails and their attachments in one statement (T-SQL batch) per chunk: each attachment on its
    own mail in order, the same bytes twice filed once, a refused attachment quarantines its mail."""
    counts = [0, 1, 12, 3, 0, 40, 1]
    mails = [attached_mail(number, count) for number, count in enumerate(counts)]
    refused = attached_mail(len(counts), 2, refused=True)
    batch = [*mails, mails[2], refused, mails[0]]
    store.execute(REFUSE_ATTACHMENT)
    clock = DatabaseClock()
    lease = acquire(store, "bijlagen@klant.example", LeaseOwner.this_process(), 600, clock)
    assert isinstance(lease, Lease), lease
    fence = Fence(lease, clock)  # folded into the batch's first statement
    answers = file_mails(store, mailbox="bijlagen@klant.example", run_id=None, mails=batch, fence=fence)
    filed = [answer.filed for answer in answers]
    assert filed == [Filed.NEW] * len(mails) + [Filed.KNOWN, Filed.REFUSED, Filed.KNOWN], filed
    for mail, answer in zip(mails, answers[: len(mails)], strict=True):
        rows = store.query(
            "SELECT POSITION, FILENAME, CONTENT FROM WICBOX_ATTACHMENT WHERE MAIL_ID = ? ORDER BY POSITION",
            (answer.mail_id,),
        )
        found = [(int(position), str(name), bytes(content)) for position, name, content in rows]
        wanted = [(n, a.filename, a.content) for n, a in enumerate(mail.record.attachments, start=1)]
        assert found == wanted, f"MAIL_ID {answer.mail_id}: attachments {[row[:2] for row in found]}"
    quarantined = store.query_one(
        "SELECT COUNT(*) FROM WICBOX_ATTACHMENT WHERE MAIL_ID = ?", (answers[len(mails) + 1].mail_id,)
    )
    assert quarantined is not None and int(quarantined[0]) == 0, "the refused mail's attachments"
    assert release(store, lease, clock)
    assert isinstance(acquire(store, "bijlagen@klant.example", LeaseOwner.this_process(), 600, clock), Lease)
    late = [attached_mail(number, 2) for number in range(100, 103)]
    try:
        file_mails(store, mailbox="bijlagen@klant.example", run_id=None, mails=late, fence=fence)
    except LeaseLost:
        pass
    else:
        raise AssertionError("a batch of a lost lease was filed")
    known = find_mails(store, "bijlagen@klant.example", [mail.record.sha256 for mail in late])
    assert not known, "a batch of a lost lease left rows"
    return (
        f"{len(mails)} mails with {sum(counts)} attachments filed together behind the lease, the refused "
        "one quarantined alone; a lost lease filed nothing"
    )


def step_outbox(store: Store) -> str:
    outbox_id = enqueue(
        store,
        from_addr="wicbox@klant.example",
        to="klant@elders.example",
        subject="Smoke test ✓",
        body_text="Inhoud é",
        source="relay:smoke",
    )
    assert claim_for_sending(store, outbox_id, "<smoke@wicbox.example>"), "claim"
    assert not claim_for_sending(store, outbox_id, "<smoke@wicbox.example>"), "claimed twice"
    mark_sent(store, outbox_id, dt.datetime.now(dt.UTC), recipients=1)
    row = get_row(store, outbox_id)
    assert row is not None and row.status is OutboxStatus.SENT and row.subject == "Smoke test ✓"
    return f"outbox mail {outbox_id}: PENDING -> SENDING -> SENT"


@dataclass(frozen=True)
class ShiftedClock:
    """The database server's clock moved ahead: a lease "expires" without waiting for it."""

    shift: dt.timedelta

    def now(self, store: Store) -> dt.datetime:
        return DatabaseClock().now(store) + self.shift


def _one_mail(mailbox: str, number: int) -> NewMail:
    raw = (
        f"From: klant@elders.example\r\nSubject: Lease {number}\r\nMessage-ID: <lease-{number}-"
        f"{uuid.uuid4().hex}@elders.example>\r\n\r\nBericht\r\n"
    ).encode()
    origin = MailOrigin(mailbox, "INBOX", "imap", f"lease:{number}", 1, number, None)
    return NewMail(origin, raw, parse_mail(raw), None, "")


def step_leases(store: Store, target: OdbcTarget) -> str:
    """The lease statements of several hosts, judged by the server's clock."""
    clock, later = DatabaseClock(), ShiftedClock(dt.timedelta(seconds=120))
    mailbox = "lease@klant.example"
    first, second = LeaseOwner.this_process(), LeaseOwner.this_process()
    held = acquire(store, mailbox, first, 60, clock)
    assert isinstance(held, Lease), f"first owner: {held}"
    assert isinstance(acquire(store, mailbox, second, 60, clock), Refused), (
        "a live lease was taken by another"
    )
    renewed = renew(store, held, 60, clock)
    assert renewed is not None and renewed.token == held.token, "renewal"
    answers = file_mails(
        store, mailbox=mailbox, run_id=None, mails=[_one_mail(mailbox, 1)], fence=Fence(renewed, clock)
    )
    assert [answer.filed for answer in answers] == [Filed.NEW], answers
    taken = acquire(store, mailbox, second, 60, later)  # two minutes on: the first owner's lease expired
    assert isinstance(taken, Lease) and taken.token == held.token + 1, f"take-over: {taken}"
    try:
        file_mails(
            store, mailbox=mailbox, run_id=None, mails=[_one_mail(mailbox, 2)], fence=Fence(renewed, clock)
        )
    except LeaseLost:
        pass
    else:
        raise AssertionError("the first owner filed after it lost its lease")
    counted = store.query_one("SELECT COUNT(*) FROM WICBOX_MAIL WHERE MAILBOX = ?", (mailbox,))
    assert counted is not None and int(counted[0]) == 1, f"{counted} mails filed, 1 expected"
    announce(store, first, 60, clock)
    assert first.key in {owner.key for owner in live_owners(store, clock)}, "presence row"
    withdraw(store, first)
    assert first.key not in {owner.key for owner in live_owners(store, clock)}, "presence row withdrawn"
    assert release(store, taken, later), "release"
    winners = _race_for_a_lease(target)
    return (
        f"token {held.token} taken, refused to another owner, renewed, filed under its fence; taken over "
        f"after expiry with token {taken.token}, the old owner's filing refused; presence row; "
        f"two connections at once on one mailbox (new or released), {winners} times: one lease each time"
    )


def _race_for_a_lease(target: OdbcTarget, rounds: int = 10) -> int:
    """Two connections take one mailbox's lease at the same moment, a new mailbox (its row is
    inserted) or a released one (its row is updated): exactly one gets it, every time."""
    stores = [open_store(target) for _ in range(2)]
    try:
        for round_number in range(rounds):
            mailbox = f"race-{round_number}@klant.example"
            if round_number % 2:  # the row exists, free
                first = acquire(stores[0], mailbox, LeaseOwner.this_process(), 60, DatabaseClock())
                assert isinstance(first, Lease) and release(stores[0], first, DatabaseClock()), "release"
            outcomes = _take_at_once(stores, mailbox)
            for outcome in outcomes:
                if isinstance(outcome, Exception):
                    raise outcome
            kinds = sorted(type(outcome).__name__ for outcome in outcomes)
            assert kinds == ["Lease", "Refused"], f"round {round_number}: {kinds}"
    finally:
        for each in stores:
            each.close()
    return rounds


def _take_at_once(stores: list[Store], mailbox: str) -> list[object]:
    """Each store's connection asks for ``mailbox``'s lease at the same moment; what each got."""
    start = threading.Barrier(len(stores))
    outcomes: list[object] = [None] * len(stores)

    def take(index: int) -> None:
        start.wait(timeout=60)
        try:
            outcomes[index] = acquire(stores[index], mailbox, LeaseOwner.this_process(), 60, DatabaseClock())
        except Exception as exc:  # reported by the caller: a deadlock victim, a lock timeout
            outcomes[index] = exc

    threads = [threading.Thread(target=take, args=(index,)) for index in range(len(stores))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    return outcomes


RACER = """
import json, os, sys
from wicbox_bridge.config.dbtarget import OdbcTarget
from wicbox_bridge.secret import Secret
from wicbox_bridge.store import open_store
from wicbox_bridge.store.schema import init_schema
spec = json.loads(os.environ["WICBOX_SMOKE_RACE"])
store = open_store(OdbcTarget(Secret(spec["connection_string"]), spec["dialect"], "race"), timeout_s=60)
print("ready", flush=True)
sys.stdin.readline()  # the start signal, sent when both are connected
print(json.dumps(init_schema(store)))
store.close()
"""


def step_race(target: OdbcTarget, report: Report) -> str:
    """Two processes run db init at once on a fresh database: every version applied exactly once."""
    with scratch_database(target, report) as fresh:
        assert fresh is not None, "no second scratch database"
        spec = {"connection_string": fresh.connection_string.reveal(), "dialect": fresh.dialect}
        env = {**os.environ, "WICBOX_SMOKE_RACE": json.dumps(spec)}
        racers = [
            subprocess.Popen(
                [sys.executable, "-c", RACER],
                env=env,
                text=True,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
            )
            for _ in range(2)
        ]
        for racer in racers:
            assert racer.stdout is not None and racer.stdout.readline().strip() == "ready", (
                "a racer did not connect"
            )
        for racer in racers:
            assert racer.stdin is not None
            racer.stdin.write("go\n")
            racer.stdin.flush()
        outputs = [racer.communicate(timeout=120) for racer in racers]
        for racer, (_, stderr) in zip(racers, outputs, strict=True):
            assert racer.returncode == 0, mask_values(stderr, report.secrets)
        applied = sorted(version for stdout, _ in outputs for version in json.loads(stdout))
        assert applied == list(range(1, LATEST_VERSION + 1)), f"applied {applied}"
        return f"versions 1-{LATEST_VERSION} applied once between the two processes"


def run(connection_string: str) -> int:
    target = parse_connection_string(connection_string, odbc_drivers=pyodbc.drivers(), platform=sys.platform)
    if not isinstance(target, OdbcTarget):
        print("sqlserver-smoke: give a SQL Server connection string (the SQLite default needs no test)")
        return 2
    report = Report(secrets=(target.connection_string.reveal(), *_passwords(target)))
    print(f"wicbox-bridge database smoke test on {target.description} ({target.dialect})", flush=True)
    with scratch_database(target, report) as scratch:
        if scratch is not None:
            with contextlib.closing(open_store(scratch)) as store:
                report.step("db init", lambda: step_init(store))
                report.step("db upgrade", lambda: step_upgrade(store))
                report.step("parameters", lambda: step_parameters(store))
                report.step("filing 20 mails", lambda: step_filing(store))
                report.step("filing a batch behind a trigger", lambda: step_batch(store))
                report.step("filing mails with attachments together", lambda: step_attachments(store))
                report.step("outbox", lambda: step_outbox(store))
                report.step("leases of several hosts", lambda: step_leases(store, scratch))
    report.step("schema lock: two processes", lambda: step_race(target, report))
    failed = [name for name, passed, _ in report.lines if not passed]
    print(
        "sqlserver-smoke: all steps passed" if not failed else f"sqlserver-smoke: FAILED: {', '.join(failed)}"
    )
    return 0 if not failed else 1


def _passwords(target: OdbcTarget) -> list[str]:
    pairs = tokenize(target.connection_string.reveal(), ODBC_QUOTES)
    return [pair.value for pair in pairs if pair.is_secret and pair.value]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="tools/sqlserver-smoke", description=__doc__.split("\n\n")[0] if __doc__ else None
    )
    parser.add_argument("connection_string", help="as in WicGlobal.config, or an ODBC string")
    return run(parser.parse_args(argv).connection_string)


if __name__ == "__main__":
    sys.exit(main())
