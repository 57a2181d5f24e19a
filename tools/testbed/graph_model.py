"""The Graph emulator's mail store: mailboxes, their folder trees and messages (thread-safe).

Each mailbox starts with Exchange Online's well-known folders under the hidden root
(``msgfolderroot``). Every message has two ids, as in Exchange: an immutable id that survives moves
(what clients see with ``Prefer: IdType="ImmutableId"``) and a REST id that changes with every
move. Both address the message. A draft (:mod:`tools.testbed.graph_items`) is a message with its
fields kept; each mailbox has its largest message size (MaxSendSize) and its open upload sessions.
"""

from __future__ import annotations

import base64
import datetime as dt
import re
import secrets
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email import message as email_message
from email.parser import BytesHeaderParser
from email.policy import default as default_policy

from tools.testbed.graph_items import DEFAULT_MAX_SEND_SIZE, Draft, UploadSession

ROOT = "msgfolderroot"
_HEADER_END = re.compile(rb"\r?\n\r?\n")
DELETED_ITEMS = "deleteditems"
WELL_KNOWN_FOLDERS = {
    "inbox": "Inbox",
    "drafts": "Drafts",
    "sentitems": "Sent Items",
    DELETED_ITEMS: "Deleted Items",
    "junkemail": "Junk Email",
    "outbox": "Outbox",
    "archive": "Archive",
}


def new_id(prefix: str) -> str:
    """An opaque Exchange-style id (base64url, with the padding Exchange ids carry)."""
    raw = secrets.token_bytes(45)
    return prefix + base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=") + "="


class GraphStoreError(Exception):
    """A lookup or change the store refuses; ``code`` and ``status`` are Graph's."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def item_not_found() -> GraphStoreError:
    return GraphStoreError(404, "ErrorItemNotFound", "The specified object was not found in the store.")


@dataclass
class Folder:
    folder_id: str
    display_name: str
    parent_id: str
    well_known: str | None = None


@dataclass
class Message:
    immutable_id: str
    rest_id: str
    folder_id: str
    raw: bytes
    received: dt.datetime
    is_read: bool = False
    created: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.timezone.utc))
    draft: Draft | None = None  # set while the message is an unsent draft

    @property
    def is_draft(self) -> bool:
        return self.draft is not None

    def header(self, name: str) -> str:
        """One header's value ("" when the message has none)."""
        return str(self._parsed_headers().get(name, ""))

    def headers(self) -> dict[str, str]:
        parsed = self._parsed_headers()
        return {name.lower(): str(parsed.get(name, "")) for name in ("Subject", "Message-ID", "From")}

    def _parsed_headers(self) -> email_message.Message:
        """The header block alone is parsed (a large mail's body is not read for it)."""
        match = _HEADER_END.search(self.raw)
        block = self.raw[: match.end()] if match else self.raw
        return BytesHeaderParser(policy=default_policy).parsebytes(block)


@dataclass(frozen=True)
class Submission:
    """One message sendMail accepted: its exact MIME and the recipients Exchange takes from it."""

    raw: bytes
    recipients: tuple[str, ...]


@dataclass
class Mailbox:
    upn: str
    object_id: str
    folders: dict[str, Folder] = field(default_factory=dict)
    messages: dict[str, Message] = field(default_factory=dict)  # by immutable id
    rest_ids: dict[str, str] = field(default_factory=dict)  # REST id -> immutable id
    purged: list[Message] = field(default_factory=list)  # deleted from Deleted Items (dumpster)
    submitted: list[Submission] = field(default_factory=list)  # what sendMail and send handed to transport
    max_send_size: int = DEFAULT_MAX_SEND_SIZE
    sessions: dict[str, UploadSession] = field(default_factory=dict)  # open upload sessions by id

    def __post_init__(self) -> None:
        root = Folder(new_id("AQMkRoot"), "Top of Information Store", "", ROOT)
        self.folders[root.folder_id] = root
        for well_known, name in WELL_KNOWN_FOLDERS.items():
            folder = Folder(new_id("AQMkF"), name, root.folder_id, well_known)
            self.folders[folder.folder_id] = folder

    # ---- folders -----------------------------------------------------------------------------
    def folder(self, ref: str) -> Folder:
        """A folder by id or by well-known name (case-insensitive, like Graph)."""
        found = self.folders.get(ref)
        if found is not None:
            return found
        for folder in self.folders.values():
            if folder.well_known and folder.well_known == ref.lower():
                return folder
        raise item_not_found()

    def children(self, parent_id: str) -> list[Folder]:
        return [folder for folder in self.folders.values() if folder.parent_id == parent_id]

    def create_folder(self, parent_ref: str, display_name: str) -> Folder:
        parent = self.folder(parent_ref)
        name = display_name.strip()
        if not name:
            raise GraphStoreError(400, "ErrorInvalidRequest", "The displayName property is required.")
        if any(child.display_name.casefold() == name.casefold() for child in self.children(parent.folder_id)):
            raise GraphStoreError(
                409, "ErrorFolderExists", "A folder with the specified name already exists."
            )
        folder = Folder(new_id("AQMkF"), name, parent.folder_id)
        self.folders[folder.folder_id] = folder
        return folder

    def folder_by_path(self, path: str) -> Folder:
        """A folder by its display names from the root, levels separated by '/'."""
        current = self.folder(ROOT)
        for level in path.split("/"):
            matches = [
                c for c in self.children(current.folder_id) if c.display_name.casefold() == level.casefold()
            ]
            if not matches:
                raise item_not_found()
            current = matches[0]
        return current

    def ensure_path(self, path: str) -> Folder:
        current = self.folder(ROOT)
        for level in path.split("/"):
            matches = [
                c for c in self.children(current.folder_id) if c.display_name.casefold() == level.casefold()
            ]
            current = matches[0] if matches else self.create_folder(current.folder_id, level)
        return current

    def path_of(self, folder: Folder) -> str:
        names: list[str] = []
        while folder.well_known != ROOT:
            names.append(folder.display_name)
            folder = self.folders[folder.parent_id]
        return "/".join(reversed(names))

    # ---- messages ----------------------------------------------------------------------------
    def message(self, ref: str) -> Message:
        immutable = self.rest_ids.get(ref, ref)
        found = self.messages.get(immutable)
        if found is None:
            raise item_not_found()
        return found

    def add_message(
        self, folder_ref: str, raw: bytes, received: dt.datetime, is_read: bool, draft: Draft | None = None
    ) -> Message:
        folder = self.folder(folder_ref)
        message = Message(
            new_id("AAkALgImm"), new_id("AAMkAGRest"), folder.folder_id, raw, received, is_read, draft=draft
        )
        self.messages[message.immutable_id] = message
        self.rest_ids[message.rest_id] = message.immutable_id
        return message

    def move(self, ref: str, destination_ref: str) -> Message:
        """Move a message: like Exchange, the REST id changes (the immutable id does not)."""
        message = self.message(ref)
        destination = self.folder(destination_ref)
        del self.rest_ids[message.rest_id]
        message.rest_id = new_id("AAMkAGRest")
        self.rest_ids[message.rest_id] = message.immutable_id
        message.folder_id = destination.folder_id
        return message

    def close_sessions(self, immutable_id: str) -> None:
        """Upload sessions of a message that is deleted end with it."""
        for session_id in [s.session_id for s in self.sessions.values() if s.message_id == immutable_id]:
            del self.sessions[session_id]

    def delete(self, ref: str) -> None:
        """DELETE: to Deleted Items; from Deleted Items, out of every folder (the dumpster)."""
        message = self.message(ref)
        self.close_sessions(message.immutable_id)
        if self.folders[message.folder_id].well_known == DELETED_ITEMS:
            self.purge(ref)
            return
        self.move(ref, DELETED_ITEMS)

    def purge(self, ref: str) -> None:
        message = self.message(ref)
        self.close_sessions(message.immutable_id)
        del self.messages[message.immutable_id]
        del self.rest_ids[message.rest_id]
        self.purged.append(message)

    def in_folder(self, folder_id: str) -> list[Message]:
        return [message for message in self.messages.values() if message.folder_id == folder_id]


class MailStore:
    """The emulator's mailboxes by address (case-insensitive), guarded by one lock."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._mailboxes: dict[str, Mailbox] = {}

    @contextmanager
    def locked(self) -> Iterator[MailStore]:
        with self._lock:
            yield self

    def add_mailbox(self, upn: str, object_id: str | None = None) -> Mailbox:
        with self._lock:
            mailbox = Mailbox(upn.lower(), object_id or new_id("user-"))
            self._mailboxes[upn.casefold()] = mailbox
            return mailbox

    def mailbox(self, ref: str) -> Mailbox | None:
        """A mailbox by address or object id."""
        with self._lock:
            found = self._mailboxes.get(ref.casefold())
            if found is not None:
                return found
            return next((m for m in self._mailboxes.values() if m.object_id == ref), None)

    def clear(self) -> None:
        with self._lock:
            self._mailboxes.clear()
