"""Who may call the Graph emulator, and on which mailbox (Microsoft Graph's rules for mail).

* The bearer token is an RS256 JWT of the identity-platform emulator for the audience
  ``https://graph.microsoft.com`` (or Graph's app id), valid now; otherwise ``401
  InvalidAuthenticationToken`` with Graph's wording.
* Delegated tokens (``scp``) need Mail.ReadWrite (Mail.Read for reading) and open only the
  signed-in user's own mailbox (``/me`` or ``/users/{own upn or object id}``).
* Application tokens (``roles``) need Mail.ReadWrite and open any mailbox, unless an application
  access policy (Exchange's ``New-ApplicationAccessPolicy``) excludes it; ``/me`` is refused.
* ``sendMail`` needs Mail.Send (delegated or application) instead.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from tools.testbed.graph_model import GraphStoreError, Mailbox, MailStore
from tools.testbed.tokens import TokenRules, Verdict, decode_token

GRAPH_AUDIENCES = ("https://graph.microsoft.com", "00000003-0000-0000-c000-000000000000")
WRITE_PERMISSION = "Mail.ReadWrite"
READ_PERMISSIONS = frozenset({"Mail.Read", WRITE_PERMISSION})
ACCESS_DENIED = "Access is denied. Check credentials and try again."
RAOP_DENIED = (
    "Access to OData is disabled: [RAOP] : Blocked by tenant configured AppOnly AccessPolicy settings."
)
PolicyAccess = Literal["RestrictAccess", "DenyAccess"]

_TOKEN_MESSAGES = {
    "token expired": "Access token has expired or is not yet valid.",
    "wrong audience": "Access token validation failure. Invalid audience.",
}


def unauthorized(message: str) -> GraphStoreError:
    return GraphStoreError(401, "InvalidAuthenticationToken", message)


def authenticate(authorization: str | None, rules: TokenRules) -> dict[str, Any]:
    """The verified claims of the bearer token; raises GraphStoreError 401 otherwise."""
    if not authorization or not authorization.startswith("Bearer ") or not authorization[7:].strip():
        raise unauthorized("Access token is empty.")
    claims = decode_token(authorization[7:].strip(), rules)
    if isinstance(claims, Verdict):
        raise unauthorized(_TOKEN_MESSAGES.get(claims.reason, "Access token validation failure."))
    return claims


@dataclass(frozen=True)
class AccessPolicy:
    """An application access policy: the app may open only (Restrict) / never (Deny) these mailboxes."""

    app_id: str
    access: PolicyAccess
    mailboxes: frozenset[str]

    def allows(self, mailbox: Mailbox) -> bool:
        listed = mailbox.upn.casefold() in self.mailboxes
        return listed if self.access == "RestrictAccess" else not listed


class AccessPolicies:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._policies: list[AccessPolicy] = []

    def add(self, policy: AccessPolicy) -> None:
        with self._lock:
            self._policies.append(policy)

    def allows(self, app_id: str, mailbox: Mailbox) -> bool:
        with self._lock:
            policies = [p for p in self._policies if p.app_id.casefold() == app_id.casefold()]
        return all(policy.allows(mailbox) for policy in policies)

    def clear(self) -> None:
        with self._lock:
            self._policies.clear()


def _granted(claims: Mapping[str, Any]) -> frozenset[str]:
    if "scp" in claims:
        return frozenset(str(claims["scp"]).split())
    roles = claims.get("roles")
    return frozenset(str(role) for role in roles) if isinstance(roles, list) else frozenset()


def _check_permission(claims: Mapping[str, Any], method: str, needed: frozenset[str] | None) -> None:
    granted = _granted(claims)
    if needed is None:
        needed = READ_PERMISSIONS if method == "GET" else frozenset({WRITE_PERMISSION})
    if not granted & needed:
        raise GraphStoreError(403, "ErrorAccessDenied", ACCESS_DENIED)


def _delegated_mailbox(claims: Mapping[str, Any], user_ref: str | None, store: MailStore) -> Mailbox:
    upn = str(claims.get("upn") or claims.get("unique_name") or "")
    own = {upn.casefold(), str(claims.get("oid", "")).casefold()}
    if user_ref is not None and user_ref.casefold() not in own:
        raise GraphStoreError(403, "ErrorAccessDenied", ACCESS_DENIED)
    mailbox = store.mailbox(upn)
    if mailbox is None:
        raise GraphStoreError(
            404,
            "MailboxNotEnabledForRESTAPI",
            "The mailbox is either inactive, soft-deleted, or is hosted on-premise.",
        )
    return mailbox


def _application_mailbox(
    claims: Mapping[str, Any], user_ref: str | None, store: MailStore, policies: AccessPolicies
) -> Mailbox:
    if user_ref is None:
        raise GraphStoreError(
            400, "BadRequest", "/me request is only valid with delegated authentication flow."
        )
    mailbox = store.mailbox(user_ref)
    if mailbox is None:
        raise GraphStoreError(404, "ErrorInvalidUser", f"The requested user '{user_ref}' is invalid.")
    if not policies.allows(str(claims.get("appid", "")), mailbox):
        raise GraphStoreError(403, "ErrorAccessDenied", RAOP_DENIED)
    return mailbox


def authorize(
    claims: Mapping[str, Any],
    user_ref: str | None,
    method: str,
    store: MailStore,
    policies: AccessPolicies,
    *,
    needed: frozenset[str] | None = None,
) -> Mailbox:
    """The mailbox a request on ``/me`` (``user_ref`` None) or ``/users/{user_ref}`` may use.

    ``needed``: the permissions of which one must be granted (default: by the method, for reading
    or writing mail; sendMail needs Mail.Send, which Mail.ReadWrite does not include).
    """
    _check_permission(claims, method, needed)
    if "scp" in claims:
        return _delegated_mailbox(claims, user_ref, store)
    return _application_mailbox(claims, user_ref, store, policies)
