"""The relay's SMTP server (aiosmtpd): what old WIC versions and other local applications talk to
instead of smtp.office365.com.

It speaks ESMTP with SIZE, 8BITMIME, SMTPUTF8 and AUTH PLAIN/LOGIN, requires AUTH before MAIL,
and asks a :class:`~wicbox_bridge.adapters.base.RelayGate` for every decision: the login, MAIL FROM,
each RCPT TO and the message itself, which the gate commits to the outbox before this server
answers 250. The login (a slow hash) and the message (a database commit) are asked in one worker
thread, so the event loop keeps serving other clients meanwhile; the envelope checks are cheap
and asked on the loop.

Listening on a loopback address is the default; any other address needs ``allow_remote`` and a TLS
certificate, and then STARTTLS is required before AUTH. aiosmtpd's own debug log writes the raw
command lines (AUTH included), so its logger is kept at INFO or above.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import concurrent.futures
import contextlib
import logging
import ssl
import warnings
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Final

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import MISSING, SMTP, AuthResult, Envelope, Session

from wicbox_bridge.adapters.base import RELAY_STORE_FAILED, RelayedMessage, RelayGate, RelayReply
from wicbox_bridge.config.listen import is_loopback
from wicbox_bridge.errors import ConfigurationError, ConnectionFailure
from wicbox_bridge.secret import Secret

DEFAULT_MAX_MESSAGE_BYTES: Final = 35 * 1024 * 1024  # Exchange Online's default message size limit
DEFAULT_MAX_RECIPIENTS: Final = 500
DEFAULT_IDLE_TIMEOUT_S: Final = 300.0  # RFC 5321 4.5.3.2.7: at least 5 minutes
MAX_BATCH: Final = 64  # messages committed together at most
LINE_LIMIT: Final = 8192  # lenient: RFC 5321 allows 1000, real applications write longer lines
AIOSMTPD_LOGGER: Final = "mail.log"
log = logging.getLogger("wicbox.relay")


@dataclass(frozen=True)
class RelayServerSettings:
    """Where and how the relay listens; conflicting options are refused here, with what to change."""

    host: str = "127.0.0.1"
    port: int = 2525
    tls_cert: Path | None = None
    tls_key: Path | None = None
    allow_remote: bool = False
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES
    max_recipients: int = DEFAULT_MAX_RECIPIENTS
    idle_timeout_s: float = DEFAULT_IDLE_TIMEOUT_S
    max_connections: int = 100
    hostname: str = "wicbox-relay"

    def __post_init__(self) -> None:
        if not 1 <= self.port <= 65535:
            raise ConfigurationError(f"--listen: port {self.port} is out of range", fix="use a port 1-65535")
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ConfigurationError(
                "--tls-cert and --tls-key go together: the certificate and its private key",
                fix="give both, or neither",
            )
        if self.loopback and self.allow_remote:
            raise ConfigurationError(
                f"--allow-remote has no effect on the loopback address {self.host}",
                fix="leave --allow-remote out, or listen on the address other machines should reach",
            )
        if not self.loopback and not self.allow_remote:
            raise ConfigurationError(
                f"--listen {self.host}: the relay would be reachable from the network",
                fix="listen on 127.0.0.1 (applications on this server), or add --allow-remote with "
                "--tls-cert and --tls-key to serve other machines",
            )
        if self.allow_remote and self.tls_cert is None:
            raise ConfigurationError(
                "--allow-remote needs TLS: passwords would cross the network in clear text",
                fix="add --tls-cert FILE --tls-key FILE (a certificate the clients trust)",
            )
        if (
            min(self.max_message_bytes, self.max_recipients, self.max_connections) < 1
            or self.idle_timeout_s <= 0
        ):
            raise ConfigurationError("relay limits must be positive", fix="use positive limits")

    @property
    def loopback(self) -> bool:
        return is_loopback(self.host)


def server_tls_context(cert: Path, key: Path) -> ssl.SSLContext:
    """The relay's TLS context (TLS 1.2 or later) from a PEM certificate chain and key."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(str(cert), str(key))
    except (OSError, ssl.SSLError) as exc:
        raise ConfigurationError(
            f"the relay's TLS certificate {cert} with key {key} cannot be loaded ({type(exc).__name__}: "
            f"{getattr(exc, 'strerror', None) or exc})",
            fix="give a PEM certificate (with its chain) and its unencrypted PEM private key",
        ) from exc
    return context


# --------------------------------------------------------------------------- the SMTP protocol


class _RelaySMTP(SMTP):
    """aiosmtpd's SMTP with the relay's line limit and a cap on simultaneous connections."""

    line_length_limit = LINE_LIMIT

    def __init__(self, handler: _RelayHandler, **kwargs: Any) -> None:
        super().__init__(handler, **kwargs)
        self._relay = handler

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if self._relay.connections >= self._relay.settings.max_connections:
            log.warning("Relay: refused a connection: %d connections are open", self._relay.connections)
            self._refused = True
            if isinstance(transport, asyncio.WriteTransport):
                transport.write(b"421 4.7.0 Too many connections; try again later\r\n")
            transport.close()
            return
        self._relay.connections += 1
        self._counted = True
        super().connection_made(transport)

    def connection_lost(self, exc: Exception | None) -> None:
        if getattr(self, "_refused", False):
            return  # never started: nothing of aiosmtpd's to wind down
        if getattr(self, "_counted", False):
            self._relay.connections -= 1
            self._counted = False
        super().connection_lost(exc)


class _RelayHandler:
    """aiosmtpd hooks that ask the gate, in the gate's worker thread."""

    def __init__(self, gate: RelayGate, settings: RelayServerSettings) -> None:
        self.gate = gate
        self.settings = settings
        self.connections = 0
        self.waiting: list[tuple[RelayedMessage, asyncio.Future[RelayReply]]] = []
        self.committer: asyncio.Task[None] | None = None
        self.worker = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="wicbox-relay")

    async def _ask(self, call: Any, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self.worker, call, *args)

    # ---- AUTH (PLAIN and LOGIN; aiosmtpd's own versions would call a blocking authenticator) --
    async def auth_PLAIN(self, server: SMTP, args: list[str]) -> AuthResult:
        blob = await _initial_or_challenge(server, args, b"")
        if blob is None:
            return AuthResult(success=False, handled=True)
        parts = blob.split(b"\x00")
        if len(parts) != 3:
            await server.push("501 5.5.2 Can't split auth value")
            return AuthResult(success=False, handled=True)
        return await self._login(server, parts[1], parts[2])

    async def auth_LOGIN(self, server: SMTP, args: list[str]) -> AuthResult:
        login = await _initial_or_challenge(server, args, b"Username:")
        if login is None:
            return AuthResult(success=False, handled=True)
        password = await _challenge(server, b"Password:")
        if password is None:
            return AuthResult(success=False, handled=True)
        return await self._login(server, login, password)

    async def _login(self, server: SMTP, login: bytes, password: bytes) -> AuthResult:
        name = login.decode("utf-8", errors="replace")
        secret = Secret(password.decode("utf-8", errors="replace"))
        peer = _peer(server.session)
        refusal: RelayReply | None = await self._ask(self.gate.authenticate, name, secret, peer)
        if refusal is not None:
            return AuthResult(success=False, handled=False, message=refusal.render())
        return AuthResult(success=True, auth_data=name)

    # ---- envelope and data --------------------------------------------------------------------
    async def handle_MAIL(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, mail_options: list[str]
    ) -> str:
        refusal = self.gate.check_sender(_login(session), address)  # cheap: on the loop
        if refusal is not None:
            return refusal.render()
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 2.1.0 Sender OK"

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, rcpt_options: list[str]
    ) -> str:
        count = len(envelope.rcpt_tos)
        refusal = self.gate.check_recipient(_login(session), address, count)  # cheap: on the loop
        if refusal is not None:
            return refusal.render()
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 2.1.5 Recipient OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        data = envelope.original_content or b""
        message = RelayedMessage(
            peer=_peer(session),
            login=_login(session),
            mail_from=envelope.mail_from or "",
            recipients=tuple(envelope.rcpt_tos),
            data=data,
            smtputf8=bool(envelope.smtp_utf8),
        )
        return (await self._accept(message)).render()

    async def _accept(self, message: RelayedMessage) -> RelayReply:
        """Queue the message for the next group commit and wait for its answer. The answer's future
        is shielded: a client that goes away meanwhile does not take the others' commit with it."""
        future: asyncio.Future[RelayReply] = asyncio.get_running_loop().create_future()
        self.waiting.append((message, future))
        if self.committer is None or self.committer.done():
            self.committer = asyncio.get_running_loop().create_task(self._commit_waiting())
        return await asyncio.shield(future)

    async def _commit_waiting(self) -> None:
        while self.waiting:
            batch, self.waiting = self.waiting[:MAX_BATCH], self.waiting[MAX_BATCH:]
            try:
                replies: list[RelayReply] = await self._ask(self.gate.accept, [item[0] for item in batch])
            except Exception:  # the gate answers with 451 itself; this is the last line of defence
                log.exception("Relay: storing %d message(s) failed", len(batch))
                replies = [RELAY_STORE_FAILED] * len(batch)
            for (_message, future), reply in zip(batch, replies, strict=True):
                if not future.done():
                    future.set_result(reply)


def _peer(session: Session | None) -> str:
    peer: object = session.peer if session is not None else None  # a (host, port) tuple, typed str
    if isinstance(peer, tuple) and peer:
        return str(peer[0])
    return str(peer or "")


def _login(session: Session) -> str:
    return str(session.auth_data or "")


async def _initial_or_challenge(server: SMTP, args: list[str], challenge: bytes) -> bytes | None:
    if len(args) == 1:
        return await _challenge(server, challenge)
    try:
        return base64.b64decode(args[1].encode(), validate=True)
    except (binascii.Error, ValueError):
        await server.push("501 5.5.2 Can't decode base64")
        return None


async def _challenge(server: SMTP, challenge: bytes) -> bytes | None:
    answer = await server.challenge_auth(challenge, encode_to_b64=True, log_client_response=False)
    return None if answer is MISSING else bytes(answer)


# --------------------------------------------------------------------------- the server


class _AiosmtpdNoise(logging.Filter):
    """aiosmtpd warns about its own legacy ``login_data`` at every successful AUTH, and about AUTH
    without TLS at every connection (the relay allows that on loopback only, on purpose)."""

    NOISE = ("Session.login_data is deprecated", "auth_required == True but auth_require_tls == False")

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(self.NOISE)


class _Controller(Controller):
    def __init__(self, handler: _RelayHandler, **kwargs: Any) -> None:
        super().__init__(handler, **kwargs)
        self._relay = handler

    def factory(self) -> SMTP:
        with warnings.catch_warnings():  # AUTH without TLS: allowed on loopback only (settings check)
            warnings.filterwarnings("ignore", "Requiring AUTH while not requiring TLS", UserWarning)
            return _RelaySMTP(self._relay, **self.SMTP_kwargs)


class SmtpRelayServer:
    """Listens until :meth:`stop`; a context manager. Binding problems are ConnectionFailure."""

    def __init__(self, settings: RelayServerSettings, gate: RelayGate) -> None:
        self.settings = settings
        tls = (
            server_tls_context(settings.tls_cert, settings.tls_key)
            if settings.tls_cert and settings.tls_key
            else None
        )
        self._handler = _RelayHandler(gate, settings)
        self._controller = _Controller(
            self._handler,
            hostname=settings.host,
            port=settings.port,
            server_hostname=settings.hostname,
            ready_timeout=10.0,
            data_size_limit=settings.max_message_bytes,
            enable_SMTPUTF8=True,
            decode_data=False,
            tls_context=tls,
            require_starttls=tls is not None,
            timeout=settings.idle_timeout_s,
            auth_required=True,
            auth_require_tls=tls is not None,
        )
        aiosmtpd_log = logging.getLogger(AIOSMTPD_LOGGER)
        aiosmtpd_log.setLevel(logging.INFO)  # its DEBUG lines carry AUTH data
        if not any(isinstance(known, _AiosmtpdNoise) for known in aiosmtpd_log.filters):
            aiosmtpd_log.addFilter(_AiosmtpdNoise())

    def __repr__(self) -> str:
        return f"SmtpRelayServer({self.settings.host}:{self.settings.port})"

    @property
    def address(self) -> str:
        return f"{self.settings.host}:{self.settings.port}"

    def start(self) -> None:
        try:
            self._controller.start()
        except (OSError, RuntimeError, TimeoutError) as exc:
            cause = exc.__cause__ if isinstance(exc.__cause__, OSError) else exc
            raise ConnectionFailure(
                f"the relay cannot listen on {self.address}: {cause}",
                fix="choose a free port with --listen (another relay, or another mail server, may be "
                "listening there)",
            ) from exc
        log.info("Relay: listening on %s", self.address)

    def stop(self) -> None:
        with contextlib.suppress(AssertionError):  # aiosmtpd asserts it was started: nothing to stop
            self._controller.stop()
        self._handler.worker.submit(self._handler.gate.close).result()
        self._handler.worker.shutdown(wait=True)
        log.info("Relay: stopped listening on %s", self.address)

    def __enter__(self) -> SmtpRelayServer:
        self.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.stop()
