"""The IMAP mailbox adapter (Exchange Online and any IMAP4rev1 server with MOVE or UIDPLUS).

The core builds one :class:`ImapAdapter` per configuration and opens a session per mailbox::

    adapter = ImapAdapter(ImapSettings.from_parameters(params), password=params.password)
    session = adapter.open("wicbox@klant.example", tokens)   # tokens=None: Basic LOGIN

With a :class:`~wicbox_bridge.adapters.base.TokenProvider` the session signs in with SASL XOAUTH2;
with ``tokens=None`` it uses IMAP LOGIN with the password given to the adapter (one for every
mailbox, or one per mailbox). Sessions follow :class:`~wicbox_bridge.adapters.base.MailboxSession`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping

from wicbox_bridge.adapters.base import TokenProvider
from wicbox_bridge.adapters.imap_connect import OAuthSignIn, PasswordSignIn, SignIn, TlsReuse
from wicbox_bridge.adapters.imap_session import ImapSession
from wicbox_bridge.adapters.imap_settings import ImapSettings
from wicbox_bridge.adapters.imap_watch import ImapIdleWatch
from wicbox_bridge.config import params as names
from wicbox_bridge.errors import ParameterError
from wicbox_bridge.secret import Secret

__all__ = ["BasicPasswords", "ImapAdapter", "ImapIdleWatch", "ImapSession", "ImapSettings"]

# One password for every mailbox, or one per mailbox address (case-insensitive).
BasicPasswords = Secret | Mapping[str, Secret]


class ImapAdapter:
    """Opens :class:`ImapSession` objects on one IMAP server."""

    protocol = "imap"

    def __init__(
        self,
        settings: ImapSettings,
        *,
        password: BasicPasswords | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self._passwords = password
        self._sleep = sleep
        self._clock = clock
        self.tls = TlsReuse(settings)  # one context for every session, the server's TLS session resumed

    def __repr__(self) -> str:
        return f"ImapAdapter({self.settings.endpoint})"

    def open(self, mailbox: str, tokens: TokenProvider | None) -> ImapSession:
        """Sign in to ``mailbox`` (XOAUTH2 with ``tokens``; Basic LOGIN when it is None) and select
        the source folder. Raises ConnectionFailure, AuthenticationError, MailboxError or
        ParameterError."""
        return ImapSession(
            self.settings, mailbox, self._sign_in(mailbox, tokens), sleep=self._sleep, tls=self.tls
        )

    def watch(self, mailbox: str, tokens: TokenProvider | None) -> ImapIdleWatch:
        """IDLE on ``mailbox``'s source folder (``wicbox serve``); signs in like :meth:`open`."""
        return ImapIdleWatch(
            self.settings, mailbox, self._sign_in(mailbox, tokens), clock=self._clock, sleep=self._sleep
        )

    def _sign_in(self, mailbox: str, tokens: TokenProvider | None) -> SignIn:
        if tokens is not None:
            return OAuthSignIn(tokens)
        return PasswordSignIn(self._password_for(mailbox))

    def _password_for(self, mailbox: str) -> Secret:
        passwords = self._passwords
        if isinstance(passwords, Mapping):
            by_address = {address.casefold(): secret for address, secret in passwords.items()}
            password = by_address.get(mailbox.casefold())
        else:
            password = passwords
        if not password:
            raise ParameterError(
                names.PASSWORD,
                f"is empty, but Basic authentication signs in to {mailbox} with a password.",
                fix=f"fill in the mailbox's password, or run `wicbox params set {names.METHOD} OAuth2`",
            )
        return password
