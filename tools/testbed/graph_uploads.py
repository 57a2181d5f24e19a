"""The upload URL of the Graph emulator's upload sessions (Outlook's ``AttachmentSessions``).

``PUT {uploadUrl}`` takes one chunk of the file, as Microsoft documents it for Outlook items:

* the URL is pre-authenticated (``?authtoken=...``, valid until ``expirationDateTime``): a request
  that carries an ``Authorization`` header anyway is ``401``; a wrong or expired token ``401``; a
  session that is gone (completed, cancelled, its draft deleted) ``404 ErrorItemNotFound``;
* ``Content-Type: application/octet-stream``, ``Content-Range: bytes {start}-{end}/{total}`` with
  ``total`` the size the session was opened with and ``start`` the next byte the session expects
  (chunks in order), and as many bytes as the range says; at most 4 MB a request (``413``);
* ``200`` with ``nextExpectedRanges`` ``["{next byte}"]`` while bytes are missing; ``201`` with a
  ``Location`` header (the new attachment) and no body for the last chunk, which attaches the file
  to the draft; a chunk that takes the draft over the mailbox's MaxSendSize is ``400
  ErrorMessageSizeExceeded``.

``DELETE {uploadUrl}`` cancels the session (``204``).
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Mapping

from tools.testbed.graph_docs import ApiReply, error_reply, json_reply
from tools.testbed.graph_drafts import attach, draft_of, now, session_path, size_exceeded
from tools.testbed.graph_items import DraftAttachment, UploadSession
from tools.testbed.graph_model import GraphStoreError, Mailbox, MailStore, item_not_found, new_id
from tools.testbed.graph_query import graph_time

UPLOAD_PREFIX = "/api/v2.0/"
_SESSION_PATH = re.compile(
    r"^/api/v2\.0/Users\('(?P<user>[^']+)'\)/Messages\('(?P<message>[^']+)'\)"
    r"/AttachmentSessions\('(?P<session>[^']+)'\)$"
)
_RANGE = re.compile(r"^bytes (\d+)-(\d+)/(\d+)$")
OCTET_STREAM = "application/octet-stream"


def unauthorized(message: str) -> GraphStoreError:
    return GraphStoreError(401, "InvalidAuthenticationToken", message)


def find_session(store: MailStore, path: str) -> tuple[Mailbox, UploadSession]:
    """The session an upload URL's path addresses (400 for no such path, 404 for no such session)."""
    match = _SESSION_PATH.match(path)
    if match is None:
        raise GraphStoreError(400, "BadRequest", "Resource not found for the segment in the upload URL.")
    mailbox = store.mailbox(match.group("user"))
    session = mailbox.sessions.get(match.group("session")) if mailbox is not None else None
    if mailbox is None or session is None or session.message_id != match.group("message"):
        raise item_not_found()
    return mailbox, session


def check_authorization(session: UploadSession, query: Mapping[str, str], headers: Mapping[str, str]) -> None:
    """The URL's own token, valid now, and no Authorization header (the URL is pre-authenticated)."""
    if headers.get("authorization"):
        raise unauthorized("The upload URL is pre-authenticated: send no Authorization header to it.")
    if not secrets.compare_digest(query.get("authtoken", ""), session.token):
        raise unauthorized("Access token validation failure.")
    if now() >= session.expires:
        raise unauthorized("Access token has expired or is not yet valid.")


def answer_upload(
    store: MailStore,
    method: str,
    path: str,
    query: Mapping[str, str],
    headers: Mapping[str, str],
    body: bytes,
) -> tuple[ApiReply, Mailbox | None]:
    """The reply to a request on an upload URL, and the mailbox it concerned (for the log)."""
    mailbox: Mailbox | None = None
    try:
        mailbox, session = find_session(store, path)
        check_authorization(session, query, headers)
        if method == "DELETE":
            del mailbox.sessions[session.session_id]
            return ApiReply(204), mailbox
        if method != "PUT":
            raise GraphStoreError(405, "BadRequest", "An upload URL takes PUT and DELETE.")
        return _chunk(mailbox, session, headers, body, path), mailbox
    except GraphStoreError as error:
        return error_reply(error.status, error.code, error.message), mailbox


def _chunk(
    mailbox: Mailbox, session: UploadSession, headers: Mapping[str, str], body: bytes, path: str
) -> ApiReply:
    if headers.get("content-type", "").split(";")[0].strip().lower() != OCTET_STREAM:
        raise GraphStoreError(
            400, "ErrorInvalidRequest", "The Content-Type must be application/octet-stream."
        )
    start, end = _range(headers.get("content-range", ""), session)
    if len(body) != end - start + 1:
        raise GraphStoreError(
            400, "ErrorInvalidRequest", "The Content-Length does not match the Content-Range."
        )
    message, draft = draft_of(mailbox, session.message_id)
    if draft.size + end + 1 > mailbox.max_send_size:
        raise size_exceeded()
    session.received.extend(body)
    session.chunks.append(len(body))
    if len(session.received) < session.size:
        return json_reply(
            200,
            {
                "@odata.context": f"$metadata#{_item_path(path)}/AttachmentSessions/$entity",
                "expirationDateTime": graph_time(session.expires),
                "nextExpectedRanges": [str(len(session.received))],
            },
        )
    attachment = DraftAttachment(
        new_id("AAMkAtt"),
        session.name,
        session.content_type,
        bytes(session.received),
        session.is_inline,
        session.content_id,
    )
    attach(mailbox, message, draft, attachment)
    del mailbox.sessions[session.session_id]
    location = session_path(mailbox, session).split("/AttachmentSessions")[0]
    return ApiReply(201, headers=(("Location", f"{location}/Attachments('{attachment.attachment_id}')"),))


def _item_path(path: str) -> str:
    """``Users('..')/Messages('..')`` of an upload URL's path."""
    return path.removeprefix(UPLOAD_PREFIX).split("/AttachmentSessions")[0]


def _range(text: str, session: UploadSession) -> tuple[int, int]:
    match = _RANGE.match(text.strip())
    if match is None:
        raise GraphStoreError(
            400,
            "ErrorInvalidRequest",
            "The Content-Range header is missing or not 'bytes {start}-{end}/{total}'.",
        )
    start, end, total = (int(group) for group in match.groups())
    if total != session.size or not start <= end < total:
        raise GraphStoreError(
            400,
            "ErrorInvalidRequest",
            f"The Content-Range does not fit the session's file of {session.size} bytes.",
        )
    if start != len(session.received):
        raise GraphStoreError(
            416, "InvalidRange", f"The next expected range starts at {len(session.received)}, not at {start}."
        )
    return start, end
