"""Tokens kept fresh for a long-running process (`wicbox serve`), and when to sign in anew.

:class:`TokenRefresher` remembers the providers a service handed out and the expiry of the last
token each gave; :meth:`TokenRefresher.refresh_due` asks a provider again (skipping its cache) when
less than ``ahead_s`` of its token remain, so a pass never waits on the identity platform for an
expired token. The clock is injected (epoch seconds, like a token's ``expires_at``).

:func:`auth_key` says which WICMan parameters the sign-in depends on: when it changes (a new client
secret, certificate, client id, ...) the token layer must be built again. It compares
:class:`~wicbox_bridge.secret.Secret` values without ever showing them.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass

from wicbox_bridge.adapters.base import AccessToken, TokenProvider
from wicbox_bridge.config.params import Parameters
from wicbox_bridge.errors import BridgeError

log = logging.getLogger("wicbox.auth")

REFRESH_AHEAD_S = 300.0  # a token with less than five minutes left is replaced


@dataclass
class _Tracked:
    provider: TokenProvider
    expires_at: float | None = None


class _Recording:
    """A provider that tells the refresher the expiry of every token it hands out."""

    def __init__(self, tracked: _Tracked) -> None:
        self._tracked = tracked

    def __getattr__(self, name: str) -> object:  # scopes, username: as the wrapped provider's
        return getattr(self._tracked.provider, name)

    def __call__(self, *, force_refresh: bool = False) -> AccessToken:
        token = self._tracked.provider(force_refresh=force_refresh)
        self._tracked.expires_at = token.expires_at
        return token


class TokenRefresher:
    """See the module docstring. Thread-safe: passes hand out providers while it refreshes."""

    def __init__(self, clock: Callable[[], float] = time.time, ahead_s: float = REFRESH_AHEAD_S) -> None:
        self._clock = clock
        self._ahead_s = ahead_s
        self._tracked: dict[Hashable, _Tracked] = {}
        self._lock = threading.Lock()

    def track(self, key: Hashable, provider: TokenProvider) -> TokenProvider:
        """``provider``, recorded under ``key`` (one per account and protocol; a new one replaces it)."""
        tracked = _Tracked(provider)
        with self._lock:
            previous = self._tracked.get(key)
            if previous is not None:
                tracked.expires_at = previous.expires_at
            self._tracked[key] = tracked
        return _Recording(tracked)

    def forget(self) -> None:
        """Drop every provider (the token layer was built again)."""
        with self._lock:
            self._tracked.clear()

    def due(self) -> list[Hashable]:
        """The keys whose last token has less than ``ahead_s`` left."""
        now = self._clock()
        with self._lock:
            return [
                key
                for key, tracked in self._tracked.items()
                if tracked.expires_at is not None and tracked.expires_at - now < self._ahead_s
            ]

    def refresh_due(self) -> int:
        """Ask every provider whose token is about to expire for a new one; how many were renewed.

        A failure is logged (the error names its cause and fix, never a secret) and tried again at
        the next call; the pass that needs the token then reports it as in a run.
        """
        renewed = 0
        for key in self.due():
            with self._lock:
                tracked = self._tracked.get(key)
            if tracked is None:
                continue
            try:
                token = tracked.provider(force_refresh=True)
            except BridgeError as error:
                log.warning("renewing the token of %s ahead of its expiry failed: %s", key, error)
                continue
            tracked.expires_at = token.expires_at
            renewed += 1
            log.debug("token of %s renewed ahead of its expiry", key)
        return renewed


AuthKey = tuple[object, ...]


def auth_key(params: Parameters) -> AuthKey:
    """What the sign-in depends on; equal keys: the token layer built for one serves the other.

    A certificate file is compared by its path and its modification time and size, so a certificate
    replaced under the same name is also picked up.
    """
    certificate_stamp: tuple[int, int] | None = None
    if params.certificate is not None:
        try:
            stat = params.certificate.stat()
        except OSError:
            certificate_stamp = None
        else:
            certificate_stamp = (stat.st_mtime_ns, stat.st_size)
    return (
        params.method,
        params.authority_host,
        params.tenant_id,
        params.client_id,
        params.client_secret,
        params.certificate,
        certificate_stamp,
        params.certificate_password,
        params.scope,
        params.username,
        params.password,
        params.ca_bundle,
    )
