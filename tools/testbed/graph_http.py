"""The Graph emulator's threaded HTTPS server (one thread per connection, TLS in that thread)."""

from __future__ import annotations

import contextlib
import socket
import ssl
from urllib.parse import parse_qsl, urlsplit

from tools.testbed.graph_api import ApiRequest, GraphApi
from tools.testbed.graph_docs import ApiReply
from tools.testbed.https_server import BackgroundHttpsServer, QuietHandler, TlsHttpServer
from tools.testbed.pki import LoopbackPki

HANDLER_TIMEOUT_SECONDS = 30


class _Handler(QuietHandler):
    timeout = HANDLER_TIMEOUT_SECONDS
    server: _GraphHttpServer

    def do_GET(self) -> None:
        self._answer()

    def do_POST(self) -> None:
        self._answer()

    def do_PATCH(self) -> None:
        self._answer()

    def do_DELETE(self) -> None:
        self._answer()

    def do_PUT(self) -> None:
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
        content_type = reply.content_type if reply.body or reply.status not in (204, 304) else None
        self.send_reply(reply.status, reply.body, content_type, reply.headers)


class _GraphHttpServer(TlsHttpServer):
    def __init__(self, address: tuple[str, int], api: GraphApi, context: ssl.SSLContext) -> None:
        super().__init__(address, _Handler, context, HANDLER_TIMEOUT_SECONDS)
        self.api = api


class GraphServer(BackgroundHttpsServer):
    """Runs a :class:`GraphApi` on ``https://{host}:{port}`` (port 0: a free one) in a thread."""

    def __init__(self, api: GraphApi, pki: LoopbackPki, host: str, port: int = 0) -> None:
        super().__init__(pki, host, port, name="graph-emulator", description="Graph emulator")
        self._api = api

    def _create_server(self, address: tuple[str, int], context: ssl.SSLContext) -> TlsHttpServer:
        return _GraphHttpServer(address, self._api, context)
