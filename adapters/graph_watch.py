"""Watching a mailbox's source folder with Graph delta queries (``wicbox serve``).

Graph has no push channel a service behind a firewall can receive, so the watch polls the
folder's delta function (``GET {root}/mailFolders/{id}/messages/delta``): the first round lists
the folder (ids only, ``Prefer: odata.maxpagesize``, following ``@odata.nextLink``) and keeps the
``@odata.deltaLink``; each poll after ``interval_s`` asks that link what changed. A new or changed
message means new mail may have arrived; one that left the folder (``@removed``: the run filed it)
does not. When Graph answers ``410 Gone`` (the sync state expired or is unknown), a new round
starts from a full listing and the watch reports True, so the caller searches the folder itself.

At the default interval of 5 s a mailbox costs about 120 requests per 10 minutes, far within
Graph's 10,000 per 10 minutes per app and mailbox; 429 and 503 are waited out per Retry-After by
:class:`~wicbox_bridge.adapters.graph_http.GraphHttp` through the injected ``sleep``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any, Final

from wicbox_bridge.adapters import graph_errors as errors
from wicbox_bridge.adapters.graph_errors import GraphReply, GraphRequestFailed
from wicbox_bridge.adapters.graph_folders import FolderDirectory
from wicbox_bridge.adapters.graph_http import GraphHttp
from wicbox_bridge.adapters.graph_session import mailbox_root
from wicbox_bridge.adapters.graph_settings import GraphSettings
from wicbox_bridge.config import params as names
from wicbox_bridge.errors import ConnectionFailure

log = logging.getLogger("wicbox.graph")

DEFAULT_POLL_INTERVAL_S: Final = 5.0
DELTA_PAGE_SIZE: Final = 200
GONE: Final = 410
MAX_PAGES: Final = 10_000  # a loop guard: a round never has more pages than that


class DeltaGone(Exception):
    """Graph no longer knows the delta or skip token: a new round must start."""


class GraphDeltaWatch:
    """Delta polling on one mailbox's source folder; see the module docstring."""

    how = "delta polling"

    def __init__(
        self,
        settings: GraphSettings,
        mailbox: str,
        http: GraphHttp,
        *,
        interval_s: float = DEFAULT_POLL_INTERVAL_S,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.settings = settings
        self.mailbox = mailbox
        self._http = http
        self._interval_s = interval_s
        self._clock = clock
        self._sleep = sleep
        root = mailbox_root(mailbox, http.claims())
        folder_id = FolderDirectory(http, root).find(settings.source_folder)
        if folder_id is None:
            raise errors.folder_missing(settings.source_folder, mailbox, names.FOLDER)
        self._start = f"{root}/mailFolders/{folder_id}/messages/delta"
        self._delta_link: str | None = None
        self._blind = False
        self.resyncs = 0
        self._round(self._start, {"$select": "id"})
        self._next_poll = self._clock() + interval_s
        log.info(
            "Watching %s of %s with delta polling every %.0f s", settings.source_folder, mailbox, interval_s
        )

    def __repr__(self) -> str:
        return f"GraphDeltaWatch({self.mailbox!r}, {self.settings.source_folder!r}, {self._http.host})"

    # ---- MailboxWatch ------------------------------------------------------------------------
    def wait(self, timeout: float) -> bool:
        pause = self._next_poll - self._clock()
        if pause > 0:
            self._sleep(min(pause, max(0.0, timeout)))
            if self._clock() < self._next_poll:
                return False
        self._next_poll = self._clock() + self._interval_s
        return self._poll()

    def close(self) -> None:
        self._http.close()

    # ---- polling -----------------------------------------------------------------------------
    def _poll(self) -> bool:
        try:
            if self._delta_link is None:
                self._resync()
                return True
            try:
                changed = self._round(self._delta_link, None)
            except DeltaGone:
                self._resync()
                return True
        except ConnectionFailure as error:
            log.warning("Polling %s for new mail failed (%s); trying again", self.mailbox, error)
            self._blind = True
            return False
        if self._blind:
            self._blind = False
            return True
        return changed

    def _resync(self) -> None:
        self.resyncs += 1
        self._delta_link = None
        log.warning(
            "Microsoft Graph no longer knows the delta state of %s (410 Gone); listing the folder again",
            self.mailbox,
        )
        self._round(self._start, {"$select": "id"})

    def _round(self, url: str, params: dict[str, str] | None) -> bool:
        """Follow one round to its delta link; whether it held a new or changed message."""
        changed = False
        for _page in range(MAX_PAGES):
            document = self._get(url, params)
            params = None  # the links carry the query options
            changed = changed or any(_is_change(item) for item in document.get("value", []))
            next_link = document.get("@odata.nextLink")
            if isinstance(next_link, str):
                url = next_link
                continue
            delta_link = document.get("@odata.deltaLink")
            if not isinstance(delta_link, str):
                raise errors.no_delta_link(self._http.host, self.mailbox)
            self._delta_link = delta_link
            return changed
        raise errors.no_delta_link(self._http.host, self.mailbox)

    def _get(self, url: str, params: dict[str, str] | None) -> dict[str, Any]:
        doing = "asking for the folder's changes"
        try:
            response = self._http.request(
                "GET",
                url,
                doing,
                params=params,
                refused=lambda reply: _refused(reply, self._http.host, self.mailbox, doing),
                prefer=f"odata.maxpagesize={DELTA_PAGE_SIZE}",
            )
        except GraphRequestFailed as error:
            if error.reply.status == GONE:
                raise DeltaGone(str(error.reply)) from error
            raise
        document = response.json()
        return document if isinstance(document, dict) else {}


def _is_change(item: object) -> bool:
    return isinstance(item, dict) and "@removed" not in item


def _refused(reply: GraphReply, host: str, mailbox: str, doing: str) -> GraphRequestFailed:
    return GraphRequestFailed(reply, host=host, mailbox=mailbox, doing=doing)
