"""One open IMAP session on a mailbox's source folder: list, fetch, and the after-process actions.

Every server command runs through :meth:`ImapSession._run`, which applies Exchange Online's rules:
a throttling answer (``BAD/NO Request is throttled. Suggested Backoff Time: N ms``) is waited out
within ``max_throttle_wait_s`` and the command repeated; ``* BYE Session invalidated -
AccessTokenExpired`` leads to one reconnect with a fresh token, a new SELECT, a check that
UIDVALIDITY did not change, and the interrupted command again. Everything else is translated into
the project's errors.

Mails listed larger than ``large_mail_bytes`` are fetched one by one in parts (RFC 3501 partial
fetch, ``BODY.PEEK[]<offset.length>``) written into one buffer: read as one literal, a 30 MB mail
briefly took over three times its size in imaplib and imapclient. Each part is its own command
through ``_run``, so after a reconnect the fetch resumes at the part that was interrupted.
"""

from __future__ import annotations

import functools
import imaplib
import io
import itertools
import logging
import re
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any, TypeVar

from imapclient import IMAPClient

from wicbox_bridge.adapters import imap_errors as errors
from wicbox_bridge.adapters.base import FetchedMail, MailboxBacklog, MailRef
from wicbox_bridge.adapters.imap_connect import Connected, SignIn, TlsReuse, close, connect, leave
from wicbox_bridge.adapters.imap_settings import ImapSettings
from wicbox_bridge.adapters.settings_checks import FOLDER_SEPARATOR
from wicbox_bridge.config import params as names
from wicbox_bridge.config.params import AfterProcess
from wicbox_bridge.errors import MailboxError

log = logging.getLogger("wicbox.imap")
T = TypeVar("T")

UID_SET_BATCH = 500  # UIDs per STORE/MOVE/COPY/EXPUNGE command
FETCH_ITEMS = ["BODY.PEEK[]", "INTERNALDATE"]  # the sizes are known from the listing
_MISSING_FOLDER = re.compile(r"NONEXISTENT|TRYCREATE|doesn't exist|not found", re.IGNORECASE)
SEEN = r"\Seen"
DELETED = r"\Deleted"


def uid_set(uids: list[int]) -> str:
    """A compact IMAP UID set covering exactly ``uids``: ranges only for runs of consecutive UIDs."""
    ordered = sorted(set(uids))
    parts: list[str] = []
    start = previous = ordered[0] if ordered else 0
    for uid in [*ordered[1:], None]:
        if uid is not None and uid == previous + 1:
            previous = uid
            continue
        parts.append(str(start) if start == previous else f"{start}:{previous}")
        if uid is not None:
            start = previous = uid
    return ",".join(parts) if ordered else ""


def chunks(items: list[T], size: int) -> Iterator[list[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def fetch_batches(refs: list[MailRef], max_count: int, max_bytes: int) -> Iterator[list[MailRef]]:
    """Consecutive batches of at most ``max_count`` mails and (unless one mail is larger) ``max_bytes``."""
    batch: list[MailRef] = []
    size = 0
    for ref in refs:
        if batch and (len(batch) >= max_count or size + ref.size > max_bytes):
            yield batch
            batch, size = [], 0
        batch.append(ref)
        size += ref.size
    if batch:
        yield batch


def server_folder(folder: str, delimiter: str | None) -> str:
    """A folder parameter ('/' between levels) in the server's own hierarchy delimiter."""
    if delimiter is None or delimiter == FOLDER_SEPARATOR:
        return folder
    return delimiter.join(folder.split(FOLDER_SEPARATOR))


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def part_item(offset: int, length: int) -> str:
    """The FETCH item for ``length`` bytes of the whole mail from ``offset``; PEEK never sets \\Seen."""
    return f"BODY.PEEK[]<{offset}.{length}>"


def part_key(offset: int) -> bytes:
    """The key of that part in the answer: RFC 3501 names it by its origin alone (``BODY[]<0>``)."""
    return b"BODY[]<%d>" % offset


def preallocated_buffer(size: int) -> io.BytesIO:
    """An empty buffer that already owns ``size`` bytes of memory.

    Writing a mail of up to that size into it never moves it, and ``getvalue()`` after a
    ``truncate`` hands out that same memory as ``bytes`` instead of a copy (CPython shares a
    BytesIO's buffer with the value it returns). A bytearray would need one more full-size copy
    to become ``bytes``; a list of parts joined at the end, too.
    """
    buffer = io.BytesIO()
    if size > 0:
        buffer.seek(size - 1)
        buffer.write(b"\0")
        buffer.seek(0)
    return buffer


def _fetch_sizes(uids: list[int], client: IMAPClient) -> dict[int, Any]:
    answer: dict[int, Any] = client.fetch(uids, ["RFC822.SIZE"])  # imapclient wants a list of UIDs
    return answer


def _fetch_items(uid: int, items: list[str], client: IMAPClient) -> dict[int, Any]:
    answer: dict[int, Any] = client.fetch([uid], items)
    return answer


def _received_at(value: Any) -> float | None:
    return value.timestamp() if isinstance(value, datetime) and value.tzinfo else None


class ImapSession:
    """A signed-in connection with the source folder selected (read-write)."""

    def __init__(
        self,
        settings: ImapSettings,
        mailbox: str,
        sign_in: SignIn,
        *,
        sleep: Callable[[float], None] = time.sleep,
        tls: TlsReuse | None = None,
    ) -> None:
        self.settings = settings
        self.mailbox = mailbox
        self._sign_in = sign_in
        self._tls = tls  # the adapter's shared context and TLS session (None: a context per connection)
        self._sleep = sleep  # waits out throttling (tests inject one that records the waits)
        self._ready_folders: set[str] = set()
        self._connection: Connected | None = connect(settings, mailbox, sign_in, fresh_token=False, tls=tls)
        try:
            self.validity = self._run("selecting the source folder", self._select, reconnect=False)
        except BaseException:
            self.close()
            raise

    def __repr__(self) -> str:
        return f"ImapSession({self.mailbox!r}, {self.settings.source_folder!r}, {self.settings.endpoint})"

    # ---- MailboxSession --------------------------------------------------------------------
    def list_pending(self, limit: int) -> list[MailRef]:
        if limit <= 0:
            return []
        uids = self._pending_uids("searching the source folder")[:limit]
        if not uids:
            return []
        sizes: dict[int, Any] = {}
        for part in chunks(uids, UID_SET_BATCH):
            sizes.update(self._run("reading mail sizes", functools.partial(_fetch_sizes, part)))
        refs = [self._ref(uid, int(sizes[uid][b"RFC822.SIZE"])) for uid in uids if uid in sizes]
        log.info("%d pending mail(s) in %s of %s (limit %d)", len(refs), self._source, self.mailbox, limit)
        return refs

    def fetch(self, refs: list[MailRef]) -> list[FetchedMail]:
        self._check_refs(refs)
        fetched: list[FetchedMail] = []
        for large, group in itertools.groupby(refs, key=self._is_large):  # keeps the order of refs
            if large:
                fetched.extend(mail for mail in map(self._fetch_in_parts, group) if mail is not None)
                continue
            batches = fetch_batches(list(group), self.settings.fetch_batch, self.settings.fetch_batch_bytes)
            for batch in batches:
                fetched.extend(self._fetch_batch(batch))
        return fetched

    def acknowledge(self, refs: list[MailRef]) -> None:
        self._check_refs(refs)
        uids = [int(ref.key) for ref in refs]
        action = self.settings.after_process
        if not uids:
            return
        if action is AfterProcess.MOVE:
            self._move(uids, self.settings.processed_folder)
        elif action is AfterProcess.DELETE:
            self._flag(uids, DELETED)
            self._expunge(uids)
        else:
            self._flag(uids, SEEN)
        log.info("%s: %d mail(s) in %s of %s", action.value, len(uids), self._source, self.mailbox)

    def quarantine(self, refs: list[MailRef]) -> None:
        self._check_refs(refs)
        uids = [int(ref.key) for ref in refs]
        if uids:
            self._move(uids, self.settings.failed_folder)
            log.warning("Moved %d mail(s) of %s to %s", len(uids), self.mailbox, self.settings.failed_folder)

    def backlog(self) -> MailboxBacklog:
        """The count of what :meth:`list_pending` would list, and the lowest UID's INTERNALDATE."""
        uids = self._pending_uids("counting the waiting mail")
        if not uids:
            return MailboxBacklog(0, None)
        oldest = uids[0]
        read_date = functools.partial(_fetch_items, oldest, ["INTERNALDATE"])
        answer = self._run("reading the oldest waiting mail's date", read_date)
        return MailboxBacklog(len(uids), _received_at(answer.get(oldest, {}).get(b"INTERNALDATE")))

    def close(self) -> None:
        """LOGOUT without waiting for its answer (:func:`~wicbox_bridge.adapters.imap_connect.leave`)."""
        connection, self._connection = self._connection, None
        if connection is not None:
            leave(connection.client)

    # ---- selection ---------------------------------------------------------------------------
    @property
    def _source(self) -> str:
        return self.settings.source_folder

    def _pending_uids(self, doing: str) -> list[int]:
        """The UIDs of the waiting mails, oldest first (only unseen ones with AFTERPROCESS SEEN)."""
        seen_mode = self.settings.after_process is AfterProcess.SEEN
        criteria = ["UNSEEN", "UNDELETED"] if seen_mode else ["UNDELETED"]
        self._run("checking for new mail", lambda c: c.noop())  # servers show new mail only after a sync
        return sorted(self._run(doing, lambda c: c.search(criteria)))

    def _ref(self, uid: int, size: int) -> MailRef:
        return MailRef(self.mailbox, self._source, self.validity, str(uid), size)

    def _select(self, client: IMAPClient) -> str:
        name = server_folder(self._source, self._live().delimiter)
        try:
            answer = client.select_folder(name, readonly=False)
        except imaplib.IMAP4.error as exc:
            if _MISSING_FOLDER.search(str(exc)):
                raise errors.folder_missing(self._source, self.mailbox, names.FOLDER) from exc
            raise
        if b"READ-ONLY" in answer:
            raise MailboxError(
                f"The folder {self._source!r} of mailbox {self.mailbox} opens read-only.",
                fix="give the account full access to the mailbox "
                "(Add-MailboxPermission -AccessRights FullAccess)",
            )
        validity = str(answer[b"UIDVALIDITY"])
        log.info(
            "Selected %s of %s: %s mail(s), UIDVALIDITY %s",
            self._source,
            self.mailbox,
            answer.get(b"EXISTS"),
            validity,
        )
        return validity

    def _check_refs(self, refs: list[MailRef]) -> None:
        for ref in refs:
            if ref.validity != self.validity or ref.folder != self._source:
                raise errors.validity_changed(self._source, self.mailbox, ref.validity, self.validity)

    # ---- fetching ----------------------------------------------------------------------------
    def _fetch_batch(self, batch: list[MailRef]) -> list[FetchedMail]:
        uids = [int(ref.key) for ref in batch]
        answer = self._run("fetching mails", lambda c: c.fetch(uids, FETCH_ITEMS))  # imapclient wants a list
        bodies: dict[int, Any] = {uid: answer[uid].get(b"BODY[]") for uid in uids if uid in answer}
        mails = [  # an expunged mail is missing, or (still in this session's view) has a NIL body
            FetchedMail(ref, bytes(bodies[uid]), _received_at(answer[uid].get(b"INTERNALDATE")))
            for ref, uid in zip(batch, uids, strict=True)
            if isinstance(bodies.get(uid), bytes)
        ]
        size = sum(len(mail.raw) for mail in mails)
        log.info(
            "Fetched %d of %d mail(s), %d bytes, from %s of %s",
            len(mails),
            len(batch),
            size,
            self._source,
            self.mailbox,
        )
        return mails

    def _is_large(self, ref: MailRef) -> bool:
        return ref.size > self.settings.large_mail_bytes

    def _fetch_in_parts(self, ref: MailRef) -> FetchedMail | None:
        """One large mail, part after part, until a part comes back shorter than asked.

        The listed size only sizes the buffer: the parts decide where the mail ends (Exchange's
        RFC822.SIZE is not always exact). None when the mail vanished from the server.
        """
        uid, length = int(ref.key), self.settings.fetch_part_bytes
        buffer = preallocated_buffer(ref.size)
        received_at: float | None = None
        parts = 0
        while True:
            offset = buffer.tell()
            data = self._fetch_part(uid, offset, length)
            part = data.get(part_key(offset))
            if not isinstance(part, bytes):  # expunged: missing, or (in this session's view) NIL
                self._log_vanished(uid, offset, data)
                return None
            if offset == 0:
                received_at = _received_at(data.get(b"INTERNALDATE"))
            buffer.write(part)
            parts += 1
            if len(part) < length:
                break
        buffer.truncate()
        raw = buffer.getvalue()
        log.info(
            "Fetched a large mail, %d bytes in %d part(s), from %s of %s",
            len(raw),
            parts,
            self._source,
            self.mailbox,
        )
        return FetchedMail(ref, raw, received_at)

    def _fetch_part(self, uid: int, offset: int, length: int) -> dict[bytes, Any]:
        """The server's answer for ``length`` bytes of mail ``uid`` from ``offset`` ({} if none)."""
        items = [part_item(offset, length), *(["INTERNALDATE"] if offset == 0 else [])]
        answer = self._run("fetching a large mail", functools.partial(_fetch_items, uid, items))
        data: dict[bytes, Any] = answer.get(uid, {})
        return data

    def _log_vanished(self, uid: int, offset: int, data: dict[bytes, Any]) -> None:
        if not data or data.get(part_key(offset), b"") is None:
            log.info("Mail %s vanished from %s of %s while fetched", uid, self._source, self.mailbox)
            return
        log.warning(  # an answer without the part asked for: left for the next run, not lost
            "%s answered the partial FETCH of mail %s (from byte %d) without %s; the mail stays in %s of %s",
            self.settings.endpoint,
            uid,
            offset,
            _text(part_key(offset)),
            self._source,
            self.mailbox,
        )

    # ---- after-process actions ---------------------------------------------------------------
    def _for_uid_sets(self, doing: str, uids: list[int], action: Callable[[str, IMAPClient], object]) -> None:
        """``action(uid_set, client)`` for every batch of ``uids``, each through :meth:`_run`."""
        for part in chunks(uids, UID_SET_BATCH):
            self._run(doing, functools.partial(action, uid_set(part)))

    def _flag(self, uids: list[int], flag: str) -> None:
        self._for_uid_sets(f"setting {flag}", uids, lambda ids, c: c.add_flags(ids, [flag], silent=True))

    def _expunge(self, uids: list[int]) -> None:
        if not self._live().has("UIDPLUS"):
            log.warning(
                "%s has no UIDPLUS: %d mail(s) stay flagged \\Deleted in %s (never a plain EXPUNGE)",
                self.settings.endpoint,
                len(uids),
                self._source,
            )
            return
        self._for_uid_sets("expunging mails", uids, lambda ids, c: c.uid_expunge(ids))

    def _move(self, uids: list[int], folder: str) -> None:
        """Move (or copy and expunge) ``uids`` to ``folder``. The folder is looked up only when the
        server refuses the first move into it (``NO [TRYCREATE]``, whatever the wording): missing, it
        is created and the move repeated; present, the refusal stands. A run whose folders exist
        spends no LIST command on them."""
        target = self._server_name(folder)
        if target in self._ready_folders:
            self._transfer(uids, folder, target)
            return
        try:
            self._transfer(uids, folder, target)
        except MailboxError:
            if self._run(f"looking up folder {target}", lambda c: c.folder_exists(target)):
                raise
            log.info("%s has no folder %s yet: creating it", self.mailbox, target)
            self._create_folder(folder)
            self._transfer(uids, folder, target)
        self._ready_folders.add(target)

    def _transfer(self, uids: list[int], folder: str, target: str) -> None:
        if self._live().has("MOVE"):
            self._for_uid_sets(f"moving mails to {folder}", uids, lambda ids, c: c.move(ids, target))
            return
        for part in chunks(uids, UID_SET_BATCH):
            self._for_uid_sets(f"copying mails to {folder}", part, lambda ids, c: c.copy(ids, target))
            self._flag(part, DELETED)
            self._expunge(part)

    def _server_name(self, folder: str) -> str:
        """``folder`` in the server's hierarchy delimiter; refused where the server has no hierarchy."""
        delimiter = self._live().delimiter
        if FOLDER_SEPARATOR in folder and delimiter is None:
            raise MailboxError(
                f"The IMAP server of {self.mailbox} has no folder hierarchy; cannot create {folder!r}.",
                fix=f"use a folder name without '/' in {names.PROCESSED_FOLDER} / {names.FAILED_FOLDER}",
            )
        return server_folder(folder, delimiter)

    def _create_folder(self, folder: str) -> None:
        """``folder`` and its parents, each created (and subscribed) when missing."""
        levels = folder.split(FOLDER_SEPARATOR)
        for depth in range(1, len(levels) + 1):
            self._create_if_missing(self._server_name(FOLDER_SEPARATOR.join(levels[:depth])))

    def _create_if_missing(self, name: str) -> None:
        if self._run(f"looking up folder {name}", lambda c: c.folder_exists(name)):
            return
        try:
            self._run(f"creating folder {name}", lambda c: c.create_folder(name))
        except MailboxError:
            if not self._run(f"looking up folder {name}", lambda c: c.folder_exists(name)):
                raise
        self._run(f"subscribing to folder {name}", lambda c: c.subscribe_folder(name))
        log.info("Created folder %s in %s", name, self.mailbox)

    # ---- the command runner ------------------------------------------------------------------
    def _live(self) -> Connected:
        if self._connection is None:
            raise MailboxError(f"The IMAP session of {self.mailbox} is closed.", fix="open a new session")
        return self._connection

    def _run(self, doing: str, command: Callable[[IMAPClient], T], *, reconnect: bool = True) -> T:
        """``command`` on the live client, with Exchange's throttling and token-expiry rules."""
        reconnected = not reconnect
        waited = 0.0
        while True:
            try:
                return command(self._live().client)
            except imaplib.IMAP4.abort as exc:
                if not errors.is_token_expired(exc, self._last_bye()):
                    raise errors.session_lost(exc, self.settings.endpoint, doing) from exc
                if reconnected:
                    raise errors.token_expired_twice(self.settings.endpoint, self.mailbox) from exc
                reconnected = True
                self._reconnect()
            except imaplib.IMAP4.error as exc:
                waited += self._wait_if_throttled(exc, waited, doing)
            except OSError as exc:
                raise errors.session_lost(exc, self.settings.endpoint, doing) from exc

    def _last_bye(self) -> str:
        """The BYE the server sent before closing, as imaplib keeps it among untagged responses."""
        if self._connection is None:
            return ""
        untagged = getattr(self._connection.client._imap, "untagged_responses", {})  # imapclient's imaplib
        return " ".join(_text(item) for item in untagged.get("BYE", ()))

    def _wait_if_throttled(self, exc: imaplib.IMAP4.error, waited: float, doing: str) -> float:
        backoff = errors.throttle_backoff_s(exc)
        if backoff is None:
            raise errors.command_refused(exc, self.settings.endpoint, self.mailbox, doing) from exc
        if waited + backoff > self.settings.max_throttle_wait_s:
            raise errors.still_throttled(self.settings.endpoint, self.mailbox, waited) from exc
        log.warning(
            "%s throttles %s; waiting %.3f s before %s again",
            self.settings.endpoint,
            self.mailbox,
            backoff,
            doing,
        )
        self._sleep(backoff)
        return backoff

    def _reconnect(self) -> None:
        """After AccessTokenExpired: a fresh token, a new session, the same folder and UIDVALIDITY."""
        log.warning(
            "%s ended the session of %s: access token expired; signing in again",
            self.settings.endpoint,
            self.mailbox,
        )
        old = self._connection
        self._connection = None
        if old is not None:
            close(old.client)
        self._connection = connect(
            self.settings, self.mailbox, self._sign_in, fresh_token=True, tls=self._tls
        )
        validity = self._run("selecting the source folder again", self._select, reconnect=False)
        if validity != self.validity:
            raise errors.validity_changed(self._source, self.mailbox, self.validity, validity)
