"""The per-run cap shared fairly between project mailboxes, and mailboxes read concurrently within
the worker bound (WICBOX_MAILCLIENT_WORKERS), never with two connections to one mailbox.

When each IMAP connection was open and which mailbox it signed in to is recorded by
:class:`ImapConnectionRecorder`, a loopback TLS proxy in front of Dovecot: a connection counts as
open from the moment the proxy accepts it until the client's LOGOUT reaches the proxy (the client
only opens its next connection after LOGOUT's answer came back through the proxy, so a worker that
reuses its slot never looks like two open connections).
"""

from __future__ import annotations

import base64
import binascii
import json
import random
import re
import socket
import ssl
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import pytest

from tests.helpers.mailgen import make_mail
from tests.plugins.wic import Mailroom
from tools.testbed.dovecot import DovecotServer
from tools.testbed.pki import LoopbackPki

pytestmark = pytest.mark.testbed

ACCEPT_POLL_S = 0.05
HANDSHAKE_TIMEOUT_S = 5.0
_LOGOUT = re.compile(rb"^\S+ LOGOUT\r?\n$", re.IGNORECASE)


# --------------------------------------------------------------------------- recording connections


@dataclass(frozen=True)
class RecordedConnection:
    """One client connection: the mailbox it signed in to (None: never signed in) and when it was open."""

    user: str | None
    opened: float
    closed: float
    resumed: bool = False  # the client resumed an earlier TLS session (ssl's session_reused)
    logged_out: bool = False  # the client sent LOGOUT (else it just went away)


def xoauth2_user(line: bytes) -> str | None:
    """The ``user=`` of a SASL XOAUTH2 response on a client line (initial response or continuation).

    Only the user name is kept; the token is neither stored nor shown.
    """
    words = line.split()
    if not words:
        return None
    try:
        decoded = base64.b64decode(words[-1], validate=True)
    except (binascii.Error, ValueError):
        return None
    if not decoded.startswith(b"user="):
        return None
    return decoded[len(b"user=") :].split(b"\x01", 1)[0].decode("utf-8", "replace").lower()


class ImapConnectionRecorder:
    """``host:port`` forwarding every byte to Dovecot's IMAPS port, recording each connection."""

    def __init__(self, host: str, upstream_port: int, pki: LoopbackPki) -> None:
        self.upstream = (host, upstream_port)
        self._server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self._server_context.load_cert_chain(str(pki.server_cert), str(pki.server_key))
        self._upstream_context = ssl.create_default_context(cafile=str(pki.ca_cert))
        self._listener = socket.create_server((host, 0))
        self._listener.settimeout(ACCEPT_POLL_S)
        self.host = host
        self.port: int = self._listener.getsockname()[1]
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._records: list[RecordedConnection] = []
        self._threads: list[threading.Thread] = []
        self._sockets: list[socket.socket] = []
        self._accept_thread = threading.Thread(target=self._accept_loop, daemon=True)

    def __enter__(self) -> ImapConnectionRecorder:
        self._accept_thread.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stop.set()
        self._accept_thread.join(timeout=5)
        self._listener.close()
        with self._lock:
            sockets, threads = list(self._sockets), list(self._threads)
        for sock in sockets:
            _shutdown(sock)
        for thread in threads:
            thread.join(timeout=5)
        for sock in sockets:
            sock.close()

    def connections(self) -> list[RecordedConnection]:
        """Connections that have ended, in the order they were opened."""
        with self._lock:
            return sorted(self._records, key=lambda record: record.opened)

    def _accept_loop(self) -> None:
        while not self._stop.is_set():
            try:
                client, _address = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self._spawn(self._serve, client)

    def _spawn(self, target: Callable[..., None], *args: object) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)
        with self._lock:
            self._threads.append(thread)
        thread.start()

    def _serve(self, raw_client: socket.socket) -> None:
        try:
            raw_client.settimeout(HANDSHAKE_TIMEOUT_S)
            client = self._server_context.wrap_socket(raw_client, server_side=True)
            upstream = self._upstream_context.wrap_socket(
                socket.create_connection(self.upstream, timeout=HANDSHAKE_TIMEOUT_S),
                server_hostname=self.upstream[0],
            )
        except (OSError, ssl.SSLError):
            raw_client.close()
            return
        # Open from the end of the client's TLS handshake: the client sends LOGOUT and goes on
        # without waiting for the answer, so the thread that reads the previous connection's
        # LOGOUT may run after this one's accept; the handshake needs the client's answers, which
        # it sends only after that LOGOUT.
        opened = time.monotonic()
        for sock in (client, upstream):
            sock.settimeout(None)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with self._lock:
            self._sockets += [client, upstream]
        self._spawn(_pump, upstream, client)
        resumed = isinstance(client, ssl.SSLSocket) and client.session_reused
        user, closed, logged_out = self._client_to_server(client, upstream)
        with self._lock:
            self._records.append(RecordedConnection(user, opened, closed, resumed, logged_out))

    @staticmethod
    def _client_to_server(client: socket.socket, upstream: socket.socket) -> tuple[str | None, float, bool]:
        user: str | None = None
        logout: float | None = None
        reader = client.makefile("rb")
        try:
            while line := reader.readline():
                if user is None and len(line) > 20:
                    user = xoauth2_user(line)
                if logout is None and _LOGOUT.match(line):
                    logout = time.monotonic()  # before forwarding: earlier than the answer
                upstream.sendall(line)
        except (OSError, ValueError):
            pass
        finally:
            _shutdown(upstream)
        return user, logout if logout is not None else time.monotonic(), logout is not None


def _pump(source: socket.socket, target: socket.socket) -> None:
    try:
        while data := source.recv(65536):
            target.sendall(data)
    except (OSError, ValueError):
        pass
    finally:
        _shutdown(target)


def _shutdown(sock: socket.socket) -> None:
    with suppress(OSError):
        socket.socket.shutdown(sock, socket.SHUT_RDWR)


@contextmanager
def imap_recorder(room: Mailroom) -> Iterator[ImapConnectionRecorder]:
    """The room's IMAP traffic through a recorder for the duration of the block."""
    dovecot = room.dovecot
    with ImapConnectionRecorder(dovecot.host, dovecot.imaps_port, dovecot.pki) as recorder:
        room.wic.set_params({"WICBOX_MAILCLIENT_IMAPHOST": f"{recorder.host}:{recorder.port}"})
        try:
            yield recorder
        finally:
            room.wic.set_params({"WICBOX_MAILCLIENT_IMAPHOST": f"{dovecot.host}:{dovecot.imaps_port}"})


def most_open_together(connections: Sequence[RecordedConnection]) -> int:
    """The largest number of connections open at the same moment."""
    events = sorted([(c.opened, 1) for c in connections] + [(c.closed, -1) for c in connections])
    most = current = 0
    for _moment, change in events:  # at equal moments a close (-1) sorts before an open
        current += change
        most = max(most, current)
    return most


def overlapping_per_mailbox(connections: Sequence[RecordedConnection]) -> list[str]:
    """Mailboxes that had two connections open at once."""
    found = []
    for user in {c.user for c in connections if c.user is not None}:
        own = [c for c in connections if c.user == user]
        if most_open_together(own) > 1:
            found.append(user)
    return sorted(found)


@pytest.mark.parametrize(
    ("intervals", "most"),
    [
        ([], 0),
        ([(0, 1)], 1),
        ([(0, 1), (1, 2)], 1),  # one closes as the next opens: never two at once
        ([(0, 2), (1, 3)], 2),
        ([(0, 10), (1, 2), (3, 4), (1.5, 3.5)], 3),
    ],
)
def test_most_open_together(intervals: list[tuple[float, float]], most: int) -> None:
    assert most_open_together([RecordedConnection("x", a, b) for a, b in intervals]) == most


def test_xoauth2_user_reads_the_user_and_nothing_else() -> None:
    response = base64.b64encode(b"user=Project-Alpha@klant.example\x01auth=Bearer eyJ0b2tlbg\x01\x01")
    assert xoauth2_user(b"A1 AUTHENTICATE XOAUTH2 " + response + b"\r\n") == "project-alpha@klant.example"
    assert xoauth2_user(response + b"\r\n") == "project-alpha@klant.example"
    assert xoauth2_user(b"A2 UID FETCH 1:* (BODY.PEEK[])\r\n") is None


# --------------------------------------------------------------------------- project mailboxes


def use_application_permissions(room: Mailroom) -> None:
    """Application permissions (client secret, no password); the app may open the global mailbox."""
    directory = room.wic.directory
    room.wic.set_params(
        {
            "WICBOX_MAILCLIENT_CLIENTID": directory.confidential_client_id,
            "WICBOX_MAILCLIENT_CLIENTSECRET": directory.confidential_client_secret,
            "WICBOX_MAILCLIENT_PASSWORD": None,
            "WICBOX_MAILCLIENT_SCOPE": "https://outlook.office365.com/.default",
        }
    )
    room.dovecot.grant_app_access(directory.confidential_client_sp_id, room.mailbox)


def project_mailbox(project_id: int) -> str:
    return f"dossier-{project_id:03d}@klant.example"


def add_project_mailboxes(room: Mailroom, mails_per_mailbox: Sequence[int]) -> dict[int, list[bytes]]:
    """MULTIPLE with application permissions: a project (ids from 1) with its own granted mailbox
    per entry, holding that many unique mails. The mails delivered, by project id."""
    use_application_permissions(room)
    room.wic.set_params({"WICBOXACCOUNTMODE": "MULTIPLE"})
    sp_id = room.wic.directory.confidential_client_sp_id
    delivered: dict[int, list[bytes]] = {}
    for project_id, count in enumerate(mails_per_mailbox, start=1):
        mailbox = project_mailbox(project_id)
        room.dovecot.add_mailbox(mailbox)
        room.dovecot.grant_app_access(sp_id, mailbox)
        room.wic.add_project(project_id, f"P{project_id:03d}", mailbox=mailbox)
        mails = [make_mail(10_000 * project_id + n, to=mailbox) for n in range(count)]
        if mails:
            room.deliver(mails, user=mailbox)
        delivered[project_id] = mails
    return delivered


def run_json(room: Mailroom, *args: str) -> dict[str, Any]:
    result = room.wic.cli("run", "--json", *args)
    assert result.exit_code == 0, result.output
    report: dict[str, Any] = json.loads(result.stdout)
    return report


def filed_per_project(report: dict[str, Any]) -> dict[str, int]:
    mailboxes = report["mailboxes"]
    assert isinstance(mailboxes, list)
    return {str(mailbox["project"]): int(mailbox["filed"]) for mailbox in mailboxes}


def assert_filed_once_under_each_project(room: Mailroom, delivered: dict[int, list[bytes]]) -> None:
    """Every delivered mail filed once, byte for byte, under its mailbox's project; INBOXes empty."""
    rows = room.filed()
    assert all(row.status == "FILED" for row in rows)
    assert Counter(row.sha256 for row in rows).most_common(1)[0][1] == 1, "a mail was filed twice"
    filed = {(row.project_id, row.raw) for row in rows}
    assert filed == {(project_id, raw) for project_id, raws in delivered.items() for raw in raws}
    for project_id in delivered:
        assert room.messages(user=project_mailbox(project_id)) == []


# --------------------------------------------------------------------------- fairness


def test_cap_of_100_is_shared_by_ten_busy_mailboxes_and_drains_them_in_five_runs(mailroom: Mailroom) -> None:
    delivered = add_project_mailboxes(mailroom, [50] * 10)
    first = filed_per_project(run_json(mailroom))
    assert sum(first.values()) == 100, first  # WicBoxMaxMailsPerRun defaults to 100
    assert all(8 <= filed <= 12 for filed in first.values()), first
    totals = [sum(first.values())]
    for _run in range(4):
        totals.append(sum(filed_per_project(run_json(mailroom)).values()))
    assert totals == [100] * 5
    assert_filed_once_under_each_project(mailroom, delivered)


def test_what_quiet_mailboxes_leave_goes_to_the_busy_one(mailroom: Mailroom) -> None:
    """Water-filling: the quiet mailboxes get all they have, the busy one (read first) the rest."""
    delivered = add_project_mailboxes(mailroom, [150, 3, 3, 3, 3])
    with imap_recorder(mailroom) as recorder:
        first = filed_per_project(run_json(mailroom))
        connections = recorder.connections()
    assert first == {"P001": 88, "P002": 3, "P003": 3, "P004": 3, "P005": 3}
    assert overlapping_per_mailbox(connections) == [], "two connections to one mailbox at once"
    second = filed_per_project(run_json(mailroom))
    assert second == {"P001": 62, "P002": 0, "P003": 0, "P004": 0, "P005": 0}
    assert_filed_once_under_each_project(mailroom, delivered)


def test_a_busy_mailbox_never_starves_a_quiet_one(mailroom: Mailroom) -> None:
    delivered = add_project_mailboxes(mailroom, [3, 3, 300])
    first = filed_per_project(run_json(mailroom, "--max-mails", "20"))
    assert first == {"P001": 3, "P002": 3, "P003": 14}
    assert delivered[3][:14] == [row.raw for row in mailroom.filed() if row.project_id == 3], "oldest first"


def served(report: dict[str, Any]) -> set[str]:
    return {project for project, filed in filed_per_project(report).items() if filed > 0}


def test_mail_in_three_of_200_project_mailboxes_is_filed_in_one_run(mailroom: Mailroom) -> None:
    """Every mailbox is opened each run and an empty one takes none of the cap, so mail in any three
    of 200 mailboxes is filed by the next run even with a cap of 20 (before: about 20 mailboxes were
    opened per run, and all three would have been among them once in a thousand draws)."""
    seed = random.randrange(2**32)
    print(f"seed={seed}")
    busy = set(random.Random(seed).sample(range(1, 201), 3))
    delivered = add_project_mailboxes(mailroom, [5 if n in busy else 0 for n in range(1, 201)])
    report = run_json(mailroom, "--max-mails", "20")
    assert len(report["mailboxes"]) == 200
    assert [m["project"] for m in report["mailboxes"] if m.get("error")] == []
    assert served(report) == {f"P{n:03d}" for n in busy}, f"seed={seed}"
    assert report["counts"]["filed"] == 15
    assert_filed_once_under_each_project(mailroom, delivered)


def test_with_more_mail_than_the_cap_successive_runs_serve_other_mailboxes(mailroom: Mailroom) -> None:
    """No starvation: the mailboxes the cap left out were served least recently, so they start the
    next run; 12 mailboxes with a cap of 4 are each served within three runs."""
    delivered = add_project_mailboxes(mailroom, [2] * 12)
    runs = [served(run_json(mailroom, "--max-mails", "4")) for _run in range(3)]
    assert [len(run) for run in runs] == [4, 4, 4], runs
    assert runs[0] | runs[1] | runs[2] == {f"P{n:03d}" for n in range(1, 13)}, runs
    for _run in range(3):
        run_json(mailroom, "--max-mails", "4")
    assert_filed_once_under_each_project(mailroom, delivered)


# --------------------------------------------------------------------------- concurrency


@pytest.mark.parametrize(("workers", "bound"), [(None, 4), ("1", 1), ("3", 3)])
def test_mailboxes_are_read_concurrently_within_the_worker_bound(
    mailroom: Mailroom, dovecot_clean: DovecotServer, workers: str | None, bound: int
) -> None:
    delivered = add_project_mailboxes(mailroom, [6] * 8)
    mailroom.wic.set_params({"WICBOX_MAILCLIENT_WORKERS": workers})
    with imap_recorder(mailroom) as recorder:
        report = run_json(mailroom)
        connections = recorder.connections()
    assert report["counts"]["filed"] == 48
    assert_filed_once_under_each_project(mailroom, delivered)
    assert {connection.user for connection in connections} == {project_mailbox(n) for n in range(1, 9)}
    assert overlapping_per_mailbox(connections) == [], "two connections to one mailbox at once"
    most = most_open_together(connections)
    assert most <= bound, f"{most} connections open together, WICBOX_MAILCLIENT_WORKERS allows {bound}"
    if bound > 1:
        assert most >= 2, "the mailboxes were read one after another, not concurrently"
