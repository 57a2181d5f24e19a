"""Sending through Microsoft Graph: ``POST /users/{mailbox}/sendMail`` with the message's MIME, or,
for a mail too large for one request, a draft with upload sessions.

The sender hands over the exact message the SMTP route would submit. Graph has no envelope: it
takes the recipients from the To, Cc and Bcc headers, so every envelope recipient that no header
names (a Bcc, which the message builder leaves out of the headers) is added in a ``Bcc`` header
first; Exchange removes it from the copies it delivers. The MIME goes base64-encoded as
``text/plain`` in one request of at most 4 MB (so a MIME of up to about 3 MB). A larger mail is
taken apart (:mod:`wicbox_bridge.mail.unpack`) and sent as a draft with its files, large ones
through upload sessions (:mod:`wicbox_bridge.adapters.graph_upload`), up to Exchange Online's
150 MB. Answers become the project's errors (:mod:`wicbox_bridge.adapters.graph_send_errors`): no
Mail.Send permission is an :class:`AuthenticationError` naming it, a message Exchange refuses
(recipients, size, content) a permanent :class:`SendError`.
"""

from __future__ import annotations

import base64
import logging
import re
import time
from collections.abc import Callable, Mapping, Sequence
from email.parser import BytesHeaderParser
from email.policy import compat32
from email.utils import getaddresses
from typing import Final
from urllib.parse import quote

from wicbox_bridge.adapters.base import SendResult, TokenProvider
from wicbox_bridge.adapters.graph_draft import MAX_REQUEST_BYTES, check_size, plan_draft
from wicbox_bridge.adapters.graph_errors import GraphReply
from wicbox_bridge.adapters.graph_http import Content, GraphHttp
from wicbox_bridge.adapters.graph_send_errors import send_refused
from wicbox_bridge.adapters.graph_settings import GraphSettings
from wicbox_bridge.adapters.graph_upload import DraftUpload
from wicbox_bridge.errors import BridgeError, SendError
from wicbox_bridge.mail.unpack import UnpackError, unpack

# An address whose local part is RFC 5322 atext and dots: nothing that could end the header or add
# a second address to it.
_PLAIN_ADDRESS: Final = re.compile(r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+$")
log = logging.getLogger("wicbox.graph")


class GraphSender:
    """Submits messages as one mailbox through Graph (the :class:`~wicbox_bridge.adapters.base.Sender`
    contract); each message has an HTTP session of its own, closed after its last request.
    ``sleep`` waits out Retry-After (tests inject one)."""

    def __init__(
        self,
        settings: GraphSettings,
        tokens: TokenProvider,
        mailbox: str,
        *,
        env: Mapping[str, str] | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.settings = settings
        self.tokens = tokens
        self.mailbox = mailbox
        self._env = env
        self._sleep = sleep

    def __repr__(self) -> str:
        return f"GraphSender({self.mailbox!r})"

    def send(self, raw: bytes, sender: str, recipients: list[str]) -> SendResult:
        mime = with_envelope_recipients(raw, recipients)
        body = base64.b64encode(mime)
        if len(body) > MAX_REQUEST_BYTES:
            return self._send_draft(raw, recipients)
        with self._http() as http:
            http.request(
                "POST",
                f"/users/{quote(self.mailbox)}/sendMail",
                f"sending a mail as {self.mailbox}",
                content=Content(body, "text/plain"),
                refused=lambda reply: self._refused(http, reply),
            )
        log.info("Graph sendMail: 202 Accepted for %s (%d recipient(s))", self.mailbox, len(recipients))
        return SendResult("", tuple(recipients), "202 Accepted (Microsoft Graph sendMail)")

    def _send_draft(self, raw: bytes, recipients: list[str]) -> SendResult:
        """A mail too large for one sendMail request: a draft, its files (upload sessions), send."""
        check_size(len(raw))
        try:
            mail = unpack(raw)
        except UnpackError as exc:
            raise SendError(
                f"the mail cannot be taken apart for Microsoft Graph's large-mail route: {exc}",
                permanent=True,
                fix="send it over SMTP (WICBOX_MAILCLIENT_SENDPROTOCOL = SMTP or AUTO)",
            ) from exc
        for problem in mail.problems:
            log.warning("Graph: a large mail from %s: %s", self.mailbox, problem)
        plan = plan_draft(mail, recipients)
        with self._http() as http:
            DraftUpload(http, self.mailbox).submit(plan, mail.message_id)
        return SendResult("", tuple(recipients), "202 Accepted (Microsoft Graph draft with upload sessions)")

    def _http(self) -> GraphHttp:
        return GraphHttp(self.settings, self.tokens, self.mailbox, env=self._env, sleep=self._sleep)

    def _refused(self, http: GraphHttp, reply: GraphReply) -> BridgeError:
        return send_refused(reply, http.host, self.mailbox, http.claims())


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
