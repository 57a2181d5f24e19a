"""Certificate credentials for application permissions: reading one, and making a new one.

Microsoft Entra ID takes a client assertion signed with the private key of a certificate uploaded
to the app registration (RSA, 2048 bits or more). The file named by WICBOX_MAILCLIENT_CERTIFICATE
is a PEM file holding the private key and the certificate, or a PFX (PKCS#12) file; either may be
protected by WICBOX_MAILCLIENT_CERTIFICATEPASSWORD. Every way the file can be wrong is a
:class:`~wicbox_bridge.errors.ParameterError` (exit 2) naming the file and the fix; the private
key itself is only ever held as a :class:`~wicbox_bridge.secret.Secret`.

The types live here; the reading and making, with the cryptography package's X.509 support, in
:mod:`wicbox_bridge.auth.certificate_files`, imported only when a certificate is read or made:
every ``wicbox run`` imports this module, and most installations use no certificate (the X.509
modules cost about 15 ms of every start).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Final

from wicbox_bridge.config.params import CERTIFICATE
from wicbox_bridge.secret import Secret

MIN_KEY_BITS: Final = 2048
DEFAULT_DAYS: Final = 730
EXPIRY_WARNING_DAYS: Final = 30
MAX_FILE_BYTES: Final = 1024 * 1024  # a certificate file is a few KB; anything larger is not one
CERTIFICATES_PAGE: Final = (
    "Azure portal > Microsoft Entra ID > App registrations > (the WICBox app) > Certificates & secrets "
    "> Certificates"
)
NEW_CERTIFICATE_STEPS: Final = (
    "run `wicbox cert new`, upload the .cer file it writes under "
    f"{CERTIFICATES_PAGE} > Upload certificate, then `wicbox params set {CERTIFICATE} <the .pem file>` "
    "and `wicbox check`"
)


class Validity(str, Enum):
    """Where ``now`` lies in a certificate's validity, as run, check, status and `cert show` judge it."""

    VALID = "valid"
    EXPIRING = "expiring"  # within EXPIRY_WARNING_DAYS of its end
    EXPIRED = "expired"
    NOT_YET_VALID = "not-yet-valid"

    @property
    def usable(self) -> bool:
        return self in (Validity.VALID, Validity.EXPIRING)


@dataclass(frozen=True)
class CertificateCredential:
    """A loaded certificate credential: the key (secret), the certificate and what admins compare."""

    path: Path
    private_key_pem: Secret = field(repr=False)  # PKCS#8, unencrypted, for msal only
    certificate_pem: str = field(repr=False)
    sha1_thumbprint: str  # hex, upper case, as the Azure portal shows it
    sha256_thumbprint: str
    subject: str
    not_before: dt.datetime
    not_after: dt.datetime

    def days_left(self, now: dt.datetime) -> float:
        return (self.not_after - now).total_seconds() / 86400

    def validity(self, now: dt.datetime) -> Validity:
        if now >= self.not_after:
            return Validity.EXPIRED
        if now < self.not_before:
            return Validity.NOT_YET_VALID
        return Validity.EXPIRING if self.days_left(now) <= EXPIRY_WARNING_DAYS else Validity.VALID


def load_certificate(path: Path, password: Secret | None) -> CertificateCredential:
    """Read and check the certificate file; see the module docstring for the errors."""
    from wicbox_bridge.auth import certificate_files  # noqa: PLC0415 - only when a certificate is used

    return certificate_files.load_certificate(path, password)


def describe(credential: CertificateCredential) -> dict[str, str]:
    """What `wicbox cert show --json` prints (never the key)."""
    return {
        "certificate": str(credential.path),
        "thumbprint": credential.sha1_thumbprint,
        "thumbprint_sha256": credential.sha256_thumbprint,
        "subject": credential.subject,
        "not_before": credential.not_before.isoformat(),
        "not_after": credential.not_after.isoformat(),
    }


# --------------------------------------------------------------------------- a new certificate


@dataclass(frozen=True)
class NewCertificate:
    """A new key pair and its self-signed certificate, as bytes to write."""

    private_pem: bytes = field(repr=False)  # the key (PKCS#8) followed by the certificate
    public_pem: bytes  # the certificate alone: the .cer to upload
    credential: CertificateCredential = field(repr=False)


def new_certificate(
    common_name: str, *, days: int, now: dt.datetime, key_bits: int = MIN_KEY_BITS
) -> NewCertificate:
    """A self-signed certificate valid from ``now`` for ``days`` days, with a new RSA key."""
    from wicbox_bridge.auth import certificate_files  # noqa: PLC0415 - only when a certificate is made

    return certificate_files.new_certificate(common_name, days=days, now=now, key_bits=key_bits)
