"""The relay's decisions: which client may log in, which senders and recipients it may use, and how
an accepted message becomes an outbox row (committed before the client hears 250).

:class:`OutboxRelayGate` is the :class:`~wicbox_bridge.adapters.base.RelayGate` the SMTP server of
``wicbox relay`` asks. It keeps no mail in memory: a message is either committed to WICBOX_OUTBOX
(RAW_MIME = the bytes received, FROM_ADDR = MAIL FROM, TO_ADDRS = every envelope recipient, SOURCE =
``relay:<account>``) or refused with an SMTP answer that says why. The normal delivery then sends it
(SMTP with XOAUTH2 or Graph, with the same pacing and exactly-once lookup as WIC's own mails).
"""

from __future__ import annotations

import collections
import contextlib
import hashlib
import hmac
import logging
import re
import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from email.header import decode_header, make_header
from email.message import Message
from email.parser import BytesHeaderParser
from email.policy import compat32
from email.utils import getaddresses
from typing import Final

from wicbox_bridge.adapters.base import RELAY_STORE_FAILED, RelayedMessage, RelayReply
from wicbox_bridge.auth.relay_accounts import RelayAccount, RelayAccountFile, password_matches
from wicbox_bridge.errors import BridgeError
from wicbox_bridge.secret import Secret
from wicbox_bridge.store.base import Store, atomic
from wicbox_bridge.store.outbox import RELAY_SOURCE_PREFIX, enqueue

log = logging.getLogger("wicbox.relay")

MAX_RECIPIENTS: Final = 500
# A recipient without quotes, spaces, commas, angle brackets or other specials (UTF-8 allowed for
# SMTPUTF8): it can be listed in TO_ADDRS and in a Bcc header without changing its meaning.
_PLAIN_ADDRESS: Final = re.compile(r'^[^\s"(),:;<>@\[\\\]\x00-\x1f\x7f]+@[^\s"(),:;<>@\[\\\]\x00-\x1f\x7f]+$')
SUBJECT_LIMIT: Final = 998
AUTH_FAILED: Final = RelayReply(535, "5.7.8 Authentication credentials invalid")
ACCEPTED_PREFIX: Final = "2.0.0 Queued in the outbox as mail"
_END_OF_HEADERS: Final = re.compile(rb"\r?\n\r?\n")


@dataclass(frozen=True)
class FailedLoginLimit:
    """At most ``failures`` failed logins per client address in ``window_s``; then AUTH is refused
    for ``lockout_s`` without looking at the password."""

    failures: int = 5
    window_s: float = 600.0
    lockout_s: float = 600.0


class FailedLogins:
    """Failed logins per client address (a sliding window), with an injected clock."""

    def __init__(self, limit: FailedLoginLimit, clock: Callable[[], float]) -> None:
        self.limit = limit
        self.clock = clock
        self._failures: dict[str, collections.deque[float]] = {}
        self._locked_until: dict[str, float] = {}

    def locked(self, peer: str) -> bool:
        until = self._locked_until.get(peer)
        if until is None:
            return False
        if self.clock() < until:
            return True
        del self._locked_until[peer]
        return False

    def failed(self, peer: str) -> None:
        now = self.clock()
        window = self._failures.setdefault(peer, collections.deque())
        window.append(now)
        while window and now - window[0] > self.limit.window_s:
            window.popleft()
        if len(window) >= self.limit.failures:
            self._locked_until[peer] = now + self.limit.lockout_s
            window.clear()
        self._forget_old(now)

    def succeeded(self, peer: str) -> None:
        self._failures.pop(peer, None)

    def _forget_old(self, now: float) -> None:
        """Drop idle entries so that many client addresses cannot grow the tables without end."""
        if len(self._failures) + len(self._locked_until) < 4096:
            return
        for peer in [
            peer
            for peer, times in self._failures.items()
            if not times or now - times[-1] > self.limit.window_s
        ]:
            del self._failures[peer]
        for peer in [peer for peer, until in self._locked_until.items() if until <= now]:
            del self._locked_until[peer]


class _VerifiedPasswords:
    """Logins verified before, so that a client that logs in for every message does not pay for
    scrypt each time: an HMAC under a key of this process only (never stored), per stored hash."""

    def __init__(self) -> None:
        self._key = secrets.token_bytes(32)
        self._known: set[bytes] = set()

    def _digest(self, account: RelayAccount, password: Secret) -> bytes:
        text = f"{account.name}\x00{account.password_hash}\x00{password.reveal()}".encode()
        return hmac.new(self._key, text, hashlib.sha256).digest()

    def known(self, account: RelayAccount, password: Secret) -> bool:
        return self._digest(account, password) in self._known

    def remember(self, account: RelayAccount, password: Secret) -> None:
        if len(self._known) > 1024:
            self._known.clear()
        self._known.add(self._digest(account, password))


StoreOpener = Callable[[], contextlib.AbstractContextManager[Store]]


class OutboxRelayGate:
    """The relay's decisions, and the outbox behind it (one database connection, opened on first use
    in the relay's worker thread and kept; see :meth:`close`)."""

    def __init__(
        self,
        accounts: RelayAccountFile,
        open_store: StoreOpener,
        *,
        on_stored: Callable[[int], None] = lambda outbox_id: None,
        limit: FailedLoginLimit = FailedLoginLimit(),
        clock: Callable[[], float] = time.monotonic,
        max_recipients: int = MAX_RECIPIENTS,
    ) -> None:
        self.accounts = accounts
        self.open_store = open_store
        self.on_stored = on_stored
        self.failed_logins = FailedLogins(limit, clock)
        self.max_recipients = max_recipients
        self._verified = _VerifiedPasswords()
        self._stack: contextlib.ExitStack | None = None
        self._store: Store | None = None

    def __repr__(self) -> str:
        return f"OutboxRelayGate({self.accounts!r})"

    # ---- AUTH ---------------------------------------------------------------------------
    def authenticate(self, login: str, password: Secret, peer: str) -> RelayReply | None:
        if self.failed_logins.locked(peer):
            log.warning("Relay: login as %r from %s refused: too many failed logins from there", login, peer)
            return RelayReply(454, "4.7.0 Too many failed logins from your address; try again later")
        try:
            account = self.accounts.find(login)
        except BridgeError as error:
            log.error("Relay: %s", error)
            return RelayReply(454, "4.7.0 Temporary authentication failure (the relay's account file)")
        if account is None or not self._password_ok(account, password):
            self.failed_logins.failed(peer)
            log.warning("Relay: failed login as %r from %s", login, peer)
            return AUTH_FAILED
        if not account.may_connect_from(peer):
            self.failed_logins.failed(peer)
            log.warning("Relay: login as %r refused: %s is not among its --source networks", login, peer)
            return RelayReply(535, "5.7.8 This account may not log in from your address")
        self.failed_logins.succeeded(peer)
        return None

    def _password_ok(self, account: RelayAccount, password: Secret) -> bool:
        if self._verified.known(account, password):
            return True
        if password_matches(password, account.password_hash):
            self._verified.remember(account, password)
            return True
        return False

    # ---- envelope -----------------------------------------------------------------------
    def check_sender(self, login: str, address: str) -> RelayReply | None:
        account = self._account(login)
        if account is not None and address and account.may_send_as(address):
            return None
        shown = address or "<>"
        log.warning("Relay: %r may not send as %s (MAIL FROM); refused", login, shown)
        return RelayReply(550, f"5.7.1 Relay account {login} may not send as {shown}")

    def check_recipient(self, login: str, address: str, count: int) -> RelayReply | None:
        """``count`` recipients accepted so far in this transaction."""
        if count >= self.max_recipients:
            return RelayReply(452, f"4.5.3 Too many recipients (at most {self.max_recipients} a message)")
        if not _PLAIN_ADDRESS.match(address):
            log.warning("Relay: recipient %r of %r is not a plain address; refused", address, login)
            return RelayReply(553, "5.1.3 The recipient is not a plain mail address")
        return None

    # ---- DATA ---------------------------------------------------------------------------
    def accept(self, messages: Sequence[RelayedMessage]) -> list[RelayReply]:
        """Check each message, then commit the good ones in one transaction (a group commit: the
        server hands over what arrived while the previous batch was committing)."""
        replies: list[RelayReply | None] = []
        keep: list[tuple[int, RelayedMessage, str]] = []
        for message in messages:
            refusal, subject = self._refusal(message)
            replies.append(refusal)
            if refusal is None:
                keep.append((len(replies) - 1, message, subject))
        if keep:
            try:
                stored = self._store_messages([(message, subject) for _, message, subject in keep])
            except BridgeError as error:
                log.error("Relay: the outbox cannot take %d message(s) now: %s", len(keep), error)
                self._drop_store()
                for position, _message, _subject in keep:
                    replies[position] = RELAY_STORE_FAILED
            else:
                for (position, message, _subject), outbox_id in zip(keep, stored, strict=True):
                    self._log_taken(outbox_id, message)
                    replies[position] = RelayReply(250, f"{ACCEPTED_PREFIX} {outbox_id}")
                self.on_stored(stored[-1])
        return [reply or RELAY_STORE_FAILED for reply in replies]

    def _refusal(self, message: RelayedMessage) -> tuple[RelayReply | None, str]:
        account = self._account(message.login)
        if account is None:
            return RelayReply(451, "4.7.0 The relay account is gone; log in again"), ""
        headers = BytesHeaderParser(policy=compat32).parsebytes(_header_block(message.data))
        return self._header_refusal(account, message, headers), _subject(headers)

    @staticmethod
    def _log_taken(outbox_id: int, message: RelayedMessage) -> None:
        log.info(
            "Relay: took outbox mail %d from %r (%s): MAIL FROM %s, %d recipient(s), %d bytes",
            outbox_id,
            message.login,
            message.peer,
            message.mail_from,
            len(message.recipients),
            len(message.data),
        )

    def _header_refusal(
        self, account: RelayAccount, message: RelayedMessage, headers: Message
    ) -> RelayReply | None:
        if len(message.recipients) > self.max_recipients:
            return RelayReply(552, f"5.5.3 Too many recipients (at most {self.max_recipients} a message)")
        senders = [
            address
            for name in ("From", "Sender")
            for _display, address in getaddresses([str(value) for value in headers.get_all(name, [])])
        ]
        if not headers.get_all("From"):
            log.warning("Relay: message from %r has no From: header; refused", message.login)
            return RelayReply(550, "5.6.0 The message has no From: header")
        refused = [address or "(unreadable)" for address in senders if not account.may_send_as(address)]
        if refused:
            log.warning(
                "Relay: %r may not send as %s (From:/Sender: header); refused",
                message.login,
                ", ".join(refused),
            )
            return RelayReply(550, f"5.7.1 Relay account {account.name} may not send as {refused[0]}")
        return None

    def _store_messages(self, messages: Sequence[tuple[RelayedMessage, str]]) -> list[int]:
        store = self._open()
        with atomic(store):
            return [
                enqueue(
                    store,
                    from_addr=message.mail_from,
                    to=", ".join(message.recipients),
                    subject=subject,
                    raw_mime=message.data,
                    source=f"{RELAY_SOURCE_PREFIX}{message.login}",
                )
                for message, subject in messages
            ]

    def _account(self, login: str) -> RelayAccount | None:
        try:
            return self.accounts.find(login)
        except BridgeError as error:
            log.error("Relay: %s", error)
            return None

    # ---- the connection -----------------------------------------------------------------
    def _open(self) -> Store:
        if self._store is None:
            stack = contextlib.ExitStack()
            self._store = stack.enter_context(self.open_store())
            self._stack = stack
        return self._store

    def _drop_store(self) -> None:
        """After a database error: close the connection; the next message opens a new one."""
        with contextlib.suppress(BridgeError, OSError):
            self.close()

    def close(self) -> None:
        stack, self._stack, self._store = self._stack, None, None
        if stack is not None:
            stack.close()


def _header_block(data: bytes) -> bytes:
    """The header section (up to the first empty line): the body is not parsed for nothing."""
    end = _END_OF_HEADERS.search(data)
    return data if end is None else data[: end.end()]


def _subject(headers: Message) -> str:
    """The Subject header, decoded, for status and WICBOX_OUTBOX.SUBJECT (the bytes are unchanged)."""
    value = headers.get("Subject")
    if value is None:
        return ""
    try:
        text = str(make_header(decode_header(str(value))))
    except (ValueError, LookupError, UnicodeError):
        text = str(value)
    return " ".join(text.split())[:SUBJECT_LIMIT]
