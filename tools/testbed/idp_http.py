"""HTTPS front of the identity-platform emulator: routing, replies, and the threaded TLS server.

Routes (as ``login.microsoftonline.com`` serves them):

- ``GET /{tenant}/v2.0/.well-known/openid-configuration``
- ``GET /{tenant}/discovery/v2.0/keys``
- ``GET /common/userrealm/{user}?api-version=1.0``
- ``POST /{tenant}/oauth2/v2.0/token``
"""

from __future__ import annotations

import base64
import json
import ssl
import time
import uuid
from dataclasses import dataclass
from email.message import Message
from typing import Any
from urllib.parse import parse_qs, unquote, unquote_plus, urlsplit

from tools.testbed import idp_errors as errors
from tools.testbed.https_server import BackgroundHttpsServer, QuietHandler, TlsHttpServer
from tools.testbed.idp_grants import TokenRequest, TokenService
from tools.testbed.idp_model import MULTI_TENANT_SEGMENTS, Directory, Tenant, utc_now
from tools.testbed.idp_tokens import ID_TOKEN_ISSUER, TokenSigner
from tools.testbed.idp_traffic import Fault, FaultKind, FaultPlan, RequestLog, RequestRecord
from tools.testbed.pki import LoopbackPki

JSON = "application/json; charset=utf-8"
HANDLER_TIMEOUT_SECONDS = 15


@dataclass(frozen=True)
class HttpReply:
    status: int
    body: bytes
    content_type: str = JSON
    headers: tuple[tuple[str, str], ...] = ()
    error: errors.AadError | None = None


def json_reply(status: int, document: dict[str, Any], correlation_id: str = "") -> HttpReply:
    headers = [("Cache-Control", "no-store, no-cache"), ("Pragma", "no-cache")]
    if correlation_id:
        headers += [("client-request-id", correlation_id), ("x-ms-request-id", str(uuid.uuid4()))]
    return HttpReply(status, json.dumps(document).encode(), headers=tuple(headers))


def error_reply(error: errors.AadError, correlation_id: str) -> HttpReply:
    reply = json_reply(error.status, error.document(correlation_id, utc_now()), correlation_id)
    return HttpReply(reply.status, reply.body, reply.content_type, reply.headers, error)


def fault_reply(fault: Fault) -> HttpReply:
    headers = (("Retry-After", str(fault.retry_after)),) if fault.retry_after is not None else ()
    text = {429: "Too Many Requests", 503: "Service Unavailable"}.get(fault.status, "Error")
    return HttpReply(fault.status, text.encode(), "text/plain; charset=utf-8", headers)


def openid_configuration(base_url: str, segment: str, tenant: Tenant | None) -> dict[str, Any]:
    """Entra ID's v2.0 discovery document, with this emulator's base URL in every endpoint."""
    path_tenant = tenant.tenant_id if tenant else segment  # a domain resolves to the tenant id
    issuer_tenant = tenant.tenant_id if tenant else "{tenantid}"
    root = f"{base_url}/{path_tenant}"
    return {
        "token_endpoint": f"{root}/oauth2/v2.0/token",
        "token_endpoint_auth_methods_supported": [
            "client_secret_post",
            "private_key_jwt",
            "client_secret_basic",
        ],
        "jwks_uri": f"{root}/discovery/v2.0/keys",
        "response_modes_supported": ["query", "fragment", "form_post"],
        "subject_types_supported": ["pairwise"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
        "scopes_supported": ["openid", "profile", "email", "offline_access"],
        "issuer": ID_TOKEN_ISSUER.format(tenant_id=issuer_tenant),
        "request_uri_parameter_supported": False,
        "userinfo_endpoint": "https://graph.microsoft.com/oidc/userinfo",
        "authorization_endpoint": f"{root}/oauth2/v2.0/authorize",
        "device_authorization_endpoint": f"{root}/oauth2/v2.0/devicecode",
        "http_logout_supported": True,
        "frontchannel_logout_supported": True,
        "end_session_endpoint": f"{root}/oauth2/v2.0/logout",
        "claims_supported": [
            "sub",
            "iss",
            "cloud_instance_name",
            "cloud_instance_host_name",
            "cloud_graph_host_name",
            "msgraph_host",
            "aud",
            "exp",
            "iat",
            "auth_time",
            "acr",
            "nonce",
            "preferred_username",
            "name",
            "tid",
            "ver",
            "at_hash",
            "c_hash",
            "email",
        ],
        "kerberos_endpoint": f"{root}/kerberos",
        "tenant_region_scope": "EU" if tenant else None,
        "cloud_instance_name": "microsoftonline.com",
        "cloud_graph_host_name": "graph.windows.net",
        "msgraph_host": "graph.microsoft.com",
        "rbac_url": "https://pas.windows.net",
    }


def basic_credentials(header: str | None) -> tuple[str | None, str | None]:
    """client_id and client_secret from an ``Authorization: Basic`` header (client_secret_basic)."""
    if not header or not header.startswith("Basic "):
        return None, None
    try:
        decoded = base64.b64decode(header[6:], validate=True).decode("utf-8")
    except ValueError:
        return None, None
    client_id, _, secret = decoded.partition(":")
    return unquote_plus(client_id), unquote_plus(secret)


class IdpEndpoints:
    """Turns requests into replies and records every request in the log."""

    def __init__(
        self,
        directory: Directory,
        signer: TokenSigner,
        tokens: TokenService,
        base_url: str,
        log: RequestLog,
        faults: FaultPlan,
    ) -> None:
        self._directory = directory
        self._signer = signer
        self._tokens = tokens
        self._base_url = base_url
        self._log = log
        self._faults = faults

    def get(self, path: str, headers: Message) -> HttpReply:
        parts = [unquote(p) for p in path.split("/") if p]
        correlation_id = headers.get("client-request-id") or str(uuid.uuid4())
        if len(parts) == 4 and parts[1:] == ["v2.0", ".well-known", "openid-configuration"]:
            reply = self._discovery(parts[0], correlation_id)
        elif len(parts) == 4 and parts[1:] == ["discovery", "v2.0", "keys"]:
            reply = self._keys(parts[0], correlation_id)
        elif len(parts) == 3 and parts[:2] == ["common", "userrealm"]:
            reply = self._user_realm(parts[2])
        else:
            reply = json_reply(404, {"error": "not_found"})
        self._log.append(_record("GET", path, reply))
        return reply

    def post(self, path: str, body: bytes, headers: Message) -> HttpReply | None:
        """The reply, or None when a ``drop`` fault says to close the connection unanswered."""
        parts = [unquote(p) for p in path.split("/") if p]
        form = {k: v[0] for k, v in parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True).items()}
        basic_id, basic_secret = basic_credentials(headers.get("Authorization"))
        record = RequestRecord(
            method="POST",
            path=path,
            status=0,
            grant_type=form.get("grant_type"),
            client_id=form.get("client_id") or basic_id,
            username=form.get("username"),
            scope=form.get("scope"),
        )
        if len(parts) == 4 and parts[1:] == ["oauth2", "v2.0", "devicecode"]:
            return self._device_authorization(parts[0], form, path, headers)
        if not (len(parts) == 4 and parts[1:] == ["oauth2", "v2.0", "token"]):
            reply = json_reply(404, {"error": "not_found"})
            self._log.append(_record("POST", path, reply))
            return reply
        time.sleep(self._faults.delay)
        fault = self._faults.take()
        if fault is not None:
            reply_or_none = None if fault.kind == "drop" else fault_reply(fault)
            status = reply_or_none.status if reply_or_none else 0
            self._log.append(_with_reply(record, status, None, fault.kind))
            return reply_or_none
        correlation_id = headers.get("client-request-id") or str(uuid.uuid4())
        request = TokenRequest(parts[0], form, basic_id, basic_secret)
        try:
            reply = json_reply(200, self._tokens.issue(request), correlation_id)
        except errors.AadError as error:
            reply = error_reply(error, correlation_id)
        self._log.append(_with_reply(record, reply.status, reply.error))
        return reply

    def _device_authorization(
        self, segment: str, form: dict[str, str], path: str, headers: Message
    ) -> HttpReply:
        correlation_id = headers.get("client-request-id") or str(uuid.uuid4())
        try:
            reply = json_reply(200, self._tokens.device_authorization(TokenRequest(segment, form)))
        except errors.AadError as error:
            reply = error_reply(error, correlation_id)
        self._log.append(_record("POST", path, reply))
        return reply

    def _tenant_or_alias(self, segment: str) -> tuple[bool, Tenant | None]:
        if segment.lower() in MULTI_TENANT_SEGMENTS:
            return True, None
        tenant = self._directory.tenant(segment)
        return tenant is not None, tenant

    def _discovery(self, segment: str, correlation_id: str) -> HttpReply:
        known, tenant = self._tenant_or_alias(segment)
        if not known:
            return error_reply(errors.tenant_not_found(segment), correlation_id)
        document = openid_configuration(self._base_url, segment.lower(), tenant)
        return json_reply(200, {k: v for k, v in document.items() if v is not None})

    def _keys(self, segment: str, correlation_id: str) -> HttpReply:
        known, tenant = self._tenant_or_alias(segment)
        if not known:
            return error_reply(errors.tenant_not_found(segment), correlation_id)
        issuer = ID_TOKEN_ISSUER.format(tenant_id=tenant.tenant_id if tenant else "{tenantid}")
        return json_reply(200, self._signer.jwks(issuer))

    def _user_realm(self, username: str) -> HttpReply:
        tenant = self._directory.tenant_of_user(username)
        document: dict[str, Any] = {"ver": "1.0", "account_type": "Unknown"}
        if tenant is not None:
            document = {
                "ver": "1.0",
                "account_type": "Managed",
                "domain_name": username.rpartition("@")[2].lower(),
                "cloud_instance_name": "microsoftonline.com",
                "cloud_audience_urn": "urn:federation:MicrosoftOnline",
            }
        else:
            document["cloud_instance_name"] = "microsoftonline.com"
        return json_reply(200, document)


def _record(method: str, path: str, reply: HttpReply) -> RequestRecord:
    return _with_reply(RequestRecord(method=method, path=path, status=0), reply.status, reply.error)


def _with_reply(
    record: RequestRecord, status: int, error: errors.AadError | None, fault: FaultKind | None = None
) -> RequestRecord:
    return RequestRecord(
        method=record.method,
        path=record.path,
        status=status,
        grant_type=record.grant_type,
        client_id=record.client_id,
        username=record.username,
        scope=record.scope,
        error=error.error if error else None,
        error_code=error.code if error else None,
        fault=fault,
    )


class _Handler(QuietHandler):
    timeout = HANDLER_TIMEOUT_SECONDS
    server: _IdpHttpServer

    def do_GET(self) -> None:
        self._send(self.server.endpoints.get(urlsplit(self.path).path, self.headers))

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        reply = self.server.endpoints.post(urlsplit(self.path).path, body, self.headers)
        if reply is None:
            self.close_connection = True
            return
        self._send(reply)

    def _send(self, reply: HttpReply) -> None:
        self.send_reply(reply.status, reply.body, reply.content_type, reply.headers)


class _IdpHttpServer(TlsHttpServer):
    def __init__(self, address: tuple[str, int], endpoints: IdpEndpoints, context: ssl.SSLContext) -> None:
        super().__init__(address, _Handler, context, HANDLER_TIMEOUT_SECONDS)
        self.endpoints = endpoints


class IdpServer(BackgroundHttpsServer):
    """Runs :class:`IdpEndpoints` on ``https://{host}:{port}`` in a background thread."""

    def __init__(self, endpoints: IdpEndpoints, pki: LoopbackPki, host: str, port: int) -> None:
        super().__init__(pki, host, port, name="idp-emulator", description="identity-platform emulator")
        self._endpoints = endpoints

    def _create_server(self, address: tuple[str, int], context: ssl.SSLContext) -> TlsHttpServer:
        return _IdpHttpServer(address, self._endpoints, context)
