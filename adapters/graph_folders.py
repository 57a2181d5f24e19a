"""Mail folders by name in one mailbox over Graph: found by walking ``mailFolders``/``childFolders``,
created under the mailbox root when missing.

Folder parameters separate levels with '/' and compare names case-insensitively, as Exchange does.
A first level INBOX always means the well-known Inbox, whatever its display name in the mailbox's
language (``Postvak IN`` in a Dutch mailbox).
"""

from __future__ import annotations

import logging
from urllib.parse import quote

from wicbox_bridge.adapters.graph_errors import GraphRequestFailed
from wicbox_bridge.adapters.graph_http import GraphHttp
from wicbox_bridge.adapters.settings_checks import FOLDER_SEPARATOR
from wicbox_bridge.config.params import folder_key

log = logging.getLogger("wicbox.graph")

WELL_KNOWN_INBOX = "inbox"
FOLDER_PAGE = "100"


def folder_levels(folder: str) -> list[str]:
    return [level.strip() for level in folder.strip().strip(FOLDER_SEPARATOR).split(FOLDER_SEPARATOR)]


class FolderDirectory:
    """Folder ids of one mailbox by folder parameter, looked up once per session."""

    def __init__(self, http: GraphHttp, root: str) -> None:
        self._http = http
        self._root = root
        self._ids: dict[str, str] = {}

    def find(self, folder: str) -> str | None:
        """The id of ``folder``, or None when a level of it does not exist."""
        return self._walk(folder, create=False)

    def ensure(self, folder: str) -> str:
        """The id of ``folder``, creating the missing levels (under the mailbox root)."""
        found = self._walk(folder, create=True)
        assert found is not None
        return found

    def _walk(self, folder: str, *, create: bool) -> str | None:
        key = folder_key(folder)
        if key in self._ids:
            return self._ids[key]
        parent: str | None = None
        for depth, level in enumerate(folder_levels(folder)):
            if depth == 0 and level.casefold() == WELL_KNOWN_INBOX:
                parent = self._inbox()
                continue
            child = self._child(parent, level)
            if child is None:
                if not create:
                    return None
                child = self._create(parent, level)
            parent = child
        if parent is None:  # pragma: no cover - folder parameters are validated as non-empty
            return None
        self._ids[key] = parent
        return parent

    def _inbox(self) -> str:
        document = self._http.get_json(
            f"{self._root}/mailFolders/{WELL_KNOWN_INBOX}", "opening the Inbox", {"$select": "id,displayName"}
        )
        return str(document["id"])

    def _children_url(self, parent: str | None) -> str:
        if parent is None:
            return f"{self._root}/mailFolders"
        return f"{self._root}/mailFolders/{quote(parent, safe='')}/childFolders"

    def _child(self, parent: str | None, name: str) -> str | None:
        url: str | None = self._children_url(parent)
        params: dict[str, str] | None = {"$select": "id,displayName", "$top": FOLDER_PAGE}
        while url is not None:
            page = self._http.get_json(url, f"looking up folder {name!r}", params)
            for folder in page.get("value", []):
                if str(folder.get("displayName", "")).casefold() == name.casefold():
                    return str(folder["id"])
            link = page.get("@odata.nextLink")
            url, params = (str(link), None) if link else (None, None)
        return None

    def _create(self, parent: str | None, name: str) -> str:
        try:
            created = self._http.send_json(
                "POST", self._children_url(parent), f"creating folder {name!r}", {"displayName": name}
            )
        except GraphRequestFailed as failure:
            if failure.reply.status != 409:  # ErrorFolderExists: another run created it meanwhile
                raise
            existing = self._child(parent, name)
            if existing is None:
                raise
            return existing
        log.info("Created folder %s in %s", name, self._http.mailbox)
        return str(created["id"])
