"""A private Dovecot that behaves like Exchange Online's IMAP for the test bed.

It runs from its own configuration (``dovecot -F -c FILE``) with a short state directory, listens
only on the session's loopback address (IMAPS, IMAP with STARTTLS, LMTP for the SMTP test server)
and keeps mail in Maildirs owned by a numeric non-root uid. Sign-ins follow Exchange Online's rules
(see :mod:`tools.testbed.tokens` and :mod:`tools.testbed.dovecot_auth`). The test bed itself reads
and writes mailboxes through an administrator master login (``user*admin``), so what it appends
is stored byte for byte and what it fetches is what any IMAP client sees.
"""

from __future__ import annotations

import datetime as dt
import os
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from imapclient import IMAPClient

from tools.testbed.dovecot_auth import LoginCheckServer, SignIn
from tools.testbed.pki import LoopbackPki
from tools.testbed.ports import free_port
from tools.testbed.tokens import MailAccounts, TokenRules

DOVECOT_BINARY = "dovecot"
DOVEADM_BINARY = "doveadm"
MAIL_UID = 5000
ADMIN_USER = "testbed-admin"
MASTER_SEPARATOR = "*"
SENT_ITEMS = "Sent Items"
EXCHANGE_FOLDERS = (
    ("Drafts", "\\Drafts"),
    (SENT_ITEMS, "\\Sent"),
    ("Deleted Items", "\\Trash"),
    ("Junk Email", "\\Junk"),
)
START_TIMEOUT_S = 15.0


def wait_for_port(host: str, port: int, timeout_s: float = START_TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with socket.create_connection((host, port), timeout=1):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


@dataclass(frozen=True)
class DovecotPorts:
    imaps: int
    imap_starttls: int
    lmtp: int


@dataclass(frozen=True)
class StoredMessage:
    """A message as an IMAP client sees it."""

    uid: int
    flags: tuple[str, ...]
    internal_date: dt.datetime
    raw: bytes


@dataclass(frozen=True)
class DovecotLayout:
    """Where a Dovecot instance keeps its files (all under one short temporary directory)."""

    root: Path

    @property
    def base_dir(self) -> Path:
        return self.root / "run"

    @property
    def state_dir(self) -> Path:
        return self.root / "state"

    @property
    def mail_root(self) -> Path:
        return self.root / "mail"

    @property
    def config(self) -> Path:
        return self.root / "dovecot.conf"

    @property
    def master_users(self) -> Path:
        return self.root / "master-users"

    @property
    def passdb_dict(self) -> Path:
        return self.root / "passdb-dict.conf.ext"

    @property
    def login_check_socket(self) -> Path:
        return self.root / "login-check"

    @property
    def log(self) -> Path:
        return self.root / "dovecot.log"


def _folder_block(name: str, special_use: str) -> str:
    return f'  mailbox "{name}" {{\n    auto = subscribe\n    special_use = {special_use}\n  }}\n'


# Exchange Online starts no operating-system process per IMAP sign-in, and nothing of its sign-in
# runs on the client's machine. Dovecot's default (``service_count = 1``) forks and executes a new
# ``imap`` process for every login: about 5 ms of the test machine's CPU per login, half of what
# AUTHENTICATE took on the bed (docs/performance.md, "Part 3, second round"), in a MULTIPLE run
# over hundreds of mailboxes competing with wicbox for the same cores. The imap processes are kept
# and reused instead (one client at a time each, as before; every mailbox has the same uid here,
# so a reused process has nothing of another user's it should not have). Reused imap processes
# count against the auth service's client limit, hence its larger limit.
IMAP_SERVICE = """service imap {
  service_count = 0
  process_min_avail = 4
}
service auth {
  client_limit = 2000
}
"""


def render_config(layout: DovecotLayout, host: str, ports: DovecotPorts, pki: LoopbackPki) -> str:
    """dovecot.conf for one instance."""
    folders = "".join(_folder_block(name, use) for name, use in EXCHANGE_FOLDERS)
    return f"""# wicbox-bridge test bed: private Dovecot emulating Exchange Online IMAP
base_dir = {layout.base_dir}
state_dir = {layout.state_dir}
instance_name = wicbox-testbed-{layout.root.name}
protocols = imap lmtp
listen = {host}
log_path = {layout.log}
ssl = yes
ssl_cert = <{pki.server_cert}
ssl_key = <{pki.server_key}
ssl_min_protocol = TLSv1.2
login_greeting = The Microsoft Exchange IMAP4 service is ready.
disable_plaintext_auth = no
auth_mechanisms = plain login xoauth2 oauthbearer
auth_failure_delay = 0
auth_cache_size = 0
auth_username_format = %Lu
auth_master_user_separator = {MASTER_SEPARATOR}
first_valid_uid = {MAIL_UID}
last_valid_uid = {MAIL_UID}
mail_location = maildir:~/Maildir:LAYOUT=fs
mail_max_userip_connections = 500
namespace inbox {{
  inbox = yes
  separator = /
{folders}}}
passdb {{
  driver = passwd-file
  master = yes
  args = scheme=PLAIN username_format=%u {layout.master_users}
}}
passdb {{
  driver = dict
  args = {layout.passdb_dict}
}}
userdb {{
  driver = static
  args = uid={MAIL_UID} gid={MAIL_UID} home={layout.mail_root}/%u allow_all_users=yes
}}
service imap-login {{
  inet_listener imap {{
    address = {host}
    port = {ports.imap_starttls}
  }}
  inet_listener imaps {{
    address = {host}
    port = {ports.imaps}
    ssl = yes
  }}
  service_count = 0
  process_min_avail = 1
}}
{IMAP_SERVICE}service lmtp {{
  inet_listener lmtp {{
    address = {host}
    port = {ports.lmtp}
  }}
  unix_listener lmtp {{
    mode = 0
  }}
}}
service anvil {{
  unix_listener anvil-auth-penalty {{
    mode = 0
  }}
}}
service stats {{
  unix_listener stats-reader {{
    mode = 0600
  }}
  unix_listener stats-writer {{
    mode = 0666
  }}
}}
"""


class DovecotServer:
    """One private Dovecot plus the sign-in check it consults; the control API for tests."""

    def __init__(self, host: str, pki: LoopbackPki, accounts: MailAccounts | None = None) -> None:
        self.host = host
        self.pki = pki
        self.accounts = accounts if accounts is not None else MailAccounts()
        self.layout = DovecotLayout(Path(tempfile.mkdtemp(prefix="wbdc-")))
        self.ports = DovecotPorts(free_port(host), free_port(host), free_port(host))
        self._admin_password = secrets.token_urlsafe(24)
        rules = TokenRules.from_files(pki.signing_public_key, pki.signing_kid)
        self.layout.root.chmod(0o755)
        self._login_check = LoginCheckServer(self.layout.login_check_socket, rules, self.accounts)
        self._process: subprocess.Popen[bytes] | None = None
        self._prepare_files()
        self._login_check.start()

    # ---- addresses -------------------------------------------------------------------------
    @property
    def imaps_port(self) -> int:
        return self.ports.imaps

    @property
    def imap_starttls_port(self) -> int:
        return self.ports.imap_starttls

    @property
    def lmtp_port(self) -> int:
        return self.ports.lmtp

    @property
    def ca_path(self) -> Path:
        return self.pki.ca_cert

    @property
    def log_path(self) -> Path:
        return self.layout.log

    # ---- lifecycle -------------------------------------------------------------------------
    def _prepare_files(self) -> None:
        layout = self.layout
        for directory in (layout.base_dir, layout.state_dir, layout.mail_root):
            directory.mkdir(mode=0o755)
        os.chown(layout.mail_root, MAIL_UID, MAIL_UID)
        layout.master_users.write_text(f"{ADMIN_USER}:{{PLAIN}}{self._admin_password}\n")
        layout.master_users.chmod(0o644)
        layout.passdb_dict.write_text(self._login_check.passdb_args())
        layout.passdb_dict.chmod(0o644)
        layout.config.write_text(render_config(layout, self.host, self.ports, self.pki))

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    @property
    def pid(self) -> int | None:
        """The master process's id (its children are the login, auth and imap processes)."""
        return self._process.pid if self.running and self._process is not None else None

    def start(self) -> None:
        if self.running:
            return
        self._process = subprocess.Popen(
            [DOVECOT_BINARY, "-F", "-c", str(self.layout.config)],
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            for port in (self.ports.imaps, self.ports.imap_starttls, self.ports.lmtp):
                wait_for_port(self.host, port)
        except OSError as exc:
            self.stop()
            raise RuntimeError(f"Dovecot did not start; see {self.layout.log}") from exc

    def stop(self) -> None:
        """Stop Dovecot and every process it started (its own process group)."""
        process, self._process = self._process, None
        if process is None:
            return
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
        _kill_process_group(process.pid)

    def close(self) -> None:
        """Stop Dovecot and the sign-in check, and remove every file of this instance."""
        self.stop()
        self._login_check.stop()
        shutil.rmtree(self.layout.root, ignore_errors=True)

    # ---- accounts --------------------------------------------------------------------------
    def add_mailbox(self, user: str, password: str | None = None) -> None:
        self.accounts.add_mailbox(user, password)

    def set_password(self, user: str, password: str) -> None:
        self.accounts.set_password(user, password)

    def grant_app_access(self, principal: str, mailbox: str) -> None:
        """Exchange's Add-MailboxPermission: ``principal`` is the app's SP object id or client id."""
        self.accounts.grant_app_access(principal, mailbox)

    def sign_ins(self) -> list[SignIn]:
        """Every sign-in the server judged since the last reset, newest last."""
        return self._login_check.sign_ins.entries()

    def reset(self) -> None:
        """Forget every mailbox, password, grant and sign-in; delete all mail."""
        if self.running:
            self._kick_everyone()
        self.accounts.clear()
        self._login_check.sign_ins.clear()
        for home in self.layout.mail_root.iterdir():
            shutil.rmtree(home, ignore_errors=True)

    def _kick_everyone(self) -> None:
        subprocess.run(
            [DOVEADM_BINARY, "-c", str(self.layout.config), "kick", "*"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            check=False,
        )

    # ---- mail ------------------------------------------------------------------------------
    def ssl_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.pki.ca_cert))

    def imap_client(self) -> IMAPClient:
        """A not yet authenticated IMAPS connection."""
        return IMAPClient(self.host, port=self.ports.imaps, ssl=True, ssl_context=self.ssl_context())

    @contextmanager
    def admin_session(self, user: str) -> Iterator[IMAPClient]:
        """An IMAP session in ``user``'s mailbox through the administrator master login."""
        client = self.imap_client()
        try:
            client.login(f"{user}{MASTER_SEPARATOR}{ADMIN_USER}", self._admin_password)
            yield client
        finally:
            _logout_quietly(client)

    def create_folder(self, user: str, folder: str) -> None:
        with self.admin_session(user) as client:
            if not client.folder_exists(folder):
                client.create_folder(folder)

    def folders(self, user: str) -> list[str]:
        with self.admin_session(user) as client:
            return [str(name) for _flags, _delimiter, name in client.list_folders()]

    def append(
        self,
        user: str,
        folder: str,
        raw: bytes,
        flags: Sequence[str] = (),
        internal_date: dt.datetime | None = None,
    ) -> int:
        """Store ``raw`` exactly as given; returns its UID. Creates ``folder`` if needed."""
        with self.admin_session(user) as client:
            return append_message(client, folder, raw, flags, internal_date)

    def keep_in_sent_items(self, user: str, raw: bytes) -> None:
        """What Exchange does with a mail ``user`` submitted: a read copy, byte for byte, in Sent Items."""
        self.append(user, SENT_ITEMS, raw, flags=("\\Seen",))

    def messages(self, user: str, folder: str = "INBOX") -> list[StoredMessage]:
        """Every message of ``folder``, oldest UID first, with its raw bytes."""
        with self.admin_session(user) as client:
            return fetch_messages(client, folder)


def append_message(
    client: IMAPClient,
    folder: str,
    raw: bytes,
    flags: Sequence[str] = (),
    internal_date: dt.datetime | None = None,
) -> int:
    if not client.folder_exists(folder):
        client.create_folder(folder)
    answer = client.append(folder, raw, flags=tuple(flags), msg_time=internal_date)
    return _appended_uid(answer)


def _appended_uid(answer: bytes) -> int:
    # "[APPENDUID <uidvalidity> <uid>] Append completed."
    words = answer.decode("ascii", "replace").strip("[").split()
    if len(words) >= 3 and words[0].upper() == "APPENDUID":
        return int(words[2].rstrip("]"))
    raise RuntimeError(f"APPEND answered without APPENDUID: {answer!r}")


def fetch_messages(client: IMAPClient, folder: str) -> list[StoredMessage]:
    client.select_folder(folder, readonly=True)
    uids = client.search("ALL")
    if not uids:
        return []
    fetched = client.fetch(uids, ["FLAGS", "INTERNALDATE", "BODY.PEEK[]"])
    return [
        StoredMessage(
            uid=uid,
            flags=tuple(_text(flag) for flag in fetched[uid][b"FLAGS"] if _text(flag) != "\\Recent"),
            internal_date=fetched[uid][b"INTERNALDATE"],
            raw=bytes(fetched[uid][b"BODY[]"]),
        )
        for uid in sorted(fetched)
    ]


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _logout_quietly(client: IMAPClient) -> None:
    try:
        client.logout()
    except Exception:  # the session may already be gone (server stopped)
        client.shutdown()


def _kill_process_group(pgid: int) -> None:
    """Kill what is left of a process group this module started (Dovecot's children)."""
    try:
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:
        return
