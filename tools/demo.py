"""A one-minute tour of wicbox-bridge without an Azure tenant: ``tools/demo``.

Starts a local sandbox on a loopback address of its own (an emulator of the Microsoft identity
platform, a Dovecot IMAP server and an SMTP submission server that check OAuth2 tokens like
Exchange Online), puts a few mails for two projects in the global mailbox, and then drives the
real ``wicbox`` command on the embedded default, as the README's first steps do: no
WicGlobal.config, the SQLite database in the data folder WICBOX_HOME names. The sandbox's servers are
allowed in that owner-only folder's ``allowed-hosts.txt`` (the embedded default's own allow-list,
docs/security.md) and its CA is trusted through SSL_CERT_FILE and REQUESTS_CA_BUNDLE of the
commands it runs: ``db init``, ``params set``, ``check``, ``send-test`` (a test mail to the global
mailbox itself), ``run``. It prints what was
filed and where, and each mail's line in the log file. Everything lives in a new folder that the
demo keeps and prints, with the commands to look at it afterwards (``status``, ``params list``);
``--clean`` removes it at the end instead.
"""

from __future__ import annotations

import argparse
import logging
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

from tools.testbed.dovecot import DovecotServer, append_message
from tools.testbed.idp import IdentityPlatformEmulator, SeededDirectory
from tools.testbed.mailbed import start_mail_bed
from tools.testbed.pki import LoopbackPki
from tools.testbed.smtp import SmtpServer
from wicbox_bridge.config.dbtarget import SqliteTarget
from wicbox_bridge.config.footprint import make_private_dir, write_private_text
from wicbox_bridge.config.local_hosts import ALLOWED_HOSTS_FILE
from wicbox_bridge.config.paths import embedded_database_path, machine_state_dir_for
from wicbox_bridge.logs.logfile import LOG_FILE_NAME, default_log_directory
from wicbox_bridge.store import open_store

PROJECTS = ((1, "ALPHA", "project-alpha@klant.example"), (2, "BRAVO", None))
TEST_MAIL_SUBJECT = "[BRAVO] wicbox send-test"


@dataclass(frozen=True)
class Sandbox:
    pki: LoopbackPki
    idp: IdentityPlatformEmulator
    directory: SeededDirectory
    dovecot: DovecotServer
    smtp: SmtpServer


@contextmanager
def sandbox(workdir: Path) -> Iterator[Sandbox]:
    """The identity-platform emulator, Dovecot and the SMTP server on a private loopback address."""
    with ExitStack() as stack:
        bed = start_mail_bed(stack, workdir)
        yield Sandbox(bed.pki, bed.idp, bed.directory, bed.dovecot, bed.smtp)


def demo_mails() -> list[bytes]:
    def mail(number: int, to: str, subject: str, body: str) -> bytes:
        return (
            f"From: Burger {number} <burger{number}@example.org>\r\nTo: {to}\r\nSubject: {subject}\r\n"
            f"Date: Mon, 02 Nov 2026 10:0{number}:00 +0100\r\nMessage-ID: <demo-{number}@example.org>\r\n"
            f"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{body}\r\n"
        ).encode()

    return [
        mail(1, "project-alpha@klant.example", "Aanvraag vergunning", "Beste, graag een vergunning."),
        mail(2, "wicbox@klant.example", "RE: [BRAVO] dossier 17", "Hierbij de gevraagde stukken."),
        mail(3, "Alpha <PROJECT-ALPHA@klant.example>", "Vraag over factuur", "Wanneer betaal ik?"),
        mail(4, "wicbox@klant.example", "[bravo] afspraak", "Past dinsdag?"),
        mail(5, "wicbox@klant.example", "Algemene vraag", "Aan wie moet ik dit richten?"),
    ]


def wicbox(env: dict[str, str], cwd: Path, *args: str) -> int:
    """Run the real command line, echoing it like a terminal session."""
    print(f"\n$ wicbox {shlex.join(args)}", flush=True)
    completed = subprocess.run([sys.executable, "-m", "wicbox_bridge", *args], env=env, cwd=cwd, check=False)
    return completed.returncode


def parameters(box: Sandbox) -> Sequence[tuple[str, str]]:
    directory = box.directory
    return (
        ("WICBOXACCOUNTMODE", "SINGLE"),
        ("WICBOXMETHOD", "OAuth2"),
        ("WICBOX_MAILCLIENT_SCOPE", "https://outlook.office.com/IMAP.AccessAsUser.All"),
        ("WICBOX_MAILCLIENT_CLIENTID", directory.public_client_id),
        ("WICBOX_MAILCLIENT_TENANTID", directory.tenant_id),
        ("WICBOX_MAILCLIENT_USERNAME", directory.mailbox.upn),
        ("WICBOX_MAILCLIENT_PASSWORD", directory.mailbox.password),
        ("WICBOX_MAILCLIENT_AUTHORITYHOST", box.idp.base_url),
        ("WICBOX_MAILCLIENT_IMAPHOST", f"{box.dovecot.host}:{box.dovecot.imaps_port}"),
        ("WICBOX_MAILCLIENT_IMAPTLS", "IMPLICIT"),
        ("WICBOX_MAILCLIENT_SMTPHOST", f"{box.smtp.host}:{box.smtp.starttls_port}"),
        ("WICBOX_MAILCLIENT_SMTPTLS", "STARTTLS"),
    )


def add_projects(database: Path) -> None:
    """WIC's own administration creates projects; the demo inserts two."""
    with open_store(SqliteTarget(database)) as store:
        for project_id, code, mailbox in PROJECTS:
            store.execute(
                "INSERT INTO WIC_PROJECT (PROJECT_ID, CODE, NAME, ACTIVE, WICBOX_MAILBOX) "
                "VALUES (?, ?, ?, 1, ?)",
                (project_id, code, f"Project {code.title()}", mailbox),
            )


def show_filed(database: Path) -> None:
    with open_store(SqliteTarget(database)) as store:
        rows = store.query(
            "SELECT M.MAIL_ID, COALESCE(P.CODE, '(unassigned)'), M.STATUS, M.SUBJECT, M.ROUTING "
            "FROM WICBOX_MAIL M LEFT JOIN WIC_PROJECT P ON P.PROJECT_ID = M.PROJECT_ID ORDER BY M.MAIL_ID"
        )
    print(f"\nFiled in {database} (table WICBOX_MAIL):")
    print(f"{'id':>3}  {'project':<13} {'status':<7} {'subject':<24} routing")
    for mail_id, project, status, subject, routing in rows:
        print(f"{mail_id:>3}  {project:<13} {status:<7} {subject:<24} {routing}")


def show_received(box: Sandbox) -> None:
    for mail in box.smtp.accepted():
        recipients = ", ".join(mail.rcpt_tos)
        print(
            f"\nThe sandbox's SMTP server accepted a mail from {mail.mail_from} to {recipients} "
            f"({len(mail.raw)} bytes, AUTH {mail.mechanism} as {mail.login_user}) and delivered it into "
            "the mailbox: the run below files it too."
        )


def show_log(home: Path, config: Path | None) -> None:
    """Each mail's line in the log file (the file also has each command's and run's start and end)."""
    path = default_log_directory(machine_state_dir_for(config, {"WICBOX_HOME": str(home)})) / LOG_FILE_NAME
    print(f"\nThe log file is {path}; one line per mail:")
    for line in path.read_text(encoding="utf-8").splitlines():
        if " wicbox.mail: " in line:
            print(" ", line.split(" wicbox.mail: ", 1)[1].split(" routing=", 1)[0])


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--clean", action="store_true", help="remove the demo's folder (its database, log) at the end"
    )
    options = parser.parse_args(argv)
    logging.getLogger("mail.log").setLevel(logging.ERROR)  # the sandbox SMTP server's (aiosmtpd) chatter
    workdir = Path(tempfile.mkdtemp(prefix="wicbox-demo-"))
    try:
        with sandbox(workdir) as box:
            return _tour(box, workdir)
    finally:
        if options.clean:
            shutil.rmtree(workdir, ignore_errors=True)
            print(f"\nThe demo's folder {workdir} is removed (--clean).")
        else:
            print_look_around(workdir)


def print_look_around(workdir: Path) -> None:
    """The demo's folder and the commands that look at what it filed (the sandbox is gone by then)."""
    prefix = f"WICBOX_HOME={shlex.quote(str(workdir / 'home'))} wicbox"
    print(f"\nThe demo's database, allow-list and log are kept in {workdir}. Look at them with:")
    for command in ("status", "params list"):
        print(f"  {prefix} {command}")
    print(f"Remove the folder when done: rm -r {shlex.quote(str(workdir))} (or run the demo with --clean).")


def _tour(box: Sandbox, workdir: Path) -> int:
    home = workdir / "home"
    env = {key: value for key, value in os.environ.items() if key != "WICBOX_CONFIG"}
    env["WICBOX_HOME"] = str(home)
    env["SSL_CERT_FILE"] = env["REQUESTS_CA_BUNDLE"] = str(box.pki.ca_cert)  # the sandbox's own CA
    print(
        "Sandbox: identity-platform emulator at",
        box.idp.base_url,
        "and Dovecot IMAPS at",
        f"{box.dovecot.host}:{box.dovecot.imaps_port}",
    )
    mailbox = box.directory.mailbox.upn
    box.dovecot.add_mailbox(mailbox)
    with box.dovecot.admin_session(mailbox) as client:
        for raw in demo_mails():
            append_message(client, "INBOX", raw)
    print(f"Delivered {len(demo_mails())} mails to {mailbox}.")
    cwd = workdir
    database = embedded_database_path({"WICBOX_HOME": str(home)})
    allow_sandbox(home, (box.dovecot.host, box.smtp.host))  # the identity emulator shares the address
    if wicbox(env, cwd, "db", "init"):
        return 1
    add_projects(database)
    for name, value in parameters(box):
        if name == "WICBOX_MAILCLIENT_PASSWORD":
            code = subprocess.run(
                [sys.executable, "-m", "wicbox_bridge", "params", "set", name, "--prompt"],
                env=env,
                cwd=cwd,
                input=f"{value}\n{value}\n",
                text=True,
                capture_output=True,
                check=False,
            ).returncode
            print(f"\n$ wicbox params set {name} --prompt\n(typed twice, not echoed)")
        else:
            code = wicbox(env, cwd, "params", "set", name, value)
        if code:
            return code
    wicbox(env, cwd, "check")
    code = wicbox(env, cwd, "send-test", "--to", mailbox, "--subject", TEST_MAIL_SUBJECT)
    show_received(box)
    code = wicbox(env, cwd, "run") or code
    show_filed(database)
    show_log(home, None)
    return code


def allow_sandbox(home: Path, hosts: Sequence[str]) -> None:
    """The embedded default's allow-list, owner-only like the rest of its data folder."""
    make_private_dir(home)
    lines = "".join(f"{host}\n" for host in dict.fromkeys(hosts))
    write_private_text(home / ALLOWED_HOSTS_FILE, f"# the demo's sandbox servers\n{lines}")
    print(f"Allowed the sandbox's servers in {home / ALLOWED_HOSTS_FILE}.")


if __name__ == "__main__":
    sys.exit(main())
