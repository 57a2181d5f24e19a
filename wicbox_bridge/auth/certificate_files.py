"""Reading and making certificate files with the cryptography package (see
:mod:`wicbox_bridge.auth.certificate`, which imports this module only when a certificate is read or
made)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import NameOID

from wicbox_bridge.auth.certificate import (
    MAX_FILE_BYTES,
    MIN_KEY_BITS,
    NEW_CERTIFICATE_STEPS,
    CertificateCredential,
    NewCertificate,
)
from wicbox_bridge.config.params import CERTIFICATE, CERTIFICATE_PASSWORD
from wicbox_bridge.errors import ParameterError
from wicbox_bridge.secret import Secret


def load_certificate(path: Path, password: Secret | None) -> CertificateCredential:
    """Read and check the certificate file; see the module docstring for the errors."""
    data = _read(path)
    if b"-----BEGIN" in data:
        key, certificate = _from_pem(path, data, password)
    else:
        key, certificate = _from_pfx(path, data, password)
    _check_key(path, key, certificate)
    return _credential(path, key, certificate)


def _credential(path: Path, key: rsa.RSAPrivateKey, certificate: x509.Certificate) -> CertificateCredential:
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return CertificateCredential(
        path=path,
        private_key_pem=Secret(key_pem.decode("ascii")),
        certificate_pem=certificate.public_bytes(serialization.Encoding.PEM).decode("ascii"),
        sha1_thumbprint=certificate.fingerprint(hashes.SHA1()).hex().upper(),  # noqa: S303 - Azure's thumbprint
        sha256_thumbprint=certificate.fingerprint(hashes.SHA256()).hex().upper(),
        subject=certificate.subject.rfc4514_string(),
        not_before=certificate.not_valid_before_utc,
        not_after=certificate.not_valid_after_utc,
    )


def _fail(path: Path, problem: str, fix: str) -> ParameterError:
    return ParameterError(CERTIFICATE, f"{path}: {problem}", fix=fix)


def _read(path: Path) -> bytes:
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise _fail(path, f"is {size} bytes, too large for a certificate file", NEW_CERTIFICATE_STEPS)
        return path.read_bytes()
    except FileNotFoundError as exc:
        raise _fail(
            path,
            "does not exist",
            f"give {CERTIFICATE} the full path of the .pem or .pfx file as the account the task runs as "
            f"sees it, or {NEW_CERTIFICATE_STEPS}",
        ) from exc
    except IsADirectoryError as exc:
        raise _fail(
            path, "is a folder, not a file", f"give {CERTIFICATE} the path of the file itself"
        ) from exc
    except PermissionError as exc:
        raise _fail(
            path,
            "cannot be read by this account",
            "give the account the scheduled task runs as read access to the file (and only that account)",
        ) from exc
    except OSError as exc:
        raise _fail(path, f"cannot be read ({exc.strerror or type(exc).__name__})", "check the path") from exc


def _password_bytes(password: Secret | None) -> bytes | None:
    return password.reveal().encode("utf-8") if password else None


def _wrong_password(path: Path, password: Secret | None) -> ParameterError:
    if password:
        return _fail(
            path,
            f"the private key cannot be opened with {CERTIFICATE_PASSWORD}",
            f"run `wicbox params set {CERTIFICATE_PASSWORD} --prompt` with the password the file was "
            "exported with",
        )
    return _fail(
        path,
        "the private key is protected by a password",
        f"set it with `wicbox params set {CERTIFICATE_PASSWORD} --prompt`",
    )


def _from_pem(path: Path, data: bytes, password: Secret | None) -> tuple[rsa.RSAPrivateKey, x509.Certificate]:
    try:
        certificates = x509.load_pem_x509_certificates(data)
    except ValueError as exc:
        raise _fail(
            path,
            "holds no certificate (-----BEGIN CERTIFICATE-----)",
            "use a PEM file with both the private key and the certificate, as `wicbox cert new` writes, "
            "or a .pfx file",
        ) from exc
    key: object
    try:
        key = serialization.load_pem_private_key(data, _password_bytes(password))
    except TypeError as exc:  # encrypted without a password, or a password for a plain key
        if not password:
            raise _wrong_password(path, password) from exc
        key = _plain_key(path, data)
    except ValueError as exc:
        if b"PRIVATE KEY-----" not in data:
            raise _fail(
                path,
                "holds a certificate but no private key (a .cer or .crt is the public half only)",
                "use the .pem file with the private key that was made with the certificate, or a .pfx file",
            ) from exc
        raise _wrong_password(path, password) from exc
    return _checked_rsa(path, key, _matching(certificates, key))


def _plain_key(path: Path, data: bytes) -> object:
    try:
        return serialization.load_pem_private_key(data, None)
    except (TypeError, ValueError) as exc:
        raise _fail(path, "the private key cannot be read", NEW_CERTIFICATE_STEPS) from exc


def _from_pfx(path: Path, data: bytes, password: Secret | None) -> tuple[rsa.RSAPrivateKey, x509.Certificate]:
    try:
        key, certificate, _ = pkcs12.load_key_and_certificates(data, _password_bytes(password))
    except ValueError as exc:
        if _looks_like_pkcs12(data):
            raise _wrong_password(path, password) from exc
        raise _fail(
            path,
            "is neither a PEM file nor a PFX (PKCS#12) file",
            f"give {CERTIFICATE} the .pem file with the private key and the certificate, or the .pfx file",
        ) from exc
    if key is None:
        raise _fail(path, "holds no private key", "export the certificate again with its private key (.pfx)")
    if certificate is None:
        raise _fail(path, "holds no certificate", "export the certificate again together with its key (.pfx)")
    return _checked_rsa(path, key, certificate)


def _looks_like_pkcs12(data: bytes) -> bool:
    """A DER SEQUENCE whose first member is INTEGER 3 (PFX version 3)."""
    if len(data) < 8 or data[0] != 0x30:
        return False
    length_bytes = data[1] - 0x80 if data[1] & 0x80 else 0
    start = 2 + length_bytes
    return data[start : start + 3] == b"\x02\x01\x03"


def _matching(certificates: list[x509.Certificate], key: object) -> x509.Certificate:
    """The certificate of ``key`` among those in the file (the first one when none matches)."""
    if isinstance(key, rsa.RSAPrivateKey):
        numbers = key.public_key().public_numbers()
        for certificate in certificates:
            public = certificate.public_key()
            if isinstance(public, rsa.RSAPublicKey) and public.public_numbers() == numbers:
                return certificate
    return certificates[0]


def _checked_rsa(
    path: Path, key: object, certificate: x509.Certificate
) -> tuple[rsa.RSAPrivateKey, x509.Certificate]:
    if not isinstance(key, rsa.RSAPrivateKey):
        raise _fail(
            path,
            f"holds a {type(key).__name__} key; Microsoft Entra ID takes RSA certificates only",
            NEW_CERTIFICATE_STEPS,
        )
    return key, certificate


def _check_key(path: Path, key: rsa.RSAPrivateKey, certificate: x509.Certificate) -> None:
    public = certificate.public_key()
    if (
        not isinstance(public, rsa.RSAPublicKey)
        or public.public_numbers() != key.public_key().public_numbers()
    ):
        raise _fail(
            path,
            "the private key does not belong to the certificate in the file",
            "put the certificate and the key that was made with it in one file, or use the .pfx export",
        )
    if key.key_size < MIN_KEY_BITS:
        raise _fail(
            path,
            f"the key has {key.key_size} bits; Microsoft Entra ID needs {MIN_KEY_BITS} or more",
            NEW_CERTIFICATE_STEPS,
        )


def new_certificate(
    common_name: str, *, days: int, now: dt.datetime, key_bits: int = MIN_KEY_BITS
) -> NewCertificate:
    """A self-signed certificate valid from ``now`` for ``days`` days, with a new RSA key."""
    if not 1 <= days <= 3650:
        raise ValueError("days must be between 1 and 3650")
    if key_bits < MIN_KEY_BITS:
        raise ValueError(f"an RSA key for Microsoft Entra ID has at least {MIN_KEY_BITS} bits")
    key = rsa.generate_private_key(public_exponent=65537, key_size=key_bits)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(key, hashes.SHA256())
    )
    public_pem = certificate.public_bytes(serialization.Encoding.PEM)
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return NewCertificate(key_pem + public_pem, public_pem, _credential(Path(), key, certificate))
