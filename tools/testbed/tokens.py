"""Exchange Online's sign-in rules for the test bed's mail servers (Dovecot and SMTP).

Both servers accept the identity-platform emulator's RS256 access tokens and apply the same rules:

* the token is signed with the test bed's signing key (header ``kid`` must match), is not expired,
  is already valid (``nbf``), comes from the test tenant's issuer and is meant for Exchange Online
  (``aud`` ``https://outlook.office.com`` or ``https://outlook.office365.com``);
* a delegated token (``scp``) needs the protocol's delegated scope and a ``upn`` equal,
  case-insensitively, to the login user;
* an application token (``roles``) needs the protocol's application role and a mailbox permission
  for the app's service principal on the login mailbox (Exchange's ``Add-MailboxPermission``);
* the login mailbox must exist.

:class:`MailAccounts` holds the state those rules read (mailboxes, Basic passwords, mailbox
permissions); one instance is shared by the Dovecot and SMTP test servers.
"""

from __future__ import annotations

import hmac
import threading
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any

import jwt

TEST_TENANT_ID = "5f1c7d2e-8b4a-4c3e-9a6f-2d7e1b0c9a41"
EXCHANGE_AUDIENCES = ("https://outlook.office.com", "https://outlook.office365.com")


class MailProtocol(Enum):
    """A protocol with its delegated scope and application role in Exchange Online."""

    IMAP = ("IMAP.AccessAsUser.All", "IMAP.AccessAsApp")
    SMTP = ("SMTP.Send", "SMTP.SendAsApp")

    @property
    def delegated_scope(self) -> str:
        return self.value[0]

    @property
    def app_role(self) -> str:
        return self.value[1]


@dataclass(frozen=True)
class Verdict:
    """Outcome of one sign-in: ``reason`` says why it was refused (never contains the secret)."""

    accepted: bool
    reason: str
    principal: str = ""

    @classmethod
    def accept(cls, principal: str) -> Verdict:
        return cls(True, "accepted", principal)

    @classmethod
    def refuse(cls, reason: str) -> Verdict:
        return cls(False, reason)


class MailAccounts:
    """Mailboxes, their Basic passwords and the apps granted access to them (thread-safe).

    Mailbox names compare case-insensitively, like Exchange addresses.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._mailboxes: set[str] = set()
        self._passwords: dict[str, str] = {}
        self._grants: dict[str, set[str]] = {}

    def add_mailbox(self, user: str, password: str | None = None) -> None:
        with self._lock:
            self._mailboxes.add(user.casefold())
        if password is not None:
            self.set_password(user, password)

    def set_password(self, user: str, password: str) -> None:
        with self._lock:
            self._passwords[user.casefold()] = password

    def grant_app_access(self, principal: str, mailbox: str) -> None:
        """Give an app (its service principal object id, or its client id) access to ``mailbox``."""
        with self._lock:
            self._grants.setdefault(mailbox.casefold(), set()).add(principal.casefold())

    def clear(self) -> None:
        with self._lock:
            self._mailboxes.clear()
            self._passwords.clear()
            self._grants.clear()

    def mailboxes(self) -> frozenset[str]:
        with self._lock:
            return frozenset(self._mailboxes)

    def has_mailbox(self, user: str) -> bool:
        with self._lock:
            return user.casefold() in self._mailboxes

    def password_matches(self, user: str, password: str) -> bool:
        with self._lock:
            expected = self._passwords.get(user.casefold())
        if expected is None:
            return False
        return hmac.compare_digest(expected.encode(), password.encode())

    def app_is_granted(self, mailbox: str, principals: tuple[str, ...]) -> bool:
        with self._lock:
            granted = self._grants.get(mailbox.casefold(), set())
            return any(principal.casefold() in granted for principal in principals if principal)


@dataclass(frozen=True)
class TokenRules:
    """What a valid token looks like: the signing key, its kid and the tenant."""

    public_key_pem: bytes
    kid: str
    tenant_id: str = TEST_TENANT_ID
    audiences: tuple[str, ...] = EXCHANGE_AUDIENCES

    @classmethod
    def from_files(cls, public_key: Path, kid: str, tenant_id: str = TEST_TENANT_ID) -> TokenRules:
        return cls(public_key_pem=public_key.read_bytes(), kid=kid, tenant_id=tenant_id)

    @property
    def issuer(self) -> str:
        return f"https://sts.windows.net/{self.tenant_id}/"


def decode_token(token: str, rules: TokenRules) -> dict[str, Any] | Verdict:
    """The verified claims, or a refusal naming what is wrong with the token."""
    try:
        header = jwt.get_unverified_header(token)
    except jwt.InvalidTokenError:
        return Verdict.refuse("not a JWT")
    if header.get("alg") != "RS256" or header.get("kid") != rules.kid:
        return Verdict.refuse("unknown signing key or algorithm")
    try:
        claims: dict[str, Any] = jwt.decode(
            token,
            rules.public_key_pem,
            algorithms=["RS256"],
            audience=list(rules.audiences),
            issuer=rules.issuer,
            options={"require": ["exp", "nbf", "iat", "aud", "iss", "tid", "oid"]},
        )
    except jwt.ExpiredSignatureError:
        return Verdict.refuse("token expired")
    except jwt.InvalidAudienceError:
        return Verdict.refuse("wrong audience")
    except jwt.InvalidIssuerError:
        return Verdict.refuse("wrong issuer")
    except jwt.InvalidSignatureError:
        return Verdict.refuse("bad signature")
    except jwt.InvalidTokenError as exc:
        return Verdict.refuse(f"invalid token: {type(exc).__name__}")
    if claims.get("tid") != rules.tenant_id:
        return Verdict.refuse("wrong tenant")
    return claims


def _delegated_verdict(claims: Mapping[str, Any], user: str, protocol: MailProtocol) -> Verdict:
    scopes = str(claims.get("scp", "")).split()
    if protocol.delegated_scope not in scopes:
        return Verdict.refuse(f"scope {protocol.delegated_scope} missing")
    upn = str(claims.get("upn", ""))
    if upn.casefold() != user.casefold():
        return Verdict.refuse("upn does not match the login user")
    return Verdict.accept(upn)


def _application_verdict(
    claims: Mapping[str, Any], user: str, protocol: MailProtocol, accounts: MailAccounts
) -> Verdict:
    roles = claims.get("roles") or []
    if not isinstance(roles, list) or protocol.app_role not in roles:
        return Verdict.refuse(f"role {protocol.app_role} missing")
    principals = (str(claims.get("oid", "")), str(claims.get("appid", "")))
    if not accounts.app_is_granted(user, principals):
        return Verdict.refuse("app has no permission on the mailbox")
    return Verdict.accept(principals[0])


def check_token(
    token: str, user: str, protocol: MailProtocol, rules: TokenRules, accounts: MailAccounts
) -> Verdict:
    """Apply Exchange Online's rules to a login of ``user`` with ``token`` over ``protocol``."""
    claims = decode_token(token, rules)
    if isinstance(claims, Verdict):
        return claims
    if not accounts.has_mailbox(user):
        return Verdict.refuse("mailbox does not exist")
    if "scp" in claims:
        return _delegated_verdict(claims, user, protocol)
    if "roles" in claims or "upn" not in claims:
        return _application_verdict(claims, user, protocol, accounts)
    return Verdict.refuse("token has neither scp nor roles")


def check_password(user: str, password: str, accounts: MailAccounts) -> Verdict:
    """Basic authentication: the mailbox exists and the password matches."""
    if not accounts.has_mailbox(user):
        return Verdict.refuse("mailbox does not exist")
    if not accounts.password_matches(user, password):
        return Verdict.refuse("wrong password")
    return Verdict.accept(user)


# ---- minting, in the identity-platform emulator's format (for tests of the mail servers) -------
TEST_CLIENT_ID = "0b8f3c9a-2d4e-4f6a-9c1b-7e5d3a2f1c0e"


def _base_claims(audience: str, lifetime_s: int, tenant_id: str, client_id: str, oid: str) -> dict[str, Any]:
    now = int(time.time())
    return {
        "aud": audience,
        "iss": f"https://sts.windows.net/{tenant_id}/",
        "iat": now,
        "nbf": now,
        "exp": now + lifetime_s,
        "tid": tenant_id,
        "appid": client_id,
        "app_displayname": "WICBOX",
        "ver": "1.0",
        "oid": oid,
        "sub": oid,
    }


def delegated_claims(
    upn: str,
    scopes: tuple[str, ...] = ("IMAP.AccessAsUser.All", "SMTP.Send"),
    *,
    audience: str = EXCHANGE_AUDIENCES[0],
    lifetime_s: int = 3600,
    tenant_id: str = TEST_TENANT_ID,
    client_id: str = TEST_CLIENT_ID,
) -> dict[str, Any]:
    """Claims of a delegated (password / refresh_token grant) token for ``upn``."""
    oid = str(uuid.uuid5(uuid.NAMESPACE_URL, f"user:{upn.casefold()}"))
    claims = _base_claims(audience, lifetime_s, tenant_id, client_id, oid)
    claims.update(scp=" ".join(scopes), upn=upn, unique_name=upn, name=upn.split("@")[0])
    return claims


def application_claims(
    sp_object_id: str,
    roles: tuple[str, ...] = ("IMAP.AccessAsApp", "SMTP.SendAsApp"),
    *,
    audience: str = EXCHANGE_AUDIENCES[1],
    lifetime_s: int = 3600,
    tenant_id: str = TEST_TENANT_ID,
    client_id: str = TEST_CLIENT_ID,
) -> dict[str, Any]:
    """Claims of an application (client_credentials) token; no ``roles`` claim if ``roles`` is empty."""
    claims = _base_claims(audience, lifetime_s, tenant_id, client_id, sp_object_id)
    if roles:
        claims["roles"] = list(roles)
    return claims


def sign_claims(claims: Mapping[str, Any], signing_key_pem: bytes, kid: str) -> str:
    """An RS256 JWT with the emulator's header."""
    return jwt.encode(dict(claims), signing_key_pem, algorithm="RS256", headers={"kid": kid, "typ": "JWT"})
