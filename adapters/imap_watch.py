"""Watching a mailbox's source folder with IMAP IDLE (RFC 2177) for ``wicbox serve``.

One connection per mailbox, signed in like a session, with the source folder selected read-only
and IDLE running. :meth:`ImapIdleWatch.wait` reports new mail (``EXISTS``/``RECENT``). IDLE is
ended and issued again every ``renew_s`` (25 minutes: Exchange Online and RFC 2177 drop an IDLE
after about 30). A connection that breaks (EOF, ``BYE``, a socket error) is opened again, with a
growing pause between failed attempts (the injected ``sleep``); once it is back, ``wait`` answers
True so the caller searches the folder for what arrived while the watch was blind.
"""

from __future__ import annotations

import contextlib
import imaplib
import logging
import select
import time
from collections.abc import Callable, Sequence
from typing import Any, Final

from imapclient import IMAPClient

from wicbox_bridge.adapters import imap_errors as errors
from wicbox_bridge.adapters.imap_connect import SignIn, close, connect
from wicbox_bridge.adapters.imap_session import server_folder
from wicbox_bridge.adapters.imap_settings import ImapSettings
from wicbox_bridge.errors import ConnectionFailure, MailboxError

log = logging.getLogger("wicbox.imap")

IDLE_RENEW_S: Final = 25 * 60.0
RECONNECT_BACKOFF_S: Final = (1.0, 2.0, 5.0, 10.0, 30.0, 60.0)
NEW_MAIL: Final = frozenset({b"EXISTS", b"RECENT"})


class IdleLost(Exception):
    """The IDLE connection ended (EOF or ``BYE``)."""


def reports_new_mail(responses: Sequence[tuple[Any, ...]]) -> bool:
    """Whether IDLE responses (``(3, b'EXISTS')``...) announce mail; a ``BYE`` raises IdleLost."""
    for response in responses:
        if response and response[0] == b"BYE":
            raise IdleLost(repr(response[1:])[:200])
    return any(len(response) > 1 and response[1] in NEW_MAIL for response in responses)


class ImapIdleWatch:
    """IDLE on one mailbox's source folder; see the module docstring."""

    how = "IDLE"

    def __init__(
        self,
        settings: ImapSettings,
        mailbox: str,
        sign_in: SignIn,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        renew_s: float = IDLE_RENEW_S,
        backoff_s: Sequence[float] = RECONNECT_BACKOFF_S,
    ) -> None:
        self.settings = settings
        self.mailbox = mailbox
        self._sign_in = sign_in
        self._clock = clock
        self._sleep = sleep
        self._renew_s = renew_s
        self._backoff_s = tuple(backoff_s) or (1.0,)
        self._failures = 0
        self._client: IMAPClient | None = None
        self._idle_since = 0.0
        self.reconnects = 0
        self._open()

    def __repr__(self) -> str:
        return f"ImapIdleWatch({self.mailbox!r}, {self.settings.source_folder!r}, {self.settings.endpoint})"

    # ---- MailboxWatch ------------------------------------------------------------------------
    def wait(self, timeout: float) -> bool:
        if self._client is None:
            return self._reconnect()
        try:
            return self._idle_for(self._client, max(0.0, timeout))
        except (OSError, ValueError, imaplib.IMAP4.error, IdleLost) as exc:
            log.warning("IDLE on %s of %s broke (%s); connecting again", self._source, self.mailbox, exc)
            self._drop()
            return self._reconnect()

    def close(self) -> None:
        client, self._client = self._client, None
        if client is None:
            return
        with contextlib.suppress(OSError, ValueError, imaplib.IMAP4.error):
            client.idle_done()
        close(client)

    # ---- IDLE --------------------------------------------------------------------------------
    @property
    def _source(self) -> str:
        return self.settings.source_folder

    def _idle_for(self, client: IMAPClient, timeout: float) -> bool:
        if self._clock() - self._idle_since >= self._renew_s:
            _text, responses = client.idle_done()
            client.idle()
            self._idle_since = self._clock()
            log.debug("IDLE renewed on %s of %s", self._source, self.mailbox)
            if reports_new_mail(responses):
                return True
        left = max(0.0, self._renew_s - (self._clock() - self._idle_since))
        responses = client.idle_check(timeout=min(timeout, left))
        if not responses and _readable(client):  # idle_check swallows EOF; a closed socket stays readable
            raise IdleLost("the server closed the connection")
        return reports_new_mail(responses)

    def _open(self) -> None:
        connected = connect(self.settings, self.mailbox, self._sign_in, fresh_token=False)
        client = connected.client
        endpoint = self.settings.endpoint
        try:
            if not connected.has("IDLE"):
                raise MailboxError(
                    f"The IMAP server {endpoint} does not offer IDLE, so `wicbox serve` cannot watch "
                    f"{self.mailbox}.",
                    fix="read this server with the scheduled task (`wicbox run`) instead of `wicbox serve`",
                )
            client.select_folder(server_folder(self._source, connected.delimiter), readonly=True)
            client.idle()
        except BaseException as exc:
            close(client)
            if isinstance(exc, (OSError, imaplib.IMAP4.abort)):
                raise errors.session_lost(exc, endpoint, "starting IDLE") from exc
            if isinstance(exc, imaplib.IMAP4.error):
                raise errors.command_refused(
                    exc, endpoint, self.mailbox, "selecting the folder to watch"
                ) from exc
            raise
        self._client = client
        self._idle_since = self._clock()
        log.info("Watching %s of %s with IDLE", self._source, self.mailbox)

    def _reconnect(self) -> bool:
        try:
            self._open()
        except ConnectionFailure as error:
            delay = self._backoff_s[min(self._failures, len(self._backoff_s) - 1)]
            self._failures += 1
            log.warning(
                "Cannot watch %s of %s yet (%s); trying again in %.0f s",
                self._source,
                self.mailbox,
                error,
                delay,
            )
            self._sleep(delay)
            return False
        self._failures = 0
        self.reconnects += 1
        log.info(
            "Watching %s of %s again; searching it for mail that came meanwhile", self._source, self.mailbox
        )
        return True

    def _drop(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            with contextlib.suppress(OSError):
                client.shutdown()


def _readable(client: IMAPClient) -> bool:
    try:
        readable, _w, _x = select.select([client.socket()], [], [], 0)
    except (OSError, ValueError):
        return True
    return bool(readable)
