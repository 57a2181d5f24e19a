"""A cell's installation: MULTIPLE mode with application permissions, one project mailbox per sender,
and the outbox rows spread over them.

Exchange Online submits at most 30 mails a minute per mailbox, and ``wicbox send`` keeps to that
(SubmissionPacer): with at most :data:`ROWS_PER_MAILBOX` rows per sending mailbox no delivery ever
waits for the limit, however fast the kills come. Three kinds of rows take turns: to an external
recipient only; to the sending mailbox itself (Cc external); to another sending mailbox (Bcc
external). The SMTP server enforces the same limit (its submission quota is switched on).
"""

from __future__ import annotations

import datetime as dt
import math
import uuid
from dataclasses import dataclass

from tools.crash.bed import CrashBed, Installation, Route
from wicbox_bridge.store.base import Store
from wicbox_bridge.store.outbox import enqueue
from wicbox_bridge.store.parameters import set_parameter

ROWS_PER_MAILBOX = 25  # under Exchange's 30 a minute per mailbox
APP_ROLES = {
    "https://outlook.office365.com": ("IMAP.AccessAsApp", "SMTP.SendAsApp"),
    "https://graph.microsoft.com": ("Mail.ReadWrite", "Mail.Send"),
}
EXCHANGE_APP_SCOPE = "https://outlook.office365.com/.default"  # reads over IMAP: the lookup too
GRAPH_SCOPE = "Mail.ReadWrite"  # reads through Graph: the lookup too
SLOW_SENT_S = 0.05
SLOW_SENT_SQLITE_BLOB = 8_000_000  # bytes of randomblob to hex: some 50 ms


def sender_address(number: int) -> str:
    return f"zender-{number:02d}@klant.example"


def external_address(number: int) -> str:
    return f"extern-{number % 5}@elders.example"


@dataclass(frozen=True)
class PlannedMail:
    """One outbox row as the cell put it in: who sends it, and to whom (every envelope recipient)."""

    outbox_id: int
    sender: str
    recipients: tuple[str, ...]
    subject: str


@dataclass(frozen=True)
class CrashApp:
    client_id: str
    secret: str

    def __repr__(self) -> str:
        return f"CrashApp({self.client_id})"


def senders_for(rows: int) -> tuple[str, ...]:
    return tuple(sender_address(number) for number in range(1, math.ceil(rows / ROWS_PER_MAILBOX) + 1))


def prepare_cell(bed: CrashBed, installation: Installation, route: Route, rows: int) -> list[PlannedMail]:
    """Register the app, the mailboxes and the projects, set the parameters, fill the outbox."""
    senders = senders_for(rows)
    app = _register_app(bed)
    for mailbox in senders:
        bed.dovecot.add_mailbox(mailbox)
        bed.dovecot.grant_app_access(app.client_id, mailbox)
        bed.graph.add_mailbox(mailbox)
    if route is Route.SMTP:
        bed.smtp.enable_submission_quota()
    with installation.store() as store:
        for name, value in _parameters(bed, route, app).items():
            set_parameter(store, name, value)
        for number, mailbox in enumerate(senders, start=1):
            _add_project(store, number, mailbox)
        planned = [_enqueue(store, number, senders) for number in range(rows)]
        slow_down_marking_sent(store)
    return planned


def _register_app(bed: CrashBed) -> CrashApp:
    app = CrashApp(str(uuid.uuid4()), f"Sx~{uuid.uuid4().hex}")
    bed.idp.add_application(
        app.client_id,
        bed.directory.tenant_id,
        "WICBOX mail (crash matrix)",
        secrets={app.secret: dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=30)},
        app_roles=APP_ROLES,
    )
    return app


def _parameters(bed: CrashBed, route: Route, app: CrashApp) -> dict[str, str | None]:
    return {
        "WICBOXACCOUNTMODE": "MULTIPLE",
        "WICBOXMETHOD": "OAuth2",
        "WICBOX_MAILCLIENT_CLIENTID": app.client_id,
        "WICBOX_MAILCLIENT_CLIENTSECRET": app.secret,
        "WICBOX_MAILCLIENT_PASSWORD": None,
        "WICBOX_MAILCLIENT_TENANTID": bed.directory.tenant_id,
        "WICBOX_MAILCLIENT_USERNAME": bed.directory.mailbox.upn,
        "WICBOX_MAILCLIENT_AUTHORITYHOST": bed.idp.base_url,
        "WICBOX_MAILCLIENT_SCOPE": EXCHANGE_APP_SCOPE if route is Route.SMTP else GRAPH_SCOPE,
        "WICBOX_MAILCLIENT_IMAPHOST": f"{bed.dovecot.host}:{bed.dovecot.imaps_port}",
        "WICBOX_MAILCLIENT_IMAPTLS": "IMPLICIT",
        "WICBOX_MAILCLIENT_SMTPHOST": f"{bed.smtp.host}:{bed.smtp.starttls_port}",
        "WICBOX_MAILCLIENT_SMTPTLS": "STARTTLS",
        "WICBOX_MAILCLIENT_GRAPHURL": bed.graph.base_url,
        "WICBOX_MAILCLIENT_SENDPROTOCOL": route.value,
    }


def _add_project(store: Store, number: int, mailbox: str) -> None:
    store.execute(
        "INSERT INTO WIC_PROJECT (PROJECT_ID, CODE, NAME, ACTIVE, WICBOX_MAILBOX, WICBOX_USERNAME, "
        "WICBOX_PASSWORD, WICBOX_ACCOUNTMODE) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (number, f"Z{number:02d}", f"Zender {number}", 1, mailbox, None, None, "MULTIPLE"),
    )


def _enqueue(store: Store, number: int, senders: tuple[str, ...]) -> PlannedMail:
    sender = senders[number % len(senders)]
    external = external_address(number)
    subject = f"Crash {number}"
    to, cc, bcc = external, "", ""
    if number % 3 == 1:  # to the sending mailbox itself
        to, cc = sender, f"Extern <{external}>"
    elif number % 3 == 2:  # to another sending mailbox (the same one when there is only one)
        to, bcc = senders[(number + 1) % len(senders)], external
    outbox_id = enqueue(
        store, from_addr=sender, to=to, cc=cc, bcc=bcc, subject=subject, body_text=f"Bericht {number}"
    )
    recipients = tuple(address.rpartition("<")[2].rstrip(">") for address in (to, cc, bcc) if address)
    return PlannedMail(outbox_id, sender, tuple(dict.fromkeys(recipients)), subject)


def slow_down_marking_sent(store: Store) -> None:
    """Make the SENT update take some 50 ms (test only), so kills aimed right after the server's
    answer land before it is committed: the window the outbox must close.

    A killed process's SQLite transaction dies with it. PostgreSQL would finish a statement whose
    client is gone, so the database checks every 10 ms whether the client is still there
    (client_connection_check_interval) and aborts the update when it is not, as the commit would
    never have been sent.
    """
    if store.dialect == "sqlite":
        store.execute(
            "CREATE TRIGGER TEST_SLOW_SENT BEFORE UPDATE OF STATUS ON WICBOX_OUTBOX "
            f"WHEN NEW.STATUS = 'SENT' BEGIN SELECT length(hex(randomblob({SLOW_SENT_SQLITE_BLOB}))); END"
        )
        return
    store.execute(
        "DO $$ BEGIN EXECUTE format('ALTER DATABASE %I SET client_connection_check_interval = %L', "
        "current_database(), '10ms'); END $$"
    )
    store.execute(
        "CREATE FUNCTION test_slow_sent() RETURNS trigger LANGUAGE plpgsql AS "
        f"$$ BEGIN PERFORM pg_sleep({SLOW_SENT_S}); RETURN NEW; END $$"
    )
    store.execute(
        "CREATE TRIGGER TEST_SLOW_SENT BEFORE UPDATE OF STATUS ON WICBOX_OUTBOX "
        "FOR EACH ROW WHEN (NEW.STATUS = 'SENT') EXECUTE FUNCTION test_slow_sent()"
    )
