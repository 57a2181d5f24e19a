"""How Microsoft Graph's refusals of a mail become the project's errors (pure).

Small mails go out with one ``sendMail``; large ones as a draft, its files and upload sessions,
then ``send`` (:mod:`wicbox_bridge.adapters.graph_upload`). The draft needs ``Mail.ReadWrite``
besides ``Mail.Send``; a mail over the mailbox's MaxSendSize (35 MB unless the tenant raised it,
150 MB at most) is refused by Exchange. Each error names the cause and the fix; whether a retry
can help decides between a permanent and a passing :class:`SendError`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from wicbox_bridge.adapters.graph_errors import GraphReply, is_delegated
from wicbox_bridge.errors import AuthenticationError, BridgeError, ConnectionFailure, SendError

GRAPH_PERMISSIONS_PAGE: Final = (
    "Azure portal > App registrations > (the WICBox app) > API permissions > Add a permission > "
    "Microsoft Graph"
)
SIZE_EXCEEDED: Final = "ErrorMessageSizeExceeded"
SESSION_GONE: Final = frozenset({401, 404})


def _kind(claims: Mapping[str, object]) -> str:
    return "delegated" if is_delegated(claims) else "application"


def send_refused(reply: GraphReply, host: str, mailbox: str, claims: Mapping[str, object]) -> BridgeError:
    """A refused ``sendMail`` or draft ``send``: no Mail.Send, or the mail itself."""
    if reply.status == 403:
        kind = _kind(claims)
        tail = "; sign in as the sending mailbox itself" if kind == "delegated" else ""
        return AuthenticationError(
            f"Microsoft Graph ({host}) refused to send as {mailbox} ({reply.code}): the token has no "
            "Mail.Send permission",
            code=reply.code,
            fix=f"add the {kind} permission Mail.Send under {GRAPH_PERMISSIONS_PAGE} and grant admin "
            f"consent{tail}",
        )
    if reply.code == SIZE_EXCEEDED:
        return size_exceeded(reply, host, mailbox)
    return SendError(
        f"Microsoft Graph ({host}) refused the mail from {mailbox}: {reply}",
        permanent=reply.status < 500,
        fix="see Microsoft's answer: it names the address or part of the mail it refused",
    )


def draft_refused(
    reply: GraphReply, host: str, mailbox: str, claims: Mapping[str, object], doing: str
) -> BridgeError:
    """A refused step of building the draft of a large mail (the draft itself, a file)."""
    if reply.status == 403:
        kind = _kind(claims)
        return AuthenticationError(
            f"Microsoft Graph ({host}) refused {doing} in {mailbox} ({reply.code}): a mail too large "
            "for one sendMail request (about 3 MB) goes out as a draft with its files uploaded, which "
            "needs the permission Mail.ReadWrite besides Mail.Send",
            code=reply.code,
            fix=f"add the {kind} permission Mail.ReadWrite under {GRAPH_PERMISSIONS_PAGE} and grant admin "
            "consent, or send large mails over SMTP (WICBOX_MAILCLIENT_SENDPROTOCOL = SMTP or AUTO)",
        )
    if reply.code == SIZE_EXCEEDED:
        return size_exceeded(reply, host, mailbox)
    return SendError(
        f"Microsoft Graph ({host}) refused {doing} in {mailbox}: {reply}",
        permanent=reply.status < 500,
        fix="see Microsoft's answer; a passing failure is retried by a later run",
    )


def upload_refused(reply: GraphReply, host: str, mailbox: str, name: str) -> BridgeError:
    """A refused chunk of an upload session (its URL carries its own authorization)."""
    if reply.code == SIZE_EXCEEDED:
        return size_exceeded(reply, host, mailbox)
    if reply.status in SESSION_GONE:
        return SendError(
            f"the upload session for {name!r} in {mailbox} was refused or has expired ({reply})",
            permanent=False,
            fix="nothing to change if it happens once: a later run uploads the mail again",
        )
    return SendError(
        f"Microsoft Graph ({host}) refused uploading {name!r} to a draft in {mailbox}: {reply}",
        permanent=reply.status < 500,
        fix="see Microsoft's answer; a passing failure is retried by a later run",
    )


def size_exceeded(reply: GraphReply, host: str, mailbox: str) -> SendError:
    return SendError(
        f"Microsoft Graph ({host}) refused the mail from {mailbox} as too large ({reply}): it is over "
        "the mailbox's largest message size (MaxSendSize: 35 MB unless raised, at most 150 MB)",
        permanent=True,
        fix=f"raise the limit in Exchange Online PowerShell: Set-Mailbox -Identity {mailbox} -MaxSendSize "
        "150MB (allow some time for it to apply), or send smaller attachments",
    )


def unclear_send(reply: GraphReply, host: str, mailbox: str) -> ConnectionFailure:
    """A server error in answer to ``send``: the draft may or may not have gone out."""
    return ConnectionFailure(
        f"Microsoft Graph ({host}) gave no clear answer to sending a draft of {mailbox} ({reply}); "
        "whether it went out is looked up in Sent Items before it is sent again",
        fix="nothing to change if it happens once; if it repeats, check Microsoft 365's service health",
    )


def with_leftover(error: BridgeError, mailbox: str) -> BridgeError:
    """``error`` noting the draft that could not be deleted (a permanent SendError only: that mail
    is not tried again, so the admin must know; every other case is cleaned up by the next try)."""
    if isinstance(error, SendError) and error.permanent:
        return SendError(
            f"{error.message}; its draft could not be deleted and is left in Drafts of {mailbox}",
            permanent=True,
            fix=f"{error.fix}; delete the draft in Outlook, do not send it" if error.fix else None,
        )
    return error
