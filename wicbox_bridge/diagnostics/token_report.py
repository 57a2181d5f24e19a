"""What a token is for, in words (``wicbox token``), and whether it fits a protocol (``wicbox check``).

Pure: works on the decoded claims of :class:`AccessToken`; never shows the token itself.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from wicbox_bridge.adapters.base import AccessToken
from wicbox_bridge.auth.scopes import SCOPE_PARAMETER, Resource, TokenProtocol, where_to_add
from wicbox_bridge.config.params import PermissionType
from wicbox_bridge.diagnostics.results import CheckResult, CheckStatus

EXCHANGE_AUDIENCES = frozenset(
    {"https://outlook.office.com", "https://outlook.office365.com", "00000002-0000-0ff1-ce00-000000000000"}
)
GRAPH_AUDIENCES = frozenset({"https://graph.microsoft.com", "00000003-0000-0000-c000-000000000000"})


@dataclass(frozen=True)
class ProtocolNeeds:
    """What a protocol's server accepts: the resource, and the permission per permission type."""

    resource: Resource
    audiences: frozenset[str]
    delegated: str
    application: str


PROTOCOL_NEEDS: dict[TokenProtocol, ProtocolNeeds] = {
    "imap": ProtocolNeeds(Resource.EXCHANGE, EXCHANGE_AUDIENCES, "IMAP.AccessAsUser.All", "IMAP.AccessAsApp"),
    "smtp": ProtocolNeeds(Resource.EXCHANGE, EXCHANGE_AUDIENCES, "SMTP.Send", "SMTP.SendAsApp"),
    "graph": ProtocolNeeds(Resource.GRAPH, GRAPH_AUDIENCES, "Mail.ReadWrite", "Mail.ReadWrite"),
}


def _text(claims: dict[str, object], name: str) -> str:
    value = claims.get(name)
    return "" if value is None else str(value)


def delegated_permissions(claims: dict[str, object]) -> list[str]:
    """The ``scp`` claim as a list (space-separated in the token)."""
    return _text(claims, "scp").split()


def application_roles(claims: dict[str, object]) -> list[str]:
    """The ``roles`` claim as a list of strings."""
    roles = claims.get("roles")
    return [str(role) for role in roles] if isinstance(roles, list) else []


def _expiry(token: AccessToken, now: float) -> str:
    moment = dt.datetime.fromtimestamp(token.expires_at, tz=dt.timezone.utc)
    minutes = int((token.expires_at - now) // 60)
    left = f"{minutes} minutes left" if minutes >= 0 else "expired"
    return f"{moment:%Y-%m-%d %H:%M:%S} UTC ({left})"


def _normalized_audience(claims: dict[str, object]) -> str:
    return _text(claims, "aud").rstrip("/")


def describe_token(
    token: AccessToken,
    *,
    account: str,
    permission_type: PermissionType,
    scopes: Sequence[str],
    now: float | None = None,
) -> list[tuple[str, str]]:
    """The rows ``wicbox token`` prints: label and value. Never the token itself."""
    now = time.time() if now is None else now
    claims = token.claims
    rows = [
        ("account", account),
        ("permission type", permission_type.value),
        ("scopes requested", " ".join(scopes)),
        ("audience (aud)", _text(claims, "aud")),
    ]
    if "scp" in claims:
        rows.append(("delegated permissions (scp)", _text(claims, "scp")))
    else:
        rows.append(("application roles (roles)", " ".join(application_roles(claims)) or "(none)"))
    if "upn" in claims:
        rows.append(("user (upn)", _text(claims, "upn")))
    rows += [
        ("app (appid)", _text(claims, "appid")),
        ("tenant (tid)", _text(claims, "tid")),
        ("object id (oid)", _text(claims, "oid")),
        ("expires", _expiry(token, now)),
        ("source", "token cache" if token.from_cache else "identity platform"),
    ]
    return rows


def _wrong_audience(protocol: TokenProtocol, audience: str, needs: ProtocolNeeds) -> CheckResult:
    resource = needs.resource.value
    return CheckResult(
        f"{protocol.upper()} token",
        CheckStatus.FAIL,
        f"the token is for {audience or 'no audience'}; {protocol.upper()} needs a token for {resource}",
        fix=f"run `wicbox params set {SCOPE_PARAMETER} <permission>` with a permission of {resource} "
        f"({needs.delegated} delegated / {needs.application} application), or choose the protocol that "
        "matches the permission",
    )


def _missing_permission(
    protocol: TokenProtocol, permission_type: PermissionType, needs: ProtocolNeeds, granted: list[str]
) -> CheckResult:
    delegated = permission_type is PermissionType.DELEGATED
    wanted = needs.delegated if delegated else needs.application
    # the portal lists delegated mail permissions under Microsoft Graph, whatever the token's resource
    kind = "delegated" if delegated else f"{needs.resource.value} application"
    claim = "scp" if delegated else "roles"
    return CheckResult(
        f"{protocol.upper()} token",
        CheckStatus.FAIL,
        f"the token's {claim} ({' '.join(granted) or 'none'}) lacks {wanted}",
        fix=f"add the {kind} permission {wanted} "
        f'({where_to_add(needs.resource, permission_type)}) and click "Grant admin consent"',
    )


def _wrong_user(protocol: TokenProtocol, upn: str, mailbox: str) -> CheckResult:
    return CheckResult(
        f"{protocol.upper()} token",
        CheckStatus.FAIL,
        f"the token is for user {upn or '(none)'}, but it must open {mailbox}",
        fix=f"with delegated permissions sign in as the mailbox's own account ({mailbox}), or use "
        "application permissions",
    )


def exchange_mailbox_permission_commands(*, client_id: str, service_principal_id: str, mailbox: str) -> str:
    """The Exchange Online PowerShell that lets an app (client credentials) open one mailbox."""
    return (
        f"New-ServicePrincipal -AppId {client_id} -ObjectId {service_principal_id}\n"
        f"Add-MailboxPermission -Identity {mailbox} -User {service_principal_id} -AccessRights FullAccess"
    )


def _application_exchange_reminder(
    protocol: TokenProtocol, token: AccessToken, *, mailbox: str, client_id: str
) -> CheckResult:
    service_principal = _text(token.claims, "oid") or "<object id of the enterprise application>"
    role = PROTOCOL_NEEDS[protocol].application
    commands = exchange_mailbox_permission_commands(
        client_id=client_id, service_principal_id=service_principal, mailbox=mailbox
    )
    return CheckResult(
        f"{protocol.upper()} token",
        CheckStatus.WARN,
        f"the token has role {role}; Exchange also needs the app's service principal and a mailbox "
        f"permission on {mailbox}",
        fix=f"once, in Exchange Online PowerShell (Connect-ExchangeOnline):\n{commands}",
    )


def check_token_for_protocol(
    token: AccessToken,
    protocol: TokenProtocol,
    permission_type: PermissionType,
    *,
    mailbox: str,
    client_id: str,
    now: float | None = None,
) -> CheckResult:
    """Whether ``token``'s audience and permissions let ``protocol`` open ``mailbox``."""
    now = time.time() if now is None else now
    needs = PROTOCOL_NEEDS[protocol]
    claims = token.claims
    audience = _normalized_audience(claims)
    if audience not in needs.audiences:
        return _wrong_audience(protocol, audience, needs)
    if token.expires_at <= now:
        return CheckResult(
            f"{protocol.upper()} token",
            CheckStatus.FAIL,
            "the token has expired",
            fix="run again; wicbox-bridge gets a new token",
        )
    delegated = permission_type is PermissionType.DELEGATED
    granted = delegated_permissions(claims) if delegated else application_roles(claims)
    wanted = needs.delegated if delegated else needs.application
    if wanted not in granted:
        return _missing_permission(protocol, permission_type, needs, granted)
    upn = _text(claims, "upn")
    if delegated and protocol != "graph" and upn.lower() != mailbox.lower():
        return _wrong_user(protocol, upn, mailbox)
    if not delegated and protocol != "graph":
        return _application_exchange_reminder(protocol, token, mailbox=mailbox, client_id=client_id)
    who = upn if delegated else f"app {_text(claims, 'appid')}"
    return CheckResult(
        f"{protocol.upper()} token",
        CheckStatus.OK,
        f"{_host(audience)} token for {who} with {wanted}",
    )


def _host(audience: str) -> str:
    return urlsplit(audience).hostname or audience
