"""Token providers against the identity-platform emulator (real msal over HTTPS), and the token
report and protocol checks (pure tables)."""

from __future__ import annotations

import dataclasses
import json
import socket
import stat
import subprocess
import sys
import time
import uuid
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, cast

import msal
import pytest
import requests

from tests.adapter_bed import RecordedWaits
from tests.helpers.secrets import assert_no_secrets as scan_for_secrets
from tools.testbed.idp import IdentityPlatformEmulator, SeededDirectory
from tools.testbed.pki import LoopbackPki, create_loopback_pki
from wicbox_bridge.adapters.base import AccessToken, TokenProvider
from wicbox_bridge.adapters.identity import (
    DISCOVERY_CACHE_FILE_NAME,
    IdentityHttpClient,
    IdentityPlatform,
    TokenService,
    build_token_provider,
    tls_verify_setting,
)
from wicbox_bridge.adapters.token_cache import CACHE_FILE_NAME, FINGERPRINTS_FILE_NAME, open_token_cache
from wicbox_bridge.auth.aadsts import IdentityPlatformError
from wicbox_bridge.auth.scopes import (
    EXCHANGE_APPLICATION,
    GRAPH_APPLICATION,
    IMAP_DELEGATED,
    SMTP_DELEGATED,
    TokenProtocol,
)
from wicbox_bridge.config.params import (
    AccountMode,
    AfterProcess,
    AuthMethod,
    Endpoint,
    MailProtocol,
    Parameters,
    PermissionType,
    TlsMode,
)
from wicbox_bridge.diagnostics.results import CheckResult, CheckStatus
from wicbox_bridge.diagnostics.token_report import check_token_for_protocol, describe_token
from wicbox_bridge.errors import AuthenticationError, ConnectionFailure, ExitCode, ParameterError
from wicbox_bridge.secret import Secret

NOW = 1_800_000_000.0
TENANT = "5f1c7d2e-8b4a-4c3e-9a6f-2d7e1b0c9a41"
CLIENT_ID = "0d6c3b9e-1f2a-4b5c-8d7e-9f0a1b2c3d4e"
SP_ID = "7e1f0a9b-2c3d-4e5f-8a9b-0c1d2e3f4a5b"
TOKEN_VALUE = "eyJhbGciOiJSUzI1NiJ9.eyJzZWNyZXQiOiJ5ZXMifQ.c2ln"
D = PermissionType.DELEGATED
A = PermissionType.APPLICATION


def report_token(
    aud: str,
    *,
    scp: str | None = None,
    roles: list[str] | None = None,
    upn: str | None = "wicbox@klant.example",
    expires_in: float = 3600,
    from_cache: bool = False,
) -> AccessToken:
    claims: dict[str, object] = {"aud": aud, "tid": TENANT, "appid": CLIENT_ID, "exp": NOW + expires_in}
    if scp is not None:
        claims["scp"] = scp
        claims["oid"] = "a-user-object-id"
        if upn:
            claims["upn"] = upn
    else:
        claims["oid"] = SP_ID
        if roles is not None:
            claims["roles"] = roles
    return AccessToken(Secret(TOKEN_VALUE), NOW + expires_in, from_cache, claims)


def test_describe_delegated_token() -> None:
    token = report_token("https://outlook.office.com", scp="IMAP.AccessAsUser.All SMTP.Send", from_cache=True)
    rows = dict(
        describe_token(
            token,
            account="wicbox@klant.example",
            permission_type=D,
            scopes=["https://outlook.office.com/IMAP.AccessAsUser.All"],
            now=NOW,
        )
    )
    assert rows["account"] == "wicbox@klant.example"
    assert rows["permission type"] == "delegated"
    assert rows["scopes requested"] == "https://outlook.office.com/IMAP.AccessAsUser.All"
    assert rows["audience (aud)"] == "https://outlook.office.com"
    assert rows["delegated permissions (scp)"] == "IMAP.AccessAsUser.All SMTP.Send"
    assert rows["user (upn)"] == "wicbox@klant.example"
    assert rows["tenant (tid)"] == TENANT
    assert rows["expires"] == "2027-01-15 09:00:00 UTC (60 minutes left)"
    assert rows["source"] == "token cache"
    assert all(TOKEN_VALUE not in value for _, value in rows.items())


def test_describe_application_token() -> None:
    token = report_token("https://outlook.office365.com", roles=["IMAP.AccessAsApp", "SMTP.SendAsApp"])
    rows = dict(
        describe_token(
            token,
            account="app",
            permission_type=A,
            scopes=["https://outlook.office365.com/.default"],
            now=NOW,
        )
    )
    assert rows["application roles (roles)"] == "IMAP.AccessAsApp SMTP.SendAsApp"
    assert rows["app (appid)"] == CLIENT_ID
    assert "user (upn)" not in rows
    assert rows["source"] == "identity platform"


def test_describe_app_token_without_roles() -> None:
    token = report_token("https://graph.microsoft.com", roles=None)
    rows = dict(describe_token(token, account="app", permission_type=A, scopes=[], now=NOW))
    assert rows["application roles (roles)"] == "(none)"


OUTLOOK = "https://outlook.office.com"
OUTLOOK365 = "https://outlook.office365.com"
GRAPH = "https://graph.microsoft.com"


def _checked(token: AccessToken, protocol: str, permission_type: PermissionType, mailbox: str) -> CheckResult:
    """The token check as ``wicbox check`` runs it, at the fixed time NOW."""
    return check_token_for_protocol(
        token,
        cast(TokenProtocol, protocol),
        permission_type,
        mailbox=mailbox,
        client_id=CLIENT_ID,
        now=NOW,
    )


@pytest.mark.parametrize(
    ("token", "protocol", "permission_type", "status", "says"),
    [
        (
            report_token(OUTLOOK, scp="IMAP.AccessAsUser.All"),
            "imap",
            D,
            CheckStatus.OK,
            "IMAP.AccessAsUser.All",
        ),
        (report_token(OUTLOOK365 + "/", scp="IMAP.AccessAsUser.All"), "imap", D, CheckStatus.OK, "wicbox@"),
        (report_token(OUTLOOK, scp="SMTP.Send"), "smtp", D, CheckStatus.OK, "SMTP.Send"),
        (report_token(GRAPH, scp="Mail.ReadWrite"), "graph", D, CheckStatus.OK, "Mail.ReadWrite"),
        (report_token(GRAPH, roles=["Mail.ReadWrite"]), "graph", A, CheckStatus.OK, "Mail.ReadWrite"),
        # a Graph token cannot open IMAP, and the other way round
        (report_token(GRAPH, scp="Mail.ReadWrite"), "imap", D, CheckStatus.FAIL, "graph.microsoft.com"),
        (report_token(OUTLOOK, scp="IMAP.AccessAsUser.All"), "graph", D, CheckStatus.FAIL, "Microsoft Graph"),
        # permissions missing
        (report_token(OUTLOOK, scp="SMTP.Send"), "imap", D, CheckStatus.FAIL, "lacks IMAP.AccessAsUser.All"),
        (report_token(OUTLOOK, scp="IMAP.AccessAsUser.All"), "smtp", D, CheckStatus.FAIL, "lacks SMTP.Send"),
        (report_token(GRAPH, scp="Mail.Read"), "graph", D, CheckStatus.FAIL, "lacks Mail.ReadWrite"),
        (report_token(OUTLOOK365, roles=[]), "imap", A, CheckStatus.FAIL, "lacks IMAP.AccessAsApp"),
        (report_token(OUTLOOK365, roles=None), "smtp", A, CheckStatus.FAIL, "lacks SMTP.SendAsApp"),
        # delegated token of another user
        (
            report_token(OUTLOOK, scp="IMAP.AccessAsUser.All", upn="other@klant.example"),
            "imap",
            D,
            CheckStatus.FAIL,
            "other@klant.example",
        ),
        # expired
        (
            report_token(OUTLOOK, scp="IMAP.AccessAsUser.All", expires_in=-5),
            "imap",
            D,
            CheckStatus.FAIL,
            "expired",
        ),
        # application token with the role: Exchange still needs the mailbox permission
        (
            report_token(OUTLOOK365, roles=["IMAP.AccessAsApp"]),
            "imap",
            A,
            CheckStatus.WARN,
            "mailbox permission",
        ),
    ],
)
def test_check_token_for_protocol(
    token: AccessToken, protocol: str, permission_type: PermissionType, status: CheckStatus, says: str
) -> None:
    result = _checked(token, protocol, permission_type, "WICBOX@klant.example")
    assert result.status is status
    assert says in result.detail
    assert TOKEN_VALUE not in result.render()
    if status is CheckStatus.FAIL:
        assert result.fix


ADD_PERMISSION = "Azure > App registrations > (the WICBox app) > API permissions > Add a permission"


@pytest.mark.parametrize(
    ("token", "protocol", "permission_type", "fix"),
    [
        # Microsoft lists the delegated IMAP/SMTP permissions under Microsoft Graph, not Exchange Online
        (
            report_token(OUTLOOK, scp="SMTP.Send"),
            "imap",
            D,
            f"add the delegated permission IMAP.AccessAsUser.All ({ADD_PERMISSION} > Microsoft Graph > "
            'Delegated permissions) and click "Grant admin consent"',
        ),
        (
            report_token(OUTLOOK, scp="IMAP.AccessAsUser.All"),
            "smtp",
            D,
            f"add the delegated permission SMTP.Send ({ADD_PERMISSION} > Microsoft Graph > Delegated "
            'permissions) and click "Grant admin consent"',
        ),
        (
            report_token(GRAPH, scp="Mail.Read"),
            "graph",
            D,
            f"add the delegated permission Mail.ReadWrite ({ADD_PERMISSION} > Microsoft Graph > Delegated "
            'permissions) and click "Grant admin consent"',
        ),
        (
            report_token(OUTLOOK365, roles=["SMTP.SendAsApp"]),
            "imap",
            A,
            "add the Office 365 Exchange Online application permission IMAP.AccessAsApp "
            f"({ADD_PERMISSION} > APIs my organization uses > Office 365 Exchange Online > "
            'Application permissions) and click "Grant admin consent"',
        ),
        (
            report_token(GRAPH, roles=[]),
            "graph",
            A,
            "add the Microsoft Graph application permission Mail.ReadWrite "
            f"({ADD_PERMISSION} > Microsoft Graph > Application permissions) "
            'and click "Grant admin consent"',
        ),
    ],
)
def test_missing_permission_says_which_azure_permission_to_add(
    token: AccessToken, protocol: str, permission_type: PermissionType, fix: str
) -> None:
    result = _checked(token, protocol, permission_type, "wicbox@klant.example")
    assert result.fix == fix


@pytest.mark.parametrize("protocol", ["imap", "smtp"])
def test_application_exchange_check_prints_the_powershell(protocol: str) -> None:
    role = "IMAP.AccessAsApp" if protocol == "imap" else "SMTP.SendAsApp"
    token = report_token(OUTLOOK365, roles=[role])
    result = _checked(token, protocol, A, "project-alpha@klant.example")
    assert result.passed
    assert result.fix is not None
    assert f"New-ServicePrincipal -AppId {CLIENT_ID} -ObjectId {SP_ID}" in result.fix
    assert (
        f"Add-MailboxPermission -Identity project-alpha@klant.example -User {SP_ID} -AccessRights FullAccess"
    ) in result.fix
    assert "New-ServicePrincipal" in result.render()


# -- token providers against the identity-platform emulator ---------------------------------------


@dataclass(frozen=True)
class OwnUser:
    upn: str
    password: str


@pytest.fixture
def platform(
    idp_clean: IdentityPlatformEmulator, idp_directory: SeededDirectory, loopback_pki: LoopbackPki
) -> IdentityPlatform:
    return IdentityPlatform(
        idp_clean.base_url,
        idp_directory.tenant_id,
        idp_directory.public_client_id,
        ca_bundle=loopback_pki.ca_cert,
    )


@pytest.fixture
def app_platform(platform: IdentityPlatform, idp_directory: SeededDirectory) -> IdentityPlatform:
    return dataclasses.replace(platform, client_id=idp_directory.confidential_client_id)


@pytest.fixture
def cache_path(tmp_path: Path) -> Path:
    return tmp_path / "state" / CACHE_FILE_NAME


@pytest.fixture
def own_user(idp: IdentityPlatformEmulator, idp_directory: SeededDirectory) -> OwnUser:
    """A user of this test only (tests change passwords and MFA; the seeded users are shared)."""
    upn = f"tok-{uuid.uuid4().hex[:12]}@klant.example"
    password = f"Pw-{uuid.uuid4().hex}"
    idp.add_user(upn, password, idp_directory.tenant_id)
    return OwnUser(upn, password)


def service_for(platform: IdentityPlatform, cache_path: Path, **kwargs: Any) -> TokenService:
    return TokenService(platform, cache_path, encrypt_cache=False, **kwargs)


def delegated(
    platform: IdentityPlatform, cache_path: Path, user: OwnUser, scopes: tuple[str, ...] = (IMAP_DELEGATED,)
) -> TokenProvider:
    return service_for(platform, cache_path).delegated(scopes, user.upn, Secret(user.password))


def application(
    platform: IdentityPlatform,
    cache_path: Path,
    secret: str,
    scopes: tuple[str, ...] = (EXCHANGE_APPLICATION,),
) -> TokenProvider:
    return service_for(platform, cache_path).application(scopes, Secret(secret))


def grants(idp: IdentityPlatformEmulator) -> list[tuple[str | None, int]]:
    return [(record.grant_type, record.status) for record in idp.request_log.token_requests()]


def test_delegated_token(
    platform: IdentityPlatform, cache_path: Path, own_user: OwnUser, idp_clean: IdentityPlatformEmulator
) -> None:
    token = delegated(platform, cache_path, own_user, (IMAP_DELEGATED, SMTP_DELEGATED))()
    assert not token.from_cache
    assert token.claims["aud"] == "https://outlook.office.com"
    assert str(token.claims["scp"]).split() == ["IMAP.AccessAsUser.All", "SMTP.Send"]
    assert token.claims["upn"] == own_user.upn
    assert token.claims["tid"] == platform.tenant_id
    assert token.expires_at == pytest.approx(time.time() + 3600, abs=30)
    assert grants(idp_clean) == [("password", 200)]
    check = check_token_for_protocol(token, "imap", D, mailbox=own_user.upn, client_id=platform.client_id)
    assert check.status is CheckStatus.OK


def test_application_token(
    app_platform: IdentityPlatform,
    cache_path: Path,
    idp_directory: SeededDirectory,
    idp_clean: IdentityPlatformEmulator,
) -> None:
    token = application(app_platform, cache_path, idp_directory.confidential_client_secret)()
    assert token.claims["aud"] == "https://outlook.office365.com"
    assert token.claims["roles"] == ["IMAP.AccessAsApp", "SMTP.SendAsApp"]
    assert token.claims["oid"] == idp_directory.confidential_client_sp_id
    assert "upn" not in token.claims and "scp" not in token.claims
    assert grants(idp_clean) == [("client_credentials", 200)]
    secret = idp_directory.confidential_client_secret
    graph = application(app_platform, cache_path, secret, (GRAPH_APPLICATION,))()
    assert graph.claims["roles"] == ["Mail.ReadWrite"]


def test_every_mailbox_of_a_run_shares_the_application_provider(
    app_platform: IdentityPlatform,
    cache_path: Path,
    idp_directory: SeededDirectory,
    idp_clean: IdentityPlatformEmulator,
) -> None:
    service = service_for(app_platform, cache_path)
    secret = idp_directory.confidential_client_secret
    first = service.application((EXCHANGE_APPLICATION,), Secret(secret))
    tokens = [service.application((EXCHANGE_APPLICATION,), Secret(secret))() for _ in range(20)]
    assert service.application((EXCHANGE_APPLICATION,), Secret(secret)) is first
    assert len({token.value.reveal() for token in tokens}) == 1
    assert grants(idp_clean) == [("client_credentials", 200)]  # one token for all twenty
    assert service.application((GRAPH_APPLICATION,), Secret(secret)) is not first
    changed = service.application((EXCHANGE_APPLICATION,), Secret("a-new-secret"))
    assert changed is not first  # a changed secret is never answered by the old provider


def test_warm_run_makes_no_request(
    platform: IdentityPlatform,
    app_platform: IdentityPlatform,
    cache_path: Path,
    own_user: OwnUser,
    idp_directory: SeededDirectory,
    idp_clean: IdentityPlatformEmulator,
) -> None:
    secret = idp_directory.confidential_client_secret
    first_user = delegated(platform, cache_path, own_user)()
    first_app = application(app_platform, cache_path, secret)()
    idp_clean.request_log.clear()
    # a new run: new service, new msal apps, everything read back from the files
    warm_user = delegated(platform, cache_path, own_user)()
    warm_app = application(app_platform, cache_path, secret)()
    assert idp_clean.request_log.entries() == ()
    assert warm_user.from_cache and warm_app.from_cache
    assert warm_user.value == first_user.value and warm_app.value == first_app.value


def test_expired_tokens_are_renewed(
    platform: IdentityPlatform,
    app_platform: IdentityPlatform,
    cache_path: Path,
    own_user: OwnUser,
    idp_directory: SeededDirectory,
    idp_clean: IdentityPlatformEmulator,
) -> None:
    idp_clean.token_lifetime = 200  # msal renews tokens with less than 5 minutes left
    delegated(platform, cache_path, own_user)()
    application(app_platform, cache_path, idp_directory.confidential_client_secret)()
    renewed_user = delegated(platform, cache_path, own_user)()
    renewed_app = application(app_platform, cache_path, idp_directory.confidential_client_secret)()
    assert not renewed_user.from_cache and not renewed_app.from_cache
    assert grants(idp_clean) == [
        ("password", 200),
        ("client_credentials", 200),
        ("refresh_token", 200),
        ("client_credentials", 200),
    ]


def test_rotated_refresh_token_is_persisted(
    platform: IdentityPlatform, cache_path: Path, own_user: OwnUser, idp_clean: IdentityPlatformEmulator
) -> None:
    idp_clean.token_lifetime = 200
    for _run in range(3):  # each run a new process-like service reading the file
        delegated(platform, cache_path, own_user)()
    # the emulator refuses a used refresh token: the third run used the second one
    assert grants(idp_clean) == [("password", 200), ("refresh_token", 200), ("refresh_token", 200)]


def test_force_refresh_skips_the_cached_access_token(
    platform: IdentityPlatform,
    app_platform: IdentityPlatform,
    cache_path: Path,
    own_user: OwnUser,
    idp_directory: SeededDirectory,
    idp_clean: IdentityPlatformEmulator,
) -> None:
    user = delegated(platform, cache_path, own_user)
    app = application(app_platform, cache_path, idp_directory.confidential_client_secret)
    first_user, first_app = user(), app()
    assert user(force_refresh=True).value != first_user.value
    assert app(force_refresh=True).value != first_app.value
    assert grants(idp_clean) == [
        ("password", 200),
        ("client_credentials", 200),
        ("refresh_token", 200),
        ("client_credentials", 200),
    ]


def test_revoked_refresh_token_falls_back_to_the_password_once(
    platform: IdentityPlatform, cache_path: Path, own_user: OwnUser, idp_clean: IdentityPlatformEmulator
) -> None:
    idp_clean.token_lifetime = 200
    delegated(platform, cache_path, own_user)()
    idp_clean.revoke_user_sessions(own_user.upn)
    token = delegated(platform, cache_path, own_user)()
    assert not token.from_cache
    assert grants(idp_clean) == [("password", 200), ("refresh_token", 400), ("password", 200)]
    assert idp_clean.request_log.token_requests(grant_type="refresh_token")[0].error_code == 50173


def test_changed_password_fails_when_the_new_one_is_wrong(
    platform: IdentityPlatform, cache_path: Path, own_user: OwnUser, idp_clean: IdentityPlatformEmulator
) -> None:
    delegated(platform, cache_path, own_user)()
    wrong = OwnUser(own_user.upn, own_user.password + "x")
    with pytest.raises(AuthenticationError) as caught:
        delegated(platform, cache_path, wrong)()  # the cached token must not hide the wrong password
    assert caught.value.code == "AADSTS50126"


def test_changed_password_gets_a_new_token(
    platform: IdentityPlatform, cache_path: Path, own_user: OwnUser, idp_clean: IdentityPlatformEmulator
) -> None:
    delegated(platform, cache_path, own_user)()
    changed = OwnUser(own_user.upn, own_user.password + "-nieuw")
    idp_clean.set_password(own_user.upn, changed.password)
    token = delegated(platform, cache_path, changed)()
    assert not token.from_cache
    assert grants(idp_clean) == [("password", 200), ("password", 200)]
    assert delegated(platform, cache_path, changed)().from_cache


def test_changed_client_secret_is_not_hidden_by_the_cache(
    app_platform: IdentityPlatform,
    cache_path: Path,
    idp_directory: SeededDirectory,
    idp_clean: IdentityPlatformEmulator,
) -> None:
    application(app_platform, cache_path, idp_directory.confidential_client_secret)()
    with pytest.raises(AuthenticationError) as caught:
        application(app_platform, cache_path, "Sx~not-the-secret")()
    assert caught.value.code == "AADSTS7000215"


def test_changed_client_id_or_tenant_signs_in_again(
    platform: IdentityPlatform,
    cache_path: Path,
    own_user: OwnUser,
    idp_directory: SeededDirectory,
    idp_clean: IdentityPlatformEmulator,
) -> None:
    other_client = str(uuid.uuid4())
    idp_clean.add_application(
        other_client,
        idp_directory.tenant_id,
        "other",
        public_client_flows=True,
        delegated_consent=idp_directory.delegated_scopes,
    )
    delegated(platform, cache_path, own_user)()
    delegated(dataclasses.replace(platform, client_id=other_client), cache_path, own_user)()
    delegated(
        dataclasses.replace(platform, client_id=other_client, tenant_id="klant.onmicrosoft.com"),
        cache_path,
        own_user,
    )()
    records = idp_clean.request_log.token_requests()
    assert [(r.grant_type, r.client_id, r.status) for r in records] == [
        ("password", platform.client_id, 200),
        ("password", other_client, 200),
        ("password", other_client, 200),
    ]
    cache = open_token_cache(cache_path, encrypt=False)
    accounts = list(cache.search(msal.TokenCache.CredentialType.ACCOUNT))
    assert len(accounts) == 1  # the stale account was removed, not kept next to the new one


# -- errors: each AADSTS code with its fix, exit code 3, and no secret anywhere ---------------------


@dataclass(frozen=True)
class Bed:
    """What the error cases build their providers from."""

    idp: IdentityPlatformEmulator
    directory: SeededDirectory
    platform: IdentityPlatform
    app_platform: IdentityPlatform
    cache_path: Path
    user: OwnUser

    def user_provider(
        self,
        password: str | None = None,
        *,
        upn: str | None = None,
        client_id: str | None = None,
        tenant_id: str | None = None,
    ) -> TokenProvider:
        platform = dataclasses.replace(
            self.platform,
            client_id=client_id or self.platform.client_id,
            tenant_id=tenant_id or self.platform.tenant_id,
        )
        who = OwnUser(upn or self.user.upn, password or self.user.password)
        return delegated(platform, self.cache_path, who)

    def app_provider(
        self,
        secret: str | None = None,
        *,
        client_id: str | None = None,
        scopes: tuple[str, ...] = (EXCHANGE_APPLICATION,),
    ) -> TokenProvider:
        platform = dataclasses.replace(self.app_platform, client_id=client_id or self.app_platform.client_id)
        secret = secret or self.directory.confidential_client_secret
        return application(platform, self.cache_path, secret, scopes)

    def new_app(self, **registration: Any) -> str:
        client_id = str(uuid.uuid4())
        self.idp.add_application(client_id, self.directory.tenant_id, "WICBox test", **registration)
        return client_id


@pytest.fixture
def bed(
    idp_clean: IdentityPlatformEmulator,
    idp_directory: SeededDirectory,
    platform: IdentityPlatform,
    app_platform: IdentityPlatform,
    cache_path: Path,
    own_user: OwnUser,
) -> Bed:
    return Bed(idp_clean, idp_directory, platform, app_platform, cache_path, own_user)


def _public_flows_off(bed: Bed) -> TokenProvider:
    client_id = bed.new_app(public_client_flows=False, delegated_consent=bed.directory.delegated_scopes)
    return bed.user_provider(client_id=client_id)


def _expired_secret(bed: Bed) -> TokenProvider:
    secret = f"Sx~expired-{uuid.uuid4().hex}"
    yesterday = datetime.now(timezone.utc) - timedelta(days=1)
    roles = {"https://outlook.office365.com": ["IMAP.AccessAsApp"]}
    client_id = bed.new_app(secrets={secret: yesterday}, app_roles=roles)
    return bed.app_provider(secret, client_id=client_id)


def _no_consent(bed: Bed) -> TokenProvider:
    return bed.user_provider(client_id=bed.new_app(public_client_flows=True))


def _mfa(policy: str) -> Callable[[Bed], TokenProvider]:
    def build(bed: Bed) -> TokenProvider:
        bed.idp.set_mfa(bed.user.upn, policy)  # type: ignore[arg-type]
        return bed.user_provider()

    return build


ERROR_CASES: dict[str, tuple[Callable[[Bed], TokenProvider], str, str]] = {
    "wrong password": (
        lambda bed: bed.user_provider("Pw-wrong-Geheim"),
        "AADSTS50126",
        "WICBOX_MAILCLIENT_PASSWORD",
    ),
    "public client flows off": (_public_flows_off, "AADSTS7000218", 'turn on "Allow public client flows"'),
    "wrong client secret": (
        lambda bed: bed.app_provider("Sx~wrong-Geheim"),
        "AADSTS7000215",
        "Certificates & secrets, copy its Value",
    ),
    "expired client secret": (_expired_secret, "AADSTS7000222", "Certificates & secrets; enter its Value"),
    "unknown client id": (
        lambda bed: bed.user_provider(client_id=str(uuid.uuid4())),
        "AADSTS700016",
        "check WICBOX_MAILCLIENT_CLIENTID",
    ),
    "unknown tenant": (
        lambda bed: bed.user_provider(tenant_id=str(uuid.uuid4())),
        "AADSTS90002",
        "WICBOX_MAILCLIENT_TENANTID",
    ),
    "consent missing": (_no_consent, "AADSTS65001", "Grant admin consent"),
    "MFA required": (_mfa("required"), "AADSTS50076", "use application permissions"),
    "MFA enrolment": (_mfa("enroll"), "AADSTS50079", "use application permissions"),
    "unknown user": (
        lambda bed: bed.user_provider(upn="niemand@klant.example"),
        "AADSTS50034",
        "check WICBOX_MAILCLIENT_USERNAME",
    ),
    "scope not .default": (
        lambda bed: bed.app_provider(scopes=(IMAP_DELEGATED,)),
        "AADSTS1002012",
        "WICBOX_MAILCLIENT_SCOPE",
    ),
    "scope of two resources": (
        lambda bed: bed.app_provider(scopes=(EXCHANGE_APPLICATION, GRAPH_APPLICATION)),
        "AADSTS70011",
        "WICBOX_MAILCLIENT_SCOPE",
    ),
}


def assert_no_secret(error: BaseException, secrets: list[str]) -> None:
    scan_for_secrets(str(error), repr(error), repr(error.args), str(vars(error)), secrets=secrets)


@pytest.mark.parametrize("case", list(ERROR_CASES))
def test_identity_platform_errors_say_what_to_fix(bed: Bed, case: str) -> None:
    build, code, fix = ERROR_CASES[case]
    provider = build(bed)
    with pytest.raises(AuthenticationError) as caught:
        provider()
    error = caught.value
    assert error.code == code
    assert error.exit_code is ExitCode.AUTHENTICATION
    assert error.fix is not None and fix in error.fix
    assert error.description is not None and error.description.startswith(code)
    assert "Trace ID" not in str(error) and "Correlation ID" not in str(error)
    assert isinstance(error, IdentityPlatformError) and error.support.get("correlation_id")
    assert_no_secret(
        error,
        [
            bed.user.password,
            bed.directory.confidential_client_secret,
            "Pw-wrong-Geheim",
            "Sx~wrong-Geheim",
            "Sx~expired",
        ],
    )


def test_providers_do_not_show_secrets(bed: Bed) -> None:
    service = service_for(bed.platform, bed.cache_path)
    user = service.delegated((IMAP_DELEGATED,), bed.user.upn, Secret(bed.user.password))
    app = service.application((EXCHANGE_APPLICATION,), Secret(bed.directory.confidential_client_secret))
    for shown in (repr(user), repr(app), str(vars(user)), str(vars(app)), repr(service)):
        assert bed.user.password not in shown
        assert bed.directory.confidential_client_secret not in shown


# -- network, TLS, throttling -------------------------------------------------------------------------


def test_configured_ca_bundle_wins_over_the_environment(bed: Bed, monkeypatch: pytest.MonkeyPatch) -> None:
    other_ca = requests.certs.where()  # a real bundle without the test CA
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", other_ca)
    monkeypatch.setenv("CURL_CA_BUNDLE", other_ca)
    assert bed.user_provider()().claims["upn"] == bed.user.upn


def test_tls_failure_names_the_ca_setting(bed: Bed, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", requests.certs.where())
    without_ca = dataclasses.replace(bed.platform, ca_bundle=None)
    with pytest.raises(ConnectionFailure) as caught:
        delegated(without_ca, bed.cache_path, bed.user)()
    assert "WicBoxCaBundle" in str(caught.value)
    assert "the server's certificate could not be verified (unable to get local issuer" in str(caught.value)
    assert caught.value.exit_code is ExitCode.CONNECTION
    foreign_ca = create_loopback_pki(tmp_path / "other-pki").ca_cert
    with pytest.raises(ConnectionFailure, match=r"WicBoxCaBundle is .*ca\.pem"):
        delegated(dataclasses.replace(bed.platform, ca_bundle=foreign_ca), bed.cache_path, bed.user)()


def test_missing_ca_bundle_file_is_a_parameter_error(bed: Bed, tmp_path: Path) -> None:
    missing = dataclasses.replace(bed.platform, ca_bundle=tmp_path / "missing.pem")
    with pytest.raises(ParameterError, match="WicBoxCaBundle"):
        delegated(missing, bed.cache_path, bed.user)()


def test_unreachable_identity_platform(bed: Bed, testbed_ip: str) -> None:
    with socket.socket() as probe:  # a port of the test address that nobody listens on
        probe.bind((testbed_ip, 0))
        port = probe.getsockname()[1]
    closed = dataclasses.replace(bed.platform, authority_host=f"https://{testbed_ip}:{port}")
    with pytest.raises(ConnectionFailure, match=f"Cannot reach the identity platform {testbed_ip}"):
        delegated(closed, bed.cache_path, bed.user)()


def test_dropped_token_request_is_a_connection_failure(bed: Bed) -> None:
    bed.idp.drop_token_requests(1)
    with pytest.raises(ConnectionFailure):
        bed.user_provider()()


@pytest.mark.parametrize("fault", ["throttle", "unavailable"])
def test_throttling_waits_retry_after_and_retries(bed: Bed, fault: str) -> None:
    if fault == "throttle":
        bed.idp.throttle_token_requests(2, retry_after=1)
    else:
        bed.idp.fail_token_requests(1, status=503)
    waits = RecordedWaits()
    service = service_for(bed.platform, bed.cache_path, sleep=waits)
    provider = service.delegated((IMAP_DELEGATED,), bed.user.upn, Secret(bed.user.password))
    assert provider().claims["upn"] == bed.user.upn
    statuses = [record.status for record in bed.idp.request_log.token_requests()]
    assert statuses == ([429, 429, 200] if fault == "throttle" else [503, 200])
    assert waits == ([1.0, 1.0] if fault == "throttle" else [1.0])


def test_throttling_beyond_the_bound_gives_up_without_waiting(bed: Bed) -> None:
    bed.idp.throttle_token_requests(1, retry_after=120)
    waits = RecordedWaits()
    service = service_for(bed.app_platform, bed.cache_path, sleep=waits)
    with pytest.raises(ConnectionFailure, match=r"busy \(HTTP 429\); it asks to wait 120 s"):
        service.application((EXCHANGE_APPLICATION,), Secret(bed.directory.confidential_client_secret))()
    assert waits == []  # 120 s is beyond the bound: it says so at once


# -- the persisted cache shared by processes; the entry point from Parameters ------------------------

CONCURRENT_RUN = """
import json, sys
from pathlib import Path
from wicbox_bridge.adapters.identity import IdentityPlatform, TokenService
from wicbox_bridge.secret import Secret
job = json.loads(sys.stdin.read())
platform = IdentityPlatform(job["base_url"], job["tenant"], job["client_id"], ca_bundle=Path(job["ca"]))
for _ in range(job["rounds"]):
    service = TokenService(platform, Path(job["cache"]), encrypt_cache=False)
    provider = service.delegated((job["scope"],), job["upn"], Secret(job["password"]))
    assert provider(force_refresh=True).claims["upn"] == job["upn"]
    service.close()
"""


def test_two_processes_share_the_cache(bed: Bed, loopback_pki: LoopbackPki) -> None:
    bed.user_provider()()  # the account is in the cache; every round below refreshes (and rotates)
    job = json.dumps(
        {
            "base_url": bed.platform.base_url,
            "tenant": bed.platform.tenant_id,
            "client_id": bed.platform.client_id,
            "ca": str(loopback_pki.ca_cert),
            "cache": str(bed.cache_path),
            "rounds": 6,
            "scope": IMAP_DELEGATED,
            "upn": bed.user.upn,
            "password": bed.user.password,
        }
    )
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", CONCURRENT_RUN],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    outputs = [worker.communicate(job, timeout=120) for worker in workers]
    assert [worker.returncode for worker in workers] == [0, 0], outputs
    assert len(bed.idp.request_log.token_requests(status=200)) >= 13
    json.loads(bed.cache_path.read_text())  # not torn
    bed.idp.request_log.clear()
    assert bed.user_provider()().from_cache
    assert bed.idp.request_log.entries() == ()
    bed.user_provider()(force_refresh=True)  # the refresh token left in the file is the live one
    assert grants(bed.idp) == [("refresh_token", 200)]


def test_state_files_are_owner_only(bed: Bed) -> None:
    bed.user_provider()()
    for name in (CACHE_FILE_NAME, FINGERPRINTS_FILE_NAME, DISCOVERY_CACHE_FILE_NAME):
        assert stat.S_IMODE((bed.cache_path.parent / name).stat().st_mode) == 0o600, name
    assert stat.S_IMODE(bed.cache_path.parent.stat().st_mode) == 0o700
    assert bed.user.password not in (bed.cache_path.parent / FINGERPRINTS_FILE_NAME).read_text()


def test_ropc_deprecation_warning_is_silenced_and_others_are_not(bed: Bed) -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        bed.user_provider()()
        warnings.warn("an unrelated deprecation", DeprecationWarning, stacklevel=1)
    messages = [str(warning.message) for warning in caught]
    assert not [message for message in messages if "deprecated for public client flows" in message]
    assert "an unrelated deprecation" in messages


def wicman_parameters(
    bed: Bed,
    loopback_pki: LoopbackPki,
    *,
    scope: str = "",
    secret: str | None = None,
    password: str | None = None,
) -> Parameters:
    client_id = bed.directory.confidential_client_id if secret else bed.directory.public_client_id
    return Parameters(
        scope=scope,
        client_id=client_id,
        client_secret=Secret(secret) if secret else None,
        tenant_id=bed.directory.tenant_id,
        username=bed.user.upn,
        password=None if secret or password == "" else Secret(password or bed.user.password),
        account_mode=AccountMode.SINGLE,
        method=AuthMethod.OAUTH2,
        protocol=MailProtocol.AUTO,
        authority_host=bed.idp.base_url,
        imap=Endpoint("outlook.office365.com", 993, TlsMode.IMPLICIT),
        smtp=Endpoint("smtp.office365.com", 587, TlsMode.STARTTLS),
        graph_url="https://graph.microsoft.com",
        ca_bundle=loopback_pki.ca_cert,
        source_folder="INBOX",
        after_process=AfterProcess.MOVE,
        processed_folder="Verwerkt",
        failed_folder="Mislukt",
        workers=1,
    )


@pytest.mark.parametrize(
    ("scope", "application_permissions", "protocol", "audience", "permission"),
    [
        ("", False, "imap", "https://outlook.office.com", "IMAP.AccessAsUser.All"),
        ("Mail.ReadWrite", False, "smtp", "https://outlook.office.com", "SMTP.Send"),
        ("Mail.ReadWrite", False, "graph", "https://graph.microsoft.com", "Mail.ReadWrite"),
        ("", True, "imap", "https://outlook.office365.com", "IMAP.AccessAsApp"),
        ("Mail.ReadWrite", True, "smtp", "https://outlook.office365.com", "SMTP.SendAsApp"),
        ("Mail.ReadWrite", True, "graph", "https://graph.microsoft.com", "Mail.ReadWrite"),
    ],
)
def test_token_for_protocol_from_parameters(
    bed: Bed,
    loopback_pki: LoopbackPki,
    scope: str,
    application_permissions: bool,
    protocol: str,
    audience: str,
    permission: str,
) -> None:
    secret = bed.directory.confidential_client_secret if application_permissions else None
    params = wicman_parameters(bed, loopback_pki, scope=scope, secret=secret)
    provider = build_token_provider(params, protocol, cache_path=bed.cache_path)  # type: ignore[arg-type]
    token = provider()
    assert token.claims["aud"] == audience
    granted = token.claims["roles"] if application_permissions else str(token.claims["scp"]).split()
    assert permission in granted  # type: ignore[operator]


def test_multiple_mode_signs_in_a_projects_own_mailbox(bed: Bed, loopback_pki: LoopbackPki) -> None:
    project = bed.directory.project_users[0]
    service = TokenService.from_parameters(
        wicman_parameters(bed, loopback_pki), bed.cache_path, encrypt_cache=False
    )
    provider = service.for_protocol(
        wicman_parameters(bed, loopback_pki), "imap", username=project.upn, password=Secret(project.password)
    )
    assert provider().claims["upn"] == project.upn


def test_empty_password_with_delegated_permissions_needs_a_saved_sign_in(
    bed: Bed, loopback_pki: LoopbackPki
) -> None:
    params = wicman_parameters(bed, loopback_pki, password="")
    provider = build_token_provider(params, "imap", cache_path=bed.cache_path)
    with pytest.raises(AuthenticationError, match="sign-in needed: no sign-in is saved") as needed:
        provider()
    assert needed.value.exit_code is ExitCode.AUTHENTICATION
    assert "wicbox signin" in (needed.value.fix or "")


def test_proxies_come_from_https_proxy_and_no_proxy(tmp_path: Path) -> None:
    platform = IdentityPlatform("https://login.microsoftonline.com", "t", "c")
    env = {
        "HTTPS_PROXY": "http://proxy.klant.example:3128",
        "NO_PROXY": "localhost,.intern.klant.example",
        "REQUESTS_CA_BUNDLE": str(tmp_path / "env.pem"),
    }
    client = IdentityHttpClient(platform, env=env)
    assert client._proxies("https://login.microsoftonline.com/t") == {
        "https": "http://proxy.klant.example:3128"
    }
    assert client._proxies("https://sts.intern.klant.example/t") == {}
    assert client.session.trust_env is False
    assert client.session.verify == str(tmp_path / "env.pem")  # no CA configured: the environment's


def test_configured_ca_bundle_is_what_requests_verifies_with(tmp_path: Path) -> None:
    bundle = tmp_path / "corporate-ca.pem"
    bundle.write_text("-----BEGIN CERTIFICATE-----\n")
    env = {"REQUESTS_CA_BUNDLE": "elsewhere.pem", "CURL_CA_BUNDLE": "elsewhere.pem"}
    assert tls_verify_setting(bundle, env) == str(bundle)
    assert tls_verify_setting(None, {"CURL_CA_BUNDLE": "curl.pem"}) == "curl.pem"
    assert tls_verify_setting(None, {}) is True
