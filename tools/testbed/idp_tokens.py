"""The tokens the emulator issues: RS256 access tokens (v1.0 format), ID tokens and client_info.

Access tokens follow the test bed's shared token format (``aud`` by resource, ``iss``
``https://sts.windows.net/{tid}/``, ``scp`` + ``upn`` for delegated tokens, ``roles`` for
application tokens, never ``azp``) so that Dovecot, the SMTP and the Graph test servers can check
them with the public half of the signing key.
"""

from __future__ import annotations

import base64
import hashlib
import json
import time
import uuid
from dataclasses import dataclass
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tools.testbed.idp_model import Application, User
from tools.testbed.pki import LoopbackPki

ID_TOKEN_ISSUER = "https://login.microsoftonline.com/{tenant_id}/v2.0"
ACCESS_TOKEN_ISSUER = "https://sts.windows.net/{tenant_id}/"


def b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _int_b64url(number: int) -> str:
    return b64url(number.to_bytes((number.bit_length() + 7) // 8, "big"))


@dataclass(frozen=True)
class Validity:
    """``iat``/``nbf``/``exp`` of one token."""

    issued_at: int
    lifetime: int

    @classmethod
    def starting_now(cls, lifetime: int) -> Validity:
        return cls(int(time.time()), lifetime)

    def claims(self) -> dict[str, int]:
        return {
            "iat": self.issued_at,
            "nbf": self.issued_at,
            "exp": self.issued_at + self.lifetime,
        }


class TokenSigner:
    """Signs JWTs with the test bed's token-signing key and publishes its public half as a JWKS."""

    def __init__(self, pki: LoopbackPki) -> None:
        key = serialization.load_pem_private_key(pki.signing_key.read_bytes(), password=None)
        if not isinstance(key, rsa.RSAPrivateKey):
            raise TypeError("the token-signing key must be an RSA key")
        self._key = key
        self.kid = pki.signing_kid

    def sign(self, claims: dict[str, Any]) -> str:
        return jwt.encode(claims, self._key, algorithm="RS256", headers={"typ": "JWT", "kid": self.kid})

    def jwks(self, issuer: str) -> dict[str, Any]:
        numbers = self._key.public_key().public_numbers()
        key = {
            "kty": "RSA",
            "use": "sig",
            "kid": self.kid,
            "n": _int_b64url(numbers.n),
            "e": _int_b64url(numbers.e),
            "issuer": issuer,
        }
        return {"keys": [key]}


def pairwise_subject(object_id: str, client_id: str) -> str:
    """Entra ID's ``sub``: stable per user and application, different between applications."""
    return b64url(hashlib.sha256(f"{object_id}:{client_id}".encode()).digest())


def _common_access_claims(app: Application, audience: str, validity: Validity) -> dict[str, Any]:
    return {
        "aud": audience,
        "iss": ACCESS_TOKEN_ISSUER.format(tenant_id=app.tenant_id),
        **validity.claims(),
        "tid": app.tenant_id,
        "appid": app.client_id,
        "app_displayname": app.display_name,
        "ver": "1.0",
        "uti": b64url(uuid.uuid4().bytes),
    }


def delegated_access_claims(
    app: Application, user: User, audience: str, scopes: tuple[str, ...], validity: Validity
) -> dict[str, Any]:
    return {
        **_common_access_claims(app, audience, validity),
        "oid": user.object_id,
        "sub": pairwise_subject(user.object_id, app.client_id),
        "scp": " ".join(scopes),
        "upn": user.upn,
        "unique_name": user.upn,
        "name": user.display_name,
    }


def application_access_claims(
    app: Application, audience: str, roles: tuple[str, ...], validity: Validity
) -> dict[str, Any]:
    claims = {
        **_common_access_claims(app, audience, validity),
        "oid": app.service_principal_id,
        "sub": app.service_principal_id,
    }
    if roles:
        claims["roles"] = list(roles)
    return claims


def id_token_claims(app: Application, user: User, validity: Validity) -> dict[str, Any]:
    return {
        "aud": app.client_id,
        "iss": ID_TOKEN_ISSUER.format(tenant_id=user.tenant_id),
        **validity.claims(),
        "name": user.display_name,
        "oid": user.object_id,
        "preferred_username": user.upn,
        "sub": pairwise_subject(user.object_id, app.client_id),
        "tid": user.tenant_id,
        "ver": "2.0",
    }


def client_info(user: User) -> str:
    """The ``client_info`` reply field: base64url JSON of the user's home account ids."""
    payload = json.dumps({"uid": user.object_id, "utid": user.tenant_id}, separators=(",", ":"))
    return b64url(payload.encode())
