"""A large mail through Microsoft Graph: a draft, its files, upload sessions, then ``send``.

The steps, in one mailbox, one request at a time (so never near Exchange's 4 concurrent requests):

1. drafts an earlier, interrupted try of the same mail left behind (same Message-ID, in Drafts)
   are deleted: they never went out, and must not be sent later by accident;
2. ``POST /users/{mailbox}/messages`` creates the draft (:mod:`wicbox_bridge.adapters.graph_draft`
   wrote it) with as many of the first small files as fit into that request;
3. each further file: ``POST .../messages/{id}/attachments`` under 3 MB, else
   ``POST .../attachments/createUploadSession`` and the file in chunks of 3.75 MB (a multiple of
   320 KiB, under Graph's 4 MB a request) ``PUT`` to the session's pre-authenticated URL with
   ``Content-Range``, without the token, in the order the session's ``nextExpectedRanges`` asks;
4. ``POST .../messages/{id}/send`` (``202 Accepted``): Exchange sends it and keeps it in Sent Items.

A failure before step 4 leaves nothing sent: the draft is deleted (best effort, logged) and the
error raised; a broken connection then becomes a passing SendError once the draft is gone (the
mail is simply due again), or stays a ConnectionFailure when the draft could not be deleted (the
outbox then looks the mail up before the next try, which deletes the draft). ``send`` refused is
the same; no answer to ``send`` (connection lost, server error) leaves the draft alone: whether the
mail went out is what the outbox's Sent Items lookup decides.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, Final
from urllib.parse import quote

import requests

from wicbox_bridge.adapters.graph_draft import DraftPlan, file_attachment, is_small, upload_item
from wicbox_bridge.adapters.graph_errors import GraphReply
from wicbox_bridge.adapters.graph_http import Content, GraphHttp
from wicbox_bridge.adapters.graph_send_errors import (
    draft_refused,
    send_refused,
    unclear_send,
    upload_refused,
    with_leftover,
)
from wicbox_bridge.adapters.graph_sent import messages_with_id
from wicbox_bridge.errors import BridgeError, ConnectionFailure, SendError
from wicbox_bridge.mail.unpack import UnpackedFile

log = logging.getLogger("wicbox.graph")
CHUNK_BYTES: Final = 12 * 320 * 1024  # 3.75 MiB: a multiple of 320 KiB under 4 MB a request
OCTET_STREAM: Final = "application/octet-stream"


class DraftUpload:
    """Sends one large mail as a draft of ``mailbox`` over ``http`` (the steps of the module docstring)."""

    def __init__(self, http: GraphHttp, mailbox: str) -> None:
        self.http = http
        self.mailbox = mailbox
        self._root = f"/users/{quote(mailbox)}"

    def __repr__(self) -> str:
        return f"DraftUpload({self.mailbox!r})"

    def submit(self, plan: DraftPlan, message_id: str | None) -> None:
        if message_id:
            self._discard_leftovers(message_id)
        draft = self._create(plan.message)
        try:
            for file in plan.files:
                self._attach(draft, file)
        except BridgeError as error:
            raise self._abandon(draft, error) from error
        self._send(draft)
        log.info(
            "Graph: sent a large mail as %s through a draft: %d file(s), %d uploaded in chunks; 202 Accepted",
            self.mailbox,
            plan.total_files,
            plan.uploads,
        )

    # ---- the steps -------------------------------------------------------------------------
    def _refused(self, doing: str) -> Callable[[GraphReply], BridgeError]:
        def refused(reply: GraphReply) -> BridgeError:
            return draft_refused(reply, self.http.host, self.mailbox, self.http.claims(), doing)

        return refused

    def _discard_leftovers(self, message_id: str) -> None:
        doing = "looking for an earlier draft of the mail"
        for draft in messages_with_id(
            self.http, self.mailbox, "drafts", message_id, refused=self._refused(doing)
        ):
            self._delete(draft)
            log.warning(
                "Graph: deleted a draft of %s in %s that an interrupted earlier try left behind (never sent)",
                message_id,
                self.mailbox,
            )

    def _create(self, message: dict[str, Any]) -> str:
        doing = "creating the draft of a large mail"
        created = self.http.send_json(
            "POST", f"{self._root}/messages", doing, message, refused=self._refused(doing)
        )
        draft = created.get("id")
        if not isinstance(draft, str) or not draft:
            raise SendError(
                f"Microsoft Graph ({self.http.host}) created a draft in {self.mailbox} but gave no id for it",
                permanent=False,
                fix="nothing to change if it happens once: a later run sends the mail again",
            )
        return draft

    def _attach(self, draft: str, file: UnpackedFile) -> None:
        attachments = f"{self._root}/messages/{quote(draft)}/attachments"
        if is_small(file):
            doing = f"attaching {file.name!r} to a draft"
            self.http.request(
                "POST", attachments, doing, body=file_attachment(file), refused=self._refused(doing)
            )
            return
        doing = f"opening an upload session for {file.name!r}"
        session = self.http.send_json(
            "POST",
            f"{attachments}/createUploadSession",
            doing,
            upload_item(file),
            refused=self._refused(doing),
        )
        url = session.get("uploadUrl")
        if not isinstance(url, str) or not url:
            raise SendError(
                f"Microsoft Graph ({self.http.host}) opened an upload session for {file.name!r} without an "
                "upload address",
                permanent=False,
                fix="nothing to change if it happens once: a later run sends the mail again",
            )
        chunks = self._upload(url, file)
        log.info("Graph: uploaded %r (%d bytes) in %d chunk(s)", file.name, file.size, chunks)

    def _upload(self, url: str, file: UnpackedFile) -> int:
        """PUT ``file`` in chunks where the session asks for them; the number of chunks sent."""
        total = file.size
        start = 0

        def refused(reply: GraphReply) -> BridgeError:
            return upload_refused(reply, self.http.host, self.mailbox, file.name)

        for sent in range(1, 2 * (total // CHUNK_BYTES + 2)):  # a session may ask for a range again
            end = min(start + CHUNK_BYTES, total)
            content = Content(file.content[start:end], OCTET_STREAM)
            response = self.http.upload(
                url, content, f"bytes {start}-{end - 1}/{total}", f"uploading {file.name!r}", refused
            )
            if response.status_code == 201:
                return sent
            start = _next_start(response, end)
            if not 0 <= start < total:
                break
        raise SendError(
            f"the upload session for {file.name!r} in {self.mailbox} did not complete (it asked for byte "
            f"{start} of {total})",
            permanent=False,
            fix="nothing to change if it happens once: a later run uploads the mail again",
        )

    def _send(self, draft: str) -> None:
        host = self.http.host

        def refused(reply: GraphReply) -> BridgeError:
            if reply.status >= 500:
                return unclear_send(reply, host, self.mailbox)
            return send_refused(reply, host, self.mailbox, self.http.claims())

        try:
            self.http.request(
                "POST", f"{self._root}/messages/{quote(draft)}/send", "sending a draft", refused=refused
            )
        except ConnectionFailure:
            raise  # perhaps sent: the draft stays, the outbox looks the mail up before the next try
        except BridgeError as error:
            raise self._abandon(draft, error) from error

    # ---- cleaning up -----------------------------------------------------------------------
    def _delete(self, draft: str) -> None:
        self.http.request("DELETE", f"{self._root}/messages/{quote(draft)}", "deleting a draft")

    def _abandon(self, draft: str, error: BridgeError) -> BridgeError:
        """Delete the draft of a mail that was not sent; the error to raise for it."""
        try:
            self._delete(draft)
        except BridgeError as failure:
            log.warning(
                "Graph: the draft of a mail that was not sent could not be deleted from Drafts of %s (%s); "
                "the next try of the mail deletes it",
                self.mailbox,
                failure.message,
            )
            return with_leftover(error, self.mailbox)
        log.info("Graph: deleted the draft of a mail that was not sent (%s)", error.message)
        if isinstance(error, ConnectionFailure):
            return SendError(
                f"{error.message} Nothing was sent (the draft was deleted).",
                permanent=False,
                fix=error.fix,
            )
        return error


def _next_start(response: requests.Response, default: int) -> int:
    """Where the session wants the next chunk to start (``nextExpectedRanges``: ``["N"]`` or ``["N-M"]``)."""
    try:
        document = response.json()
    except ValueError:
        return default
    ranges = document.get("nextExpectedRanges") if isinstance(document, dict) else None
    if not isinstance(ranges, list) or not ranges:
        return default
    first = str(ranges[0]).partition("-")[0].strip()
    return int(first) if first.isdigit() else default
