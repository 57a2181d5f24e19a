"""The small contracts between the core and the protocol adapters.

The core (filing, runs, the outbox) depends only on these protocols; the CLI builds concrete
adapters from the validated settings and injects them. Keep them small: a new protocol is a new
adapter, not a new method here.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Final, Protocol, runtime_checkable

from wicbox_bridge.errors import SendError
from wicbox_bridge.secret import Secret


@dataclass(frozen=True)
class AccessToken:
    """An OAuth2 access token as the token layer hands it out.

    ``claims`` are the decoded, non-secret claims that diagnostics show (aud, scp/roles, upn/appid,
    tid, exp); ``from_cache`` tells whether the identity platform was asked.
    """

    value: Secret
    expires_at: float
    from_cache: bool
    claims: dict[str, object]


@runtime_checkable
class TokenProvider(Protocol):
    """The token seam, in the style of aiosmtplib's ``oauth_token_generator``.

    Calling it returns a valid access token for one account and one protocol. ``force_refresh``
    skips the cached access token (used after a server said the token expired or was revoked).
    Raises :class:`wicbox_bridge.errors.AuthenticationError` or ``ConnectionFailure``.
    """

    def __call__(self, *, force_refresh: bool = False) -> AccessToken: ...


@dataclass(frozen=True)
class MailRef:
    """One mail as listed on the server, before its bytes are fetched.

    ``key`` is the server's stable identity within ``folder``: an IMAP UID (as text) under
    ``validity`` (UIDVALIDITY), or a Graph immutable id (``validity`` empty).
    """

    mailbox: str
    folder: str
    validity: str
    key: str
    size: int


@dataclass(frozen=True)
class FetchedMail:
    """A mail's exact bytes as received from the server."""

    ref: MailRef
    raw: bytes
    received_at: float | None


@dataclass(frozen=True)
class MailboxBacklog:
    """What still waits in the source folder after a pass: the mails ``list_pending`` would list,
    and when the oldest of them was received (epoch seconds; None when none waits or unknown)."""

    count: int
    oldest_received_at: float | None


class MailboxSession(Protocol):
    """An open, authenticated connection to one mailbox folder.

    ``validity`` is the folder's current UIDVALIDITY (IMAP) or "" (Graph, whose ids do not expire).
    acknowledge and quarantine refuse refs listed under another validity: their keys may now name
    other mails.
    """

    validity: str

    def list_pending(self, limit: int) -> list[MailRef]:
        """The oldest ``limit`` mails still to be processed in the source folder, oldest first."""
        ...

    def fetch(self, refs: list[MailRef]) -> list[FetchedMail]:
        """The exact bytes of ``refs`` (one batch), in the same order, without marking them read.

        A mail that vanished from the server since it was listed is left out of the result.
        """
        ...

    def acknowledge(self, refs: list[MailRef]) -> None:
        """Apply the after-process action (move, delete or mark seen) to mails already filed."""
        ...

    def quarantine(self, refs: list[MailRef]) -> None:
        """Move mails that could not be filed to the failed folder; never deletes them."""
        ...

    def backlog(self) -> MailboxBacklog:
        """How many mails wait in the source folder and the oldest one's received time.

        Counts what :meth:`list_pending` would list without a limit, in one or two cheap requests
        (nothing is fetched). Raises the adapter's errors like the other methods.
        """
        ...

    def close(self) -> None: ...


class MailboxAdapter(Protocol):
    """Opens mailbox sessions for one protocol (IMAP or Graph)."""

    protocol: str

    def open(self, mailbox: str, tokens: TokenProvider | None) -> MailboxSession:
        """Log in to ``mailbox`` with a token from ``tokens`` (None means Basic authentication)."""
        ...


class MailboxWatch(Protocol):
    """Tells when new mail may have arrived in one mailbox's source folder (``wicbox serve``).

    ``how`` says how the folder is watched ("IDLE", "delta polling"), for logs and status.
    :meth:`wait` returns True when new mail may have arrived, and after a reconnect (mail may have
    arrived while the watch was blind): the caller then runs a catch-up pass. It returns False
    when ``timeout`` seconds passed with nothing to report (or a reconnect failed and was backed
    off). It raises the adapter's errors when the mailbox cannot be watched at all (sign-in
    refused, folder missing); a dropped connection is the watch's own business.
    """

    how: str

    def wait(self, timeout: float) -> bool: ...

    def close(self) -> None: ...


class MailboxWatcher(Protocol):
    """Starts watches for one protocol (the mailbox adapters implement it next to ``open``)."""

    def watch(self, mailbox: str, tokens: TokenProvider | None) -> MailboxWatch:
        """Sign in like ``open`` and start watching ``mailbox``'s source folder."""
        ...


@dataclass(frozen=True)
class SendResult:
    """What the server answered to a submission."""

    message_id: str
    accepted: tuple[str, ...]
    server_reply: str


class Sender(Protocol):
    """Submits one complete RFC 5322 message."""

    def send(self, raw: bytes, sender: str, recipients: list[str]) -> SendResult: ...


# --------------------------------------------------------------------------- the relay's server side


@dataclass(frozen=True)
class RelayReply:
    """An SMTP answer the relay gives a client: ``code`` and text (with its enhanced status code)."""

    code: int
    text: str

    def render(self) -> str:
        return f"{self.code} {self.text}"


RELAY_STORE_FAILED: Final = RelayReply(451, "4.3.0 The relay cannot store the message now; try again later")


@dataclass(frozen=True)
class RelayedMessage:
    """One message as an SMTP client handed it to the relay: envelope and exact bytes."""

    peer: str
    login: str
    mail_from: str
    recipients: tuple[str, ...]
    data: bytes = field(repr=False)
    smtputf8: bool = False


class RelayGate(Protocol):
    """What the relay's SMTP server asks the core. ``authenticate``, ``accept`` and ``close`` are
    called in one worker thread, one at a time; ``check_sender`` and ``check_recipient`` must be
    cheap (no database): the server's event loop calls them.

    ``authenticate`` answers None when ``login``/``password`` are a relay account allowed from
    ``peer``, else the refusal; ``check_sender`` None when ``login`` may use ``address`` as MAIL
    FROM; ``accept`` stores the message for delivery (committed before it answers 250) or refuses it.
    """

    def authenticate(self, login: str, password: Secret, peer: str) -> RelayReply | None: ...

    def check_sender(self, login: str, address: str) -> RelayReply | None: ...

    def check_recipient(self, login: str, address: str, count: int) -> RelayReply | None:
        """None when ``address`` may be the next recipient after ``count`` accepted ones."""
        ...

    def accept(self, messages: Sequence[RelayedMessage]) -> list[RelayReply]:
        """One answer per message, in order; the accepted ones committed together before this returns."""
        ...

    def close(self) -> None:
        """Release what the gate holds (its database connection); called in the same worker thread."""
        ...


_UNSAFE_IN_MESSAGE_ID = re.compile("[\x00-\x20\x7f-\x9f\u2028\u2029]")


def refuse_unsafe_message_id(message_id: str) -> None:
    """An outbox row's MESSAGE_ID goes into an IMAP SEARCH and a Graph $filter: a control character
    (CR/LF above all) or a space could smuggle a command or a filter in, so it is refused."""
    if _UNSAFE_IN_MESSAGE_ID.search(message_id) or len(message_id) > 998:
        raise SendError(
            "the outbox row's MESSAGE_ID contains a control character, a space or is over-long; it is "
            "not sent and not looked up",
            permanent=True,
            fix="clear MESSAGE_ID of the row (wicbox-bridge then writes one), or correct it to the form "
            "<unique@domain>",
        )
