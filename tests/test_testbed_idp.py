"""The identity-platform emulator, driven by the real msal over HTTPS (and by plain requests)."""

from __future__ import annotations

import base64
import json
import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import jwt
import msal
import pytest
import requests

from tools.testbed.idp import IdentityPlatformEmulator, SeededDirectory
from tools.testbed.idp_errors import AadError
from tools.testbed.idp_model import utc_now
from tools.testbed.idp_scopes import application_scopes, delegated_scopes

pytestmark = [
    pytest.mark.testbed,
    # acquire_token_by_username_password warns that Microsoft discourages the password grant.
    pytest.mark.filterwarnings("ignore:This API has been deprecated:DeprecationWarning"),
]

IMAP_DELEGATED = "https://outlook.office.com/IMAP.AccessAsUser.All"
SMTP_DELEGATED = "https://outlook.office.com/SMTP.Send"
GRAPH_DELEGATED = "https://graph.microsoft.com/Mail.ReadWrite"
EXCHANGE_APP = "https://outlook.office365.com/.default"
GRAPH_APP = "https://graph.microsoft.com/.default"
TOKEN_PATH = "/{tenant}/oauth2/v2.0/token"


# -- helpers -------------------------------------------------------------------------------------
def public_app(
    idp: IdentityPlatformEmulator, session: requests.Session, client_id: str, tenant: str, **kwargs: Any
) -> msal.PublicClientApplication:
    return msal.PublicClientApplication(
        client_id, authority=idp.authority(tenant), http_client=session, instance_discovery=False, **kwargs
    )


def confidential_app(
    idp: IdentityPlatformEmulator, session: requests.Session, client_id: str, secret: str, tenant: str
) -> msal.ConfidentialClientApplication:
    return msal.ConfidentialClientApplication(
        client_id,
        client_credential=secret,
        authority=idp.authority(tenant),
        http_client=session,
        instance_discovery=False,
    )


def mailbox_app(
    idp: IdentityPlatformEmulator, session: requests.Session, directory: SeededDirectory, **kwargs: Any
) -> msal.PublicClientApplication:
    return public_app(idp, session, directory.public_client_id, directory.tenant_id, **kwargs)


def mailbox_sign_in(
    app: msal.PublicClientApplication, directory: SeededDirectory, scopes: list[str]
) -> dict[str, Any]:
    result: dict[str, Any] = app.acquire_token_by_username_password(
        directory.mailbox.upn, directory.mailbox.password, scopes
    )
    assert "access_token" in result, result.get("error_description")
    return result


def service_app(
    idp: IdentityPlatformEmulator, session: requests.Session, directory: SeededDirectory
) -> msal.ConfidentialClientApplication:
    return confidential_app(
        idp,
        session,
        directory.confidential_client_id,
        directory.confidential_client_secret,
        directory.tenant_id,
    )


def verified_claims(
    idp: IdentityPlatformEmulator, session: requests.Session, token: str, *, audience: str, issuer: str
) -> dict[str, Any]:
    """Claims of ``token`` after checking its RS256 signature against the emulator's JWKS."""
    keys = jwt.PyJWKSet.from_dict(session.get(idp.jwks_uri("common"), timeout=5).json())
    key = next(k for k in keys.keys if k.key_id == jwt.get_unverified_header(token)["kid"])
    claims: dict[str, Any] = jwt.decode(token, key, algorithms=["RS256"], audience=audience, issuer=issuer)
    return claims


def sts_issuer(tenant_id: str) -> str:
    return f"https://sts.windows.net/{tenant_id}/"


def cached_refresh_token(app: msal.ClientApplication) -> str:
    (entry,) = app.token_cache.search(msal.TokenCache.CredentialType.REFRESH_TOKEN)
    secret: str = entry["secret"]
    return secret


def post_token(
    idp: IdentityPlatformEmulator,
    session: requests.Session,
    tenant: str,
    data: dict[str, str],
    headers: dict[str, str] | None = None,
) -> requests.Response:
    return session.post(
        idp.base_url + TOKEN_PATH.format(tenant=tenant), data=data, headers=headers, timeout=5
    )


def client_credentials_form(directory: SeededDirectory) -> dict[str, str]:
    return {
        "grant_type": "client_credentials",
        "client_id": directory.confidential_client_id,
        "client_secret": directory.confidential_client_secret,
        "scope": EXCHANGE_APP,
    }


def new_user(idp: IdentityPlatformEmulator, directory: SeededDirectory, **kwargs: Any) -> tuple[str, str]:
    upn, password = f"test-{uuid.uuid4().hex[:10]}@klant.example", f"Pw-{uuid.uuid4().hex}"
    idp.add_user(upn, password, directory.tenant_id, **kwargs)
    return upn, password


# -- delegated and application tokens ----------------------------------------------------------
@pytest.mark.parametrize("tenant", ["5f1c7d2e-8b4a-4c3e-9a6f-2d7e1b0c9a41", "klant.example", "organizations"])
def test_password_grant_issues_delegated_token(
    idp_clean: IdentityPlatformEmulator,
    idp_directory: SeededDirectory,
    idp_http_session: requests.Session,
    tenant: str,
) -> None:
    app = public_app(idp_clean, idp_http_session, idp_directory.public_client_id, tenant)
    result = mailbox_sign_in(app, idp_directory, [IMAP_DELEGATED, SMTP_DELEGATED])

    claims = verified_claims(
        idp_clean,
        idp_http_session,
        result["access_token"],
        audience="https://outlook.office.com",
        issuer=sts_issuer(idp_directory.tenant_id),
    )
    assert set(claims["scp"].split()) == {"IMAP.AccessAsUser.All", "SMTP.Send"}
    assert claims["upn"] == claims["unique_name"] == idp_directory.mailbox.upn
    assert claims["oid"] == idp_directory.mailbox.object_id
    assert (claims["tid"], claims["appid"], claims["ver"]) == (
        idp_directory.tenant_id,
        idp_directory.public_client_id,
        "1.0",
    )
    assert claims["app_displayname"] == idp_directory.public_client_name
    assert claims["exp"] - claims["iat"] == 3600
    assert not {"roles", "azp"} & set(claims)
    assert result["token_type"] == "Bearer"
    assert {IMAP_DELEGATED, SMTP_DELEGATED} <= set(result["scope"].split())
    assert result["refresh_token"]
    assert idp_clean.request_log.token_requests(grant_type="password", status=200)


def test_id_token_and_client_info_identify_the_user(
    idp_clean: IdentityPlatformEmulator, idp_directory: SeededDirectory, idp_http_session: requests.Session
) -> None:
    result = mailbox_sign_in(
        mailbox_app(idp_clean, idp_http_session, idp_directory), idp_directory, [GRAPH_DELEGATED]
    )

    claims = verified_claims(
        idp_clean,
        idp_http_session,
        result["id_token"],
        audience=idp_directory.public_client_id,
        issuer=f"https://login.microsoftonline.com/{idp_directory.tenant_id}/v2.0",
    )
    mailbox = idp_directory.mailbox
    assert (claims["oid"], claims["tid"]) == (mailbox.object_id, idp_directory.tenant_id)
    assert (claims["preferred_username"], claims["name"]) == (mailbox.upn, mailbox.display_name)
    assert claims["sub"]
    padded = result["client_info"] + "=" * (-len(result["client_info"]) % 4)
    assert json.loads(base64.urlsafe_b64decode(padded)) == {
        "uid": mailbox.object_id,
        "utid": idp_directory.tenant_id,
    }


@pytest.mark.parametrize(
    ("scope", "audience", "roles"),
    [
        (EXCHANGE_APP, "https://outlook.office365.com", ["IMAP.AccessAsApp", "SMTP.SendAsApp"]),
        (GRAPH_APP, "https://graph.microsoft.com", ["Mail.ReadWrite"]),
    ],
)
def test_client_credentials_issue_application_token(
    idp_clean: IdentityPlatformEmulator,
    idp_directory: SeededDirectory,
    idp_http_session: requests.Session,
    scope: str,
    audience: str,
    roles: list[str],
) -> None:
    result = service_app(idp_clean, idp_http_session, idp_directory).acquire_token_for_client([scope])

    assert result["token_type"] == "Bearer", result.get("error_description")
    claims = verified_claims(
        idp_clean,
        idp_http_session,
        result["access_token"],
        audience=audience,
        issuer=sts_issuer(idp_directory.tenant_id),
    )
    assert claims["roles"] == roles
    assert claims["oid"] == claims["sub"] == idp_directory.confidential_client_sp_id
    assert claims["appid"] == idp_directory.confidential_client_id
    assert not {"upn", "scp", "azp"} & set(claims)


def test_application_without_roles_gets_token_without_roles_claim(
    idp_clean: IdentityPlatformEmulator, idp_directory: SeededDirectory, idp_http_session: requests.Session
) -> None:
    secret = uuid.uuid4().hex
    app = idp_clean.add_application(
        str(uuid.uuid4()),
        idp_directory.tenant_id,
        "No roles",
        secrets={secret: utc_now() + timedelta(days=1)},
    )
    result = confidential_app(
        idp_clean, idp_http_session, app.client_id, secret, idp_directory.tenant_id
    ).acquire_token_for_client([EXCHANGE_APP])

    claims = verified_claims(
        idp_clean,
        idp_http_session,
        result["access_token"],
        audience="https://outlook.office365.com",
        issuer=sts_issuer(idp_directory.tenant_id),
    )
    assert "roles" not in claims
    assert claims["oid"] == app.service_principal_id


# -- cache reuse, expiry, refresh-token rotation and revocation ----------------------------------
def test_silent_reuse_from_msal_cache_makes_no_token_request(
    idp_clean: IdentityPlatformEmulator, idp_directory: SeededDirectory, idp_http_session: requests.Session
) -> None:
    delegated = mailbox_app(idp_clean, idp_http_session, idp_directory)
    first = mailbox_sign_in(delegated, idp_directory, [IMAP_DELEGATED])
    service = service_app(idp_clean, idp_http_session, idp_directory)
    service.acquire_token_for_client([EXCHANGE_APP])
    idp_clean.request_log.clear()

    (account,) = delegated.get_accounts(username=idp_directory.mailbox.upn)
    again = delegated.acquire_token_silent([IMAP_DELEGATED], account)
    app_again = service.acquire_token_for_client([EXCHANGE_APP])

    assert again is not None
    assert again["access_token"] == first["access_token"]
    assert (again["token_source"], app_again["token_source"]) == ("cache", "cache")
    assert idp_clean.request_log.count() == 0


def test_short_lifetime_leads_to_refresh_with_rotation(
    idp_clean: IdentityPlatformEmulator, idp_directory: SeededDirectory, idp_http_session: requests.Session
) -> None:
    idp_clean.token_lifetime = 120  # under msal's 300 s margin: the cached token counts as expired
    app = mailbox_app(idp_clean, idp_http_session, idp_directory)
    first = mailbox_sign_in(app, idp_directory, [IMAP_DELEGATED])
    original_refresh_token = cached_refresh_token(app)
    idp_clean.request_log.clear()

    (account,) = app.get_accounts(username=idp_directory.mailbox.upn)
    refreshed = app.acquire_token_silent([IMAP_DELEGATED], account)

    assert refreshed is not None
    assert refreshed["access_token"] != first["access_token"]
    assert idp_clean.request_log.count(grant_type="refresh_token", status=200) == 1
    assert cached_refresh_token(app) != original_refresh_token


def test_used_refresh_token_is_rejected(
    idp_clean: IdentityPlatformEmulator, idp_directory: SeededDirectory, idp_http_session: requests.Session
) -> None:
    app = mailbox_app(idp_clean, idp_http_session, idp_directory)
    mailbox_sign_in(app, idp_directory, [IMAP_DELEGATED])
    used = cached_refresh_token(app)
    assert "access_token" in app.acquire_token_by_refresh_token(used, [IMAP_DELEGATED])

    again = app.acquire_token_by_refresh_token(used, [IMAP_DELEGATED])
    unknown = app.acquire_token_by_refresh_token("0.A" + "x" * 40, [IMAP_DELEGATED])

    assert (again["error"], again["error_codes"]) == ("invalid_grant", [70000])
    assert (unknown["error"], unknown["error_codes"]) == ("invalid_grant", [70000])


def test_client_that_lost_the_rotated_refresh_token_gets_invalid_grant(
    idp_clean: IdentityPlatformEmulator, idp_directory: SeededDirectory, idp_http_session: requests.Session
) -> None:
    idp_clean.token_lifetime = 120
    cache = msal.SerializableTokenCache()
    app = mailbox_app(idp_clean, idp_http_session, idp_directory, token_cache=cache)
    mailbox_sign_in(app, idp_directory, [IMAP_DELEGATED])
    stale_state = cache.serialize()  # what a client that never saves the rotation still has
    (account,) = app.get_accounts()
    assert app.acquire_token_silent([IMAP_DELEGATED], account) is not None

    stale_cache = msal.SerializableTokenCache()
    stale_cache.deserialize(stale_state)
    stale_app = mailbox_app(idp_clean, idp_http_session, idp_directory, token_cache=stale_cache)
    (stale_account,) = stale_app.get_accounts()
    result = stale_app.acquire_token_silent_with_error([IMAP_DELEGATED], stale_account)

    assert result is not None
    assert (result["error"], result["error_codes"]) == ("invalid_grant", [70000])


@pytest.mark.parametrize(
    "revoke",
    [
        lambda idp, upn: idp.revoke_user_sessions(upn),
        lambda idp, upn: idp.set_password(upn, "New-" + uuid.uuid4().hex),
    ],
    ids=["revoke_user_sessions", "set_password"],
)
def test_revoked_sessions_refuse_refresh_with_50173(
    idp_clean: IdentityPlatformEmulator,
    idp_directory: SeededDirectory,
    idp_http_session: requests.Session,
    revoke: Callable[[IdentityPlatformEmulator, str], None],
) -> None:
    upn, password = new_user(idp_clean, idp_directory)
    app = mailbox_app(idp_clean, idp_http_session, idp_directory)
    assert "access_token" in app.acquire_token_by_username_password(upn, password, [IMAP_DELEGATED])
    revoke(idp_clean, upn)

    (account,) = app.get_accounts(username=upn)
    result = app.acquire_token_silent_with_error([IMAP_DELEGATED], account, force_refresh=True)

    assert result is not None
    assert (result["error"], result["error_codes"]) == ("invalid_grant", [50173])
    assert "The user might have changed or reset their password" in result["error_description"]


# -- error replies ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class ErrorCase:
    error: str
    code: int
    status: int
    attempt: Callable[[IdentityPlatformEmulator, SeededDirectory, requests.Session], dict[str, Any]]


def _password_attempt(
    client_id: Callable[[SeededDirectory], str],
    upn: Callable[[SeededDirectory], str],
    password: Callable[[SeededDirectory], str],
    scopes: list[str],
) -> Callable[..., dict[str, Any]]:
    def attempt(
        idp: IdentityPlatformEmulator, directory: SeededDirectory, session: requests.Session
    ) -> dict[str, Any]:
        app = public_app(idp, session, client_id(directory), directory.tenant_id)
        result: dict[str, Any] = app.acquire_token_by_username_password(
            upn(directory), password(directory), scopes
        )
        return result

    return attempt


def _client_attempt(
    scopes: list[str], secret: Callable[[SeededDirectory], str] = lambda d: d.confidential_client_secret
) -> Callable[..., dict[str, Any]]:
    def attempt(
        idp: IdentityPlatformEmulator, directory: SeededDirectory, session: requests.Session
    ) -> dict[str, Any]:
        app = confidential_app(
            idp, session, directory.confidential_client_id, secret(directory), directory.tenant_id
        )
        result: dict[str, Any] = app.acquire_token_for_client(scopes)
        return result

    return attempt


def _mfa_attempt(mfa: str) -> Callable[..., dict[str, Any]]:
    def attempt(
        idp: IdentityPlatformEmulator, directory: SeededDirectory, session: requests.Session
    ) -> dict[str, Any]:
        upn, password = new_user(idp, directory, mfa=mfa)
        app = public_app(idp, session, directory.public_client_id, directory.tenant_id)
        result: dict[str, Any] = app.acquire_token_by_username_password(upn, password, [IMAP_DELEGATED])
        return result

    return attempt


def _expired_secret_attempt(
    idp: IdentityPlatformEmulator, directory: SeededDirectory, session: requests.Session
) -> dict[str, Any]:
    secret = uuid.uuid4().hex
    app = idp.add_application(
        str(uuid.uuid4()),
        directory.tenant_id,
        "Expired secret",
        secrets={secret: utc_now() - timedelta(days=1)},
        app_roles={"https://outlook.office365.com": {"IMAP.AccessAsApp"}},
    )
    result: dict[str, Any] = confidential_app(
        idp, session, app.client_id, secret, directory.tenant_id
    ).acquire_token_for_client([EXCHANGE_APP])
    return result


def _public_client(d: SeededDirectory) -> str:
    return d.public_client_id


def _mailbox(d: SeededDirectory) -> str:
    return d.mailbox.upn


def _mailbox_password(d: SeededDirectory) -> str:
    return d.mailbox.password


ERROR_CASES = {
    "50126 wrong password": ErrorCase(
        "invalid_grant",
        50126,
        400,
        _password_attempt(_public_client, _mailbox, lambda d: "wrong", [IMAP_DELEGATED]),
    ),
    "50034 unknown user": ErrorCase(
        "invalid_grant",
        50034,
        400,
        _password_attempt(_public_client, lambda d: "nobody@klant.example", lambda d: "x", [IMAP_DELEGATED]),
    ),
    "7000218 public client flows disabled": ErrorCase(
        "invalid_client",
        7000218,
        401,
        _password_attempt(lambda d: d.confidential_client_id, _mailbox, _mailbox_password, [IMAP_DELEGATED]),
    ),
    "700016 unknown application": ErrorCase(
        "unauthorized_client",
        700016,
        400,
        _password_attempt(lambda d: str(uuid.uuid4()), _mailbox, _mailbox_password, [IMAP_DELEGATED]),
    ),
    "65001 no consent": ErrorCase(
        "invalid_grant",
        65001,
        400,
        _password_attempt(
            _public_client, _mailbox, _mailbox_password, ["https://graph.microsoft.com/Calendars.Read"]
        ),
    ),
    "28000 delegated scopes of two resources": ErrorCase(
        "invalid_scope",
        28000,
        400,
        _password_attempt(_public_client, _mailbox, _mailbox_password, [IMAP_DELEGATED, GRAPH_DELEGATED]),
    ),
    "50076 MFA required": ErrorCase("invalid_grant", 50076, 400, _mfa_attempt("required")),
    "50079 MFA enrollment required": ErrorCase("invalid_grant", 50079, 400, _mfa_attempt("enroll")),
    "7000215 wrong client secret": ErrorCase(
        "invalid_client", 7000215, 401, _client_attempt([EXCHANGE_APP], lambda d: "not-the-secret")
    ),
    "7000222 expired client secret": ErrorCase("invalid_client", 7000222, 401, _expired_secret_attempt),
    "1002012 client credentials without /.default": ErrorCase(
        "invalid_scope", 1002012, 400, _client_attempt(["https://outlook.office365.com/IMAP.AccessAsApp"])
    ),
    "70011 application scopes of two resources": ErrorCase(
        "invalid_scope", 70011, 400, _client_attempt([EXCHANGE_APP, GRAPH_APP])
    ),
    "500011 unknown resource": ErrorCase(
        "invalid_resource", 500011, 400, _client_attempt(["https://api.example.org/.default"])
    ),
}


@pytest.mark.parametrize("case", ERROR_CASES.values(), ids=ERROR_CASES.keys())
def test_error_reaches_msal_with_microsofts_code(
    idp_clean: IdentityPlatformEmulator,
    idp_directory: SeededDirectory,
    idp_http_session: requests.Session,
    case: ErrorCase,
) -> None:
    result = case.attempt(idp_clean, idp_directory, idp_http_session)

    assert (result.get("error"), result.get("error_codes")) == (case.error, [case.code])
    assert re.match(
        rf"AADSTS{case.code}: \S.*\r\nTrace ID: \S+\r\nCorrelation ID: \S+\r\nTimestamp: ",
        result["error_description"],
        re.DOTALL,
    )
    (record,) = idp_clean.request_log.token_requests()
    assert (record.status, record.error, record.error_code) == (case.status, case.error, case.code)


def test_unknown_tenant_is_refused_at_discovery_and_token_endpoint(
    idp_clean: IdentityPlatformEmulator, idp_directory: SeededDirectory, idp_http_session: requests.Session
) -> None:
    with pytest.raises(ValueError, match="Unable to get authority configuration") as raised:
        public_app(idp_clean, idp_http_session, idp_directory.public_client_id, "contoso.example")
    assert "AADSTS90002: Tenant 'contoso.example' not found" in str(raised.value.__context__)

    discovery = idp_http_session.get(
        idp_clean.authority("contoso.example") + "/v2.0/.well-known/openid-configuration", timeout=5
    )
    token = post_token(idp_clean, idp_http_session, "contoso.example", client_credentials_form(idp_directory))
    assert (discovery.status_code, discovery.json()["error"], discovery.json()["error_codes"]) == (
        400,
        "invalid_tenant",
        [90002],
    )
    assert (token.status_code, token.json()["error_codes"]) == (400, [90002])


def test_error_reply_has_microsofts_shape(
    idp_clean: IdentityPlatformEmulator, idp_directory: SeededDirectory, idp_http_session: requests.Session
) -> None:
    form = dict(client_credentials_form(idp_directory), client_secret="wrong")
    correlation_id = str(uuid.uuid4())
    reply = post_token(
        idp_clean, idp_http_session, idp_directory.tenant_id, form, {"client-request-id": correlation_id}
    )

    body = reply.json()
    assert reply.status_code == 401
    assert set(body) == {
        "error",
        "error_description",
        "error_codes",
        "timestamp",
        "trace_id",
        "correlation_id",
        "error_uri",
    }
    assert body["correlation_id"] == correlation_id == reply.headers["client-request-id"]
    assert body["error_uri"] == "https://login.microsoftonline.com/error?code=7000215"
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ", body["timestamp"])
    assert body["error_description"].endswith(
        f"Correlation ID: {correlation_id}\r\nTimestamp: {body['timestamp']}"
    )


# -- fault injection -------------------------------------------------------------------------------
def test_throttling_answers_429_with_retry_after(
    idp_clean: IdentityPlatformEmulator, idp_directory: SeededDirectory, idp_http_session: requests.Session
) -> None:
    idp_clean.throttle_token_requests(1, retry_after=7)
    form = client_credentials_form(idp_directory)

    throttled = post_token(idp_clean, idp_http_session, idp_directory.tenant_id, form)
    after = post_token(idp_clean, idp_http_session, idp_directory.tenant_id, form)

    assert (throttled.status_code, throttled.headers["Retry-After"]) == (429, "7")
    assert after.status_code == 200
    assert [r.status for r in idp_clean.request_log.token_requests()] == [429, 200]
    assert idp_clean.request_log.count(fault="throttle") == 1


def test_msal_raises_on_throttling_and_holds_back_for_retry_after(
    idp_clean: IdentityPlatformEmulator, idp_directory: SeededDirectory, idp_http_session: requests.Session
) -> None:
    """Documents msal 1.x: the plain-text 429 raises ValueError, and msal answers repeats itself."""
    idp_clean.throttle_token_requests(1, retry_after=30)
    app = service_app(idp_clean, idp_http_session, idp_directory)

    for _attempt in range(2):
        with pytest.raises(ValueError):
            app.acquire_token_for_client([EXCHANGE_APP])

    assert len(idp_clean.request_log.token_requests()) == 1


def test_server_error_dropped_connection_and_delay(
    idp_clean: IdentityPlatformEmulator, idp_directory: SeededDirectory, idp_http_session: requests.Session
) -> None:
    form = client_credentials_form(idp_directory)
    idp_clean.fail_token_requests(1)
    idp_clean.drop_token_requests(1)

    unavailable = post_token(idp_clean, idp_http_session, idp_directory.tenant_id, form)
    with pytest.raises(requests.ConnectionError):
        post_token(idp_clean, idp_http_session, idp_directory.tenant_id, form)
    idp_clean.set_token_delay(0.3)
    started = time.monotonic()
    delayed = post_token(idp_clean, idp_http_session, idp_directory.tenant_id, form)

    assert unavailable.status_code == 503
    assert (delayed.status_code, time.monotonic() - started >= 0.3) == (200, True)
    assert [(r.status, r.fault) for r in idp_clean.request_log.token_requests()] == [
        (503, "unavailable"),
        (0, "drop"),
        (200, None),
    ]


# -- discovery, keys, user realm ---------------------------------------------------------------------
@pytest.mark.parametrize(
    ("tenant", "path_tenant"),
    [
        ("5f1c7d2e-8b4a-4c3e-9a6f-2d7e1b0c9a41", "5f1c7d2e-8b4a-4c3e-9a6f-2d7e1b0c9a41"),
        ("klant.onmicrosoft.com", "5f1c7d2e-8b4a-4c3e-9a6f-2d7e1b0c9a41"),
        ("organizations", "organizations"),
    ],
)
def test_discovery_document_points_at_the_emulator(
    idp_clean: IdentityPlatformEmulator, idp_http_session: requests.Session, tenant: str, path_tenant: str
) -> None:
    reply = idp_http_session.get(
        idp_clean.authority(tenant) + "/v2.0/.well-known/openid-configuration", timeout=5
    )

    document = reply.json()
    root = f"{idp_clean.base_url}/{path_tenant}"
    assert reply.status_code == 200
    assert document["token_endpoint"] == f"{root}/oauth2/v2.0/token"
    assert document["authorization_endpoint"] == f"{root}/oauth2/v2.0/authorize"
    assert document["device_authorization_endpoint"] == f"{root}/oauth2/v2.0/devicecode"
    assert document["jwks_uri"] == f"{root}/discovery/v2.0/keys"
    assert document["issuer"].startswith("https://login.microsoftonline.com/")


def test_jwks_publishes_the_signing_key(
    idp_clean: IdentityPlatformEmulator, idp_http_session: requests.Session
) -> None:
    (key,) = idp_http_session.get(idp_clean.jwks_uri("organizations"), timeout=5).json()["keys"]

    assert (key["kid"], key["kty"], key["use"], key["e"]) == (idp_clean.signing_kid, "RSA", "sig", "AQAB")


@pytest.mark.parametrize(
    ("user", "expected"),
    [
        ("wicbox@klant.example", {"account_type": "Managed", "domain_name": "klant.example"}),
        ("iemand@elders.example", {"account_type": "Unknown"}),
    ],
)
def test_user_realm(
    idp_clean: IdentityPlatformEmulator,
    idp_http_session: requests.Session,
    user: str,
    expected: dict[str, str],
) -> None:
    reply = idp_http_session.get(f"{idp_clean.base_url}/common/userrealm/{user}?api-version=1.0", timeout=5)

    assert (
        reply.json().items()
        >= {"ver": "1.0", "cloud_instance_name": "microsoftonline.com", **expected}.items()
    )


# -- the seeded directory and secrecy ----------------------------------------------------------------
def test_every_seeded_user_signs_in_with_the_delegated_app(
    idp_clean: IdentityPlatformEmulator, idp_directory: SeededDirectory, idp_http_session: requests.Session
) -> None:
    app = mailbox_app(idp_clean, idp_http_session, idp_directory)
    users = (idp_directory.mailbox, *idp_directory.project_users)

    results = [app.acquire_token_by_username_password(u.upn, u.password, [GRAPH_DELEGATED]) for u in users]

    assert [u.upn for u in idp_directory.project_users] == [
        f"project-{n}@klant.example" for n in ("alpha", "bravo", "charlie", "delta", "echo")
    ]
    assert all("access_token" in r for r in results)


def test_log_and_reprs_never_show_secrets(
    idp_clean: IdentityPlatformEmulator, idp_directory: SeededDirectory, idp_http_session: requests.Session
) -> None:
    app = mailbox_app(idp_clean, idp_http_session, idp_directory)
    delegated = mailbox_sign_in(app, idp_directory, [IMAP_DELEGATED])
    application = service_app(idp_clean, idp_http_session, idp_directory).acquire_token_for_client(
        [EXCHANGE_APP]
    )

    shown = " ".join(
        [
            repr(idp_clean.request_log.entries()),
            repr(idp_directory),
            repr(idp_clean.application(idp_directory.confidential_client_id)),
            repr(idp_clean.user(idp_directory.mailbox.upn)),
        ]
    )
    for secret in (
        idp_directory.mailbox.password,
        idp_directory.confidential_client_secret,
        delegated["access_token"],
        delegated["refresh_token"],
        application["access_token"],
    ):
        assert secret not in shown


# -- scope parsing (pure logic) ----------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "audience", "names", "oidc"),
    [
        (
            f"{IMAP_DELEGATED} openid offline_access",
            "https://outlook.office.com",
            ("IMAP.AccessAsUser.All",),
            ("openid", "offline_access"),
        ),
        ("Mail.Read profile", "https://graph.microsoft.com", ("Mail.Read",), ("profile",)),
        (
            f"https://OUTLOOK.office365.com/SMTP.Send {IMAP_DELEGATED}",
            "https://outlook.office365.com",
            ("SMTP.Send", "IMAP.AccessAsUser.All"),
            (),
        ),
        ("00000003-0000-0000-c000-000000000000/.default", "https://graph.microsoft.com", (".default",), ()),
    ],
)
def test_delegated_scope_parsing(
    text: str, audience: str, names: tuple[str, ...], oidc: tuple[str, ...]
) -> None:
    request = delegated_scopes(text, "Klant")

    assert (request.resource.audience, request.resource.names, request.oidc) == (audience, names, oidc)


@pytest.mark.parametrize(
    ("parse", "text", "code"),
    [
        (delegated_scopes, "openid profile offline_access", 70011),
        (delegated_scopes, f"{GRAPH_DELEGATED} {SMTP_DELEGATED}", 28000),
        (delegated_scopes, "https://api.example.org/Read", 500011),
        (application_scopes, "", 900144),
        (application_scopes, "openid", 1002012),
        (application_scopes, f"{EXCHANGE_APP} {GRAPH_APP}", 70011),
        (application_scopes, "https://api.example.org/.default", 500011),
    ],
)
def test_scope_errors(parse: Callable[[str, str], object], text: str, code: int) -> None:
    with pytest.raises(AadError) as raised:
        parse(text, "Klant")

    assert raised.value.code == code
