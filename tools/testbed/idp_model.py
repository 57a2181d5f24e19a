"""Directory of the identity-platform emulator: tenants, app registrations, users, refresh grants.

Everything here is test data held in memory. Records are frozen; the :class:`Directory` replaces a
record to change it, under one lock, so the HTTP threads and the test thread can share it.
"""

from __future__ import annotations

import hmac
import secrets
import threading
import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from typing import Literal

from tools.testbed.idp_assertions import RegisteredCertificate

MfaPolicy = Literal["none", "required", "enroll"]
SecretStatus = Literal["valid", "expired", "unknown"]

MULTI_TENANT_SEGMENTS = frozenset({"common", "organizations"})


@dataclass(frozen=True)
class KnownResource:
    """A Microsoft first-party API as the identity platform knows it."""

    app_id: str
    display_name: str
    identifiers: tuple[str, ...]  # identifier URIs; the first is the primary one

    def spelled(self, identifier: str) -> str:
        """This resource's own spelling of ``identifier`` (the primary one for its app id)."""
        wanted = identifier.rstrip("/").lower()
        for known in self.identifiers:
            if known.lower() == wanted:
                return known
        return self.identifiers[0]


EXCHANGE_ONLINE = KnownResource(
    "00000002-0000-0ff1-ce00-000000000000",
    "Office 365 Exchange Online",
    ("https://outlook.office365.com", "https://outlook.office.com"),
)
MICROSOFT_GRAPH = KnownResource(
    "00000003-0000-0000-c000-000000000000", "Microsoft Graph", ("https://graph.microsoft.com",)
)
KNOWN_RESOURCES = (EXCHANGE_ONLINE, MICROSOFT_GRAPH)


def find_resource(identifier: str) -> KnownResource | None:
    """The known resource that ``identifier`` (an identifier URI or app id) names, if any."""
    wanted = identifier.rstrip("/").lower()
    for resource in KNOWN_RESOURCES:
        if wanted == resource.app_id or wanted in (i.lower() for i in resource.identifiers):
            return resource
    return None


def split_scope(scope: str) -> tuple[str, str]:
    """``"https://outlook.office.com/SMTP.Send"`` -> (identifier, short name)."""
    identifier, _, name = scope.rpartition("/")
    return identifier, name


@dataclass(frozen=True)
class Tenant:
    tenant_id: str
    domains: tuple[str, ...]
    display_name: str


@dataclass(frozen=True)
class Application:
    """An app registration together with its service principal in its home tenant."""

    client_id: str
    tenant_id: str
    display_name: str
    service_principal_id: str
    public_client_flows: bool
    delegated_consent: frozenset[str]  # full scope URLs consented for all users
    app_roles: Mapping[str, frozenset[str]]  # resource identifier -> admin-consented app roles
    secrets: Mapping[str, datetime] = field(repr=False)  # secret value -> expiry
    certificates: tuple[RegisteredCertificate, ...] = ()  # uploaded under Certificates & secrets

    def consented_scopes(self, resource: KnownResource) -> tuple[str, ...]:
        """Short names of the delegated permissions consented on ``resource``."""
        names = []
        for scope in sorted(self.delegated_consent):
            identifier, name = split_scope(scope)
            if find_resource(identifier) == resource:
                names.append(name)
        return tuple(names)

    def roles_on(self, resource: KnownResource) -> tuple[str, ...]:
        roles: set[str] = set()
        for identifier, granted in self.app_roles.items():
            if find_resource(identifier) == resource:
                roles |= granted
        return tuple(sorted(roles))

    def secret_status(self, presented: str, now: datetime) -> SecretStatus:
        for value, expiry in self.secrets.items():
            if hmac.compare_digest(value.encode(), presented.encode()):
                return "valid" if now < expiry else "expired"
        return "unknown"


@dataclass(frozen=True)
class User:
    upn: str
    object_id: str
    tenant_id: str
    display_name: str
    password: str = field(repr=False)
    mfa: MfaPolicy = "none"
    tokens_valid_from: float = 0.0  # refresh tokens issued before this (epoch seconds) are revoked

    def password_matches(self, presented: str) -> bool:
        return hmac.compare_digest(self.password.encode(), presented.encode())


@dataclass(frozen=True)
class RefreshGrant:
    """What an opaque refresh token stands for."""

    token: str = field(repr=False)
    client_id: str
    user_object_id: str
    tenant_id: str
    scope: str
    issued_at: float
    used: bool = False


class Directory:
    """Thread-safe store of tenants, applications, users and refresh grants."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._tenants: dict[str, Tenant] = {}
        self._tenant_by_domain: dict[str, str] = {}
        self._applications: dict[str, Application] = {}
        self._users: dict[str, User] = {}
        self._grants: dict[str, RefreshGrant] = {}

    # -- tenants -------------------------------------------------------------------------------
    def add_tenant(self, tenant_id: str, domains: Iterable[str], display_name: str) -> Tenant:
        tenant = Tenant(tenant_id.lower(), tuple(d.lower() for d in domains), display_name)
        with self._lock:
            self._tenants[tenant.tenant_id] = tenant
            for domain in tenant.domains:
                self._tenant_by_domain[domain] = tenant.tenant_id
        return tenant

    def tenant(self, segment: str) -> Tenant | None:
        """The tenant an authority path segment (tenant id or verified domain) names."""
        key = segment.lower()
        with self._lock:
            tenant_id = self._tenant_by_domain.get(key, key)
            return self._tenants.get(tenant_id)

    def tenant_of_user(self, upn: str) -> Tenant | None:
        return self.tenant(upn.rpartition("@")[2]) if "@" in upn else None

    # -- applications --------------------------------------------------------------------------
    def add_application(self, application: Application) -> Application:
        with self._lock:
            if application.tenant_id not in self._tenants:
                raise KeyError(f"unknown tenant {application.tenant_id}")
            self._applications[application.client_id.lower()] = application
        return application

    def application(self, client_id: str) -> Application | None:
        with self._lock:
            return self._applications.get(client_id.lower())

    def update_application(
        self,
        client_id: str,
        *,
        add_certificate: RegisteredCertificate | None = None,
        remove_certificates: bool = False,
    ) -> Application:
        with self._lock:
            key = client_id.lower()
            app = self._applications[key]
            certificates = () if remove_certificates else app.certificates
            if add_certificate is not None:
                certificates = (*certificates, add_certificate)
            self._applications[key] = replace(app, certificates=certificates)
            return self._applications[key]

    # -- users ---------------------------------------------------------------------------------
    def add_user(self, user: User) -> User:
        with self._lock:
            if user.tenant_id not in self._tenants:
                raise KeyError(f"unknown tenant {user.tenant_id}")
            self._users[user.upn.lower()] = user
        return user

    def user(self, upn: str) -> User | None:
        with self._lock:
            return self._users.get(upn.lower())

    def user_by_object_id(self, object_id: str) -> User | None:
        with self._lock:
            return next((u for u in self._users.values() if u.object_id == object_id), None)

    def update_user(self, upn: str, **changes: object) -> User:
        with self._lock:
            key = upn.lower()
            if key not in self._users:
                raise KeyError(f"unknown user {upn}")
            self._users[key] = replace(self._users[key], **changes)  # type: ignore[arg-type]
            return self._users[key]

    # -- refresh grants ------------------------------------------------------------------------
    def issue_grant(self, client_id: str, user: User, scope: str) -> RefreshGrant:
        grant = RefreshGrant(
            token=new_refresh_token(),
            client_id=client_id,
            user_object_id=user.object_id,
            tenant_id=user.tenant_id,
            scope=scope,
            issued_at=time.time(),
        )
        with self._lock:
            self._grants[grant.token] = grant
        return grant

    def refresh_tokens(self) -> list[str]:
        """Every refresh token issued so far (a test's secret scanner looks for them)."""
        with self._lock:
            return list(self._grants)

    def grant(self, token: str) -> RefreshGrant | None:
        with self._lock:
            return self._grants.get(token)

    def consume_grant(self, token: str) -> bool:
        """Mark the refresh token used; False if it was unknown or already used (rotation)."""
        with self._lock:
            grant = self._grants.get(token)
            if grant is None or grant.used:
                return False
            self._grants[token] = replace(grant, used=True)
            return True


def new_object_id() -> str:
    return str(uuid.uuid4())


def new_refresh_token() -> str:
    """Opaque, like Microsoft's (which start with ``0.A``), and never parseable by clients."""
    return "0.A" + secrets.token_urlsafe(96)


def utc_now() -> datetime:
    return datetime.now(timezone.utc)
