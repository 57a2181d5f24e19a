"""The emulators' threaded HTTPS plumbing: one thread per connection with the TLS handshake in that
thread, quiet request handlers, and a server run in a background thread and stopped cleanly."""

from __future__ import annotations

import contextlib
import socket
import ssl
import threading
from collections.abc import Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tools.testbed.pki import LoopbackPki


class QuietHandler(BaseHTTPRequestHandler):
    """HTTP/1.1 handler that sends whole replies and does not log (the request log records traffic)."""

    protocol_version = "HTTP/1.1"

    def send_reply(
        self, status: int, body: bytes, content_type: str | None, headers: Iterable[tuple[str, str]]
    ) -> None:
        """Status, headers (``Content-Type`` unless None) and body, with its ``Content-Length``."""
        self.send_response(status)
        if content_type is not None:
            self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in headers:
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the request log is the record of traffic."""


class TlsHttpServer(ThreadingHTTPServer):
    """Threaded HTTP server doing the TLS handshake in each connection's own thread."""

    daemon_threads = True

    def __init__(
        self,
        address: tuple[str, int],
        handler: type[BaseHTTPRequestHandler],
        context: ssl.SSLContext,
        timeout_s: float,
    ) -> None:
        super().__init__(address, handler)
        self._handler = handler
        self._context = context
        self._timeout_s = timeout_s
        self._connections: set[ssl.SSLSocket] = set()
        self._connections_lock = threading.Lock()
        # Connections in their thread, from before the TLS handshake to the close, by number.
        self._accepted = 0
        self._handling: set[int] = set()
        self._handling_changed = threading.Condition()

    def finish_request(self, request: Any, client_address: Any) -> None:
        with self._handling_changed:
            self._accepted += 1
            number = self._accepted
            self._handling.add(number)
        try:
            self._finish_request(request, client_address)
        finally:
            with self._handling_changed:
                self._handling.discard(number)
                self._handling_changed.notify_all()

    def connections_so_far(self) -> int:
        with self._handling_changed:
            return self._accepted

    def wait_until_idle(self, timeout_s: float, since: int = 0) -> bool:
        """Wait until the connections after the first ``since`` are closed (every request on them
        answered)."""
        with self._handling_changed:
            return self._handling_changed.wait_for(
                lambda: all(number <= since for number in self._handling), timeout_s
            )

    def _finish_request(self, request: Any, client_address: Any) -> None:
        request.settimeout(self._timeout_s)
        request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # headers and body go apart
        try:
            connection = self._context.wrap_socket(request, server_side=True)
        except OSError:  # includes ssl.SSLError: a client that gave up or distrusts the CA
            return
        with self._connections_lock:
            self._connections.add(connection)
        try:
            self._handler(connection, client_address, self)
        except OSError:
            pass  # the client went away mid-request
        finally:
            with self._connections_lock:
                self._connections.discard(connection)
            connection.close()

    def close_connections(self) -> None:
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)


def server_context(pki: LoopbackPki) -> ssl.SSLContext:
    """TLS server context with the test bed's server certificate."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(pki.server_cert, pki.server_key)
    return context


class BackgroundHttpsServer:
    """Runs a :class:`TlsHttpServer` on ``https://{host}:{port}`` (port 0: a free one) in a thread.

    Subclasses build the server in :meth:`_create_server`; ``name`` names the thread and
    ``description`` the emulator in errors.
    """

    def __init__(self, pki: LoopbackPki, host: str, port: int, *, name: str, description: str) -> None:
        self._address = (host, port)
        self._context = server_context(pki)
        self._name = name
        self._description = description
        self._server: TlsHttpServer | None = None
        self._thread: threading.Thread | None = None
        self.port = port

    def _create_server(self, address: tuple[str, int], context: ssl.SSLContext) -> TlsHttpServer:
        raise NotImplementedError

    def start(self) -> None:
        if self._server is not None:
            raise RuntimeError(f"the {self._description} is already running")
        self._server = self._create_server(self._address, self._context)
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(
            target=self._server.serve_forever, name=self._name, kwargs={"poll_interval": 0.1}, daemon=True
        )
        self._thread.start()

    def connections_so_far(self) -> int:
        """How many connections the server has taken (a mark for :meth:`wait_until_idle`)."""
        server = self._server
        return 0 if server is None else server.connections_so_far()

    def wait_until_idle(self, timeout_s: float, since: int = 0) -> bool:
        """Wait until the connections after the first ``since`` are closed; False on timeout."""
        server = self._server
        return server is None or server.wait_until_idle(timeout_s, since)

    def stop(self) -> None:
        server, thread = self._server, self._thread
        self._server = self._thread = None
        if server is None or thread is None:
            return
        server.shutdown()
        server.close_connections()
        server.server_close()
        thread.join(timeout=5)
