"""An SMTP submission server that behaves like Exchange Online's for the test bed (aiosmtpd).

Two listeners on the session's loopback address share one handler: STARTTLS (like
smtp.office365.com:587, AUTH only after STARTTLS) and implicit TLS. AUTH XOAUTH2 checks the
emulator's tokens with Exchange Online's rules (:mod:`tools.testbed.tokens`); AUTH LOGIN/PLAIN
check Basic passwords. Accepted mail is kept for assertions (envelope and exact bytes) and
delivered over LMTP into the test bed's Dovecot, so a test can read it back over IMAP. As Exchange
Online does, a copy of every accepted mail is kept in the Sent Items of the mailbox that signed in
(``keep_sent``), before the server answers 250: a sender that never saw the answer finds it there.

Fault tests script Exchange's answers: :meth:`SmtpServer.script_reply` makes the next AUTH, MAIL,
RCPT or DATA answer a given reply, and :meth:`SmtpServer.enable_submission_quota` switches on
Exchange's per-mailbox limit of 30 messages a minute. :meth:`SmtpServer.wait_until_idle` waits
until the server is done with a client (after the client was killed).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import collections
import smtplib
import ssl
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from tools.testbed.pki import LoopbackPki
from tools.testbed.ports import free_port
from tools.testbed.tokens import (
    MailAccounts,
    MailProtocol,
    TokenRules,
    Verdict,
    check_password,
    check_token,
)

AUTH_LINE_LIMIT = 16 * 1024
AUTH_SUCCEEDED = "235 2.7.0 Authentication successful"
AUTH_UNSUCCESSFUL = "535 5.7.3 Authentication unsuccessful"
AUTH_DISABLED_FOR_TENANT = (
    "535 5.7.139 Authentication unsuccessful, SmtpClientAuthentication is disabled for the Tenant. "
    "Visit https://aka.ms/smtp_auth_disabled for more information."
)
NOT_AUTHENTICATED = "530 5.7.57 Client not authenticated to send mail"
SEND_AS_DENIED = "550 5.7.60 SMTP; Client does not have permissions to send as this sender"
QUOTA_EXCEEDED = (
    "554 5.2.0 STOREDRV.Submission.Exception:SubmissionQuotaExceededException; Failed to process "
    "message due to a permanent exception with message [BeginDiagnosticData]Cannot submit message."
    "[EndDiagnosticData]"
)
TRANSIENT_FAILURE = "451 4.4.4 Temporary server error. Please try again later"
EXCHANGE_QUOTA_PER_MINUTE = 30


class Stage(Enum):
    """SMTP commands whose answer a fault test can script."""

    AUTH = "AUTH"
    MAIL = "MAIL"
    RCPT = "RCPT"
    DATA = "DATA"


@dataclass(frozen=True)
class SubmittedMail:
    """One accepted submission: who sent it, the envelope and the exact bytes."""

    login_user: str
    mechanism: str
    mail_from: str
    rcpt_tos: tuple[str, ...]
    raw: bytes


@dataclass(frozen=True)
class Login:
    """What AUTH established for a session (kept in ``session.auth_data``)."""

    user: str
    mechanism: str


class ScriptedReplies:
    """Replies queued per stage; each is used once, oldest first (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._queues: dict[Stage, collections.deque[str]] = collections.defaultdict(collections.deque)

    def add(self, stage: Stage, reply: str, times: int = 1) -> None:
        with self._lock:
            self._queues[stage].extend([reply] * times)

    def take(self, stage: Stage) -> str | None:
        with self._lock:
            queue = self._queues[stage]
            return queue.popleft() if queue else None

    def clear(self) -> None:
        with self._lock:
            self._queues.clear()


class SubmissionQuota:
    """Exchange's per-mailbox submission limit (off unless enabled; thread-safe)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._lock = threading.Lock()
        self._clock = self._own_clock = clock
        self._limit: int | None = None
        self._window_s = 60.0
        self._sent: dict[str, collections.deque[float]] = {}

    def enable(
        self,
        per_window: int = EXCHANGE_QUOTA_PER_MINUTE,
        window_s: float = 60.0,
        clock: Callable[[], float] | None = None,
    ) -> None:
        """``clock``: the time the limit counts in (a test's controlled clock; default: monotonic)."""
        with self._lock:
            self._limit, self._window_s = per_window, window_s
            self._clock = clock or self._own_clock

    def disable(self) -> None:
        with self._lock:
            self._limit = None
            self._sent.clear()
            self._clock = self._own_clock

    def try_consume(self, mailbox: str) -> bool:
        """Count one submission for ``mailbox``; False when the limit is reached."""
        with self._lock:
            if self._limit is None:
                return True
            now = self._clock()
            sent = self._sent.setdefault(mailbox.casefold(), collections.deque())
            while sent and now - sent[0] >= self._window_s:
                sent.popleft()
            if len(sent) >= self._limit:
                return False
            sent.append(now)
            return True


def parse_xoauth2(blob: bytes) -> tuple[str, str] | None:
    """(user, token) from a decoded XOAUTH2 initial response, or None if malformed."""
    fields = dict(part.split("=", 1) for part in blob.decode("utf-8", "replace").split("\x01") if "=" in part)
    auth = fields.get("auth", "")
    if "user" not in fields or not auth.lower().startswith("bearer "):
        return None
    return fields["user"], auth[len("bearer ") :].strip()


def _decode_b64(text: str) -> bytes | None:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return None


Deliver = Callable[[str, tuple[str, ...], bytes], None]
KeepSent = Callable[[str, bytes], None]


class Activity:
    """Open connections (numbered in the order they came) and accepted mails still being stored:
    is the server done with a client? (thread-safe)"""

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._open: dict[int, int] = {}  # id of the connection's protocol: its number
        self._accepted = 0
        self._storing = 0

    def connected(self, connection: object) -> None:
        with self._changed:
            if id(connection) not in self._open:  # connection_made comes again after STARTTLS
                self._accepted += 1
                self._open[id(connection)] = self._accepted

    def disconnected(self, connection: object) -> None:
        with self._changed:
            self._open.pop(id(connection), None)
            self._changed.notify_all()

    def accepted_so_far(self) -> int:
        with self._changed:
            return self._accepted

    def storing_starts(self) -> None:
        with self._changed:
            self._storing += 1

    def storing_ends(self) -> None:
        with self._changed:
            self._storing -= 1
            self._changed.notify_all()

    def wait_until_idle(self, timeout_s: float, since: int = 0) -> bool:
        def idle() -> bool:
            return not self._storing and all(number <= since for number in self._open.values())

        with self._changed:
            return self._changed.wait_for(idle, timeout_s)


class SubmissionHandler:
    """aiosmtpd handler: authentication, Exchange's checks, recording, LMTP delivery and Sent Items."""

    def __init__(
        self,
        rules: TokenRules,
        accounts: MailAccounts,
        deliver: Deliver,
        keep_sent: KeepSent | None = None,
    ) -> None:
        self.rules = rules
        self.accounts = accounts
        self.deliver = deliver
        self.keep_sent = keep_sent
        self.scripted = ScriptedReplies()
        self.quota = SubmissionQuota()
        self.activity = Activity()
        self._lock = threading.Lock()
        self._accepted: list[SubmittedMail] = []
        self._verdicts: list[tuple[str, str, Verdict]] = []

    # ---- state for assertions --------------------------------------------------------------
    def accepted(self) -> list[SubmittedMail]:
        with self._lock:
            return list(self._accepted)

    def verdicts(self) -> list[tuple[str, str, Verdict]]:
        """(mechanism, user, verdict) of every AUTH judged, newest last."""
        with self._lock:
            return list(self._verdicts)

    def reset(self) -> None:
        self.scripted.clear()
        self.quota.disable()
        with self._lock:
            self._accepted.clear()
            self._verdicts.clear()

    # ---- authentication --------------------------------------------------------------------
    def _auth_outcome(self, mechanism: str, user: str, verdict: Verdict) -> AuthResult:
        with self._lock:
            self._verdicts.append((mechanism, user, verdict))
        scripted = self.scripted.take(Stage.AUTH)
        if scripted is not None:
            return AuthResult(success=False, handled=False, message=scripted)
        if not verdict.accepted:
            return AuthResult(success=False, handled=False, message=AUTH_UNSUCCESSFUL)
        return AuthResult(success=True, auth_data=Login(user, mechanism), message=AUTH_SUCCEEDED)

    async def auth_XOAUTH2(self, server: SMTP, args: list[str]) -> AuthResult:
        if len(args) > 1:
            blob = _decode_b64(args[1])
        else:
            answer = await server.challenge_auth("", encode_to_b64=False)
            blob = answer if isinstance(answer, bytes) else None
        parsed = parse_xoauth2(blob) if blob is not None else None
        if parsed is None:
            return AuthResult(success=False, handled=False, message="501 5.5.2 Cannot decode XOAUTH2")
        user, token = parsed
        verdict = check_token(token, user, MailProtocol.SMTP, self.rules, self.accounts)
        return self._auth_outcome("XOAUTH2", user, verdict)

    def authenticate_password(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, auth_data: Any
    ) -> AuthResult:
        """aiosmtpd ``authenticator`` for the built-in LOGIN and PLAIN mechanisms (Basic)."""
        if not isinstance(auth_data, LoginPassword):
            return AuthResult(success=False, handled=False, message=AUTH_UNSUCCESSFUL)
        user = auth_data.login.decode("utf-8", "replace")
        password = auth_data.password.decode("utf-8", "replace")
        return self._auth_outcome(mechanism, user, check_password(user, password, self.accounts))

    # ---- envelope --------------------------------------------------------------------------
    async def handle_MAIL(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, mail_options: list[str]
    ) -> str:
        scripted = self.scripted.take(Stage.MAIL)
        if scripted is not None:
            return scripted
        login: object = session.auth_data if session.authenticated else None
        if not isinstance(login, Login):
            return NOT_AUTHENTICATED
        if address.casefold() != login.user.casefold():
            return SEND_AS_DENIED
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 2.1.0 Sender OK"

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, rcpt_options: list[str]
    ) -> str:
        scripted = self.scripted.take(Stage.RCPT)
        if scripted is not None:
            return scripted
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 2.1.5 Recipient OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        scripted = self.scripted.take(Stage.DATA)
        if scripted is not None:
            return scripted
        login: object = session.auth_data
        assert isinstance(login, Login)  # handle_MAIL let only authenticated sessions through
        if not self.quota.try_consume(login.user):
            return QUOTA_EXCEEDED
        content = envelope.original_content or envelope.content or b""
        raw = content if isinstance(content, bytes) else content.encode()
        mail = SubmittedMail(
            login.user, login.mechanism, envelope.mail_from or "", tuple(envelope.rcpt_tos), raw
        )
        # Delivered, kept in Sent Items and recorded together in the executor thread: when the
        # client goes away during delivery, aiosmtpd cancels this coroutine, but the thread still
        # delivers the mail, and the record must say so (a killed sender's mail can really be in
        # the mailbox). Counted as storing from here, before the first await, so that
        # wait_until_idle never misses a mail that is on its way in.
        self.activity.storing_starts()
        await asyncio.get_running_loop().run_in_executor(None, self._deliver_and_record, mail)
        return f"250 2.6.0 <{uuid.uuid4()}@klant.example> Queued mail for delivery"

    def _deliver_and_record(self, mail: SubmittedMail) -> None:
        try:
            local = tuple(rcpt for rcpt in mail.rcpt_tos if self.accounts.has_mailbox(rcpt))
            if self.keep_sent is not None and self.accounts.has_mailbox(mail.login_user):
                self.keep_sent(mail.login_user, mail.raw)
            if local:
                self.deliver(mail.mail_from, local, mail.raw)
            with self._lock:
                self._accepted.append(mail)
        finally:
            self.activity.storing_ends()


class ExchangeSMTP(SMTP):
    """aiosmtpd's SMTP with room for real-size XOAUTH2 tokens; tells the handler about connections."""

    line_length_limit = AUTH_LINE_LIMIT

    def __init__(self, handler: SubmissionHandler, **kwargs: Any) -> None:
        super().__init__(handler, **kwargs)
        self.activity = handler.activity
        self.command_size_limits = collections.defaultdict(lambda: SMTP.command_size_limit)
        self.command_size_limits["AUTH"] = AUTH_LINE_LIMIT

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.activity.connected(self)
        super().connection_made(transport)

    def connection_lost(self, error: Exception | None) -> None:
        try:
            super().connection_lost(error)
        finally:
            self.activity.disconnected(self)


class _ExchangeController(Controller):
    def factory(self) -> SMTP:
        return ExchangeSMTP(self.handler, **self.SMTP_kwargs)


def lmtp_deliverer(host: str, port: int) -> Deliver:
    """Deliver a message into Dovecot over LMTP, bytes unchanged."""

    def deliver(mail_from: str, rcpt_tos: tuple[str, ...], raw: bytes) -> None:
        # LMTP answers DATA once per recipient; smtplib reads only one answer, so one recipient
        # per transaction keeps the conversation in step.
        with smtplib.LMTP(host, port, timeout=30) as lmtp:
            for rcpt in rcpt_tos:
                lmtp.sendmail(mail_from, [rcpt], raw)

    return deliver


def _server_tls_context(pki: LoopbackPki) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(str(pki.server_cert), str(pki.server_key))
    return context


class SmtpServer:
    """The submission server's two listeners and its control API for tests."""

    def __init__(
        self,
        host: str,
        pki: LoopbackPki,
        accounts: MailAccounts,
        deliver: Deliver,
        keep_sent: KeepSent | None = None,
    ) -> None:
        self.host = host
        self.pki = pki
        rules = TokenRules.from_files(pki.signing_public_key, pki.signing_kid)
        self.handler = SubmissionHandler(rules, accounts, deliver, keep_sent)
        self.starttls_port = free_port(host)
        self.implicit_tls_port = free_port(host)
        common: dict[str, Any] = {
            "hostname": host,
            "server_hostname": "klant-smtp.outlook.office365.test",
            "authenticator": self.handler.authenticate_password,
            "data_size_limit": 35 * 1024 * 1024,
        }
        tls = _server_tls_context(pki)
        self._controllers = [
            _ExchangeController(
                self.handler,
                port=self.starttls_port,
                tls_context=tls,
                require_starttls=True,
                auth_require_tls=True,
                **common,
            ),
            # The whole connection is TLS, which aiosmtpd does not see: AUTH needs no STARTTLS here.
            _ExchangeController(
                self.handler, port=self.implicit_tls_port, ssl_context=tls, auth_require_tls=False, **common
            ),
        ]

    @property
    def ca_path(self) -> str:
        return str(self.pki.ca_cert)

    def start(self) -> None:
        for controller in self._controllers:
            controller.start()

    def stop(self) -> None:
        for controller in self._controllers:
            controller.stop()

    # ---- control API -----------------------------------------------------------------------
    def script_reply(self, stage: Stage | str, reply: str, times: int = 1) -> None:
        """Make the next ``times`` AUTH/MAIL/RCPT/DATA commands answer ``reply``."""
        self.handler.scripted.add(Stage(stage), reply, times)

    def enable_submission_quota(
        self,
        per_minute: int = EXCHANGE_QUOTA_PER_MINUTE,
        window_s: float = 60.0,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self.handler.quota.enable(per_minute, window_s, clock)

    def accepted(self) -> list[SubmittedMail]:
        return self.handler.accepted()

    def auth_verdicts(self) -> list[tuple[str, str, Verdict]]:
        return self.handler.verdicts()

    def connections_so_far(self) -> int:
        """How many connections the server has accepted (a mark for :meth:`wait_until_idle`)."""
        return self.handler.activity.accepted_so_far()

    def wait_until_idle(self, timeout_s: float = 10.0, *, since: int = 0) -> bool:
        """Wait until the connections after the first ``since`` are closed and every accepted mail is
        stored; False on timeout. After a client was killed: whether its last mail was accepted is
        then final (``since``: :meth:`connections_so_far` before it started, so that a connection
        another test left open does not count).
        """
        return self.handler.activity.wait_until_idle(timeout_s, since)

    def reset(self) -> None:
        self.handler.reset()
