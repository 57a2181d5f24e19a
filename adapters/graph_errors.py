"""How Microsoft Graph's replies and the network's failures become the project's errors.

Graph answers errors as ``{"error": {"code": ..., "message": ..., "innerError": {...}}}``. Everything
here is pure: it reads those replies (and the token's non-secret claims) and builds
:mod:`wicbox_bridge.errors` with the cause and the fix. Messages name parameters and hosts, never
a token.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import requests

from wicbox_bridge.adapters import net_errors
from wicbox_bridge.adapters.token_claims import claim_list
from wicbox_bridge.config import params as names
from wicbox_bridge.errors import AuthenticationError, BridgeError, ConnectionFailure, MailboxError

GRAPH_AUDIENCES = frozenset({"https://graph.microsoft.com", "00000003-0000-0000-c000-000000000000"})
NEEDED_PERMISSION = "Mail.ReadWrite"
API_PERMISSIONS = "Azure > App registrations > (the WICBox app) > API permissions"
MAILBOX_GONE_CODES = frozenset({"ErrorInvalidUser", "MailboxNotEnabledForRESTAPI", "ResourceNotFound"})
ITEM_GONE_CODES = frozenset({"ErrorItemNotFound", "ErrorInvalidIdMalformed"})
_ACCESS_POLICY = re.compile(r"RAOP|AccessPolicy", re.IGNORECASE)


@dataclass(frozen=True)
class GraphReply:
    """The parts of a Graph error reply the adapter acts on."""

    status: int
    code: str
    message: str

    @property
    def item_gone(self) -> bool:
        """The message (or folder) addressed is not there (any more)."""
        return self.status == 404 and self.code in ITEM_GONE_CODES

    def __str__(self) -> str:
        return f"HTTP {self.status} {self.code}: {self.message}".rstrip(": ")


def parse_reply(status: int, document: Any) -> GraphReply:
    """A :class:`GraphReply` from an error body (JSON already decoded; anything else tolerated)."""
    error = document.get("error") if isinstance(document, dict) else None
    if isinstance(error, dict):
        return GraphReply(status, str(error.get("code") or ""), str(error.get("message") or ""))
    return GraphReply(status, "", "")


def reply_of(response: requests.Response) -> GraphReply:
    try:
        document = response.json()
    except ValueError:
        document = None
    return parse_reply(response.status_code, document)


class GraphRequestFailed(MailboxError):
    """Graph refused one operation; ``reply`` tells which way (the session handles some itself)."""

    def __init__(self, reply: GraphReply, *, host: str, mailbox: str, doing: str) -> None:
        super().__init__(
            f"Microsoft Graph ({host}) refused {doing} in mailbox {mailbox}: {reply}.",
            fix="check the mailbox's folders in Outlook on the web; the next run retries",
        )
        self.reply = reply


# --------------------------------------------------------------------------- tokens and access


def is_delegated(claims: Mapping[str, object]) -> bool:
    return "scp" in claims or "upn" in claims


def token_rejected(
    reply: GraphReply, host: str, mailbox: str, claims: Mapping[str, object]
) -> AuthenticationError:
    """401 InvalidAuthenticationToken, even with a freshly issued token: audience, expiry, or else."""
    audience = str(claims.get("aud") or "").rstrip("/")
    if audience and audience not in GRAPH_AUDIENCES:
        return AuthenticationError(
            f"Microsoft Graph ({host}) refused the token for mailbox {mailbox}: it is a token for "
            f"{audience}, and Graph accepts only tokens for https://graph.microsoft.com.",
            code=reply.code or None,
            description=reply.message or None,
            fix=f"run {names.set_command(names.SCOPE, 'Mail.ReadWrite')} (the Microsoft Graph permission, "
            f"granted in {API_PERMISSIONS} > Microsoft Graph), or "
            f"{names.set_command(names.PROTOCOL, 'IMAP')} when the app has an IMAP permission (delegated "
            "IMAP.AccessAsUser.All or application IMAP.AccessAsApp)",
        )
    expires = claims.get("exp")
    if isinstance(expires, (int, float)) and expires <= time.time():
        return AuthenticationError(
            f"Microsoft Graph ({host}) refused the token for mailbox {mailbox}: it has expired, although "
            "it was just issued.",
            code=reply.code or None,
            description=reply.message or None,
            fix="check that this computer's clock and time zone are right (tokens are time-limited)",
        )
    return AuthenticationError(
        f"Microsoft Graph ({host}) refused the token for mailbox {mailbox}.",
        code=reply.code or None,
        description=reply.message or None,
        fix=f"check {names.TENANT_ID} (the mailbox's tenant) and {names.GRAPH_URL}; run `wicbox token` "
        "to see the token's audience and permissions",
    )


def access_denied(
    reply: GraphReply, host: str, mailbox: str, claims: Mapping[str, object]
) -> AuthenticationError:
    """403 ErrorAccessDenied, with which of its causes applies."""
    delegated = is_delegated(claims)
    claim = "scp" if delegated else "roles"
    granted = claim_list(claims, claim)
    kind = "delegated" if delegated else "application"
    where = f"Microsoft Graph ({host}) denied access to mailbox {mailbox}"
    if NEEDED_PERMISSION not in granted:
        return AuthenticationError(
            f"{where}: the token's {claim} ({' '.join(granted) or 'none'}) lacks {NEEDED_PERMISSION}, so the "
            f"{kind} permission {NEEDED_PERMISSION} is not consented for the app.",
            code=reply.code or None,
            description=reply.message or None,
            fix=f'in {API_PERMISSIONS} add Microsoft Graph > {kind} > {NEEDED_PERMISSION} and click "Grant '
            'admin consent"',
        )
    if not delegated and _ACCESS_POLICY.search(reply.message):
        app = str(claims.get("appid") or "<application (client) id>")
        return AuthenticationError(
            f"{where}: an application access policy of the tenant does not include this mailbox for the "
            f"app {app}.",
            code=reply.code or None,
            description=reply.message or None,
            fix="in Exchange Online PowerShell check it with "
            f"Test-ApplicationAccessPolicy -Identity {mailbox} -AppId {app}; add the mailbox to the "
            "mail-enabled security group the policy names (Get-ApplicationAccessPolicy shows it; "
            "Add-DistributionGroupMember -Identity <group> -Member " + mailbox + ")",
        )
    user = str(claims.get("upn") or claims.get("unique_name") or "")
    if delegated and user and user.casefold() != mailbox.casefold():
        return AuthenticationError(
            f"{where}: the token is for user {user}, who may not open that mailbox.",
            code=reply.code or None,
            description=reply.message or None,
            fix=f"with delegated permissions sign in as the mailbox's own account ({mailbox}), or use "
            "application permissions (client secret)",
        )
    return AuthenticationError(
        f"{where}.",
        code=reply.code or None,
        description=reply.message or None,
        fix=f"check the app's Microsoft Graph permission {NEEDED_PERMISSION} (admin consent granted) and "
        "that the mailbox is a licensed Exchange Online mailbox",
    )


def mailbox_missing(reply: GraphReply, host: str, mailbox: str) -> MailboxError:
    """404 ErrorInvalidUser / MailboxNotEnabledForRESTAPI: no Exchange Online mailbox there."""
    if reply.code == "MailboxNotEnabledForRESTAPI":
        cause = "the account has no Exchange Online mailbox (inactive, soft-deleted or hosted on-premises)"
        fix = "give the account an Exchange Online licence, or read an on-premises mailbox over IMAP"
    else:
        cause = "no user or mailbox has that address in the tenant"
        fix = (
            f"check the mailbox address ({names.USERNAME}, or the project's WIC_PROJECT.WICBOX_MAILBOX) "
            f"and {names.TENANT_ID}"
        )
    return MailboxError(
        f"Microsoft Graph ({host}) cannot find mailbox {mailbox}: {cause} ({reply}).", fix=fix
    )


def translate(
    reply: GraphReply, *, host: str, mailbox: str, claims: Mapping[str, object], doing: str
) -> BridgeError:
    """The project's error for a reply that ends the operation."""
    if reply.status == 401:
        return token_rejected(reply, host, mailbox, claims)
    if reply.status == 403:
        return access_denied(reply, host, mailbox, claims)
    if reply.status == 404 and reply.code in MAILBOX_GONE_CODES:
        return mailbox_missing(reply, host, mailbox)
    if reply.status == 400 and "/me request" in reply.message:
        return AuthenticationError(
            f"Microsoft Graph ({host}) refused /me for mailbox {mailbox}: the token has application "
            "permissions.",
            fix="nothing to configure: report this to the vendor (the adapter chose the wrong address)",
        )
    return GraphRequestFailed(reply, host=host, mailbox=mailbox, doing=doing)


# --------------------------------------------------------------------------- network


def still_throttled(host: str, mailbox: str, waited_s: float, reply: GraphReply) -> MailboxError:
    return MailboxError(
        f"Microsoft Graph ({host}) kept refusing requests for mailbox {mailbox} with HTTP {reply.status} "
        f"({reply.code or 'busy'}) after {waited_s:.1f} s of waiting.",
        fix=f"nothing to change if it happens once (the next run continues); if it repeats, lower "
        f"{names.WORKERS} or run less often",
    )


def batch_unanswered(host: str, mailbox: str, doing: str) -> MailboxError:
    return MailboxError(
        f"Microsoft Graph ({host}) answered none of the requests of a $batch while {doing} in mailbox "
        f"{mailbox}.",
        fix="nothing to change if it happens once: the next run repeats the actions; if it repeats, check "
        "any proxy between this computer and Microsoft Graph",
    )


def connection_failure(exc: requests.RequestException, host: str, ca_bundle: object) -> ConnectionFailure:
    """A failure to reach Microsoft Graph (``host``, with its port when not 443) or to agree on TLS."""
    split = urlsplit(f"//{host}")
    target = net_errors.Target(net_errors.GRAPH, split.hostname or host, split.port or 443, names.GRAPH_URL)
    if isinstance(exc, requests.exceptions.ProxyError):
        return ConnectionFailure(
            f"Cannot reach {target}: the proxy refused or failed.",
            fix=f"check HTTPS_PROXY/NO_PROXY for {target.host} and that the proxy is up",
        )
    return net_errors.network_failure(
        exc, target, ca_bundle, tls_fix=f"check {names.GRAPH_URL} and any proxy between this computer and it"
    )


def foreign_link(host: str, link_host: str) -> ConnectionFailure:
    return ConnectionFailure(
        f"Microsoft Graph ({host}) sent a next-page link to another host ({link_host}); the token is "
        "never sent there.",
        fix=f"check {names.GRAPH_URL} and any proxy that rewrites replies",
    )


def insecure_upload(host: str) -> ConnectionFailure:
    return ConnectionFailure(
        f"Microsoft Graph ({host}) gave an upload address that is not HTTPS; nothing was uploaded to it.",
        fix=f"check {names.GRAPH_URL} and any proxy that rewrites replies",
    )


def folder_missing(folder: str, mailbox: str, parameter: str) -> MailboxError:
    return MailboxError(
        f"The folder {folder!r} does not exist in mailbox {mailbox}.",
        fix=f"run {names.set_command(parameter, '<folder>')} with an existing folder (folder levels "
        "separated by '/'), e.g. INBOX",
    )


def no_token(mailbox: str) -> AuthenticationError:
    return AuthenticationError(
        f"Microsoft Graph needs an OAuth2 token to open mailbox {mailbox}; Basic authentication does "
        "not exist there.",
        fix=f"run `wicbox params set {names.METHOD} OAuth2`, or `wicbox params set {names.PROTOCOL} IMAP`",
    )


def no_delta_link(host: str, mailbox: str) -> MailboxError:
    """A delta round that ended without ``@odata.deltaLink`` (or never ended): not Graph's protocol."""
    return MailboxError(
        f"Microsoft Graph ({host}) answered the delta query of mailbox {mailbox} without a delta link.",
        fix="check that WICBOX_MAILCLIENT_GRAPHURL points at Microsoft Graph (https://graph.microsoft.com); "
        "until then read the mailbox with the scheduled task (`wicbox run`)",
    )
