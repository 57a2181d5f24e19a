"""Loopback emulator of the Microsoft identity platform (v2.0 endpoints) for the test bed.

The real msal library talks to it unmodified over HTTPS: OpenID discovery, the user-realm lookup,
and the token endpoint with the password, client_credentials and refresh_token grants. Errors
are Entra ID's OAuth replies with its AADSTS codes and wording. Tests drive it in-process::

    with IdentityPlatformEmulator(pki, "127.0.0.1") as idp:
        directory = seed_test_directory(idp)
        app = msal.PublicClientApplication(
            directory.public_client_id, authority=idp.authority(directory.tenant_id),
            http_client=session, instance_discovery=False)

where ``session`` is a ``requests.Session`` with ``verify`` set to the test CA and
``trust_env=False`` (REQUESTS_CA_BUNDLE would otherwise override ``verify``).

msal sends the user-realm request to the authority's host without its port, so the emulator must
listen on port 443 (the test bed gives each session its own 127.x.y.z address for that).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from types import TracebackType

from tools.testbed.idp_assertions import RegisteredCertificate
from tools.testbed.idp_devices import DeviceCodes
from tools.testbed.idp_grants import TokenService
from tools.testbed.idp_http import IdpEndpoints, IdpServer
from tools.testbed.idp_model import (
    Application,
    Directory,
    MfaPolicy,
    Tenant,
    User,
    new_object_id,
    utc_now,
)
from tools.testbed.idp_tokens import TokenSigner
from tools.testbed.idp_traffic import Fault, FaultPlan, RequestLog, RequestRecord
from tools.testbed.pki import LoopbackPki

DEFAULT_TOKEN_LIFETIME = 3600

__all__ = [
    "DEFAULT_TOKEN_LIFETIME",
    "Application",
    "IdentityPlatformEmulator",
    "RequestLog",
    "RequestRecord",
    "SeededDirectory",
    "SeededUser",
    "Tenant",
    "User",
    "seed_test_directory",
]


class IdentityPlatformEmulator:
    """``https://{host_ip}``: discovery, keys, user realm and token endpoint of Entra ID.

    Thread-safe: tests change the directory and inject faults while msal calls the server.
    """

    def __init__(self, pki: LoopbackPki, host_ip: str, port: int = 443) -> None:
        self.base_url = f"https://{host_ip}" if port == 443 else f"https://{host_ip}:{port}"
        self.token_lifetime = DEFAULT_TOKEN_LIFETIME  # seconds; msal refreshes below 300 s left
        self.request_log = RequestLog()
        self._directory = Directory()
        self._faults = FaultPlan()
        self.signing_kid = pki.signing_kid
        self.clock_offset = 0.0  # seconds the directory's clock runs ahead of this machine's
        self.device_codes = DeviceCodes()  # tests play the user: approve, decline, approve_next
        signer = TokenSigner(pki)
        tokens = TokenService(
            self._directory,
            signer,
            lambda: self.token_lifetime,
            base_url=self.base_url,
            clock=self.now,
            devices=self.device_codes,
        )
        endpoints = IdpEndpoints(
            self._directory, signer, tokens, self.base_url, self.request_log, self._faults
        )
        self._server = IdpServer(endpoints, pki, host_ip, port)

    # -- lifecycle -----------------------------------------------------------------------------
    def issued_refresh_tokens(self) -> list[str]:
        """Every refresh token this emulator has issued: what must never reach a log or an output."""
        return self._directory.refresh_tokens()

    def start(self) -> None:
        self._server.start()

    def stop(self) -> None:
        self._server.stop()

    def __enter__(self) -> IdentityPlatformEmulator:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def now(self) -> datetime:
        """The directory's clock: this machine's plus ``clock_offset``."""
        return utc_now() + timedelta(seconds=self.clock_offset)

    def authority(self, tenant: str) -> str:
        """msal's ``authority`` for a tenant id, a verified domain, "organizations" or "common"."""
        return f"{self.base_url}/{tenant}"

    def jwks_uri(self, tenant: str) -> str:
        return f"{self.base_url}/{tenant}/discovery/v2.0/keys"

    # -- directory -----------------------------------------------------------------------------
    def add_tenant(
        self, tenant_id: str, domains: Iterable[str], *, display_name: str | None = None
    ) -> Tenant:
        domains = tuple(domains)
        name = display_name or (domains[0].split(".")[0].capitalize() if domains else tenant_id)
        return self._directory.add_tenant(tenant_id, domains, name)

    def add_application(
        self,
        client_id: str,
        tenant_id: str,
        display_name: str,
        *,
        public_client_flows: bool = False,
        secrets: Mapping[str, datetime] | None = None,
        delegated_consent: Iterable[str] = (),
        app_roles: Mapping[str, Iterable[str]] | None = None,
        certificates: Iterable[bytes] = (),
    ) -> Application:
        """Register an application (and its service principal) in its home tenant.

        ``secrets`` maps secret values to their (timezone-aware) expiry; ``certificates`` holds the
        PEM of each uploaded certificate (public part only); ``delegated_consent``
        holds full scope URLs consented for all users; ``app_roles`` maps a resource identifier
        to the application permissions an administrator granted on it.
        """
        application = Application(
            client_id=client_id.lower(),
            tenant_id=tenant_id.lower(),
            display_name=display_name,
            service_principal_id=new_object_id(),
            public_client_flows=public_client_flows,
            delegated_consent=frozenset(delegated_consent),
            app_roles={resource: frozenset(roles) for resource, roles in (app_roles or {}).items()},
            secrets={value: _aware(expiry) for value, expiry in (secrets or {}).items()},
            certificates=tuple(RegisteredCertificate.from_pem(pem) for pem in certificates),
        )
        return self._directory.add_application(application)

    def upload_certificate(self, client_id: str, certificate_pem: bytes) -> None:
        """Like Certificates & secrets > Upload certificate on the app registration."""
        self._directory.update_application(
            client_id, add_certificate=RegisteredCertificate.from_pem(certificate_pem)
        )

    def remove_certificates(self, client_id: str) -> None:
        self._directory.update_application(client_id, remove_certificates=True)

    def add_user(
        self,
        upn: str,
        password: str,
        tenant_id: str,
        *,
        display_name: str | None = None,
        mfa: MfaPolicy = "none",
    ) -> User:
        """Add a cloud-only (managed) user; ``mfa`` "required" or "enroll" blocks the password grant."""
        user = User(
            upn=upn.lower(),
            object_id=new_object_id(),
            tenant_id=tenant_id.lower(),
            display_name=display_name or upn.partition("@")[0],
            password=password,
            mfa=mfa,
        )
        return self._directory.add_user(user)

    def user(self, upn: str) -> User | None:
        return self._directory.user(upn)

    def application(self, client_id: str) -> Application | None:
        return self._directory.application(client_id)

    def set_password(self, upn: str, new_password: str) -> None:
        """Change the password; like Entra ID this revokes the user's refresh tokens (AADSTS50173)."""
        self._directory.update_user(upn, password=new_password, tokens_valid_from=_now_epoch())

    def revoke_user_sessions(self, upn: str) -> None:
        """Like Revoke-MgUserSignInSession: every refresh token issued so far stops working."""
        self._directory.update_user(upn, tokens_valid_from=_now_epoch())

    def set_mfa(self, upn: str, mfa: MfaPolicy) -> None:
        self._directory.update_user(upn, mfa=mfa)

    # -- faults --------------------------------------------------------------------------------
    def throttle_token_requests(self, count: int = 1, *, retry_after: int = 5) -> None:
        """Answer the next ``count`` token requests ``429 Too Many Requests`` + ``Retry-After``.

        Like Entra ID's throttling reply the body is plain text, not OAuth JSON.
        """
        self._faults.add(Fault("throttle", 429, retry_after), count)

    def fail_token_requests(
        self, count: int = 1, *, status: int = 503, retry_after: int | None = None
    ) -> None:
        """Answer the next ``count`` token requests with a server error (default 503)."""
        self._faults.add(Fault("unavailable", status, retry_after), count)

    def drop_token_requests(self, count: int = 1) -> None:
        """Close the connection of the next ``count`` token requests without any reply."""
        self._faults.add(Fault("drop", 0), count)

    def set_token_delay(self, seconds: float) -> None:
        """Wait this long before answering each token request (0 to stop)."""
        self._faults.set_delay(seconds)

    def clear_faults(self) -> None:
        """Forget pending faults and the delay."""
        self._faults.clear()


def _aware(moment: datetime) -> datetime:
    """A naive datetime is taken to be UTC."""
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def _now_epoch() -> float:
    return utc_now().timestamp()


# -- the standard test directory ---------------------------------------------------------------
TENANT_ID = "5f1c7d2e-8b4a-4c3e-9a6f-2d7e1b0c9a41"
TENANT_DOMAINS = ("klant.example", "klant.onmicrosoft.com")
MAILBOX_UPN = "wicbox@klant.example"
PROJECT_UPNS = tuple(
    f"project-{name}@klant.example" for name in ("alpha", "bravo", "charlie", "delta", "echo")
)
DELEGATED_SCOPES = (
    "https://outlook.office.com/IMAP.AccessAsUser.All",
    "https://outlook.office.com/SMTP.Send",
    "https://graph.microsoft.com/Mail.ReadWrite",
)
APPLICATION_ROLES = {
    "https://outlook.office365.com": ("IMAP.AccessAsApp", "SMTP.SendAsApp"),
    "https://graph.microsoft.com": ("Mail.ReadWrite",),
}
_ID_NAMESPACE = uuid.UUID("0b6f3f1e-5a51-4c1b-9d0e-7f4f0e3c2a10")


@dataclass(frozen=True)
class SeededUser:
    upn: str
    object_id: str
    display_name: str
    password: str = field(repr=False)


@dataclass(frozen=True)
class SeededDirectory:
    """Ids, secrets and passwords of the standard test directory (test data only)."""

    tenant_id: str
    domains: tuple[str, ...]
    authority: str
    public_client_id: str
    public_client_name: str
    public_client_sp_id: str
    confidential_client_id: str
    confidential_client_name: str
    confidential_client_sp_id: str
    confidential_client_secret: str = field(repr=False)
    mailbox: SeededUser = field(repr=False)
    project_users: tuple[SeededUser, ...] = field(repr=False)
    delegated_scopes: tuple[str, ...] = DELEGATED_SCOPES

    def user(self, upn: str) -> SeededUser:
        for user in (self.mailbox, *self.project_users):
            if user.upn == upn.lower():
                return user
        raise KeyError(upn)


def _stable_id(name: str) -> str:
    return str(uuid.uuid5(_ID_NAMESPACE, name))


def _seed_user(idp: IdentityPlatformEmulator, upn: str, display_name: str) -> SeededUser:
    password = f"Pw-{uuid.uuid4().hex}"
    user = idp.add_user(upn, password, TENANT_ID, display_name=display_name)
    return SeededUser(user.upn, user.object_id, user.display_name, password)


def seed_test_directory(idp: IdentityPlatformEmulator) -> SeededDirectory:
    """Create the standard tenant, the two app registrations and the mailbox and project users."""
    idp.add_tenant(TENANT_ID, TENANT_DOMAINS, display_name="Klant")
    public = idp.add_application(
        _stable_id("wicbox-delegated"),
        TENANT_ID,
        "WICBOX mail (delegated)",
        public_client_flows=True,
        delegated_consent=DELEGATED_SCOPES,
    )
    secret = f"Sx~{uuid.uuid4().hex}{uuid.uuid4().hex[:8]}"
    confidential = idp.add_application(
        _stable_id("wicbox-application"),
        TENANT_ID,
        "WICBOX mail (application)",
        secrets={secret: utc_now() + timedelta(days=365)},
        app_roles=APPLICATION_ROLES,
    )
    mailbox = _seed_user(idp, MAILBOX_UPN, "WICBOX postbus")
    projects = tuple(
        _seed_user(idp, upn, upn.partition("@")[0].replace("-", " ").title()) for upn in PROJECT_UPNS
    )
    return SeededDirectory(
        tenant_id=TENANT_ID,
        domains=TENANT_DOMAINS,
        authority=idp.authority(TENANT_ID),
        public_client_id=public.client_id,
        public_client_name=public.display_name,
        public_client_sp_id=public.service_principal_id,
        confidential_client_id=confidential.client_id,
        confidential_client_name=confidential.display_name,
        confidential_client_sp_id=confidential.service_principal_id,
        confidential_client_secret=secret,
        mailbox=mailbox,
        project_users=projects,
    )
