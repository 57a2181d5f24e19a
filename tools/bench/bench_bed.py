"""The benchmark's servers, started outside pytest from the test bed's classes: a loopback PKI,
the identity-platform emulator on ``https://127.x.y.z:443``, Dovecot (IMAPS) and a private
PostgreSQL reached over ODBC. Everything lives under one temporary directory and is stopped and
removed when the context ends, also on Ctrl-C.

The benchmark mailbox keeps a template folder with the seeded mails; :func:`restore_inbox` puts
a fresh copy of them into INBOX (a server-side ``UID COPY``) before each contender.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import msal
import requests
from imapclient import IMAPClient

from tools.testbed.dovecot import DovecotServer, append_message
from tools.testbed.idp import IdentityPlatformEmulator, SeededDirectory, seed_test_directory
from tools.testbed.mailbed import random_loopback_ip
from tools.testbed.pki import LoopbackPki, create_loopback_pki
from tools.testbed.postgres import PostgresServer, running_postgres

TEMPLATE_FOLDER = "BenchTemplate"
IMAP_SCOPE = "https://outlook.office.com/IMAP.AccessAsUser.All"


@dataclass(frozen=True)
class BenchBed:
    """The running servers and the benchmark's scratch directory."""

    root: Path
    pki: LoopbackPki
    idp: IdentityPlatformEmulator
    directory: SeededDirectory
    dovecot: DovecotServer
    postgres: PostgresServer

    @property
    def mailbox(self) -> str:
        return self.directory.mailbox.upn

    @property
    def imap_host(self) -> str:
        return self.dovecot.host

    @property
    def imaps_port(self) -> int:
        return self.dovecot.imaps_port


@contextmanager
def scratch_directory() -> Iterator[Path]:
    """A temporary directory other local users may traverse (getmail runs as ``nobody``)."""
    root = Path(tempfile.mkdtemp(prefix="wicbox-bench-"))
    root.chmod(0o755)
    try:
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


@contextmanager
def running_bed() -> Iterator[BenchBed]:
    """Start every server; stop them all (and remove their files) however the block ends."""
    with ExitStack() as stack:
        root = stack.enter_context(scratch_directory())
        address = random_loopback_ip()
        pki = create_loopback_pki(root / "pki", extra_ips=(address,))
        idp = stack.enter_context(IdentityPlatformEmulator(pki, address))
        directory = seed_test_directory(idp)
        dovecot = DovecotServer(address, pki)
        stack.callback(dovecot.close)
        dovecot.start()
        dovecot.add_mailbox(directory.mailbox.upn)
        postgres = stack.enter_context(running_postgres())
        yield BenchBed(root, pki, idp, directory, dovecot, postgres)


def seed_template(bed: BenchBed, mails: Sequence[bytes]) -> None:
    """Replace the template folder's content with ``mails`` (oldest first)."""
    with bed.dovecot.admin_session(bed.mailbox) as client:
        if client.folder_exists(TEMPLATE_FOLDER):
            client.delete_folder(TEMPLATE_FOLDER)
        client.create_folder(TEMPLATE_FOLDER)
        for raw in mails:
            append_message(client, TEMPLATE_FOLDER, raw)


def restore_inbox(bed: BenchBed) -> int:
    """Empty INBOX and every other folder but the template, then copy the template into INBOX.

    Returns the number of mails in INBOX afterwards.
    """
    with bed.dovecot.admin_session(bed.mailbox) as client:
        _empty_folder(client, "INBOX")
        for _flags, _delimiter, name in client.list_folders("", "WICBOX/*"):
            _empty_folder(client, str(name))
        client.select_folder(TEMPLATE_FOLDER, readonly=True)
        uids = client.search("ALL")
        client.copy(uids, "INBOX")
        return int(client.folder_status("INBOX", [b"MESSAGES"])[b"MESSAGES"])


def inbox_count(bed: BenchBed) -> int:
    with bed.dovecot.admin_session(bed.mailbox) as client:
        return int(client.folder_status("INBOX", [b"MESSAGES"])[b"MESSAGES"])


def _empty_folder(client: IMAPClient, folder: str) -> None:
    client.select_folder(folder)
    uids = client.search("ALL")
    if uids:
        client.delete_messages(uids)
        client.expunge()
    client.unselect_folder()


def delegated_token(bed: BenchBed) -> str:
    """An IMAP token for the benchmark mailbox from the emulator, through the real msal."""
    session = requests.Session()
    session.verify = str(bed.pki.ca_cert)
    session.trust_env = False  # REQUESTS_CA_BUNDLE would override ``verify``
    with session:
        app = msal.PublicClientApplication(
            bed.directory.public_client_id,
            authority=bed.directory.authority,
            http_client=session,
            instance_discovery=False,
        )
        answer = app.acquire_token_by_username_password(
            bed.directory.mailbox.upn, bed.directory.mailbox.password, scopes=[IMAP_SCOPE]
        )
    token = answer.get("access_token")
    if not isinstance(token, str):
        refusal = f"{answer.get('error')}: {answer.get('error_description')}"
        raise RuntimeError(f"the emulator refused a token: {refusal}")
    return token
