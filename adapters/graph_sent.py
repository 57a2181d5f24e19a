"""Looking up a mail in Sent Items through Microsoft Graph, by its Message-ID.

The outbox asks this before it sends a mail again whose earlier submission was interrupted (the
answer of the server, or the database commit after it, was lost): found means it was sent, and is
not sent twice. ``$filter=internetMessageId eq '<id>'`` on Sent Items, and on the Inbox as well when
the mailbox was one of the recipients (Exchange files a mail to oneself there too).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from urllib.parse import quote

from wicbox_bridge.adapters.base import TokenProvider
from wicbox_bridge.adapters.graph_http import GraphHttp
from wicbox_bridge.adapters.graph_settings import GraphSettings
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
        literal = message_id.replace("'", "''")
        filters = (
            f"internetMessageId eq '{literal}'",
            # the copy in X-WICBOX-Message-ID, where Exchange rewrote the Message-ID
            "singleValueExtendedProperties/Any(ep: ep/id eq "
            f"'{STABLE_ID_PROPERTY}' and ep/value eq '{literal}')",
        )
        with GraphHttp(self.settings, self.tokens, self.mailbox, env=self._env) as http:
            for folder in folders:
                for condition in filters:
                    found = http.get_json(
                        f"/users/{quote(self.mailbox)}/mailFolders/{folder}/messages",
                        f"looking for {message_id} in {folder}",
                        params={"$filter": condition, "$select": "id", "$top": "1"},
                    )
                    if found.get("value"):
                        log.info("Found %s in %s of %s", message_id, folder, self.mailbox)
                        return True
        log.info("%s is not in %s of %s", message_id, ", ".join(folders), self.mailbox)
        return False
