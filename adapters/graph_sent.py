"""Looking up a mail in Sent Items through Microsoft Graph, by its Message-ID.

The outbox asks this before it sends a mail again whose earlier submission was interrupted (the
answer of the server, or the database commit after it, was lost): found means it was sent, and is
not sent twice. ``$filter=internetMessageId eq '<id>'`` on Sent Items, and on the Inbox as well when
the mailbox was one of the recipients (Exchange files a mail to oneself there too); then the same for
X-WICBOX-Message-ID, an internet-header property, where Exchange rewrote the Message-ID.

Large mails go out as drafts (:mod:`wicbox_bridge.adapters.graph_upload`) that carry both: the
draft's internetMessageId and X-WICBOX-Message-ID in its internetMessageHeaders, which Exchange keeps
as the same internet-header property, so the Sent Items copy is found either way. A draft that was
never sent stays in Drafts, which is not searched: it does not count as sent (the next try of the mail
deletes it before it builds a new one).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from urllib.parse import quote

from wicbox_bridge.adapters.base import TokenProvider, refuse_unsafe_message_id
from wicbox_bridge.adapters.graph_errors import GraphReply
from wicbox_bridge.adapters.graph_http import GraphHttp
from wicbox_bridge.adapters.graph_settings import GraphSettings
from wicbox_bridge.errors import BridgeError
from wicbox_bridge.mail.outgoing import STABLE_ID_HEADER

log = logging.getLogger("wicbox.graph")
# A custom internet header as a MAPI named property (PS_INTERNET_HEADERS).
STABLE_ID_PROPERTY = f"String {{00020386-0000-0000-C000-000000000046}} Name {STABLE_ID_HEADER}"


class GraphSentLookup:
    """Searches one mailbox for a Message-ID (the :class:`wicbox_bridge.send.outbox.SentLookup` contract)."""

    def __init__(
        self,
        settings: GraphSettings,
        tokens: TokenProvider,
        mailbox: str,
        *,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.settings = settings
        self.tokens = tokens
        self.mailbox = mailbox
        self._env = env

    def __repr__(self) -> str:
        return f"GraphSentLookup({self.settings.base_url}, mailbox={self.mailbox!r})"

    def find(self, message_id: str, recipients: Sequence[str]) -> bool:
        """Whether the mail is there. Raises AuthenticationError, ConnectionFailure or MailboxError."""
        folders = ["sentitems"]
        if any(address.casefold() == self.mailbox.casefold() for address in recipients):
            folders.append("inbox")
        with GraphHttp(self.settings, self.tokens, self.mailbox, env=self._env) as http:
            for folder in folders:
                if messages_with_id(http, self.mailbox, folder, message_id, top=1):
                    log.info("Found %s in %s of %s", message_id, folder, self.mailbox)
                    return True
        log.info("%s is not in %s of %s", message_id, ", ".join(folders), self.mailbox)
        return False


def message_id_filters(message_id: str) -> tuple[str, str]:
    """``$filter`` conditions for a Message-ID: as internetMessageId, and as X-WICBOX-Message-ID."""
    refuse_unsafe_message_id(message_id)
    literal = message_id.replace("'", "''")
    return (
        f"internetMessageId eq '{literal}'",
        # the copy in X-WICBOX-Message-ID, where Exchange rewrote the Message-ID
        f"singleValueExtendedProperties/Any(ep: ep/id eq '{STABLE_ID_PROPERTY}' and ep/value eq '{literal}')",
    )


def messages_with_id(
    http: GraphHttp,
    mailbox: str,
    folder: str,
    message_id: str,
    *,
    top: int = 10,
    refused: Callable[[GraphReply], BridgeError] | None = None,
) -> list[str]:
    """The ids of the messages in ``folder`` (a well-known name or an id) that carry ``message_id``."""
    ids: dict[str, None] = {}
    for condition in message_id_filters(message_id):
        found = http.get_json(
            f"/users/{quote(mailbox)}/mailFolders/{folder}/messages",
            f"looking for {message_id} in {folder}",
            params={"$filter": condition, "$select": "id", "$top": str(top)},
            refused=refused,
        )
        ids.update(dict.fromkeys(str(item["id"]) for item in found.get("value", []) if "id" in item))
        if ids and top == 1:
            break
    return list(ids)
