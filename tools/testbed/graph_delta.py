"""Delta queries on a mail folder, as Microsoft Graph answers them (``message: delta``).

``GET {root}/mailFolders/{id}/messages/delta`` starts a round: every message in the folder, in pages
of ``Prefer: odata.maxpagesize=N`` (default 10); each page but the last carries
``@odata.nextLink`` (``...delta?$skiptoken=...``), the last ``@odata.deltaLink``
(``...delta?$deltatoken=...``). A later GET of the delta link answers what changed since: new and
changed messages in full, messages that left the folder as ``{"id", "@removed": {"reason":
"deleted"}}``. Query options of the first request (``$select``) travel inside the tokens, as at
Graph. A token the server no longer knows (Exchange keeps a bounded cache of sync states) is
answered ``410 Gone`` with ``SyncStateNotFound``: the client must start a new round.
"""

from __future__ import annotations

import re
import secrets
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode

from tools.testbed.graph_docs import ApiReply, error_reply, json_reply, message_document
from tools.testbed.graph_model import GraphStoreError, Mailbox, Message
from tools.testbed.graph_query import selected

DEFAULT_PAGE_SIZE = 10
MAX_PAGE_SIZE = 1000
_MAX_PAGE = re.compile(r"odata\.maxpagesize\s*=\s*(\d+)", re.IGNORECASE)

# what the client saw of each message at the end of a round: immutable id -> (REST id, isRead)
Snapshot = dict[str, tuple[str, bool]]


@dataclass(frozen=True)
class _Round:
    """A round still being paged: what is left to hand out, and the state at its end."""

    folder_id: str
    items: tuple[dict[str, Any], ...]
    snapshot: Snapshot
    select: tuple[str, ...]


@dataclass(frozen=True)
class _SyncState:
    folder_id: str
    snapshot: Snapshot
    select: tuple[str, ...]


@dataclass(frozen=True)
class DeltaRequest:
    path: str  # below the host, ending in /messages/delta
    query: Mapping[str, str]
    prefer: str
    immutable: bool
    base: str


class DeltaStates:
    """The sync states behind delta and skip tokens; thread-safe (called under the store's lock)."""

    def __init__(self) -> None:
        self._rounds: dict[str, _Round] = {}
        self._states: dict[str, _SyncState] = {}
        self._lock = threading.Lock()

    def forget_all(self) -> None:
        """Every token handed out so far now answers 410 Gone (the server's cache was cleared)."""
        with self._lock:
            self._rounds.clear()
            self._states.clear()

    def answer(self, mailbox: Mailbox, folder_id: str, request: DeltaRequest) -> ApiReply:
        with self._lock:
            try:
                pending = self._pending(mailbox, folder_id, request)
            except GraphStoreError as error:
                return error_reply(error.status, error.code, error.message)
            return self._page(pending, request)

    # ---- rounds ------------------------------------------------------------------------------
    def _pending(self, mailbox: Mailbox, folder_id: str, request: DeltaRequest) -> _Round:
        current = _snapshot(mailbox.in_folder(folder_id))
        if "$skiptoken" in request.query:
            pending = self._rounds.pop(request.query["$skiptoken"], None)
            if pending is None or pending.folder_id != folder_id:
                raise _gone()
            return pending
        if "$deltatoken" in request.query:
            state = self._states.get(request.query["$deltatoken"])
            if state is None or state.folder_id != folder_id:
                raise _gone()
            select = state.select
            items = _changes(mailbox, state.snapshot, current, select, immutable=request.immutable)
        else:
            select = _select(request.query)
            items = [
                selected(message_document(m, immutable=request.immutable), select)
                for m in mailbox.in_folder(folder_id)
            ]
        return _Round(folder_id, tuple(items), current, select)

    def _page(self, pending: _Round, request: DeltaRequest) -> ApiReply:
        size = _page_size(request.prefer)
        page, rest = pending.items[:size], pending.items[size:]
        document: dict[str, Any] = {"@odata.context": f"{request.base}/v1.0/$metadata#Collection(message)"}
        document["value"] = list(page)
        token = secrets.token_urlsafe(24)
        if rest:
            self._rounds[token] = _Round(pending.folder_id, rest, pending.snapshot, pending.select)
            document["@odata.nextLink"] = _link(request, "$skiptoken", token)
        else:
            self._states[token] = _SyncState(pending.folder_id, pending.snapshot, pending.select)
            document["@odata.deltaLink"] = _link(request, "$deltatoken", token)
        headers: list[tuple[str, str]] = []
        if _MAX_PAGE.search(request.prefer):
            headers.append(("Preference-Applied", f"odata.maxpagesize={size}"))
        if request.immutable:
            headers.append(("Preference-Applied", 'IdType="ImmutableId"'))
        return json_reply(200, document, tuple(headers))


def _gone() -> GraphStoreError:
    return GraphStoreError(
        410,
        "SyncStateNotFound",
        "The sync state generation is not found or has expired. Start a new synchronization.",
    )


def _snapshot(messages: list[Message]) -> Snapshot:
    return {m.immutable_id: (m.rest_id, m.is_read) for m in messages}


def _changes(
    mailbox: Mailbox, before: Snapshot, now: Snapshot, select: tuple[str, ...], *, immutable: bool
) -> list[dict[str, Any]]:
    changed = [mailbox.messages[key] for key, seen in now.items() if before.get(key) != seen]
    items = [selected(message_document(m, immutable=immutable), select) for m in changed]
    for key, (rest_id, _read) in before.items():
        if key not in now:
            items.append(
                {
                    "@odata.type": "#microsoft.graph.message",
                    "id": key if immutable else rest_id,
                    "@removed": {"reason": "deleted"},
                }
            )
    return items


def _select(query: Mapping[str, str]) -> tuple[str, ...]:
    return tuple(item.strip() for item in query.get("$select", "").split(",") if item.strip())


def _page_size(prefer: str) -> int:
    found = _MAX_PAGE.search(prefer)
    if found is None:
        return DEFAULT_PAGE_SIZE
    return max(1, min(MAX_PAGE_SIZE, int(found.group(1))))


def _link(request: DeltaRequest, name: str, token: str) -> str:
    return f"{request.base}{request.path}?{urlencode({name: token}, quote_via=quote, safe='$')}"
