"""The Graph emulator's threaded HTTPS server (one thread per connection, TLS in that thread)."""

from __future__ import annotations

import contextlib
import socket
import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from tools.testbed.graph_api import ApiRequest, GraphApi
from tools.testbed.graph_docs import ApiReply
from tools.testbed.pki import LoopbackPki

HANDLER_TIMEOUT_SECONDS = 30


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = HANDLER_TIMEOUT_SECONDS
    server: _TlsHttpServer

    def do_GET(self) -> None:
        self._answer()

    def do_POST(self) -> None:
        self._answer()

    def do_PATCH(self) -> None:
        self._answer()

    def do_DELETE(self) -> None:
        self._answer()

    def _answer(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        url = urlsplit(self.path)
        request = ApiRequest(
            method=self.command,
            path=url.path,
            query=dict(parse_qsl(url.query, keep_blank_values=True)),
            headers={name.lower(): value for name, value in self.headers.items()},
            body=body,
        )
        reply = self.server.api.handle(request)
        if reply is None:  # a "drop" fault: close without a reply
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)
            return
        self._send(reply)

    def _send(self, reply: ApiReply) -> None:
        self.send_response(reply.status)
        if reply.body or reply.status not in (204, 304):
            self.send_header("Content-Type", reply.content_type)
        self.send_header("Content-Length", str(len(reply.body)))
        for name, value in reply.headers:
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(reply.body)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the request log is the record of traffic."""


class _TlsHttpServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], api: GraphApi, context: ssl.SSLContext) -> None:
        super().__init__(address, _Handler)
        self.api = api
        self._context = context
        self._connections: set[ssl.SSLSocket] = set()
        self._connections_lock = threading.Lock()

    def finish_request(self, request: Any, client_address: Any) -> None:
        request.settimeout(HANDLER_TIMEOUT_SECONDS)
        request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            connection = self._context.wrap_socket(request, server_side=True)
        except OSError:
            return
        with self._connections_lock:
            self._connections.add(connection)
        try:
            _Handler(connection, client_address, self)
        except OSError:
            pass
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


class GraphServer:
    """Runs a :class:`GraphApi` on ``https://{host}:{port}`` (port 0: a free one) in a thread."""

    def __init__(self, api: GraphApi, pki: LoopbackPki, host: str, port: int = 0) -> None:
        self._api = api
        self._address = (host, port)
        self._context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self._context.load_cert_chain(pki.server_cert, pki.server_key)
        self._server: _TlsHttpServer | None = None
        self._thread: threading.Thread | None = None
        self.port = port

    def start(self) -> None:
        if self._server is not None:
            raise RuntimeError("the Graph emulator is already running")
        self._server = _TlsHttpServer(self._address, self._api, self._context)
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            name="graph-emulator",
            kwargs={"poll_interval": 0.1},
            daemon=True,
        )
        self._thread.start()

    def stop(self) -> None:
        server, thread = self._server, self._thread
        self._server = self._thread = None
        if server is None or thread is None:
            return
        server.shutdown()
        server.close_connections()
        server.server_close()
        thread.join(timeout=5)
