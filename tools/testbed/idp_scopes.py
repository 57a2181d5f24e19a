"""Reading the ``scope`` parameter the way the v2.0 token endpoint does.

One token request is for one resource: ``https://outlook.office.com/IMAP.AccessAsUser.All
https://outlook.office.com/SMTP.Send`` is fine, Outlook plus Graph in one request is not. A scope
without a resource (``Mail.Read``) means Microsoft Graph. ``openid``, ``profile``, ``email`` and
``offline_access`` are OpenID Connect scopes (msal adds the first, second and fourth to every
delegated request) and ask for an ID token and a refresh token rather than API permissions.
"""

from __future__ import annotations

from dataclasses import dataclass

from tools.testbed import idp_errors as errors
from tools.testbed.idp_model import MICROSOFT_GRAPH, KnownResource, find_resource, split_scope

OIDC_SCOPES = ("openid", "profile", "email", "offline_access")
DEFAULT_SCOPE = ".default"


@dataclass(frozen=True)
class ResourceRequest:
    """The permissions asked on one resource."""

    resource: KnownResource
    audience: str  # the resource's identifier as the client spelled it: the token's ``aud``
    names: tuple[str, ...]  # short permission names, possibly ".default"

    @property
    def wants_default(self) -> bool:
        return DEFAULT_SCOPE in self.names

    def full_scope(self, name: str) -> str:
        return f"{self.audience}/{name}"


@dataclass(frozen=True)
class DelegatedScopeRequest:
    text: str
    oidc: tuple[str, ...]
    resource: ResourceRequest


def _identifier(token: str) -> str:
    identifier, _name = split_scope(token)
    return identifier or MICROSOFT_GRAPH.identifiers[0]


def _resource_request(tokens: list[str], text: str, tenant_name: str) -> ResourceRequest:
    identifiers = [_identifier(token) for token in tokens]
    resources = {find_resource(i) or i.lower() for i in identifiers}
    if len(resources) != 1:
        raise errors.invalid_scope(text)
    resource = find_resource(identifiers[0])
    if resource is None:
        raise errors.resource_not_found(identifiers[0], tenant_name)
    names = tuple(split_scope(token)[1] for token in tokens)
    return ResourceRequest(resource, resource.spelled(identifiers[0]), names)


def delegated_scopes(text: str, tenant_name: str) -> DelegatedScopeRequest:
    """Parse a delegated (password or refresh-token grant) scope parameter."""
    tokens = text.split()
    oidc = tuple(s for s in OIDC_SCOPES if s in {t.lower() for t in tokens})
    api_tokens = [t for t in tokens if t.lower() not in OIDC_SCOPES]
    if not api_tokens:
        raise errors.invalid_scope(text)
    try:
        resource = _resource_request(api_tokens, text, tenant_name)
    except errors.AadError as exc:
        if exc.code == 70011:  # delegated requests name the cause more precisely
            raise errors.scope_with_several_resources(text) from exc
        raise
    return DelegatedScopeRequest(text, oidc, resource)


def application_scopes(text: str, tenant_name: str) -> ResourceRequest:
    """Parse a client-credentials scope parameter: exactly one ``{resource}/.default``."""
    tokens = text.split()
    if not tokens:
        raise errors.missing_parameter("scope")
    for token in tokens:
        if split_scope(token)[1] != DEFAULT_SCOPE:
            raise errors.client_credentials_scope_not_default(token)
    return _resource_request(tokens, text, tenant_name)
