"""JSON documents of the Graph emulator, in Microsoft Graph v1.0's shapes (pure)."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from tools.testbed.graph_model import Folder, Mailbox, Message
from tools.testbed.graph_query import graph_time

JSON = "application/json;odata.metadata=minimal;odata.streaming=true;IEEE754Compatible=false;charset=utf-8"


@dataclass(frozen=True)
class ApiReply:
    status: int
    body: bytes = b""
    content_type: str = JSON
    headers: tuple[tuple[str, str], ...] = ()
    code: str | None = None

    def json(self) -> Any:
        return json.loads(self.body) if self.body else None


def json_reply(status: int, document: dict[str, Any], headers: tuple[tuple[str, str], ...] = ()) -> ApiReply:
    return ApiReply(
        status, json.dumps(document).encode(), JSON, (("request-id", str(uuid.uuid4())), *headers)
    )


def error_reply(status: int, code: str, message: str, headers: tuple[tuple[str, str], ...] = ()) -> ApiReply:
    """Graph's error shape: ``{"error": {"code", "message", "innerError": {...}}}``."""
    request_id = str(uuid.uuid4())
    document = {
        "error": {
            "code": code,
            "message": message,
            "innerError": {
                "date": graph_time(dt.datetime.now(dt.timezone.utc)),
                "request-id": request_id,
                "client-request-id": request_id,
            },
        }
    }
    reply = json_reply(status, document, headers)
    return ApiReply(reply.status, reply.body, reply.content_type, reply.headers, code)


def context_url(base_url: str, mailbox: Mailbox, tail: str) -> str:
    return f"{base_url}/v1.0/$metadata#users('{quote(mailbox.upn)}')/{tail}"


def folder_document(mailbox: Mailbox, folder: Folder) -> dict[str, Any]:
    messages = mailbox.in_folder(folder.folder_id)
    return {
        "id": folder.folder_id,
        "displayName": folder.display_name,
        "parentFolderId": folder.parent_id,
        "childFolderCount": len(mailbox.children(folder.folder_id)),
        "unreadItemCount": sum(not message.is_read for message in messages),
        "totalItemCount": len(messages),
        "sizeInBytes": sum(len(message.raw) for message in messages),
        "isHidden": False,
    }


def message_document(message: Message, *, immutable: bool) -> dict[str, Any]:
    headers = message.headers()
    return {
        "@odata.etag": f'W/"CQAAABYAAAB{message.rest_id[-12:]}"',
        "id": message.immutable_id if immutable else message.rest_id,
        "createdDateTime": graph_time(message.created),
        "lastModifiedDateTime": graph_time(message.created),
        "receivedDateTime": graph_time(message.received),
        "sentDateTime": graph_time(message.received),
        "hasAttachments": bool(message.draft and message.draft.attachments),
        "internetMessageId": headers["message-id"],
        "subject": headers["subject"],
        "isRead": message.is_read,
        "isDraft": message.is_draft,
        "parentFolderId": message.folder_id,
    }
