"""A loopback IMAP proxy in front of the test bed's Dovecot that answers like Exchange Online.

Dovecot cannot produce Exchange Online's special answers, so tests put this proxy between the
client and Dovecot and tell it what to inject:

- ``expire_token(after_commands=N)`` / ``expire_token(at_fetch=K)``: ``* BYE Session
  invalidated - AccessTokenExpired`` instead of the N+1-th next command (or each of the next K
  FETCH commands), then the connection is closed, as Exchange does when the token expires;
- ``throttle(count, backoff_ms)``: ``<tag> BAD Request is throttled. Suggested Backoff Time: N ms``
  for the next ``count`` commands, which are not forwarded;
- ``drop_during_fetch()``: the next FETCH answer with a literal is cut in the middle of the literal
  and the connection closed;
- ``hide_capabilities("MOVE", "UIDPLUS")``: those words are removed from every CAPABILITY answer.

The client side speaks TLS with the test bed's server certificate (or plain TCP with
``client_tls=False``, to test that a client refuses to sign in without TLS); the Dovecot side is
always TLS. One thread per direction and connection, a line reader that knows IMAP literals
(``{n}`` and ``{n+}``) well enough to forward them unchanged. ``commands`` counts the commands the
clients sent, by name (``UID FETCH``, ``AUTHENTICATE``...); nothing is logged, so no token leaks.
"""

from __future__ import annotations

import re
import socket
import ssl
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from types import TracebackType
from typing import BinaryIO

from tools.testbed.pki import LoopbackPki

BYE_TOKEN_EXPIRED = b"* BYE Session invalidated - AccessTokenExpired\r\n"
THROTTLED = "{tag} BAD Request is throttled. Suggested Backoff Time: {ms} ms\r\n"
_LITERAL = re.compile(rb"\{(\d+)\+?\}\r?\n$")
_COMMAND = re.compile(rb"^([A-Za-z0-9.]+) ([A-Za-z]+)(?: ([A-Za-z]+))?")
_CAPABILITY_LINE = re.compile(rb"^\* CAPABILITY |\[CAPABILITY ", re.IGNORECASE)
ACCEPT_POLL_S = 0.1
HANDSHAKE_TIMEOUT_S = 5.0


def literal_size(line: bytes) -> int | None:
    """The size of the literal announced at the end of ``line`` (``{n}`` or ``{n+}``), if any."""
    match = _LITERAL.search(line)
    return int(match.group(1)) if match else None


def command_name(line: bytes) -> tuple[str, str] | None:
    """``(tag, name)`` of a client command line; ``UID`` commands are named ``UID FETCH`` etc.

    Lines that are not commands (SASL responses, literal continuations) give None.
    """
    match = _COMMAND.match(line)
    if not match:
        return None
    tag, name, sub = (part.decode("ascii") if part else "" for part in match.groups())
    name = name.upper()
    if name == "UID" and sub:
        name = f"UID {sub.upper()}"
    return tag, name


def is_fetch(name: str) -> bool:
    return name in ("FETCH", "UID FETCH")


def without_capabilities(line: bytes, hidden: frozenset[str]) -> bytes:
    """``line`` with the ``hidden`` capability words removed, when it lists capabilities."""
    if not hidden or not _CAPABILITY_LINE.search(line):
        return line
    kept: list[bytes] = []
    for word in line.rstrip(b"\r\n").split(b" "):
        name = word.rstrip(b"]")
        if name.decode("ascii", "replace").upper() not in hidden:
            kept.append(word)
        elif kept and len(name) < len(word):  # "MOVE]" closes the response code: keep the "]"
            kept[-1] += word[len(name) :]
    return b" ".join(kept) + b"\r\n"


@dataclass
class FaultPlan:
    """What to inject next; shared by all connections, consumed when it fires (thread-safe)."""

    bye_after_commands: int | None = None
    bye_at_fetch: int = 0
    throttle_count: int = 0
    throttle_ms: int = 0
    drop_in_fetch: bool = False
    hidden: frozenset[str] = frozenset()
    commands: Counter[str] = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def on_command(self, name: str) -> str | None:
        """Count ``name``; what to do instead of forwarding it: "bye", "throttle" or None."""
        with self.lock:
            self.commands[name] += 1
            if self.bye_at_fetch and is_fetch(name):
                self.bye_at_fetch -= 1
                return "bye"
            if self.bye_after_commands is not None:
                if self.bye_after_commands == 0:
                    self.bye_after_commands = None
                    return "bye"
                self.bye_after_commands -= 1
            if self.throttle_count > 0:
                self.throttle_count -= 1
                return "throttle"
            return None

    def take_drop(self) -> bool:
        with self.lock:
            drop, self.drop_in_fetch = self.drop_in_fetch, False
            return drop


class _ProxiedConnection:
    """One client connection and its Dovecot connection, pumped by two threads."""

    def __init__(self, client: socket.socket, upstream: socket.socket, plan: FaultPlan) -> None:
        self.client = client
        self.upstream = upstream
        self.plan = plan
        self._client_write = threading.Lock()
        self.threads = [
            threading.Thread(target=self._guarded, args=(self._client_to_server,), daemon=True),
            threading.Thread(target=self._guarded, args=(self._server_to_client,), daemon=True),
        ]

    def start(self) -> None:
        for thread in self.threads:
            thread.start()

    def close(self) -> None:
        for sock in (self.client, self.upstream):
            with suppress(OSError):
                socket.socket.shutdown(sock, socket.SHUT_RDWR)

    def release(self) -> None:
        for sock in (self.client, self.upstream):
            with suppress(OSError):
                sock.close()

    def _guarded(self, pump: Callable[[], None]) -> None:
        try:
            pump()
        except (OSError, ValueError):
            pass
        finally:
            self.close()

    def _to_client(self, data: bytes) -> None:
        with self._client_write:
            self.client.sendall(data)

    def _client_to_server(self) -> None:
        reader = self.client.makefile("rb")
        while line := reader.readline():
            parsed = command_name(line)
            if parsed and literal_size(line) is None:
                action = self.plan.on_command(parsed[1])
                if action == "bye":
                    self._to_client(BYE_TOKEN_EXPIRED)
                    return
                if action == "throttle":
                    self._to_client(THROTTLED.format(tag=parsed[0], ms=self.plan.throttle_ms).encode())
                    continue
            elif parsed:
                self.plan.on_command(parsed[1])
            self.upstream.sendall(line)
            self._forward_literals(reader, line, self.upstream.sendall)

    def _server_to_client(self) -> None:
        reader = self.upstream.makefile("rb")
        while line := reader.readline():
            line = without_capabilities(line, self.plan.hidden)
            size = literal_size(line)
            if size is not None and b" FETCH " in line.upper() and self.plan.take_drop():
                self._to_client(line + reader.read(size)[: size // 2])
                return
            self._to_client(line)
            self._forward_literals(reader, line, self._to_client)

    @staticmethod
    def _forward_literals(reader: BinaryIO, line: bytes, send: Callable[[bytes], object]) -> None:
        size = literal_size(line)
        while size is not None:
            send(reader.read(size))
            line = reader.readline()
            send(line)
            size = literal_size(line)


class ImapFaultProxy:
    """``host:port`` forwarding to Dovecot's IMAPS port, with the faults a test asks for."""

    def __init__(
        self,
        host: str,
        upstream_port: int,
        pki: LoopbackPki,
        *,
        upstream_host: str | None = None,
        client_tls: bool = True,
    ) -> None:
        self.host = host
        self.upstream = (upstream_host or host, upstream_port)
        self.client_tls = client_tls
        self.plan = FaultPlan()
        self._server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self._server_context.load_cert_chain(str(pki.server_cert), str(pki.server_key))
        self._upstream_context = ssl.create_default_context(cafile=str(pki.ca_cert))
        self._listener = socket.create_server((host, 0))
        self._listener.settimeout(ACCEPT_POLL_S)
        self.port: int = self._listener.getsockname()[1]
        self._stop = threading.Event()
        self._connections: list[_ProxiedConnection] = []
        self._serve_threads: list[threading.Thread] = []
        self._accept_thread = threading.Thread(target=self._accept_loop, daemon=True)
        self.connections_accepted = 0
        self.refusing = threading.Event()  # set: every new connection is closed at once

    # ---- lifecycle ---------------------------------------------------------------------------
    def start(self) -> None:
        self._accept_thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._accept_thread.is_alive():
            self._accept_thread.join(timeout=5)
        self._listener.close()
        for server in self._serve_threads:
            server.join(timeout=5)
        for connection in self._connections:
            connection.close()
        for connection in self._connections:
            for thread in connection.threads:
                thread.join(timeout=5)
            connection.release()

    def threads_alive(self) -> int:
        """Threads of this proxy still running (0 after :meth:`stop`)."""
        threads = [self._accept_thread, *self._serve_threads]
        threads += [thread for connection in self._connections for thread in connection.threads]
        return sum(thread.is_alive() for thread in threads)

    def __enter__(self) -> ImapFaultProxy:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # ---- faults ------------------------------------------------------------------------------
    def expire_token(self, *, after_commands: int | None = None, at_fetch: int = 0) -> None:
        """``* BYE Session invalidated - AccessTokenExpired`` instead of the command that comes
        after ``after_commands`` more commands, or instead of each of the next ``at_fetch``
        FETCH commands; then the connection is closed."""
        with self.plan.lock:
            self.plan.bye_after_commands = after_commands
            self.plan.bye_at_fetch = at_fetch

    def throttle(self, count: int, backoff_ms: int) -> None:
        """Answer the next ``count`` commands ``BAD Request is throttled...`` without forwarding."""
        with self.plan.lock:
            self.plan.throttle_count = count
            self.plan.throttle_ms = backoff_ms

    def drop_during_fetch(self) -> None:
        """Cut the next FETCH answer in the middle of its first literal and close the connection."""
        with self.plan.lock:
            self.plan.drop_in_fetch = True

    def cut_connections(self) -> None:
        """Close every open connection on both sides at once, as a network failure would."""
        for connection in list(self._connections):
            connection.close()

    def refuse_connections(self, refuse: bool = True) -> None:
        """While ``refuse``, a new connection is closed before the TLS handshake (a server that is down)."""
        if refuse:
            self.refusing.set()
        else:
            self.refusing.clear()

    def hide_capabilities(self, *names: str) -> None:
        with self.plan.lock:
            self.plan.hidden = frozenset(name.upper() for name in names)

    def commands(self) -> Counter[str]:
        """Commands received from clients so far, by name (a copy)."""
        with self.plan.lock:
            return Counter(self.plan.commands)

    # ---- plumbing ----------------------------------------------------------------------------
    def _accept_loop(self) -> None:
        while not self._stop.is_set():
            try:
                client, _address = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.connections_accepted += 1
            server = threading.Thread(target=self._serve, args=(client,), daemon=True)
            self._serve_threads.append(server)
            server.start()

    def _serve(self, raw_client: socket.socket) -> None:
        if self.refusing.is_set():
            raw_client.close()
            return
        try:
            raw_client.settimeout(HANDSHAKE_TIMEOUT_S)
            client = (
                self._server_context.wrap_socket(raw_client, server_side=True)
                if self.client_tls
                else raw_client
            )
            client.settimeout(None)
            upstream = self._upstream_context.wrap_socket(
                socket.create_connection(self.upstream, timeout=HANDSHAKE_TIMEOUT_S),
                server_hostname=self.upstream[0],
            )
            upstream.settimeout(None)
        except (OSError, ssl.SSLError):
            raw_client.close()
            return
        for sock in (client, upstream):  # lines and literals are written separately: no Nagle delays
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        connection = _ProxiedConnection(client, upstream, self.plan)
        self._connections.append(connection)
        if self._stop.is_set():
            connection.close()
        connection.start()


@contextmanager
def running_fault_proxy(
    host: str, upstream_port: int, pki: LoopbackPki, *, client_tls: bool = True
) -> Iterator[ImapFaultProxy]:
    """A started proxy, stopped (every thread joined, every socket closed) on exit."""
    with ImapFaultProxy(host, upstream_port, pki, client_tls=client_tls) as proxy:
        yield proxy
