"""Did a mail reach the server? Looking for its Message-ID over IMAP (for the outbox's recovery).

Exchange Online keeps a copy of every mail submitted over SMTP AUTH in the sending mailbox's Sent
Items; a mail the sending mailbox sent to itself is also in its inbox (or, once ``wicbox run`` has
filed it, in the processed folder). :class:`ImapSentLookup` signs in to the sending mailbox as a
run would and searches those folders (read-only: nothing is changed) for the Message-ID.
"""

from __future__ import annotations

import imaplib
import logging
from collections.abc import Sequence
from typing import Any

from imapclient import IMAPClient

from wicbox_bridge.adapters import imap_errors
from wicbox_bridge.adapters.base import refuse_unsafe_message_id
from wicbox_bridge.adapters.imap_connect import SignIn, close, connect
from wicbox_bridge.adapters.imap_session import server_folder
from wicbox_bridge.adapters.imap_settings import ImapSettings
from wicbox_bridge.mail.outgoing import STABLE_ID_HEADER

log = logging.getLogger("wicbox.smtp")

SENT_FLAG = "\\SENT"
# Names Exchange gives Sent Items in English and Dutch mailboxes, for servers without SPECIAL-USE.
SENT_FOLDER_NAMES = ("Sent Items", "Verzonden items", "Sent")


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


class ImapSentLookup:
    """Searches one mailbox for a Message-ID (the :class:`wicbox_bridge.send.outbox.SentLookup` contract)."""

    def __init__(self, settings: ImapSettings, mailbox: str, sign_in: SignIn) -> None:
        self.settings = settings
        self.mailbox = mailbox
        self.sign_in = sign_in

    def __repr__(self) -> str:
        return f"ImapSentLookup({self.settings.endpoint}, mailbox={self.mailbox!r})"

    def find(self, message_id: str, recipients: Sequence[str]) -> bool:
        refuse_unsafe_message_id(message_id)
        """Whether the mail is in Sent Items (or in this mailbox's own folders when it was a recipient).

        Raises ConnectionFailure, AuthenticationError or MailboxError when the mailbox cannot be searched.
        """
        connected = connect(self.settings, self.mailbox, self.sign_in, fresh_token=False)
        client = connected.client
        try:
            folders = self._folders(client, connected.delimiter, recipients)
            for folder in folders:
                if self._search(client, folder, message_id):
                    log.info("Found %s in %s of %s", message_id, folder, self.mailbox)
                    return True
            log.info("%s is not in %s of %s", message_id, ", ".join(folders), self.mailbox)
            return False
        except (OSError, imaplib.IMAP4.abort) as exc:
            raise imap_errors.session_lost(exc, self.settings.endpoint, "searching Sent Items") from exc
        except imaplib.IMAP4.error as exc:
            raise imap_errors.command_refused(exc, self.settings.endpoint, self.mailbox, "a search") from exc
        finally:
            close(client)

    def _folders(self, client: IMAPClient, delimiter: str | None, recipients: Sequence[str]) -> list[str]:
        listed = client.list_folders()
        names = {_text(name) for _flags, _delimiter, name in listed}
        sent = [
            _text(name)
            for flags, _delimiter, name in listed
            if SENT_FLAG in {_text(flag).upper() for flag in flags}
        ]
        sent += [name for name in SENT_FOLDER_NAMES if name in names and name not in sent]
        own: list[str] = []
        if any(recipient.casefold() == self.mailbox.casefold() for recipient in recipients):
            for folder in (self.settings.source_folder, self.settings.processed_folder):
                name = server_folder(folder, delimiter)
                if name in names or name.upper() == "INBOX":
                    own.append(name)
        return list(dict.fromkeys([*sent, *own]))

    @staticmethod
    def _search(client: IMAPClient, folder: str, message_id: str) -> bool:
        client.select_folder(folder, readonly=True)
        criteria = ["OR", "HEADER", "Message-ID", message_id, "HEADER", STABLE_ID_HEADER, message_id]
        return bool(client.search(criteria))
