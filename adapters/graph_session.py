"""One open Graph session on a mailbox's source folder: list, fetch, and the after-process actions.

* List: ``GET {root}/mailFolders/{id}/messages?$select=id,receivedDateTime&$orderby=receivedDateTime
  asc&$top=N``, following ``@odata.nextLink`` up to the limit, with each message's size (MAPI
  PidTagMessageSize, ``$expand`` of a single-value extended property: Graph lists no MIME size, and
  the run cuts its batches by size, so a run of large mails stays within its memory budget).
  AFTERPROCESS SEEN lists unread mails only; Exchange wants the ordered property first in such a
  filter, hence the ``receivedDateTime ge 1900-01-01`` clause.
* Fetch: ``GET {root}/messages/{id}/$value`` (the exact MIME), up to 4 at once.
* MOVE / quarantine: ``POST {root}/messages/{id}/move``; DELETE: ``DELETE {root}/messages/{id}``, which
  Exchange turns into a move to Deleted Items (recoverable by the user until the mailbox's retention
  empties it); SEEN: ``PATCH {root}/messages/{id} {"isRead": true}``. All three go through
  ``$batch``. A mail that vanished meanwhile is skipped.

Ids are immutable ids (``Prefer: IdType="ImmutableId"``): a moved mail keeps its id, so a run that
repeats the action of a stopped one still addresses the mail.
"""

from __future__ import annotations

import datetime as dt
import logging
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import quote

from wicbox_bridge.adapters import graph_errors as errors
from wicbox_bridge.adapters.base import FetchedMail, MailboxBacklog, MailRef
from wicbox_bridge.adapters.graph_errors import GraphRequestFailed
from wicbox_bridge.adapters.graph_folders import FolderDirectory
from wicbox_bridge.adapters.graph_http import BatchCall, GraphHttp
from wicbox_bridge.adapters.graph_settings import GraphSettings
from wicbox_bridge.config import params as names
from wicbox_bridge.config.params import AfterProcess
from wicbox_bridge.errors import MailboxError

log = logging.getLogger("wicbox.graph")

LIST_FIELDS = "id,receivedDateTime"
MESSAGE_SIZE = "Integer 0x0E08"  # PidTagMessageSize, close to the MIME size
LIST_EXPAND = f"singleValueExtendedProperties($filter=id eq '{MESSAGE_SIZE}')"
UNREAD_OLDEST_FIRST = "receivedDateTime ge 1900-01-01T00:00:00Z and isRead eq false"


def mailbox_root(mailbox: str, claims: dict[str, object]) -> str:
    """``/me`` for the signed-in user's own mailbox (delegated), else ``/users/{mailbox}``."""
    user = str(claims.get("upn") or claims.get("unique_name") or "")
    if errors.is_delegated(claims) and (not user or user.casefold() == mailbox.casefold()):
        return "/me"
    return f"/users/{quote(mailbox, safe='@')}"


def _timestamp(value: object) -> float | None:
    if not isinstance(value, str):
        return None
    try:
        moment = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment.timestamp() if moment.tzinfo else None


def _message_size(item: dict[str, object]) -> int:
    """The listed size of a message (0 when Graph did not say: batches are then cut by count)."""
    properties = item.get("singleValueExtendedProperties")
    for prop in properties if isinstance(properties, list) else ():
        if isinstance(prop, dict) and _property_tag(prop.get("id")) == _property_tag(MESSAGE_SIZE):
            value = str(prop.get("value", ""))
            return int(value) if value.isdigit() else 0
    return 0


def _property_tag(text: object) -> tuple[str, int] | None:
    """("integer", 0x0E08) of "Integer 0x0E08" (Exchange answers with "Integer 0xe08")."""
    kind, _, tag = str(text).strip().partition(" ")
    try:
        return kind.lower(), int(tag, 16)
    except ValueError:
        return None


class GraphSession:
    """A mailbox whose source folder was found; see the module docstring."""

    validity = ""  # Graph's immutable ids do not depend on a folder generation

    def __init__(self, settings: GraphSettings, mailbox: str, http: GraphHttp) -> None:
        self.settings = settings
        self.mailbox = mailbox
        self._http = http
        self._received: dict[str, float] = {}
        self._pool: ThreadPoolExecutor | None = None
        claims = http.claims()
        self._root = mailbox_root(mailbox, claims)
        self._folders = FolderDirectory(http, self._root)
        source = self._folders.find(settings.source_folder)
        if source is None:
            raise errors.folder_missing(settings.source_folder, mailbox, names.FOLDER)
        self._source_id = source
        kind = "delegated" if errors.is_delegated(claims) else "application"
        log.info(
            "Opened %s of %s on %s (%s permissions, %s)", self._source, mailbox, http.host, kind, self._root
        )

    def __repr__(self) -> str:
        return f"GraphSession({self.mailbox!r}, {self._source!r}, {self._http.host})"

    @property
    def _source(self) -> str:
        return self.settings.source_folder

    @property
    def _source_url(self) -> str:
        return f"{self._root}/mailFolders/{quote(self._source_id, safe='')}"

    def _pending_query(self, select: str, top: int) -> dict[str, str]:
        """The query of the waiting mails, oldest first (only unread ones with AFTERPROCESS SEEN)."""
        query = {"$select": select, "$orderby": "receivedDateTime asc", "$top": str(top)}
        if self.settings.after_process is AfterProcess.SEEN:
            query["$filter"] = UNREAD_OLDEST_FIRST
        return query

    # ---- MailboxSession --------------------------------------------------------------------
    def list_pending(self, limit: int) -> list[MailRef]:
        if limit <= 0:
            return []
        url: str | None = f"{self._source_url}/messages"
        refs: list[MailRef] = []
        query: dict[str, str] | None = {
            **self._pending_query(LIST_FIELDS, min(limit, self.settings.page_size)),
            "$expand": LIST_EXPAND,
        }
        while url is not None and len(refs) < limit:
            page = self._http.get_json(url, "listing the source folder", query)
            for item in page.get("value", [])[: limit - len(refs)]:
                refs.append(self._ref(item))
            link = page.get("@odata.nextLink")
            url, query = (str(link), None) if link else (None, None)
        log.info("%d pending mail(s) in %s of %s (limit %d)", len(refs), self._source, self.mailbox, limit)
        return refs

    def fetch(self, refs: list[MailRef]) -> list[FetchedMail]:
        self._check_refs(refs)
        fetched = [mail for mail in self._executor().map(self._fetch_one, refs) if mail is not None]
        size = sum(len(mail.raw) for mail in fetched)
        log.info(
            "Fetched %d of %d mail(s), %d bytes, from %s of %s",
            len(fetched),
            len(refs),
            size,
            self._source,
            self.mailbox,
        )
        return fetched

    def acknowledge(self, refs: list[MailRef]) -> None:
        self._check_refs(refs)
        if not refs:
            return
        action = self.settings.after_process
        if action is AfterProcess.MOVE:
            self._move(refs, self.settings.processed_folder)
        elif action is AfterProcess.DELETE:
            self._apply(
                [BatchCall(ref.key, "DELETE", self._message_url(ref)) for ref in refs], "deleting mails"
            )
        else:
            calls = [BatchCall(ref.key, "PATCH", self._message_url(ref), {"isRead": True}) for ref in refs]
            self._apply(calls, "marking mails read")
        log.info("%s: %d mail(s) in %s of %s", action.value, len(refs), self._source, self.mailbox)

    def quarantine(self, refs: list[MailRef]) -> None:
        self._check_refs(refs)
        if refs:
            self._move(refs, self.settings.failed_folder)
            log.warning("Moved %d mail(s) of %s to %s", len(refs), self.mailbox, self.settings.failed_folder)

    def backlog(self) -> MailboxBacklog:
        """One request: the oldest waiting mail and ``@odata.count`` of what :meth:`list_pending`
        lists (Outlook resources count without ``ConsistencyLevel: eventual``, which only directory
        objects need). Without ``@odata.count``, the folder's totalItemCount (unreadItemCount for
        AFTERPROCESS SEEN)."""
        params = {**self._pending_query("receivedDateTime", 1), "$count": "true"}
        seen_mode = self.settings.after_process is AfterProcess.SEEN
        source = self._source_url
        page = self._http.get_json(f"{source}/messages", "counting the waiting mail", params)
        items = page.get("value") or []
        oldest = _timestamp(items[0].get("receivedDateTime")) if items else None
        count = page.get("@odata.count")
        if not isinstance(count, int):
            folder = self._http.get_json(source, "reading the source folder's counts")
            count = folder.get("unreadItemCount" if seen_mode else "totalItemCount")
        if not isinstance(count, int):
            raise MailboxError(
                f"{self._http.host} gave no count of the mails in {self._source!r} of {self.mailbox}.",
                fix="nothing to do for the mail itself; `wicbox status` shows the backlog as unknown",
            )
        return MailboxBacklog(count, oldest)

    def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
        self._http.close()

    # ---- details -----------------------------------------------------------------------------
    def _ref(self, item: dict[str, object]) -> MailRef:
        key = str(item["id"])
        received = _timestamp(item.get("receivedDateTime"))
        if received is not None:
            self._received[key] = received
        return MailRef(self.mailbox, self._source, self.validity, key, _message_size(item))

    def _check_refs(self, refs: list[MailRef]) -> None:
        for ref in refs:
            if ref.folder != self._source or ref.validity != self.validity or ref.mailbox != self.mailbox:
                raise MailboxError(
                    f"A mail listed in {ref.folder!r} of {ref.mailbox} was handed to the Graph session of "
                    f"{self._source!r} of {self.mailbox}.",
                    fix="report this to the vendor; the next run lists the folder again",
                )

    def _message_url(self, ref: MailRef) -> str:
        return f"{self._root}/messages/{quote(ref.key, safe='')}"

    def _executor(self) -> ThreadPoolExecutor:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self.settings.concurrency, thread_name_prefix="graph-fetch")
        return self._pool

    def _fetch_one(self, ref: MailRef) -> FetchedMail | None:
        try:
            raw = self._http.get_bytes(f"{self._message_url(ref)}/$value", "fetching a mail")
        except GraphRequestFailed as failure:
            if not failure.reply.item_gone:
                raise
            log.warning("Mail %s of %s is no longer there; skipped", ref.key, self.mailbox)
            return None
        return FetchedMail(ref, raw, self._received.get(ref.key))

    def _move(self, refs: list[MailRef], folder: str) -> None:
        target = self._folders.ensure(folder)
        body = {"destinationId": target}
        calls = [BatchCall(ref.key, "POST", f"{self._message_url(ref)}/move", body) for ref in refs]
        self._apply(calls, f"moving mails to {folder}")

    def _apply(self, calls: list[BatchCall], doing: str) -> None:
        outcomes = self._http.batch(calls, doing)
        claims = self._http.claims()
        for call in calls:
            reply = outcomes[call.key].reply
            if reply is None:
                continue
            if reply.item_gone:
                log.warning("Mail %s of %s is no longer there; %s skipped it", call.key, self.mailbox, doing)
                continue
            raise errors.translate(
                reply, host=self._http.host, mailbox=self.mailbox, claims=claims, doing=doing
            )
