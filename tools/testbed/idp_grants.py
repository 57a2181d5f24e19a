"""The token endpoint's grants: password (ROPC), client_credentials, refresh_token and device_code.

Checks run in the order Entra ID applies them: tenant, client (registration, then its secret),
scope, user and password, consent, multi-factor policy. Refresh tokens rotate: a refresh answers
with a new refresh token and the one presented can never be used again.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from tools.testbed import idp_errors as errors
from tools.testbed.idp_assertions import authenticate_assertion
from tools.testbed.idp_devices import DEVICE_CODE_GRANT, DeviceCodes
from tools.testbed.idp_model import (
    MULTI_TENANT_SEGMENTS,
    Application,
    Directory,
    KnownResource,
    RefreshGrant,
    Tenant,
    User,
    utc_now,
)
from tools.testbed.idp_scopes import (
    DelegatedScopeRequest,
    ResourceRequest,
    application_scopes,
    delegated_scopes,
)
from tools.testbed.idp_tokens import (
    TokenSigner,
    Validity,
    application_access_claims,
    client_info,
    delegated_access_claims,
    id_token_claims,
)


@dataclass(frozen=True)
class TokenRequest:
    """One POST to ``/{tenant}/oauth2/v2.0/token``."""

    tenant_segment: str
    form: Mapping[str, str] = field(repr=False)  # holds passwords, secrets and refresh tokens
    basic_client_id: str | None = None
    basic_client_secret: str | None = field(default=None, repr=False)

    def require(self, name: str) -> str:
        value = self.form.get(name)
        if not value:
            raise errors.missing_parameter(name)
        return value

    @property
    def client_id(self) -> str:
        client_id = self.form.get("client_id") or self.basic_client_id
        if not client_id:
            raise errors.missing_parameter("client_id")
        return client_id

    @property
    def client_secret(self) -> str | None:
        return self.form.get("client_secret") or self.basic_client_secret

    @property
    def is_multi_tenant(self) -> bool:
        return self.tenant_segment.lower() in MULTI_TENANT_SEGMENTS


class TokenService:
    """Answers token requests from the directory; raises :class:`AadError` for error replies.

    ``base_url``: where the emulator listens (a client assertion's ``aud`` is its token endpoint);
    ``clock``: the directory's current time (tests move it to play a client with a wrong clock).
    """

    def __init__(
        self,
        directory: Directory,
        signer: TokenSigner,
        lifetime: Callable[[], int],
        *,
        base_url: str = "",
        clock: Callable[[], datetime] = utc_now,
        devices: DeviceCodes | None = None,
    ) -> None:
        self._devices = devices or DeviceCodes()
        self._directory = directory
        self._signer = signer
        self._lifetime = lifetime
        self._base_url = base_url
        self._clock = clock

    def issue(self, request: TokenRequest) -> dict[str, Any]:
        grant_type = request.require("grant_type")
        grants: dict[str, Callable[[TokenRequest], dict[str, Any]]] = {
            "password": self._password_grant,
            "client_credentials": self._client_credentials_grant,
            "refresh_token": self._refresh_token_grant,
            DEVICE_CODE_GRANT: self._device_code_grant,
        }
        grant = grants.get(grant_type)
        if grant is None:
            raise errors.unsupported_grant_type(grant_type)
        return grant(request)

    # -- grants --------------------------------------------------------------------------------
    def _password_grant(self, request: TokenRequest) -> dict[str, Any]:
        username = request.require("username")
        password = request.require("password")
        tenant = self._tenant_for_user(request, username)
        app = self._authenticated_client(request, tenant, public_flow=True)
        scopes = delegated_scopes(request.form.get("scope", ""), tenant.display_name)
        user = self._directory.user(username)
        if user is None or user.tenant_id != tenant.tenant_id:
            raise errors.user_not_in_directory(self._directory_name(request, username))
        if not user.password_matches(password):
            raise errors.invalid_username_or_password()
        granted = _granted_delegated(app, scopes.resource)
        _check_mfa(user, scopes.resource.resource)
        return self._delegated_reply(request, app, user, scopes, granted)

    def _client_credentials_grant(self, request: TokenRequest) -> dict[str, Any]:
        tenant = self._tenant_of_client(request)
        app = self._authenticated_client(request, tenant, public_flow=False)
        resource = application_scopes(request.form.get("scope", ""), tenant.display_name)
        validity = Validity.starting_now(self._lifetime())
        roles = app.roles_on(resource.resource)
        token = self._signer.sign(application_access_claims(app, resource.audience, roles, validity))
        return {
            "token_type": "Bearer",
            "expires_in": validity.lifetime,
            "ext_expires_in": validity.lifetime,
            "access_token": token,
        }

    def device_authorization(self, request: TokenRequest) -> dict[str, Any]:
        """``POST /{tenant}/oauth2/v2.0/devicecode``: a new device code for a public client."""
        tenant = self._tenant_of_client(request)
        app = self._directory.application(request.client_id)
        if app is None or app.tenant_id != tenant.tenant_id:
            raise errors.application_not_found(request.client_id, tenant.display_name)
        scope = request.form.get("scope", "")
        delegated_scopes(scope, tenant.display_name)  # an invalid scope is refused here already
        return self._devices.issue(app.client_id, tenant.tenant_id, scope, self._clock()).reply()

    def _device_code_grant(self, request: TokenRequest) -> dict[str, Any]:
        device_code = request.require("device_code")
        tenant = self._tenant_of_client(request)
        app = self._authenticated_client(request, tenant, public_flow=True)
        code = self._devices.poll(device_code, app.client_id, self._clock())
        user = self._directory.user(code.upn or "")
        if user is None:
            raise errors.user_not_in_directory(tenant.display_name)
        scopes = delegated_scopes(code.scope, tenant.display_name)
        granted = _granted_delegated(app, scopes.resource)
        return self._delegated_reply(request, app, user, scopes, granted)

    def _refresh_token_grant(self, request: TokenRequest) -> dict[str, Any]:
        refresh_token = request.require("refresh_token")
        grant = self._directory.grant(refresh_token)
        if grant is None:
            raise errors.invalid_refresh_token()
        tenant = self._tenant_of_grant(request, grant)
        app = self._authenticated_client(request, tenant, public_flow=True)
        user = self._directory.user_by_object_id(grant.user_object_id)
        if grant.used or grant.client_id.lower() != app.client_id.lower() or user is None:
            raise errors.invalid_refresh_token()
        if grant.issued_at < user.tokens_valid_from:
            raise errors.grant_revoked(_moment(grant.issued_at), _moment(user.tokens_valid_from))
        scopes = delegated_scopes(request.form.get("scope") or grant.scope, tenant.display_name)
        granted = _granted_delegated(app, scopes.resource)
        _check_mfa(user, scopes.resource.resource)
        if not self._directory.consume_grant(refresh_token):  # a concurrent refresh won
            raise errors.invalid_refresh_token()
        return self._delegated_reply(request, app, user, scopes, granted)

    # -- building blocks -----------------------------------------------------------------------
    def _tenant(self, segment: str) -> Tenant:
        tenant = self._directory.tenant(segment)
        if tenant is None:
            raise errors.tenant_not_found(segment, error="invalid_request")
        return tenant

    def _tenant_for_user(self, request: TokenRequest, username: str) -> Tenant:
        if not request.is_multi_tenant:
            return self._tenant(request.tenant_segment)
        tenant = self._directory.tenant_of_user(username)
        if tenant is None:
            raise errors.user_not_in_directory(self._directory_name(request, username))
        return tenant

    def _tenant_of_client(self, request: TokenRequest) -> Tenant:
        if not request.is_multi_tenant:
            return self._tenant(request.tenant_segment)
        app = self._directory.application(request.client_id)
        if app is None:
            raise errors.application_not_found(request.client_id, request.tenant_segment)
        return self._tenant(app.tenant_id)

    def _tenant_of_grant(self, request: TokenRequest, grant: RefreshGrant) -> Tenant:
        tenant = self._tenant(grant.tenant_id if request.is_multi_tenant else request.tenant_segment)
        if tenant.tenant_id != grant.tenant_id:
            raise errors.invalid_refresh_token()
        return tenant

    @staticmethod
    def _directory_name(request: TokenRequest, username: str) -> str:
        return username.rpartition("@")[2] if request.is_multi_tenant else request.tenant_segment

    def _authenticated_client(
        self, request: TokenRequest, tenant: Tenant, *, public_flow: bool
    ) -> Application:
        app = self._directory.application(request.client_id)
        if app is None or app.tenant_id != tenant.tenant_id:
            raise errors.application_not_found(request.client_id, tenant.display_name)
        if request.form.get("client_assertion"):
            endpoints = {
                f"{self._base_url}/{segment}/oauth2/v2.0/token"
                for segment in (request.tenant_segment, tenant.tenant_id, *tenant.domains)
            }
            authenticate_assertion(request.form, app.client_id, app.certificates, endpoints, self._clock())
            return app
        secret = request.client_secret
        if secret is None:
            if not (public_flow and app.public_client_flows):
                raise errors.client_secret_required()
            return app
        status = app.secret_status(secret, utc_now())
        if status == "expired":
            raise errors.expired_client_secret(app.client_id)
        if status == "unknown":
            raise errors.invalid_client_secret(app.client_id)
        return app

    def _delegated_reply(
        self,
        request: TokenRequest,
        app: Application,
        user: User,
        scopes: DelegatedScopeRequest,
        granted: tuple[str, ...],
    ) -> dict[str, Any]:
        resource = scopes.resource
        validity = Validity.starting_now(self._lifetime())
        claims = delegated_access_claims(app, user, resource.audience, granted, validity)
        reply: dict[str, Any] = {
            "token_type": "Bearer",
            "scope": " ".join([resource.full_scope(name) for name in granted] + list(scopes.oidc)),
            "expires_in": validity.lifetime,
            "ext_expires_in": validity.lifetime,
            "access_token": self._signer.sign(claims),
        }
        if "offline_access" in scopes.oidc:
            reply["refresh_token"] = self._directory.issue_grant(app.client_id, user, scopes.text).token
        if "openid" in scopes.oidc:
            reply["id_token"] = self._signer.sign(id_token_claims(app, user, validity))
        if request.form.get("client_info") == "1":
            reply["client_info"] = client_info(user)
        return reply


def _granted_delegated(app: Application, request: ResourceRequest) -> tuple[str, ...]:
    """The delegated permissions this request gets; all of them must have been consented."""
    consented = {name.lower(): name for name in app.consented_scopes(request.resource)}
    if request.wants_default:
        wanted = [name for name in request.names if name != ".default"] + list(consented.values())
    else:
        wanted = list(request.names)
    if not consented or any(name.lower() not in consented for name in wanted):
        raise errors.consent_required(app.client_id, app.display_name)
    return tuple(dict.fromkeys(consented[name.lower()] for name in wanted))


def _check_mfa(user: User, resource: KnownResource) -> None:
    if user.mfa == "required":
        raise errors.mfa_required(resource.app_id)
    if user.mfa == "enroll":
        raise errors.mfa_enrollment_required(resource.app_id)


def _moment(epoch_seconds: float) -> datetime:
    return datetime.fromtimestamp(epoch_seconds, timezone.utc)
