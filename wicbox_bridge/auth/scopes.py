"""OAuth2 scopes per protocol and permission type, derived from WICBOX_MAILCLIENT_SCOPE (pure).

The vendor's guide puts the short Microsoft Graph permission ``Mail.ReadWrite`` in SCOPE; Exchange
Online's IMAP and SMTP need their own permissions on another resource. This module maps what the
administrator wrote (short names or full scope URLs, several separated by spaces, commas or
semicolons) to the scopes one token request asks for, and picks the reading protocol for AUTO.
A SCOPE that cannot work for a protocol is a :class:`ParameterError` naming the Azure permission
to add and where the portal lists it (:func:`where_to_add`): Microsoft lists every delegated mail
permission, Exchange's IMAP.AccessAsUser.All and SMTP.Send too, under Microsoft Graph, although
their tokens are for Office 365 Exchange Online; the application ones sit under their own API.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum
from typing import Literal
from urllib.parse import urlsplit

from wicbox_bridge.config import params as names
from wicbox_bridge.config.params import MailProtocol, Parameters, PermissionType
from wicbox_bridge.errors import ParameterError

SCOPE_PARAMETER = names.SCOPE
PROTOCOL_PARAMETER = names.PROTOCOL

TokenProtocol = Literal["imap", "smtp", "graph", "graph-send"]  # graph-send: Graph's sendMail

IMAP_DELEGATED = "https://outlook.office.com/IMAP.AccessAsUser.All"
SMTP_DELEGATED = "https://outlook.office.com/SMTP.Send"
EXCHANGE_APPLICATION = "https://outlook.office365.com/.default"
GRAPH_DELEGATED = "https://graph.microsoft.com/Mail.ReadWrite"
GRAPH_APPLICATION = "https://graph.microsoft.com/.default"
GRAPH_SEND_DELEGATED = "https://graph.microsoft.com/Mail.Send"

DEFAULT = ".default"
# msal adds these itself and refuses them in a scope list.
RESERVED_SCOPES = frozenset({"openid", "profile", "offline_access"})


class Resource(str, Enum):
    """The API a permission belongs to (one token serves one resource)."""

    EXCHANGE = "Office 365 Exchange Online"
    GRAPH = "Microsoft Graph"


@dataclass(frozen=True)
class KnownPermission:
    resource: Resource
    application_only: bool = False


KNOWN_PERMISSIONS: dict[str, KnownPermission] = {
    "IMAP.AccessAsUser.All": KnownPermission(Resource.EXCHANGE),
    "SMTP.Send": KnownPermission(Resource.EXCHANGE),
    "POP.AccessAsUser.All": KnownPermission(Resource.EXCHANGE),
    "EWS.AccessAsUser.All": KnownPermission(Resource.EXCHANGE),
    "IMAP.AccessAsApp": KnownPermission(Resource.EXCHANGE, application_only=True),
    "SMTP.SendAsApp": KnownPermission(Resource.EXCHANGE, application_only=True),
    "POP.AccessAsApp": KnownPermission(Resource.EXCHANGE, application_only=True),
    "Mail.ReadWrite": KnownPermission(Resource.GRAPH),
    "Mail.ReadWrite.Shared": KnownPermission(Resource.GRAPH),
    "Mail.Read": KnownPermission(Resource.GRAPH),
    "Mail.Read.Shared": KnownPermission(Resource.GRAPH),
    "Mail.Send": KnownPermission(Resource.GRAPH),
    "Mail.Send.Shared": KnownPermission(Resource.GRAPH),
}
_CANONICAL_NAMES = {name.lower(): name for name in KNOWN_PERMISSIONS}
ADD_PERMISSION = "Azure > App registrations > (the WICBox app) > API permissions > Add a permission"
_PORTAL_PAGE = {
    (Resource.EXCHANGE, PermissionType.DELEGATED): "Microsoft Graph > Delegated permissions",
    (Resource.GRAPH, PermissionType.DELEGATED): "Microsoft Graph > Delegated permissions",
    (Resource.EXCHANGE, PermissionType.APPLICATION): (
        "APIs my organization uses > Office 365 Exchange Online > Application permissions"
    ),
    (Resource.GRAPH, PermissionType.APPLICATION): "Microsoft Graph > Application permissions",
}
_RESOURCE_URL = {
    Resource.EXCHANGE: "https://outlook.office.com",
    Resource.GRAPH: "https://graph.microsoft.com",
}
_APPLICATION_SCOPE = {Resource.EXCHANGE: EXCHANGE_APPLICATION, Resource.GRAPH: GRAPH_APPLICATION}
_PROTOCOL_RESOURCE: dict[TokenProtocol, Resource] = {
    "imap": Resource.EXCHANGE,
    "smtp": Resource.EXCHANGE,
    "graph": Resource.GRAPH,
}
# The delegated permission each protocol cannot work without.
_REQUIRED_DELEGATED: dict[TokenProtocol, str] = {
    "imap": "IMAP.AccessAsUser.All",
    "smtp": "SMTP.Send",
    "graph": "Mail.ReadWrite",
}


def where_to_add(resource: Resource, permission_type: PermissionType) -> str:
    """The Azure portal's path to a permission of ``resource`` (delegated ones: under Microsoft Graph)."""
    return f"{ADD_PERMISSION} > {_PORTAL_PAGE[resource, permission_type]}"


@dataclass(frozen=True)
class ScopeEntry:
    """One permission from SCOPE: its resource, its short name and the full scope to request."""

    resource: Resource
    permission: str
    scope: str
    written: str

    @property
    def is_default(self) -> bool:
        return self.permission == DEFAULT


def split_scope_value(value: str) -> list[str]:
    """The items of SCOPE: separated by spaces, commas or semicolons; msal's reserved ones dropped."""
    items = [item for item in re.split(r"[\s,;]+", value.strip()) if item]
    return [item for item in items if item.lower() not in RESERVED_SCOPES]


def _resource_of_host(host: str) -> Resource | None:
    if "graph" in host:
        return Resource.GRAPH
    if "outlook" in host or "office365" in host:
        return Resource.EXCHANGE
    return None


def _entry_from_url(item: str) -> ScopeEntry:
    parts = urlsplit(item)
    resource = _resource_of_host(parts.hostname or "")
    permission = parts.path.strip("/")
    if parts.scheme != "https" or resource is None or not permission:
        raise ParameterError(
            SCOPE_PARAMETER,
            f"{item!r} is not a Microsoft Graph or Office 365 Exchange Online scope.",
            fix=f"run {names.set_command(SCOPE_PARAMETER, '<permission>')} with a permission name such as "
            f"Mail.ReadWrite or IMAP.AccessAsUser.All, or a full scope such as {IMAP_DELEGATED}",
        )
    canonical = _CANONICAL_NAMES.get(permission.lower(), permission)
    return ScopeEntry(resource, canonical, item, item)


def _entry_from_short_name(item: str) -> ScopeEntry:
    if item.lower() == DEFAULT:
        raise ParameterError(
            SCOPE_PARAMETER,
            ".default needs the resource in front of it.",
            fix=f"run {names.set_command(SCOPE_PARAMETER, EXCHANGE_APPLICATION)} (IMAP) or "
            f"{names.set_command(SCOPE_PARAMETER, GRAPH_APPLICATION)} (Microsoft Graph)",
        )
    canonical = _CANONICAL_NAMES.get(item.lower())
    if canonical is None:
        known = ", ".join(KNOWN_PERMISSIONS)
        best = names.closest(item, KNOWN_PERMISSIONS)
        guess = f"; did you mean {best}?" if best else "."
        raise ParameterError(
            SCOPE_PARAMETER,
            f"{item!r} is not a mail permission wicbox-bridge knows{guess}",
            fix=f"run {names.set_command(SCOPE_PARAMETER, best or 'Mail.ReadWrite')} (one of {known}, or a "
            f"full scope URL such as {IMAP_DELEGATED})",
        )
    resource = KNOWN_PERMISSIONS[canonical].resource
    return ScopeEntry(resource, canonical, f"{_RESOURCE_URL[resource]}/{canonical}", item)


def parse_scope(value: str) -> list[ScopeEntry]:
    """Classify every item of SCOPE; raises ParameterError for an item that is no mail permission."""
    return [
        _entry_from_url(item) if "://" in item else _entry_from_short_name(item)
        for item in split_scope_value(value)
    ]


def _application_scope(entries: list[ScopeEntry], resource: Resource) -> tuple[str, ...]:
    """Application permissions are always requested as the resource's ``.default``."""
    for entry in entries:
        if entry.resource is resource and entry.is_default:
            return (entry.scope,)
    return (_APPLICATION_SCOPE[resource],)


def _reject_application_only(entries: list[ScopeEntry]) -> None:
    for entry in entries:
        known = KNOWN_PERMISSIONS.get(entry.permission)
        if known is not None and known.application_only:
            raise ParameterError(
                SCOPE_PARAMETER,
                f"{entry.written} is an application permission, but WICBOX_MAILCLIENT_CLIENTSECRET is "
                "empty, so wicbox-bridge signs in with delegated permissions (username and password).",
                fix="run `wicbox params set WICBOX_MAILCLIENT_CLIENTSECRET --prompt` to use application "
                "permissions, or grant the delegated permission (IMAP.AccessAsUser.All, SMTP.Send or "
                f"Mail.ReadWrite) and run {names.set_command(SCOPE_PARAMETER, '<permission>')}",
            )


def _wrong_resource_error(protocol: TokenProtocol, entries: list[ScopeEntry]) -> ParameterError:
    written = " ".join(entry.written for entry in entries)
    if protocol == "graph":
        return ParameterError(
            SCOPE_PARAMETER,
            f"{written} holds only Exchange Online (IMAP/SMTP) permissions; they cannot open a mailbox "
            "through Microsoft Graph.",
            fix="add the Microsoft Graph permission Mail.ReadWrite (delegated or application) in Azure > "
            f"App registrations > API permissions, grant admin consent and run "
            f"{names.set_command(SCOPE_PARAMETER, 'Mail.ReadWrite')}, or "
            f"{names.set_command(PROTOCOL_PARAMETER, 'AUTO')} (or IMAP)",
        )
    return ParameterError(
        SCOPE_PARAMETER,
        f"{written} holds only Microsoft Graph permissions; they cannot open a mailbox over IMAP.",
        fix="add the delegated permission IMAP.AccessAsUser.All "
        f"({where_to_add(Resource.EXCHANGE, PermissionType.DELEGATED)}) or the application permission "
        f"IMAP.AccessAsApp ({where_to_add(Resource.EXCHANGE, PermissionType.APPLICATION)}), grant admin "
        f"consent and run {names.set_command(SCOPE_PARAMETER, IMAP_DELEGATED)} (delegated) or "
        f"{names.set_command(SCOPE_PARAMETER, EXCHANGE_APPLICATION)} (application), or "
        f"{names.set_command(PROTOCOL_PARAMETER, 'AUTO')} (or GRAPH)",
    )


def _missing_permission_error(protocol: TokenProtocol, entries: list[ScopeEntry]) -> ParameterError:
    needed = _REQUIRED_DELEGATED[protocol]
    resource = _PROTOCOL_RESOURCE[protocol]
    written = " ".join(entry.written for entry in entries)
    return ParameterError(
        SCOPE_PARAMETER,
        f"{written} does not include {needed}, which {protocol.upper()} needs with delegated permissions.",
        fix=f"add the delegated permission {needed} ({where_to_add(resource, PermissionType.DELEGATED)}), "
        f"grant admin consent and add {needed} to {SCOPE_PARAMETER}",
    )


def _delegated_scopes(protocol: TokenProtocol, entries: list[ScopeEntry]) -> tuple[str, ...]:
    for entry in entries:
        if entry.is_default:  # every consented delegated permission; cannot be combined
            return (entry.scope,)
    needed = _REQUIRED_DELEGATED[protocol]
    if not any(entry.permission == needed for entry in entries):
        raise _missing_permission_error(protocol, entries)
    return tuple(dict.fromkeys(entry.scope for entry in entries))


def _smtp_scopes(entries: list[ScopeEntry], permission_type: PermissionType) -> tuple[str, ...]:
    """SMTP's scope does not depend on what SCOPE says for reading (Mail.ReadWrite still sends)."""
    exchange = [entry for entry in entries if entry.resource is Resource.EXCHANGE]
    if permission_type is PermissionType.APPLICATION:
        return _application_scope(exchange, Resource.EXCHANGE)
    for entry in exchange:
        if entry.permission == "SMTP.Send" or entry.is_default:
            return (entry.scope,)
    return (SMTP_DELEGATED,)


def scopes_for(scope_value: str, protocol: TokenProtocol, permission_type: PermissionType) -> tuple[str, ...]:
    """The scopes of the token ``protocol`` uses, from WICBOX_MAILCLIENT_SCOPE (empty: defaults)."""
    entries = parse_scope(scope_value)
    if permission_type is PermissionType.DELEGATED:
        _reject_application_only(entries)
    if protocol == "smtp":
        return _smtp_scopes(entries, permission_type)
    if protocol == "graph-send":  # like SMTP, independent of what SCOPE says for reading
        return (GRAPH_APPLICATION if permission_type is PermissionType.APPLICATION else GRAPH_SEND_DELEGATED,)
    resource = _PROTOCOL_RESOURCE[protocol]
    own = [entry for entry in entries if entry.resource is resource]
    if entries and not own:
        raise _wrong_resource_error(protocol, entries)
    if permission_type is PermissionType.APPLICATION:
        return _application_scope(own, resource)
    if not own:
        return (IMAP_DELEGATED,) if protocol == "imap" else (GRAPH_DELEGATED,)
    return _delegated_scopes(protocol, own)


_IMAP_READING = frozenset({"IMAP.AccessAsUser.All", "IMAP.AccessAsApp", DEFAULT})


def _auto_protocol(entries: list[ScopeEntry]) -> tuple[MailProtocol, str]:
    if not entries:
        return MailProtocol.IMAP, f"{SCOPE_PARAMETER} is empty: IMAP with the Exchange Online default scope"
    reads_imap = any(
        entry.resource is Resource.EXCHANGE and entry.permission in _IMAP_READING for entry in entries
    )
    graph = [entry.written for entry in entries if entry.resource is Resource.GRAPH]
    if graph and not reads_imap:
        return MailProtocol.GRAPH, f"{SCOPE_PARAMETER} {' '.join(graph)} is a Microsoft Graph permission"
    return MailProtocol.IMAP, f"{SCOPE_PARAMETER} holds Exchange Online (IMAP/SMTP) permissions"


def resolve_mail_protocol(params: Parameters) -> tuple[MailProtocol, str]:
    """The protocol that reads the mailboxes (IMAP or GRAPH) and why; validates SCOPE against it."""
    if params.protocol is MailProtocol.AUTO:
        protocol, reason = _auto_protocol(parse_scope(params.scope))
        reason = f"{PROTOCOL_PARAMETER} is AUTO and {reason}"
    else:
        protocol, reason = params.protocol, f"{PROTOCOL_PARAMETER} is {params.protocol.value}"
    token_protocol: TokenProtocol = "graph" if protocol is MailProtocol.GRAPH else "imap"
    scopes_for(params.scope, token_protocol, params.permission_type)
    return protocol, reason


def reading_token_protocol(protocol: MailProtocol) -> TokenProtocol:
    """The token protocol of a resolved reading protocol (IMAP or GRAPH)."""
    if protocol is MailProtocol.AUTO:
        raise ValueError("resolve AUTO with resolve_mail_protocol first")
    return "graph" if protocol is MailProtocol.GRAPH else "imap"
