"""Sending through Microsoft Graph: ``POST /users/{mailbox}/sendMail`` with the message's MIME.

The sender hands over the exact message the SMTP route would submit. Graph has no envelope: it
takes the recipients from the To, Cc and Bcc headers, so every envelope recipient that no header
names (a Bcc, which the message builder leaves out of the headers) is added in a ``Bcc`` header
first; Exchange removes it from the copies it delivers. The MIME goes base64-encoded as
``text/plain`` in one request of at most about 4 MB. Answers become the project's errors: no
Mail.Send permission is an :class:`AuthenticationError` naming it, a message Exchange refuses
(recipients, size, content) a permanent :class:`SendError`.
"""

from __future__ import annotations

import base64
import logging
import re
from collections.abc import Mapping, Sequence
from email.parser import BytesHeaderParser
from email.policy import compat32
from email.utils import getaddresses
from typing import Final
from urllib.parse import quote

from wicbox_bridge.adapters.base import SendResult, TokenProvider
from wicbox_bridge.adapters.graph_errors import GraphReply, is_delegated
from wicbox_bridge.adapters.graph_http import Content, GraphHttp
from wicbox_bridge.adapters.graph_settings import GraphSettings
from wicbox_bridge.errors import AuthenticationError, BridgeError, SendError

# An address whose local part is RFC 5322 atext and dots: nothing that could end the header or add
# a second address to it.
_PLAIN_ADDRESS: Final = re.compile(r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+$")
MAX_REQUEST_BYTES: Final = 4 * 1024 * 1024  # Graph's limit for one request, base64 included
log = logging.getLogger("wicbox.graph")
GRAPH_MAIL_SEND_PAGE: Final = (
    "Azure portal > App registrations > (the WICBox app) > API permissions > Add a permission > "
    "Microsoft Graph"
)


class GraphSender:
    """Submits messages as one mailbox through Graph (the :class:`~wicbox_bridge.adapters.base.Sender`
    contract); each message has an HTTP session of its own, closed after the request."""

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
        return f"GraphSender({self.mailbox!r})"

    def send(self, raw: bytes, sender: str, recipients: list[str]) -> SendResult:
        mime = with_envelope_recipients(raw, recipients)
        body = base64.b64encode(mime)
        if len(body) > MAX_REQUEST_BYTES:
            raise SendError(
                f"the mail is {len(mime) // 1024} KB, too large for one Microsoft Graph sendMail request "
                f"(about 4 MB with its base64 encoding)",
                permanent=True,
                fix="send it over SMTP (WICBOX_MAILCLIENT_SENDPROTOCOL = SMTP or AUTO); Graph's upload "
                "sessions for large mails are not supported yet",
            )
        with GraphHttp(self.settings, self.tokens, self.mailbox, env=self._env) as http:
            http.request(
                "POST",
                f"/users/{quote(self.mailbox)}/sendMail",
                f"sending a mail as {self.mailbox}",
                content=Content(body, "text/plain"),
                refused=lambda reply: self._refused(http, reply),
            )
        log.info("Graph sendMail: 202 Accepted for %s (%d recipient(s))", self.mailbox, len(recipients))
        return SendResult("", tuple(recipients), "202 Accepted (Microsoft Graph sendMail)")

    def _refused(self, http: GraphHttp, reply: GraphReply) -> BridgeError:
        host = http.host
        if reply.status == 403:
            kind = "delegated" if is_delegated(http.claims()) else "application"
            tail = "; sign in as the sending mailbox itself" if kind == "delegated" else ""
            return AuthenticationError(
                f"Microsoft Graph ({host}) refused to send as {self.mailbox} ({reply.code}): the token "
                "has no Mail.Send permission",
                code=reply.code,
                fix=f"add the {kind} permission Mail.Send under {GRAPH_MAIL_SEND_PAGE} and grant admin "
                f"consent{tail}",
            )
        return SendError(
            f"Microsoft Graph ({host}) refused the mail from {self.mailbox}: HTTP {reply.status} "
            f"{reply.code}: {reply.message}",
            permanent=reply.status < 500,
            fix="see Microsoft's answer: it names the address or part of the mail it refused",
        )


def with_envelope_recipients(raw: bytes, recipients: Sequence[str]) -> bytes:
    """``raw`` with a Bcc header naming every envelope recipient that no To/Cc/Bcc header names."""
    headers = BytesHeaderParser(policy=compat32).parsebytes(raw)
    fields = [str(value) for key in ("To", "Cc", "Bcc") for value in headers.get_all(key, [])]
    named = {address.casefold() for _name, address in getaddresses(fields)}
    missing = [address for address in dict.fromkeys(recipients) if address.casefold() not in named]
    if not missing:
        return raw
    for address in missing:
        if not _PLAIN_ADDRESS.match(address):
            raise SendError(
                f"the recipient {address!r} is in no header and cannot be added to one for Microsoft Graph "
                "(Graph takes the recipients from the headers)",
                permanent=True,
                fix="send this mail over SMTP (WICBOX_MAILCLIENT_SENDPROTOCOL = SMTP), or correct the "
                "address",
            )
    return b"Bcc: " + ", ".join(missing).encode("ascii") + b"\r\n" + raw
