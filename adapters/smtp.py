"""The SMTP sender (Exchange Online's smtp.office365.com and any ESMTP submission server).

The CLI builds one :class:`SmtpSender` per sending account::

    sender = SmtpSender(SmtpSettings.from_parameters(params),
                        OAuthLogin("wicbox@klant.example", tokens, Login.DELEGATED))
    result = sender.send(raw, "wicbox@klant.example", ["klant@example.org"])

Each send opens a connection: TLS first (implicit on 465, STARTTLS otherwise; the certificate is
always verified, against WicBoxCaBundle of WicGlobal.config when set), then AUTH XOAUTH2 with a token from
the token layer (AUTH PLAIN/LOGIN with :class:`PasswordLogin` for WICBOXMETHOD=Basic), then MAIL,
RCPT and DATA. Nothing is ever authenticated over a connection without TLS. Every step can be
reported to an ``on_step`` listener (``wicbox send-test`` prints them). A ``4xx`` answer is
repeated with backoff; every refusal is translated by :mod:`.smtp_errors`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import aiosmtplib

from wicbox_bridge.adapters import smtp_errors as errors
from wicbox_bridge.adapters.base import AccessToken, SendResult, TokenProvider
from wicbox_bridge.adapters.smtp_errors import Answer, AnswerContext, Login, Stage
from wicbox_bridge.adapters.smtp_settings import SmtpSettings
from wicbox_bridge.config.endpoints import CA_BUNDLE_KEY
from wicbox_bridge.config.params import TlsMode
from wicbox_bridge.errors import BridgeError, ParameterError, SendError
from wicbox_bridge.mail.outgoing import message_id_of
from wicbox_bridge.secret import Secret

__all__ = [
    "Login",
    "OAuthLogin",
    "PasswordLogin",
    "SmtpLogin",
    "SmtpSender",
    "SmtpSettings",
    "Stage",
    "StepListener",
    "StepReport",
]

log = logging.getLogger("wicbox.smtp")


@dataclass(frozen=True)
class OAuthLogin:
    """AUTH XOAUTH2 as ``user`` with tokens from ``tokens`` (delegated or application permissions)."""

    user: str
    tokens: TokenProvider
    permission: Login = Login.DELEGATED


@dataclass(frozen=True)
class PasswordLogin:
    """AUTH PLAIN/LOGIN as ``user`` (WICBOXMETHOD=Basic)."""

    user: str
    password: Secret


SmtpLogin = OAuthLogin | PasswordLogin


@dataclass(frozen=True)
class StepReport:
    """One step of a submission: OK with what happened, or the error (message and fix)."""

    stage: Stage
    ok: bool
    detail: str
    error: BridgeError | None = None


StepListener = Callable[[StepReport], None]


def tls_context(ca_bundle: Path | None) -> ssl.SSLContext:
    """A verifying client context: the configured CA bundle, else the system's trust store."""
    if ca_bundle is None:
        return ssl.create_default_context()
    if not ca_bundle.is_file():
        raise ParameterError(
            CA_BUNDLE_KEY,
            f"the CA bundle file {ca_bundle} does not exist.",
            fix="point it at a PEM file with the CA certificate(s) to trust, or remove the key",
        )
    try:
        return ssl.create_default_context(cafile=str(ca_bundle))
    except ssl.SSLError as exc:
        raise ParameterError(
            CA_BUNDLE_KEY,
            f"the CA bundle file {ca_bundle} holds no usable PEM certificate.",
            fix="export the CA certificate as Base-64 encoded X.509 (PEM) and point {CA_BUNDLE_KEY} at it",
        ) from exc


class _Conversation:
    """One connection to the server, step by step; remembers the refusal that ended it."""

    def __init__(self, settings: SmtpSettings, login: SmtpLogin, listener: StepListener | None) -> None:
        self.settings = settings
        self.login = login
        self.listener = listener
        self.refusal: Answer | None = None
        self.claims: dict[str, object] = {}
        self.sender = ""
        self.client: aiosmtplib.SMTP | None = None

    # ---- reporting and translation ---------------------------------------------------------
    def _context(self) -> AnswerContext:
        kind = self.login.permission if isinstance(self.login, OAuthLogin) else Login.BASIC
        return AnswerContext(self.settings.endpoint, self.login.user, kind, self.sender, self.claims)

    def ok(self, stage: Stage, detail: str) -> None:
        log.info("SMTP %s: %s", stage.value, detail)
        if self.listener is not None:
            self.listener(StepReport(stage, True, detail))

    def _failed(self, stage: Stage, error: BridgeError) -> BridgeError:
        log.info("SMTP %s failed: %s", stage.value, error.message)
        if self.listener is not None:
            self.listener(StepReport(stage, False, error.message, error))
        return error

    @contextlib.asynccontextmanager
    async def step(self, stage: Stage, recipient: str = "") -> AsyncIterator[None]:
        try:
            yield
        except BridgeError as error:
            self._failed(stage, error)
            raise
        except aiosmtplib.SMTPResponseException as exc:
            self.refusal = Answer(exc.code, exc.message)
            refused = errors.answer_error(self.refusal, stage, self._context(), recipient)
            raise self._failed(stage, refused) from exc
        except (aiosmtplib.SMTPException, OSError, UnicodeError) as exc:
            failed_stage, lost = self._network_error(stage, exc)
            raise self._failed(failed_stage, lost) from exc

    def _network_error(self, stage: Stage, exc: BaseException) -> tuple[Stage, BridgeError]:
        endpoint = self.settings.endpoint
        tls = errors.tls_failure(exc, endpoint, self.settings.ca_bundle)
        if tls is not None:
            return Stage.TLS, tls
        if isinstance(exc, UnicodeError):
            return stage, SendError(
                f"an address of the mail is not plain ASCII ({stage.value}).",
                permanent=True,
                fix="write the addresses in ASCII (an internationalised domain in its xn-- form)",
            )
        if stage is Stage.CONNECT:
            return stage, errors.connect_failure(exc, endpoint)
        return stage, errors.connection_lost(endpoint, stage)

    # ---- the steps -------------------------------------------------------------------------
    def token(self, *, fresh: bool = False) -> AccessToken | None:
        if not isinstance(self.login, OAuthLogin):
            return None
        try:
            token = self.login.tokens(force_refresh=fresh)
        except BridgeError as error:
            self._failed(Stage.TOKEN, error)
            raise
        self.claims = dict(token.claims)
        source = "token cache" if token.from_cache else "identity platform"
        self.ok(Stage.TOKEN, f"{self.login.permission.value} token for {self.login.user} from the {source}")
        return token

    async def open(self, token: AccessToken | None) -> aiosmtplib.SMTP:
        settings, endpoint = self.settings, self.settings.endpoint
        implicit = endpoint.tls is TlsMode.IMPLICIT
        async with self.step(Stage.CONNECT):
            client = aiosmtplib.SMTP(
                hostname=endpoint.host,
                port=endpoint.port,
                use_tls=implicit,
                start_tls=False,
                tls_context=tls_context(settings.ca_bundle),
                timeout=settings.timeout_s,
                local_hostname=settings.local_hostname,
            )
            self.client = client
            greeting = await client.connect()
            self.ok(Stage.CONNECT, f"{endpoint.host}:{endpoint.port}: {greeting.code} {greeting.message}")
        async with self.step(Stage.TLS):
            if not implicit:
                await client.ehlo()
                if not client.supports_extension("starttls"):
                    raise errors.no_tls_offered(endpoint)
                await client.starttls()
            self.ok(Stage.TLS, self._tls_detail(client, implicit))
        async with self.step(Stage.AUTH):
            await client.ehlo()
            await self._authenticate(client, token)
        return client

    def _tls_detail(self, client: aiosmtplib.SMTP, implicit: bool) -> str:
        ssl_object = client.get_transport_info("ssl_object")
        if ssl_object is None:  # never authenticate without TLS
            raise errors.no_tls_offered(self.settings.endpoint)
        how = "implicit TLS" if implicit else "STARTTLS"
        return f"{how}, {ssl_object.version()}, certificate verified"

    async def _authenticate(self, client: aiosmtplib.SMTP, token: AccessToken | None) -> None:
        user = self.login.user
        offered = client.server_auth_methods
        if isinstance(self.login, PasswordLogin):
            if not {"plain", "login"} & set(offered):
                raise errors.mechanism_missing(self.settings.endpoint, "PLAIN/LOGIN", offered)
            await client.login(user, self.login.password.reveal())
            self.ok(Stage.AUTH, f"Basic (password) as {user}")
            return
        if "xoauth2" not in offered:
            raise errors.mechanism_missing(self.settings.endpoint, "XOAUTH2", offered)
        assert token is not None  # OAuthLogin always has a token here
        try:
            await client.auth_xoauth2(user, token.value.reveal())
        except aiosmtplib.SMTPAuthenticationError as exc:
            # A cached token may have been revoked: try once more with a fresh one.
            if not token.from_cache or Answer(exc.code, exc.message).enhanced != "5.7.3":
                raise
            log.info("SMTP AUTH refused a cached token; asking for a fresh one")
            fresh = self.token(fresh=True)
            assert fresh is not None
            await client.auth_xoauth2(user, fresh.value.reveal())
        self.ok(Stage.AUTH, f"XOAUTH2 as {user}")

    async def submit(self, raw: bytes, sender: str, recipients: Sequence[str]) -> Answer:
        client = self.client
        assert client is not None  # open() came first
        self.sender = sender
        async with self.step(Stage.MAIL):
            reply = await client.mail(sender)
            self.ok(Stage.MAIL, f"FROM {sender}: {reply.code} {reply.message}")
        for recipient in recipients:
            async with self.step(Stage.RCPT, recipient):
                reply = await client.rcpt(recipient)
                self.ok(Stage.RCPT, f"TO {recipient}: {reply.code} {reply.message}")
        async with self.step(Stage.DATA):
            reply = await client.data(raw)
            self.ok(Stage.DATA, f"{reply.code} {reply.message}")
        return Answer(reply.code, reply.message)

    async def close(self) -> None:
        client = self.client
        if client is None or not client.is_connected:
            return
        try:
            await client.quit()
        except (aiosmtplib.SMTPException, OSError):
            client.close()


class SmtpSender:
    """Submits complete messages for one account (the ``Sender`` contract of adapters/base.py)."""

    def __init__(
        self,
        settings: SmtpSettings,
        login: SmtpLogin,
        *,
        on_step: StepListener | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.settings = settings
        self.login = login
        self.on_step = on_step
        self._sleep = sleep

    def __repr__(self) -> str:
        return f"SmtpSender({self.settings.endpoint}, user={self.login.user!r})"

    def send(self, raw: bytes, sender: str, recipients: list[str]) -> SendResult:
        """Submit ``raw`` from ``sender`` (MAIL FROM) to ``recipients`` (RCPT TO).

        Raises AuthenticationError, SendError (``permanent`` False for answers worth retrying
        later), ConnectionFailure (the outcome is unknown if the connection broke during DATA) or
        ParameterError.
        """
        if not recipients:
            raise SendError("the mail has no recipient.", permanent=True, fix="give at least one recipient")
        message_id = message_id_of(raw) or ""
        attempt = 0
        while True:
            conversation = _Conversation(self.settings, self.login, self.on_step)
            try:
                answer = asyncio.run(self._send_once(conversation, raw, sender, recipients))
            except SendError:
                refusal = conversation.refusal
                if refusal is None or not refusal.transient or attempt >= self.settings.transient_retries:
                    raise
                delay = self.settings.retry_backoff_s * 2**attempt
                log.info("SMTP answered %s; trying again in %.1f s", refusal, delay)
                self._sleep(delay)
                attempt += 1
                continue
            log.info("Sent %s from %s to %d recipient(s)", message_id or "a mail", sender, len(recipients))
            return SendResult(message_id, tuple(recipients), str(answer))

    def verify_login(self) -> None:
        """Connect, TLS, AUTH and QUIT, as a send would; sends nothing (``wicbox check``)."""
        conversation = _Conversation(self.settings, self.login, self.on_step)
        asyncio.run(self._login_only(conversation))

    @staticmethod
    async def _send_once(
        conversation: _Conversation, raw: bytes, sender: str, recipients: Sequence[str]
    ) -> Answer:
        token = conversation.token()
        try:
            await conversation.open(token)
            return await conversation.submit(raw, sender, recipients)
        finally:
            await conversation.close()

    @staticmethod
    async def _login_only(conversation: _Conversation) -> None:
        token = conversation.token()
        try:
            await conversation.open(token)
        finally:
            await conversation.close()
