"""OAuth2 access tokens from the Microsoft identity platform, with msal.

* Delegated permissions (no client secret): :class:`DelegatedTokenProvider`, msal's
  PublicClientApplication with the username/password grant (ROPC) for the mailbox account, as the
  vendor's guide configures it ("Allow public client flows").
* Application permissions (certificate or client secret): :class:`ApplicationTokenProvider`, msal's
  ConfidentialClientApplication with client credentials: one token for the app, which then opens
  every mailbox it is permitted to. With a certificate, msal signs a client assertion (PS256 with
  the certificate's SHA-256 thumbprint, the certificate in ``x5c``); no secret leaves the machine.

Both ask the persisted token cache first and the identity platform only when needed; a warm run
makes no request at all (the tenant's OpenID configuration is cached next to the token cache).
msal's error replies and the network's exceptions are translated here into the project's errors.
Build providers through :class:`TokenService` (one per configuration and run).
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import datetime as dt
import json
import logging
import os
import threading
import time
import warnings
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import msal
import requests

from wicbox_bridge.adapters import net_errors
from wicbox_bridge.adapters.base import AccessToken, TokenProvider
from wicbox_bridge.adapters.token_cache import (
    FINGERPRINTS_FILE_NAME,
    CredentialFingerprints,
    forget_app_tokens,
    forget_user,
    make_private_file,
    open_token_cache,
)
from wicbox_bridge.auth.aadsts import (
    CLIENT_ID_PARAMETER,
    TENANT_ID_PARAMETER,
    CredentialNames,
    error_code,
    error_from_reply,
    first_line,
)
from wicbox_bridge.auth.certificate import (
    NEW_CERTIFICATE_STEPS,
    CertificateCredential,
    Validity,
    load_certificate,
)
from wicbox_bridge.auth.scopes import TokenProtocol, scopes_for
from wicbox_bridge.config import params as params_module
from wicbox_bridge.config.endpoints import CA_BUNDLE_KEY
from wicbox_bridge.config.params import Parameters, PermissionType
from wicbox_bridge.errors import AuthenticationError, ConnectionFailure, ParameterError
from wicbox_bridge.secret import Secret, mask_values

CA_BUNDLE_PARAMETER = CA_BUNDLE_KEY  # appSettings of WicGlobal.config
AUTHORITY_PARAMETER = params_module.AUTHORITY_HOST
DISCOVERY_CACHE_FILE_NAME = "identity_discovery.json"
DISCOVERY_LIFETIME = 24 * 3600.0
MICROSOFT_AUTHORITY_HOSTS = frozenset(
    {
        "login.microsoftonline.com",
        "login.microsoft.com",
        "login.windows.net",
        "sts.windows.net",
        "login.microsoftonline.us",
        "login-us.microsoftonline.com",
        "login.usgovcloudapi.net",
        "login.chinacloudapi.cn",
        "login.partner.microsoftonline.cn",
        "login.microsoftonline.de",
    }
)
RETRYABLE_STATUSES = frozenset({429, 503})
# Claims worth showing in diagnostics; none of them is secret.
REPORTED_CLAIMS = (
    "aud",
    "iss",
    "tid",
    "oid",
    "sub",
    "scp",
    "roles",
    "upn",
    "unique_name",
    "name",
    "appid",
    "app_displayname",
    "iat",
    "nbf",
    "exp",
    "ver",
)
_ROPC_DEPRECATION = r"This API has been deprecated for public client flows"
ROPC_WARNING = (
    "%s signs in with a stored password (the username/password grant, ROPC): Microsoft has deprecated "
    "it, and multi-factor authentication, Security Defaults or Conditional Access make it fail. "
    "Move off it: application permissions with a certificate (`wicbox cert new`, "
    "WICBOX_MAILCLIENT_CERTIFICATE), see the admin guide, section 3.4a"
)
log = logging.getLogger("wicbox.auth")


@dataclass(frozen=True)
class IdentityPlatform:
    """Where tokens come from: authority host, tenant, app, and how to reach it over HTTPS."""

    authority_host: str
    tenant_id: str
    client_id: str
    ca_bundle: Path | None = None
    connect_timeout: float = 10.0
    read_timeout: float = 30.0
    max_retry_wait: float = 30.0

    @property
    def base_url(self) -> str:
        host = self.authority_host.strip().rstrip("/")
        return host if "://" in host else f"https://{host}"

    @property
    def authority(self) -> str:
        return f"{self.base_url}/{self.tenant_id}"

    @property
    def host(self) -> str:
        return urlsplit(self.base_url).hostname or self.base_url

    @property
    def is_microsoft(self) -> bool:
        return self.host.lower() in MICROSOFT_AUTHORITY_HOSTS

    @classmethod
    def from_parameters(cls, params: Parameters) -> IdentityPlatform:
        return cls(params.authority_host, params.tenant_id, params.client_id, params.ca_bundle)


def tls_verify_setting(ca_bundle: Path | None, env: Mapping[str, str]) -> str | bool:
    """What requests must verify against: the configured CA bundle wins over the environment."""
    if ca_bundle is not None:
        if not ca_bundle.is_file():
            raise ParameterError(
                CA_BUNDLE_PARAMETER,
                f"the CA bundle file {ca_bundle} does not exist.",
                fix="point it at a PEM file with the CA certificate(s) to trust, or remove the key",
            )
        return str(ca_bundle)
    return env.get("REQUESTS_CA_BUNDLE") or env.get("CURL_CA_BUNDLE") or True


@dataclass(frozen=True)
class CachedResponse:
    """A stored reply in the shape msal reads (status_code, text, headers)."""

    status_code: int
    text: str
    headers: dict[str, str] = field(default_factory=dict)

    def raise_for_status(self) -> None:
        if self.status_code >= 400:
            raise requests.HTTPError(f"HTTP {self.status_code}")


class DiscoveryCache:
    """The tenant's OpenID configuration (public, no secrets), kept for a day in the state dir."""

    def __init__(self, path: Path, lifetime: float = DISCOVERY_LIFETIME) -> None:
        self.path = path
        self.lifetime = lifetime

    @staticmethod
    def applies_to(url: str) -> bool:
        return url.split("?", maxsplit=1)[0].endswith("/.well-known/openid-configuration")

    def _load(self) -> dict[str, Any]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def get(self, url: str) -> CachedResponse | None:
        entry = self._load().get(url)
        if not isinstance(entry, dict) or not isinstance(entry.get("text"), str):
            return None
        if not 0 <= time.time() - float(entry.get("fetched_at", 0)) < self.lifetime:
            return None
        return CachedResponse(200, entry["text"], {"content-type": "application/json"})

    def put(self, url: str, text: str) -> None:
        data = self._load()
        data[url] = {"fetched_at": time.time(), "text": text}
        partial = self.path.with_name(f"{self.path.name}.{os.getpid()}.new")
        make_private_file(partial)
        partial.write_text(json.dumps(data), encoding="utf-8")
        partial.replace(self.path)


class PlatformBusy(requests.exceptions.RequestException):
    """The identity platform still throttles (429) or is unavailable (503) after the bounded wait."""

    def __init__(self, status: int, retry_after: float | None) -> None:
        super().__init__(f"HTTP {status}")
        self.status = status
        self.retry_after = retry_after


class IdentityHttpClient:
    """The ``http_client`` msal uses: a requests.Session that ignores the environment's CA variables.

    ``trust_env`` is off, so REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE cannot override the configured CA
    bundle; HTTPS_PROXY / NO_PROXY are read explicitly per request. Timeouts are always set,
    429/503 replies are retried after Retry-After within a bounded total wait, the port of the
    authority is kept (msal drops it from the user-realm URL), and the OpenID configuration is
    served from :class:`DiscoveryCache`. The last error reply is kept for error messages.
    """

    def __init__(
        self,
        platform: IdentityPlatform,
        *,
        discovery: DiscoveryCache | None = None,
        env: Mapping[str, str] | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.platform = platform
        self.discovery = discovery
        self._sleep = sleep  # waits out Retry-After (tests inject one that records the waits)
        self.env = dict(os.environ if env is None else env)
        self.session = requests.Session()
        self.session.trust_env = False
        self.session.verify = tls_verify_setting(platform.ca_bundle, self.env)
        self.requests_sent = 0
        self.last_error_reply: dict[str, Any] | None = None

    def get(self, url: str, params: Any = None, headers: Any = None, **kwargs: Any) -> Any:
        if self.discovery is not None and self.discovery.applies_to(url):
            cached = self.discovery.get(url)
            if cached is not None:
                return cached
        response = self._send("GET", url, params=params, headers=headers, **kwargs)
        if self.discovery is not None and self.discovery.applies_to(url) and response.status_code == 200:
            self.discovery.put(url, response.text)
        return response

    def post(self, url: str, params: Any = None, data: Any = None, headers: Any = None, **kwargs: Any) -> Any:
        return self._send("POST", url, params=params, data=data, headers=headers, **kwargs)

    def close(self) -> None:
        self.session.close()

    def error_reply(self) -> dict[str, Any] | None:
        """The last error reply (OAuth JSON, or the HTTP status) since :meth:`forget_error_reply`."""
        return self.last_error_reply

    def forget_error_reply(self) -> None:
        self.last_error_reply = None

    def _with_authority_port(self, url: str) -> str:
        authority = urlsplit(self.platform.base_url)
        target = urlsplit(url)
        if authority.port and target.hostname == authority.hostname and target.port is None:
            return target._replace(netloc=authority.netloc).geturl()
        return url

    def _proxies(self, url: str) -> dict[str, str]:
        no_proxy = self.env.get("NO_PROXY") or self.env.get("no_proxy")
        if requests.utils.should_bypass_proxies(url, no_proxy=no_proxy):
            return {}
        proxy = self.env.get("HTTPS_PROXY") or self.env.get("https_proxy")
        return {"https": proxy} if proxy else {}

    def _send(self, method: str, url: str, **kwargs: Any) -> requests.Response:
        url = self._with_authority_port(url)
        kwargs.setdefault("timeout", (self.platform.connect_timeout, self.platform.read_timeout))
        kwargs["proxies"] = self._proxies(url)
        waited = 0.0
        while True:
            self.requests_sent += 1
            response = self.session.request(method, url, **kwargs)
            delay = _retry_delay(response)
            if delay is None:
                self._remember_error(response)
                return response
            if waited + delay > self.platform.max_retry_wait:
                raise PlatformBusy(response.status_code, delay)
            self._sleep(delay)
            waited += delay

    def _remember_error(self, response: requests.Response) -> None:
        if response.status_code < 400:
            return
        try:
            reply = response.json()
        except ValueError:
            reply = None
        if not isinstance(reply, dict):
            reply = {"error": f"HTTP {response.status_code}"}
        self.last_error_reply = reply


def _retry_delay(response: requests.Response) -> float | None:
    """Seconds to wait before retrying a throttled (429) or unavailable (503) reply; None: no retry."""
    if response.status_code not in RETRYABLE_STATUSES:
        return None
    value = response.headers.get("Retry-After", "1")
    try:
        return max(0.0, float(value))
    except ValueError:
        return 1.0


def decode_claims(token: str) -> dict[str, object]:
    """The reported claims of a JWT's payload, not verified (opaque tokens give no claims)."""
    parts = token.split(".")
    if len(parts) != 3:
        return {}
    payload = parts[1] + "=" * (-len(parts[1]) % 4)
    try:
        claims = json.loads(base64.urlsafe_b64decode(payload))
    except (ValueError, binascii.Error):
        return {}
    if not isinstance(claims, dict):
        return {}
    return {name: claims[name] for name in REPORTED_CLAIMS if name in claims}


def access_token_from_result(result: Mapping[str, Any]) -> AccessToken:
    """The project's token from msal's successful result dict."""
    value = str(result["access_token"])
    claims = decode_claims(value)
    exp = claims.get("exp")
    expires_at = float(exp) if isinstance(exp, (int, float)) else time.time() + float(result["expires_in"])
    return AccessToken(
        value=Secret(value),
        expires_at=expires_at,
        from_cache=result.get("token_source") == "cache",
        claims=claims,
    )


def _scrub(reply: Mapping[str, Any], secrets: tuple[Secret, ...]) -> dict[str, Any]:
    """A copy of an error reply with any secret value masked (the identity platform never echoes
    them, but a message must not depend on that)."""
    return {
        key: mask_values(value, secrets) if isinstance(value, str) else value for key, value in reply.items()
    }


def _connection_failure(exc: requests.RequestException, platform: IdentityPlatform) -> ConnectionFailure:
    split = urlsplit(platform.base_url)
    target = net_errors.Target(
        net_errors.IDENTITY_PLATFORM, platform.host, split.port or 443, params_module.AUTHORITY_HOST
    )
    if isinstance(exc, PlatformBusy):
        wait = f"; it asks to wait {exc.retry_after:.0f} s" if exc.retry_after else ""
        return ConnectionFailure(
            f"{target.service.capitalize()} {target.host} is busy (HTTP {exc.status}){wait}.",
            fix="nothing to change: the next scheduled run tries again",
        )
    if isinstance(exc, requests.exceptions.ProxyError):
        return ConnectionFailure(
            f"Cannot reach {target}: the proxy refused or failed.",
            fix=f"check HTTPS_PROXY/NO_PROXY for {target.host} and that the proxy is up",
        )
    return net_errors.network_failure(
        exc, target, platform.ca_bundle, tls_fix=f"check any proxy between this computer and {target.host}"
    )


@dataclass(frozen=True)
class _Translation:
    """What an error message needs: whose sign-in, which platform, which secrets to mask."""

    names: CredentialNames
    platform: IdentityPlatform
    client: IdentityHttpClient
    secrets: tuple[Secret, ...]


@contextlib.contextmanager
def _translated_errors(context: _Translation) -> Iterator[None]:
    """Turn requests' and msal's exceptions into ConnectionFailure / AuthenticationError."""
    context.client.forget_error_reply()
    try:
        yield
    except requests.RequestException as exc:
        raise _connection_failure(exc, context.platform) from exc
    except ValueError as exc:  # msal: the authority's OpenID configuration could not be read
        reply = context.client.error_reply()
        if reply and reply.get("error"):
            raise error_from_reply(_scrub(reply, context.secrets), context.names) from exc
        raise AuthenticationError(
            f"The identity platform {context.platform.host} gave no usable configuration for tenant "
            f"{context.platform.tenant_id}.",
            fix=f"check {TENANT_ID_PARAMETER} and {AUTHORITY_PARAMETER}",
        ) from exc


def _msal_options(platform: IdentityPlatform, cache: Any, client: IdentityHttpClient) -> dict[str, Any]:
    options: dict[str, Any] = {
        "authority": platform.authority,
        "token_cache": cache,
        "http_client": client,
    }
    if not platform.is_microsoft:
        options["instance_discovery"] = False
    return options


class _ProviderBase:
    """Shared parts: the msal app (built on first use), fingerprint check, error translation."""

    permission_type: PermissionType

    def __init__(self, service: TokenService, scopes: tuple[str, ...], names: CredentialNames) -> None:
        self.service = service
        self.scopes = scopes
        self.names = names
        self._app: Any = None
        self._fingerprint_checked = False

    @property
    def platform(self) -> IdentityPlatform:
        return self.service.platform

    def _secrets(self) -> tuple[Secret, ...]:
        return ()

    def _translation(self) -> _Translation:
        return _Translation(self.names, self.platform, self.service.http_client, self._secrets())

    def _fail(self, result: Mapping[str, Any] | None) -> AuthenticationError:
        reply = _scrub(result or {"error": "no token"}, self._secrets())
        return error_from_reply(reply, self.names)

    def _fingerprint_material(self) -> str:
        platform = self.platform
        parts = [platform.base_url.lower(), platform.tenant_id.lower(), platform.client_id.lower()]
        return "\0".join([*parts, *(secret.reveal() for secret in self._secrets())])

    def _check_fingerprint(self, key: str) -> bool:
        """True when the credentials changed (or were never seen) since the last good token."""
        if self._fingerprint_checked:
            return False
        self._fingerprint_checked = True
        return self.service.fingerprints.matches(key, self._fingerprint_material()) is not True

    def _remember_fingerprint(self, key: str) -> None:
        self.service.fingerprints.remember(key, self._fingerprint_material())


class DelegatedTokenProvider(_ProviderBase):
    """Tokens for one mailbox account (delegated permissions).

    Silently from the token cache first: the account's refresh token, saved by an earlier password
    sign-in or by `wicbox signin` (device code). Without one, the password grant (ROPC) when a
    password is configured; without a password, an authentication error that names `wicbox signin`.
    """

    permission_type = PermissionType.DELEGATED

    def __init__(
        self,
        service: TokenService,
        scopes: tuple[str, ...],
        username: str,
        password: Secret | None,
        names: CredentialNames,
    ) -> None:
        super().__init__(service, scopes, names)
        self.username = username
        self._password = password

    def __repr__(self) -> str:
        return f"DelegatedTokenProvider(username={self.username!r}, scopes={self.scopes!r})"

    def _secrets(self) -> tuple[Secret, ...]:
        return (self._password,) if self._password else ()

    @property
    def _fingerprint_key(self) -> str:
        return f"user:{self.username.casefold()}"

    def _application(self) -> Any:
        if self._app is None:
            options = _msal_options(self.platform, self.service.cache, self.service.http_client)
            self._app = msal.PublicClientApplication(self.platform.client_id, **options)
        return self._app

    def __call__(self, *, force_refresh: bool = False) -> AccessToken:
        with _translated_errors(self._translation()):
            app = self._application()
            # A changed password invalidates what the old one obtained; a saved sign-in (no
            # password) is its own credential and is kept.
            if self._password and self._check_fingerprint(self._fingerprint_key):
                forget_user(self.service.cache, self.username)
            result = self._silent(app, force_refresh)
            if not result or "access_token" not in result:
                if not self._password:
                    raise sign_in_needed(self.username, self.names, result)
                result = self._password_grant(app)
        if "access_token" not in result:
            raise self._fail(result)
        if self._password:
            self._remember_fingerprint(self._fingerprint_key)
        return access_token_from_result(result)

    def _silent(self, app: Any, force_refresh: bool) -> dict[str, Any] | None:
        accounts = app.get_accounts(username=self.username)
        if not accounts:
            return None
        result: dict[str, Any] | None = app.acquire_token_silent_with_error(
            list(self.scopes), accounts[0], force_refresh=force_refresh
        )
        return result

    def _password_grant(self, app: Any) -> dict[str, Any]:
        password = self._password.reveal() if self._password else ""
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=_ROPC_DEPRECATION, category=DeprecationWarning)
            result: dict[str, Any] = app.acquire_token_by_username_password(
                self.username, password, scopes=list(self.scopes)
            )
        return result


AppCredential = Secret | CertificateCredential  # a client secret, or a certificate with its key


def check_certificate_dates(credential: CertificateCredential, now: float) -> None:
    """An expired or not yet valid certificate is an authentication error with the renewal steps."""
    validity = credential.validity(dt.datetime.fromtimestamp(now, dt.timezone.utc))
    where = f"the certificate {credential.path} (thumbprint {credential.sha1_thumbprint})"
    if validity is Validity.EXPIRED:
        raise AuthenticationError(
            f"{where} expired on {credential.not_after:%Y-%m-%d %H:%M} UTC; "
            "Microsoft Entra ID refuses assertions signed with it",
            fix=f"{NEW_CERTIFICATE_STEPS}; then delete the expired certificate from the app registration",
        )
    if validity is Validity.NOT_YET_VALID:
        raise AuthenticationError(
            f"{where} is not valid before {credential.not_before:%Y-%m-%d %H:%M} UTC",
            fix="check this server's clock and time zone (the certificate's start lies in the future), "
            "or make a new certificate with `wicbox cert new`",
        )


def _client_credential(credential: AppCredential) -> str | dict[str, str]:
    if isinstance(credential, Secret):
        return credential.reveal()
    return {
        "private_key": credential.private_key_pem.reveal(),
        "public_certificate": credential.certificate_pem,
    }


class ApplicationTokenProvider(_ProviderBase):
    """One token for the app itself (application permissions, client credentials)."""

    permission_type = PermissionType.APPLICATION
    fingerprint_key = "app"

    def __init__(
        self,
        service: TokenService,
        scopes: tuple[str, ...],
        credential: AppCredential,
        names: CredentialNames,
    ) -> None:
        super().__init__(service, scopes, names)
        self._credential = credential

    def __repr__(self) -> str:
        return f"ApplicationTokenProvider(client_id={self.platform.client_id!r}, scopes={self.scopes!r})"

    @property
    def credential(self) -> AppCredential:
        return self._credential

    def _secrets(self) -> tuple[Secret, ...]:
        if isinstance(self._credential, Secret):
            return (self._credential,)
        return (self._credential.private_key_pem,)

    def _application(self) -> Any:
        if self._app is None:
            options = _msal_options(self.platform, self.service.cache, self.service.http_client)
            self._app = msal.ConfidentialClientApplication(
                self.platform.client_id, client_credential=_client_credential(self._credential), **options
            )
        return self._app

    def __call__(self, *, force_refresh: bool = False) -> AccessToken:
        if isinstance(self._credential, CertificateCredential):
            check_certificate_dates(self._credential, self.service.clock())
        with _translated_errors(self._translation()):
            app = self._application()
            if self._check_fingerprint(self.fingerprint_key):
                forget_app_tokens(self.service.cache)
            if force_refresh:
                forget_app_tokens(self.service.cache, client_id=self.platform.client_id, scopes=self.scopes)
            result: dict[str, Any] = app.acquire_token_for_client(list(self.scopes))
        if "access_token" not in result:
            raise self._fail(result)
        self._remember_fingerprint(self.fingerprint_key)
        return access_token_from_result(result)


class TokenService:
    """The token layer of one configuration: its identity platform, token cache and HTTP client.

    ``cache_path`` is ``state_dir_for(config_path) / "msal_token_cache.bin"``; the fingerprints and
    the cached OpenID configuration live next to it. Make one per run and ask it for providers.
    """

    def __init__(
        self,
        platform: IdentityPlatform,
        cache_path: Path,
        *,
        encrypt_cache: bool = True,
        env: Mapping[str, str] | None = None,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.platform = platform
        self.cache_path = cache_path
        self.cache = open_token_cache(cache_path, encrypt=encrypt_cache)
        self.fingerprints = CredentialFingerprints(cache_path.parent / FINGERPRINTS_FILE_NAME)
        discovery = DiscoveryCache(cache_path.parent / DISCOVERY_CACHE_FILE_NAME)
        self.http_client = IdentityHttpClient(platform, discovery=discovery, env=env, sleep=sleep)
        self._app_providers: dict[tuple[str, ...], ApplicationTokenProvider] = {}
        self._app_providers_lock = threading.Lock()  # a run's mailbox workers ask for it at once
        self._certificates: dict[tuple[Path, Secret | None], CertificateCredential] = {}
        self.clock = clock
        self._password_grant_warned = False

    @classmethod
    def from_parameters(
        cls,
        params: Parameters,
        cache_path: Path,
        *,
        encrypt_cache: bool = True,
        env: Mapping[str, str] | None = None,
    ) -> TokenService:
        return cls(IdentityPlatform.from_parameters(params), cache_path, encrypt_cache=encrypt_cache, env=env)

    def close(self) -> None:
        self.http_client.close()

    def delegated(
        self,
        scopes: tuple[str, ...],
        username: str,
        password: Secret | None,
        names: CredentialNames | None = None,
    ) -> DelegatedTokenProvider:
        """``password`` None: the account signs in only with the sign-in `wicbox signin` saved."""
        names = names or CredentialNames(account=username, scopes=scopes)
        if password:
            self.warn_about_password_grant(username)
        return DelegatedTokenProvider(self, scopes, username, password or None, names)

    def sign_in_with_device_code(
        self,
        scopes: tuple[str, ...],
        username: str,
        names: CredentialNames,
        *,
        show: Callable[[DeviceCodePrompt], None],
        wait: Callable[[float], object],
    ) -> AccessToken:
        """The device-code flow for ``username``: show the code, poll until someone signs in.

        The refresh token lands in the token cache, where runs find it. An account other than
        ``username`` that signs in is refused and removed from the cache again.
        """
        provider = DelegatedTokenProvider(self, scopes, username, None, names)
        translation = provider._translation()
        with _translated_errors(translation):
            app = provider._application()
            flow: dict[str, Any] = app.initiate_device_flow(scopes=list(scopes))
        if "user_code" not in flow:
            raise provider._fail(flow)
        show(DeviceCodePrompt(str(flow["verification_uri"]), str(flow["user_code"]), int(flow["expires_in"])))
        result = self._poll_device_flow(app, flow, translation, wait)
        if "access_token" not in result:
            raise device_flow_failed(result, names)
        signed_in = str((result.get("id_token_claims") or {}).get("preferred_username") or "")
        if signed_in.casefold() != username.casefold():
            forget_user(self.cache, signed_in)
            raise AuthenticationError(
                f"{signed_in or 'another account'} signed in, but the mailbox to read is {username}; "
                "that sign-in was not kept",
                fix=f"run `{names.signin_command}` again and sign in as {username} (a private browser "
                "window keeps the browser from choosing another signed-in account)",
            )
        return access_token_from_result(result)

    def _poll_device_flow(
        self, app: Any, flow: dict[str, Any], translation: _Translation, wait: Callable[[float], object]
    ) -> dict[str, Any]:
        """Poll once per interval until the answer is final.

        msal polls once per call here (``exit_condition``) and adds 5 s to the flow's interval after
        each slow_down; the waiting is ours, through ``wait``, so that it can be interrupted (and
        tests pass time without sleeping). msal's own pacing warning is redundant with that.
        """
        deadline = self.clock() + float(flow.get("expires_in", 900))
        while True:
            with _translated_errors(translation), warnings.catch_warnings():
                warnings.filterwarnings("ignore", message="Attempted too soon", category=UserWarning)
                result: dict[str, Any] = app.acquire_token_by_device_flow(flow, exit_condition=lambda _: True)
            if result.get("error") not in ("authorization_pending", "slow_down"):
                return result
            interval = float(flow.get("interval", 5))
            if self.clock() + interval > deadline:
                return {"error": "expired_token"}
            wait(interval)

    def application(self, scopes: tuple[str, ...], credential: AppCredential) -> ApplicationTokenProvider:
        """The app's provider for ``scopes``, one per service: every mailbox of a run with
        application permissions shares it (and its msal app), instead of building both per mailbox."""
        with self._app_providers_lock:
            provider = self._app_providers.get(scopes)
            if provider is None or provider.credential != credential:
                provider = ApplicationTokenProvider(
                    self, scopes, credential, CredentialNames(account=None, scopes=scopes)
                )
                self._app_providers[scopes] = provider
            return provider

    def warn_about_password_grant(self, username: str) -> None:
        """One log warning per service (so per run) when an account signs in with a stored password;
        never a Python warning on stderr (msal's DeprecationWarning is silenced at the grant)."""
        with self._app_providers_lock:
            if self._password_grant_warned:
                return
            self._password_grant_warned = True
        log.warning(ROPC_WARNING, username)

    def certificate(self, path: Path, password: Secret | None) -> CertificateCredential:
        """The certificate file read and checked once per service (every mailbox of a run shares it)."""
        with self._app_providers_lock:
            key = (path, password)
            if key not in self._certificates:
                self._certificates[key] = load_certificate(path, password)
            return self._certificates[key]

    def for_protocol(
        self,
        params: Parameters,
        protocol: TokenProtocol,
        *,
        username: str | None = None,
        password: Secret | None = None,
        names: CredentialNames | None = None,
    ) -> TokenProvider:
        """The provider ``protocol`` uses under ``params``.

        Application permissions: one app token (``username``/``password`` unused). Delegated: the
        account ``username`` with ``password`` (default: WICBOX_MAILCLIENT_USERNAME / _PASSWORD;
        MULTIPLE mode passes a project's own mailbox account and ``names`` for its columns).
        """
        scopes = scopes_for(params.scope, protocol, params.permission_type)
        if not params.client_id:
            raise ParameterError(
                CLIENT_ID_PARAMETER,
                "is empty.",
                fix="copy the Application (client) ID of the app registration",
            )
        if params.certificate:  # application permissions with a certificate
            return self.application(scopes, self.certificate(params.certificate, params.certificate_password))
        if params.client_secret:  # application permissions with a client secret
            return self.application(scopes, params.client_secret)
        account = username or params.username
        return self.delegated(scopes, account, password if username else params.password, names)


@dataclass(frozen=True)
class DeviceCodePrompt:
    """What the person signing in needs: where to go and the code to type (never the device code)."""

    verification_uri: str
    user_code: str
    expires_in: int


def sign_in_needed(
    username: str, names: CredentialNames, reply: Mapping[str, Any] | None
) -> AuthenticationError:
    """No usable saved sign-in for an account without a password."""
    fix = (
        f"run `{names.signin_command}` as the account the scheduled task runs as (the sign-in is kept "
        "in that account's token cache), or set the password parameter to sign in with a password"
    )
    if not reply:
        return AuthenticationError(f"sign-in needed: no sign-in is saved for {username}", fix=fix)
    code = error_code(reply)
    said = first_line(str(reply.get("error_description") or reply.get("error") or ""))
    return AuthenticationError(
        f"sign-in needed: the saved sign-in for {username} is no longer valid ({said})",
        code=code,
        description=said or None,
        fix=fix,
    )


def device_flow_failed(reply: Mapping[str, Any], names: CredentialNames) -> AuthenticationError:
    error = str(reply.get("error") or "")
    again = f"run `{names.signin_command}` again"
    if error == "expired_token":
        return AuthenticationError(
            "nobody signed in with the code before it expired (15 minutes)", fix=f"{again} and sign in sooner"
        )
    if error in ("authorization_declined", "access_denied"):
        return AuthenticationError(
            "the sign-in was declined in the browser",
            fix=f"{again}, and accept when the page asks whether you are signing in to wicbox-bridge",
        )
    return error_from_reply(reply, names)


def build_token_provider(
    params: Parameters,
    protocol: TokenProtocol,
    *,
    cache_path: Path,
    username: str | None = None,
    password: Secret | None = None,
    env: Mapping[str, str] | None = None,
) -> TokenProvider:
    """One provider without keeping the service (``wicbox token``); see :meth:`TokenService.for_protocol`."""
    service = TokenService.from_parameters(params, cache_path, env=env)
    return service.for_protocol(params, protocol, username=username, password=password)
