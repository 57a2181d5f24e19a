"""Which route a sending mailbox takes: SMTP with OAuth2, or Microsoft Graph's sendMail.

WICBOX_MAILCLIENT_SENDPROTOCOL = SMTP or GRAPH fixes the route. AUTO (the default) sends over SMTP
until the server answers ``5.7.139`` (SMTP AUTH is disabled for the tenant or the mailbox, or
Security Defaults / Conditional Access block it): that mail and every later one of that mailbox go
through Graph, and the switch is remembered (``send_routes.json`` in the configuration's
machine-wide directory) so later runs go straight to Graph; SMTP is tried again once a day.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from wicbox_bridge.adapters.base import Sender, SendResult
from wicbox_bridge.errors import AuthenticationError, BridgeError, SendError

ROUTES_FILE_NAME: Final = "send_routes.json"
SMTP_AUTH_DISABLED: Final = "5.7.139"
RETRY_SMTP_AFTER: Final = dt.timedelta(days=1)

log = logging.getLogger("wicbox.outbox")

Clock = Callable[[], dt.datetime]


@dataclass(frozen=True)
class RememberedRoute:
    """A mailbox that AUTO sends through Graph, since when and why."""

    mailbox: str
    since: dt.datetime
    reason: str


class RouteMemory:
    """The mailboxes AUTO moved to Graph, kept in a small JSON file (a missing or bad file: none).

    The file is read once, on first use, and written on every change: one delivery asks for every
    mail it sends, and only this process changes the routes while it holds the send lock.
    """

    def __init__(self, path: Path, clock: Clock) -> None:
        self.path = path
        self._clock = clock
        self._routes: dict[str, RememberedRoute] | None = None

    def graph_since(self, mailbox: str) -> RememberedRoute | None:
        """The remembered switch of ``mailbox`` while it is younger than a day."""
        found = self._loaded().get(mailbox.casefold())
        if found is None or self._clock() - found.since >= RETRY_SMTP_AFTER:
            return None
        return found

    def current(self) -> list[RememberedRoute]:
        """Every remembered switch younger than a day (what `wicbox status` shows)."""
        return [route for route in self._loaded().values() if self.graph_since(route.mailbox) is not None]

    def remember(self, mailbox: str, reason: str) -> None:
        routes = self._loaded()
        routes[mailbox.casefold()] = RememberedRoute(mailbox, self._clock(), reason)
        self._write(routes)

    def forget(self, mailbox: str) -> None:
        routes = self._loaded()
        if routes.pop(mailbox.casefold(), None) is not None:
            self._write(routes)

    def _loaded(self) -> dict[str, RememberedRoute]:
        if self._routes is None:
            self._routes = self.all()
        return self._routes

    def all(self) -> dict[str, RememberedRoute]:
        """Every entry of the file as it is now."""
        try:
            document = json.loads(self.path.read_text(encoding="utf-8"))
            return {
                key: RememberedRoute(
                    str(entry["mailbox"]),
                    dt.datetime.fromisoformat(str(entry["since"])),
                    str(entry["reason"]),
                )
                for key, entry in dict(document).items()
            }
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            return {}

    def _write(self, routes: dict[str, RememberedRoute]) -> None:
        document = {
            key: {"mailbox": route.mailbox, "since": route.since.isoformat(), "reason": route.reason}
            for key, route in routes.items()
        }
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            temporary = self.path.with_suffix(".tmp")
            temporary.write_text(json.dumps(document, indent=1), encoding="utf-8")
            temporary.replace(self.path)
        except OSError as exc:  # the route still works for this run; it is only not remembered
            log.warning("Could not remember the send route in %s: %s", self.path, exc)


class AutoSender:
    """AUTO for one mailbox: SMTP, or Graph once SMTP AUTH turned out to be disabled (the Sender contract)."""

    def __init__(
        self,
        mailbox: str,
        smtp: Callable[[], Sender],
        graph: Callable[[], Sender],
        memory: RouteMemory,
    ) -> None:
        self.mailbox = mailbox
        self._smtp = smtp
        self._graph = graph
        self._memory = memory

    def send(self, raw: bytes, sender: str, recipients: list[str]) -> SendResult:
        if self._memory.graph_since(self.mailbox) is not None:
            return self._graph().send(raw, sender, recipients)
        try:
            result = self._smtp().send(raw, sender, recipients)
        except AuthenticationError as error:
            if error.code != SMTP_AUTH_DISABLED:
                raise
            try:
                result = self._graph().send(raw, sender, recipients)
            except BridgeError as graph_error:
                raise both_refused(error, graph_error) from graph_error
            log.warning(
                "%s: SMTP AUTH is disabled (%s); sending through Microsoft Graph from now on, SMTP is tried "
                "again in a day",
                self.mailbox,
                error.code,
            )
            self._memory.remember(self.mailbox, f"SMTP answered {error.code}: {error.message}")
            return result
        self._memory.forget(self.mailbox)
        return result


def both_refused(smtp: AuthenticationError, graph: BridgeError) -> BridgeError:
    """Neither route took the mail: one error with both causes and both ways to fix it.

    A permanent refusal of the mail itself by Graph stays a SendError (the mail fails); anything
    else is the sign-in error of SMTP (the mail stays due until one route is fixed).
    """
    message = f"{smtp.message}; Microsoft Graph, tried instead, did not take it either: {graph.message}"
    fix = f"either {smtp.fix or 'enable SMTP AUTH'}; or, for the Graph route, {graph.fix or 'see its error'}"
    if isinstance(graph, SendError) and graph.permanent:
        return SendError(message, permanent=True, fix=fix)
    return AuthenticationError(message, code=smtp.code, fix=fix)
