"""Opening an IMAP connection: TLS (implicit or STARTTLS, always verified) and the sign-in.

The two sign-ins, OAuth2 (SASL XOAUTH2 with a token from the token layer) and Basic (LOGIN with a
password), share one interface so the session and the core never see which one is used.

A :class:`TlsReuse` (one per adapter, so one per server and run) builds the verifying context once
and offers the last TLS session the server gave to the next connection: in a MULTIPLE run over
hundreds of mailboxes every connection after the first resumes it (an abbreviated handshake, no
certificate chain sent or verified again). It also keeps the server's hierarchy delimiter, the
same for every mailbox on one server: asked (``LIST "" ""``) by the first session only.
"""

from __future__ import annotations

import contextlib
import imaplib
import logging
import socket
import ssl
import threading
from dataclasses import dataclass
from typing import Any, Protocol

from imapclient import IMAPClient
from imapclient.exceptions import LoginError

from wicbox_bridge.adapters import imap_errors as errors
from wicbox_bridge.adapters.base import TokenProvider
from wicbox_bridge.adapters.imap_settings import ImapSettings
from wicbox_bridge.config.endpoints import CA_BUNDLE_KEY
from wicbox_bridge.config.params import Endpoint, TlsMode
from wicbox_bridge.errors import ParameterError
from wicbox_bridge.secret import Secret

log = logging.getLogger("wicbox.imap")
IMAPLIB_TRACE_LOGGER = "imapclient.imaplib"  # where imapclient sends imaplib's protocol trace


def tls_context(settings: ImapSettings) -> ssl.SSLContext:
    """A verifying client context: the configured CA bundle, else the system's trust store."""
    bundle = settings.ca_bundle
    if bundle is None:
        return ssl.create_default_context()
    if not bundle.is_file():
        raise ParameterError(
            CA_BUNDLE_KEY,
            f"the CA bundle file {bundle} does not exist.",
            fix="point it at a PEM file with the CA certificate(s) to trust, or remove the key",
        )
    try:
        return ssl.create_default_context(cafile=str(bundle))
    except ssl.SSLError as exc:
        raise ParameterError(
            CA_BUNDLE_KEY,
            f"the CA bundle file {bundle} holds no usable PEM certificate.",
            fix="export the CA certificate as Base-64 encoded X.509 (PEM) and point {CA_BUNDLE_KEY} at it",
        ) from exc


class _ResumingContext(ssl.SSLContext):
    """A client context that offers its owner's last session on every new TLS connection."""

    reuse: TlsReuse

    def wrap_socket(  # noqa: PLR0917 - the parameters of ssl.SSLContext.wrap_socket
        self,
        sock: socket.socket,
        server_side: bool = False,
        do_handshake_on_connect: bool = True,
        suppress_ragged_eofs: bool = True,
        server_hostname: str | bytes | None = None,
        session: ssl.SSLSession | None = None,
    ) -> ssl.SSLSocket:
        return super().wrap_socket(
            sock,
            server_side=server_side,
            do_handshake_on_connect=do_handshake_on_connect,
            suppress_ragged_eofs=suppress_ragged_eofs,
            server_hostname=server_hostname,
            session=session or self.reuse.session(),
        )


class TlsReuse:
    """The TLS context of one server, built once, and the last session it gave (thread-safe).

    A session is only offered on the context that made it; a server that does not resume it simply
    does a full handshake, so an unusable session costs nothing but its bytes."""

    def __init__(self, settings: ImapSettings) -> None:
        self._settings = settings
        self._lock = threading.Lock()
        self._context: _ResumingContext | None = None
        self._session: ssl.SSLSession | None = None
        self._delimiter: tuple[str | None] | None = None  # (delimiter,) once asked
        self.resumed = 0  # connections that resumed a session (for the benchmark and the tests)
        self.full = 0  # connections with a full handshake

    def __repr__(self) -> str:
        return f"TlsReuse({self._settings.endpoint}, resumed={self.resumed}, full={self.full})"

    def context(self) -> ssl.SSLContext:
        with self._lock:
            if self._context is None:
                self._context = _resuming_context(self._settings, self)
            return self._context

    def session(self) -> ssl.SSLSession | None:
        with self._lock:
            return self._session

    def delimiter(self, client: IMAPClient) -> str | None:
        """The server's hierarchy delimiter: asked on ``client`` the first time only."""
        with self._lock:
            known = self._delimiter
        if known is None:
            known = (_hierarchy_delimiter(client),)
            with self._lock:
                self._delimiter = known
        return known[0]

    def remember(self, client: IMAPClient) -> None:
        """After the sign-in (TLS 1.3 tickets arrive with the first data): keep its session."""
        sock = client.socket()
        if not isinstance(sock, ssl.SSLSocket):
            return
        with self._lock:
            if sock.session_reused:
                self.resumed += 1
            else:
                self.full += 1
            if sock.session is not None:
                self._session = sock.session


def _resuming_context(settings: ImapSettings, reuse: TlsReuse) -> _ResumingContext:
    """Like :func:`tls_context` (same checks and errors), as a context that resumes sessions."""
    verifying = tls_context(settings)  # validates the bundle with the errors users know
    context = _ResumingContext(ssl.PROTOCOL_TLS_CLIENT)
    context.reuse = reuse
    context.options = verifying.options
    context.minimum_version = verifying.minimum_version
    bundle = settings.ca_bundle
    if bundle is None:
        context.load_default_certs(ssl.Purpose.SERVER_AUTH)
    else:
        context.load_verify_locations(cafile=str(bundle))
    return context


class SignIn(Protocol):
    """Authenticates a connected client to one mailbox."""

    mechanism: str

    def login(self, client: IMAPClient, mailbox: str, endpoint: Endpoint, *, fresh: bool) -> None:
        """Sign in; ``fresh`` asks for a new token (after the server said the old one expired)."""
        ...


class OAuthSignIn:
    """SASL XOAUTH2 with a token from ``tokens`` (delegated or application permissions)."""

    mechanism = "XOAUTH2"

    def __init__(self, tokens: TokenProvider) -> None:
        self.tokens = tokens

    def __repr__(self) -> str:
        return f"OAuthSignIn({self.tokens!r})"

    def login(self, client: IMAPClient, mailbox: str, endpoint: Endpoint, *, fresh: bool) -> None:
        if not client.has_capability("AUTH=XOAUTH2"):
            raise errors.mechanism_missing(endpoint, self.mechanism)
        token = self.tokens(force_refresh=fresh)
        try:
            client.oauth2_login(mailbox, token.value.reveal())
        except LoginError as exc:
            raise errors.oauth_refused(exc, endpoint, mailbox, token.claims) from exc


class PasswordSignIn:
    """IMAP LOGIN with the mailbox's password (Basic authentication)."""

    mechanism = "LOGIN"

    def __init__(self, password: Secret) -> None:
        self._password = password

    def __repr__(self) -> str:
        return f"PasswordSignIn({self._password!r})"

    def login(self, client: IMAPClient, mailbox: str, endpoint: Endpoint, *, fresh: bool) -> None:
        if client.has_capability("LOGINDISABLED"):
            raise errors.mechanism_missing(endpoint, self.mechanism)
        try:
            client.login(mailbox, self._password.reveal())
        except LoginError as exc:
            raise errors.password_refused(exc, endpoint, mailbox) from exc


@dataclass(frozen=True)
class Connected:
    """An authenticated client and what the server told about itself."""

    client: IMAPClient
    capabilities: frozenset[str]
    delimiter: str | None

    def has(self, capability: str) -> bool:
        return capability.upper() in self.capabilities


def connect(
    settings: ImapSettings,
    mailbox: str,
    sign_in: SignIn,
    *,
    fresh_token: bool,
    tls: TlsReuse | None = None,
) -> Connected:
    """A TLS connection to the server, signed in to ``mailbox``; every failure translated.

    With ``tls`` the context is shared and the server's last session resumed (see :class:`TlsReuse`).
    """
    endpoint = settings.endpoint
    context = tls_context(settings) if tls is None else tls.context()
    client = _open_socket(settings, context)
    try:
        _start_tls(client, settings, context)
        sign_in.login(client, mailbox, endpoint, fresh=fresh_token)
        if tls is not None:
            tls.remember(client)
        log.info("Signed in to %s as %s with %s", endpoint, mailbox, sign_in.mechanism)
        client.normalise_times = False  # INTERNALDATE with its zone, so it converts to UTC exactly
        capabilities = frozenset(_text(item).upper() for item in client.capabilities())
        delimiter = _hierarchy_delimiter(client) if tls is None else tls.delimiter(client)
    except BaseException as exc:
        _drop(client)
        if isinstance(exc, (OSError, imaplib.IMAP4.abort)):
            raise errors.session_lost(exc, endpoint, "signing in") from exc
        if isinstance(exc, imaplib.IMAP4.error):
            raise errors.command_refused(exc, endpoint, mailbox, "the sign-in") from exc
        raise
    return Connected(client, capabilities, delimiter)


def _open_socket(settings: ImapSettings, context: ssl.SSLContext) -> IMAPClient:
    endpoint = settings.endpoint
    try:
        client = IMAPClient(
            endpoint.host,
            port=endpoint.port,
            ssl=endpoint.tls is TlsMode.IMPLICIT,
            ssl_context=context,
            timeout=settings.timeout_s,
        )
    except OSError as exc:
        raise errors.connect_failure(exc, endpoint, settings.ca_bundle) from exc
    except imaplib.IMAP4.error as exc:  # no greeting, or not an IMAP server
        raise errors.session_lost(exc, endpoint, "connecting") from exc
    # imapclient writes a command line and its CRLF separately: without this, Nagle's algorithm
    # and the server's delayed ACK add up to 40 ms to many commands.
    client.socket().setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    quiet_protocol_trace(client)
    log.info("Connected to %s", endpoint)
    return client


def quiet_protocol_trace(client: IMAPClient) -> None:
    """Stop imaplib formatting a trace nobody reads, unless the trace's logger is on (DEBUG).

    imapclient sets imaplib's own debug level to 5 and sends imaplib's trace to the logger
    ``imapclient.imaplib`` at DEBUG. imaplib formats each trace message before the logger can
    drop it, among them ``%r`` of every literal it reads and ``%s`` of every FETCH answer: each
    fetched mail is turned into text twice, about 0.45 s of CPU per 70 MB of mail (measured in
    docs/performance.md, "CPU per mail"). With that logger off (the default: it would put mail
    contents into the log), imaplib's level goes back to 0 and the same lines are not written.
    """
    if not logging.getLogger(IMAPLIB_TRACE_LOGGER).isEnabledFor(logging.DEBUG):
        client._imap.debug = 0


def _start_tls(client: IMAPClient, settings: ImapSettings, context: ssl.SSLContext) -> None:
    endpoint = settings.endpoint
    if endpoint.tls is TlsMode.IMPLICIT:
        return
    if not client.has_capability("STARTTLS"):
        if not settings.allow_insecure_login:
            raise errors.no_tls_offered(endpoint)
        log.warning("%s offers no STARTTLS; signing in WITHOUT TLS (test setting)", endpoint)
        return
    try:
        client.starttls(context)
    except OSError as exc:
        raise errors.connect_failure(exc, endpoint, settings.ca_bundle) from exc


def _hierarchy_delimiter(client: IMAPClient) -> str | None:
    """The server's folder level separator (``LIST "" ""``); None on a flat server."""
    for _flags, delimiter, _name in client.list_folders("", ""):
        return _text(delimiter) if delimiter else None
    return None


def _text(value: Any) -> str:
    return value.decode("ascii", "replace") if isinstance(value, bytes) else str(value)


def _drop(client: IMAPClient) -> None:
    try:
        client.shutdown()
    except OSError:
        return


def close(client: IMAPClient) -> None:
    """LOGOUT, or just close the socket when the session is already gone."""
    try:
        client.logout()
    except (OSError, imaplib.IMAP4.error):
        _drop(client)


LEAVE_COMMAND = b"W0 LOGOUT\r\n"


def leave(client: IMAPClient) -> None:
    """LOGOUT sent and the connection closed at once, without waiting for the server's answer.

    For a session whose last command was answered (the pass's MOVE or STORE came back OK): the
    answer to LOGOUT (``* BYE`` and ``OK``) says nothing the client still needs, and waiting for
    it costs a network round trip per mailbox (a MULTIPLE run closes one session per mailbox).
    The server sees LOGOUT, then the end of the connection. Not for a session in IDLE, which must
    end IDLE first (:func:`close` is for those and for errors).
    """
    with contextlib.suppress(OSError, ValueError):  # no LOGOUT without the wait in imapclient: imaplib's send
        client._imap.send(LEAVE_COMMAND)
    _drop(client)
