"""The Microsoft Graph mailbox adapter (Exchange Online mailboxes with the Mail.ReadWrite permission).

The core builds one :class:`GraphAdapter` per configuration and opens a session per mailbox::

    adapter = GraphAdapter(GraphSettings.from_parameters(params))
    session = adapter.open("wicbox@klant.example", tokens)

With delegated permissions the token is the mailbox user's own and the session works on
``/me``; with application permissions it works on ``/users/{mailbox}``. Graph has no Basic
authentication: ``tokens`` must be given. Sessions follow
:class:`~wicbox_bridge.adapters.base.MailboxSession`; ``MailRef.key`` is the mail's immutable id.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence

from wicbox_bridge.adapters import graph_errors as errors
from wicbox_bridge.adapters.base import TokenProvider
from wicbox_bridge.adapters.graph_http import GraphHttp
from wicbox_bridge.adapters.graph_session import GraphSession
from wicbox_bridge.adapters.graph_settings import GraphSettings
from wicbox_bridge.adapters.graph_survey import survey
from wicbox_bridge.adapters.graph_watch import DEFAULT_POLL_INTERVAL_S, GraphDeltaWatch

__all__ = ["GraphAdapter", "GraphDeltaWatch", "GraphSession", "GraphSettings"]


class GraphAdapter:
    """Opens :class:`GraphSession` objects on one Microsoft Graph endpoint.

    ``env`` is where HTTPS_PROXY / NO_PROXY / REQUESTS_CA_BUNDLE are read (default: os.environ).
    """

    protocol = "graph"

    def __init__(
        self,
        settings: GraphSettings,
        *,
        env: Mapping[str, str] | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        poll_interval_s: float = DEFAULT_POLL_INTERVAL_S,
    ) -> None:
        self.settings = settings
        self._env = dict(env) if env is not None else None
        self._sleep = sleep  # waits out Retry-After (tests inject one that records the waits)
        self._clock = clock
        self._poll_interval_s = poll_interval_s

    def __repr__(self) -> str:
        return f"GraphAdapter({self.settings.base_url})"

    def survey(self, mailboxes: Sequence[str], tokens: TokenProvider) -> list[bool | None]:
        """Per mailbox: mail waiting, nothing waiting or unknown, listed in ``$batch`` requests across
        the mailboxes (:mod:`~wicbox_bridge.adapters.graph_survey`). Raises what a request raises."""
        with GraphHttp(
            self.settings, tokens, f"{len(mailboxes)} mailboxes", env=self._env, sleep=self._sleep
        ) as http:
            return survey(http, self.settings, mailboxes)

    def open(self, mailbox: str, tokens: TokenProvider | None) -> GraphSession:
        """Get a token, find the source folder of ``mailbox``. Raises AuthenticationError,
        ConnectionFailure, MailboxError or ParameterError."""
        if tokens is None:
            raise errors.no_token(mailbox)
        http = GraphHttp(self.settings, tokens, mailbox, env=self._env, sleep=self._sleep)
        try:
            return GraphSession(self.settings, mailbox, http)
        except BaseException:
            http.close()
            raise

    def watch(self, mailbox: str, tokens: TokenProvider | None) -> GraphDeltaWatch:
        """Delta polling on ``mailbox``'s source folder (``wicbox serve``); signs in like :meth:`open`."""
        if tokens is None:
            raise errors.no_token(mailbox)
        http = GraphHttp(self.settings, tokens, mailbox, env=self._env, sleep=self._sleep)
        try:
            return GraphDeltaWatch(
                self.settings,
                mailbox,
                http,
                interval_s=self._poll_interval_s,
                clock=self._clock,
                sleep=self._sleep,
            )
        except BaseException:
            http.close()
            raise
