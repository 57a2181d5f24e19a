"""Opening an IMAP connection: TLS (implicit or STARTTLS, always verified) and the sign-in.

The two sign-ins, OAuth2 (SASL XOAUTH2 with a token from the token layer) and Basic (LOGIN with a
password), share one interface so the session and the core never see which one is used.
"""

from __future__ import annotations

import imaplib
import logging
import socket
import ssl
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


def connect(settings: ImapSettings, mailbox: str, sign_in: SignIn, *, fresh_token: bool) -> Connected:
    """A TLS connection to the server, signed in to ``mailbox``; every failure translated."""
    endpoint = settings.endpoint
    context = tls_context(settings)
    client = _open_socket(settings, context)
    try:
        _start_tls(client, settings, context)
        sign_in.login(client, mailbox, endpoint, fresh=fresh_token)
        log.info("Signed in to %s as %s with %s", endpoint, mailbox, sign_in.mechanism)
        client.normalise_times = False  # INTERNALDATE with its zone, so it converts to UTC exactly
        capabilities = frozenset(_text(item).upper() for item in client.capabilities())
        delimiter = _hierarchy_delimiter(client)
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
