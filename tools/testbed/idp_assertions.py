"""Client assertions (certificate credentials), checked the way Microsoft Entra ID checks them.

A confidential client proves itself with ``client_assertion_type =
urn:ietf:params:oauth:client-assertion-type:jwt-bearer`` and ``client_assertion``: a JWT signed
RS256 or PS256 with the private key of a certificate registered on the app, naming that
certificate by ``x5t#S256`` (SHA-256 thumbprint) or ``x5t`` (SHA-1), with ``aud`` = the token
endpoint, ``iss`` = ``sub`` = the client id, ``exp``/``nbf`` around the current time and a
``jti``. Each failure answers with the code and wording Entra ID uses (AADSTS700027 signature or
unknown key, AADSTS700024 time range, AADSTS700021 issuer/subject, AADSTS700023 audience).
"""

from __future__ import annotations

import base64
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization

from tools.testbed.idp_errors import AadError

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
ALGORITHMS = ("RS256", "PS256")
CLOCK_SKEW = timedelta(minutes=5)
_DOCS = "https://docs.microsoft.com/azure/active-directory/develop/active-directory-certificate-credentials"


@dataclass(frozen=True)
class RegisteredCertificate:
    """A certificate uploaded under Certificates & secrets: its public key, thumbprints and dates."""

    sha1: bytes
    sha256: bytes
    public_key_pem: bytes = field(repr=False)
    not_before: datetime
    not_after: datetime

    @classmethod
    def from_pem(cls, pem: bytes) -> RegisteredCertificate:
        certificate = x509.load_pem_x509_certificate(pem)
        return cls(
            sha1=certificate.fingerprint(hashes.SHA1()),
            sha256=certificate.fingerprint(hashes.SHA256()),
            public_key_pem=certificate.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            ),
            not_before=certificate.not_valid_before_utc,
            not_after=certificate.not_valid_after_utc,
        )


def authenticate_assertion(
    form: Mapping[str, str],
    client_id: str,
    certificates: Iterable[RegisteredCertificate],
    token_endpoints: Iterable[str],
    now: datetime,
) -> None:
    """Raise :class:`AadError` unless the form's client assertion proves ``client_id``."""
    assertion = form.get("client_assertion", "")
    if form.get("client_assertion_type") != ASSERTION_TYPE:
        raise _malformed("client_assertion_type must be " + ASSERTION_TYPE)
    try:
        header = jwt.get_unverified_header(assertion)
    except jwt.PyJWTError as exc:
        raise _malformed("JWT token is invalid or malformed.") from exc
    algorithm = str(header.get("alg", ""))
    if algorithm not in ALGORITHMS:
        raise AadError(
            5002738,
            "invalid_client",
            f"Invalid JWT token. '{algorithm}' is not a supported signature algorithm. Supported signing "
            "algorithms are: 'RS256, HS256'",
            status=401,
        )
    thumbprint, registered = _find_certificate(header, certificates)
    if registered is None:
        raise _bad_signature(client_id, "The key was not found.", thumbprint)
    if now > registered.not_after:
        raise _bad_signature(client_id, "The key used is expired.", thumbprint)
    try:
        claims = jwt.decode(
            assertion,
            registered.public_key_pem,
            algorithms=[algorithm],
            options={"verify_exp": False, "verify_nbf": False, "verify_aud": False, "verify_iat": False},
        )
    except jwt.InvalidSignatureError as exc:
        raise _bad_signature(client_id, "The signature is invalid.", thumbprint) from exc
    except jwt.PyJWTError as exc:
        raise _malformed("JWT token is invalid or malformed.") from exc
    _check_claims(claims, client_id, set(token_endpoints), now)


def _check_claims(claims: Mapping[str, object], client_id: str, endpoints: set[str], now: datetime) -> None:
    if str(claims.get("iss", "")).lower() != client_id or str(claims.get("sub", "")).lower() != client_id:
        raise AadError(
            700021,
            "invalid_client",
            "Client assertion application identifier doesn't match 'client_id' parameter. Review the "
            f"documentation at {_DOCS} .",
            status=401,
        )
    if claims.get("aud") not in endpoints:
        raise AadError(
            700023,
            "invalid_client",
            "Client assertion audience claim does not match Realm issuer. Review the documentation at "
            f"{_DOCS} .",
            status=401,
        )
    if not claims.get("jti"):
        raise _malformed("The client assertion has no 'jti' claim.")
    expires, not_before = _moment(claims.get("exp")), _moment(claims.get("nbf", claims.get("iat")))
    if (
        expires is None
        or now > expires + CLOCK_SKEW
        or (not_before is not None and now < not_before - CLOCK_SKEW)
    ):
        raise AadError(
            700024,
            "invalid_client",
            f"Client assertion is not within its valid time range. Current time: {_iso(now)}, assertion "
            f"valid from {_iso(not_before)}, expiry time of assertion {_iso(expires)}. Review the "
            f"documentation at {_DOCS} .",
            status=401,
        )


def _find_certificate(
    header: Mapping[str, object], certificates: Iterable[RegisteredCertificate]
) -> tuple[str, RegisteredCertificate | None]:
    sha256, sha1 = _thumbprint(header.get("x5t#S256")), _thumbprint(header.get("x5t"))
    for registered in certificates:
        if (sha256 and registered.sha256 == sha256) or (sha1 and registered.sha1 == sha1):
            return (sha256 or sha1 or b"").hex().upper(), registered
    return (sha256 or sha1 or b"").hex().upper(), None


def _thumbprint(value: object) -> bytes | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
    except ValueError:
        return None


def _bad_signature(client_id: str, reason: str, thumbprint: str) -> AadError:
    return AadError(
        700027,
        "invalid_client",
        f"Client assertion failed signature validation. [Reason - {reason}, Thumbprint of key used by "
        f"client: '{thumbprint}', Please visit the Azure Portal, Graph Explorer or directly use MS Graph "
        f"to see configured keys for app Id '{client_id}'.]",
        status=401,
    )


def _malformed(message: str) -> AadError:
    return AadError(50027, "invalid_request", message)


def _moment(value: object) -> datetime | None:
    if isinstance(value, (int, float)):
        return datetime.fromtimestamp(value, timezone.utc)
    return None


def _iso(moment: datetime | None) -> str:
    return "(none)" if moment is None else moment.strftime("%m/%d/%Y %H:%M:%S")
