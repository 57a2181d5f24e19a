"""Certificate credentials: reading PEM and PFX files (every way they can be wrong), `wicbox cert`,
and application tokens with a client assertion against the identity-platform emulator (real msal)."""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import hashlib
import json
import os
import stat
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import jwt
import pytest
import requests
from click.testing import CliRunner
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import NameOID

from tools.testbed.idp import APPLICATION_ROLES, IdentityPlatformEmulator, SeededDirectory
from tools.testbed.pki import LoopbackPki
from wicbox_bridge.adapters.identity import IdentityPlatform, TokenService
from wicbox_bridge.adapters.token_cache import CACHE_FILE_NAME
from wicbox_bridge.auth.aadsts import IdentityPlatformError
from wicbox_bridge.auth.certificate import (
    CertificateCredential,
    NewCertificate,
    Validity,
    load_certificate,
    new_certificate,
)
from wicbox_bridge.auth.keyfile import owner_only_command, private_file_problem, write_private_file
from wicbox_bridge.auth.scopes import EXCHANGE_APPLICATION
from wicbox_bridge.cli import cli
from wicbox_bridge.config.params import (
    CERTIFICATE,
    CERTIFICATE_PASSWORD,
    CLIENT_SECRET,
    PermissionType,
    parse_parameters,
)
from wicbox_bridge.errors import AuthenticationError, ConfigurationError, ExitCode, ParameterError
from wicbox_bridge.logs.redact import mask_tokens
from wicbox_bridge.secret import Secret

NOW = dt.datetime(2027, 3, 1, 9, 0, tzinfo=dt.timezone.utc)
PASSWORD = "Pfx-Wachtwoord-2027!"


@pytest.fixture(scope="module")
def made() -> NewCertificate:
    return new_certificate("wicbox-bridge test", days=730, now=dt.datetime.now(dt.timezone.utc))


@pytest.fixture(scope="module")
def other() -> NewCertificate:
    return new_certificate("wicbox-bridge other", days=730, now=dt.datetime.now(dt.timezone.utc))


def key_of(certificate: NewCertificate) -> rsa.RSAPrivateKey:
    key = serialization.load_pem_private_key(certificate.private_pem, None)
    assert isinstance(key, rsa.RSAPrivateKey)
    return key


def write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    path.chmod(0o600)
    return path


# -- reading a certificate file -----------------------------------------------------------------


def test_a_new_certificate_reads_back_with_the_same_thumbprints(made: NewCertificate, tmp_path: Path) -> None:
    loaded = load_certificate(write(tmp_path / "app.pem", made.private_pem), None)
    assert loaded.sha1_thumbprint == made.credential.sha1_thumbprint
    assert len(loaded.sha1_thumbprint) == 40 and loaded.sha1_thumbprint == loaded.sha1_thumbprint.upper()
    assert len(loaded.sha256_thumbprint) == 64
    assert loaded.not_after - loaded.not_before == dt.timedelta(days=730, minutes=5)
    assert key_of(made).key_size == 2048
    assert "BEGIN PRIVATE KEY" in loaded.private_key_pem.reveal()
    assert "PRIVATE KEY" not in repr(loaded) and "PRIVATE KEY" not in str(loaded)


def test_new_certificate_dates_follow_the_clock() -> None:
    made = new_certificate("t", days=10, now=NOW)
    assert made.credential.not_before == NOW - dt.timedelta(minutes=5)
    assert made.credential.not_after == NOW + dt.timedelta(days=10)
    assert made.credential.days_left(NOW) == pytest.approx(10)
    with pytest.raises(ValueError, match="days"):
        new_certificate("t", days=0, now=NOW)
    with pytest.raises(ValueError, match="2048"):
        new_certificate("t", days=1, now=NOW, key_bits=1024)


def test_pem_with_an_encrypted_key(made: NewCertificate, tmp_path: Path) -> None:
    encrypted = key_of(made).private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(PASSWORD.encode()),
    )
    path = write(tmp_path / "enc.pem", encrypted + made.public_pem)
    assert load_certificate(path, Secret(PASSWORD)).sha1_thumbprint == made.credential.sha1_thumbprint
    with pytest.raises(ParameterError) as wrong:
        load_certificate(path, Secret("not-it"))
    assert wrong.value.exit_code is ExitCode.CONFIGURATION
    assert str(path) in wrong.value.message and CERTIFICATE_PASSWORD in str(wrong.value)
    with pytest.raises(ParameterError, match="protected by a password") as missing:
        load_certificate(path, None)
    assert f"wicbox params set {CERTIFICATE_PASSWORD} --prompt" in (missing.value.fix or "")
    assert PASSWORD not in str(wrong.value) + str(missing.value)


def test_a_password_for_a_plain_key_is_not_needed(made: NewCertificate, tmp_path: Path) -> None:
    path = write(tmp_path / "plain.pem", made.private_pem)
    assert load_certificate(path, Secret(PASSWORD)).sha1_thumbprint == made.credential.sha1_thumbprint


def pfx(made: NewCertificate, password: str | None) -> bytes:
    encryption = (
        serialization.BestAvailableEncryption(password.encode()) if password else serialization.NoEncryption()
    )
    certificate = x509.load_pem_x509_certificate(made.public_pem)
    return pkcs12.serialize_key_and_certificates(b"wicbox", key_of(made), certificate, None, encryption)


def test_pfx_with_and_without_password(made: NewCertificate, tmp_path: Path) -> None:
    protected = write(tmp_path / "app.pfx", pfx(made, PASSWORD))
    assert load_certificate(protected, Secret(PASSWORD)).sha1_thumbprint == made.credential.sha1_thumbprint
    for wrong in (None, Secret("nope")):
        with pytest.raises(ParameterError) as refused:
            load_certificate(protected, wrong)
        assert CERTIFICATE_PASSWORD in str(refused.value) and str(protected) in refused.value.message
    open_pfx = write(tmp_path / "open.pfx", pfx(made, None))
    assert load_certificate(open_pfx, None).sha256_thumbprint == made.credential.sha256_thumbprint


def bad_files(made: NewCertificate, other: NewCertificate) -> dict[str, tuple[bytes, str]]:
    ec_key = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    small = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    small_pem = small.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    other_key = other.private_pem.split(b"-----BEGIN CERTIFICATE-----")[0]
    return {
        "certificate only (.cer)": (made.public_pem, "no private key"),
        "key only": (other_key, "holds no certificate"),
        "key of another certificate": (other_key + made.public_pem, "does not belong to the certificate"),
        "EC key": (ec_key + made.public_pem, "RSA certificates only"),
        "garbage": (os.urandom(600), "neither a PEM file nor a PFX"),
        "text": (b"this is not a certificate\n", "neither a PEM file nor a PFX"),
        "small RSA key": (small_pem + made.public_pem, "does not belong"),
    }


@pytest.mark.parametrize(
    "case",
    [
        "certificate only (.cer)",
        "key only",
        "key of another certificate",
        "EC key",
        "garbage",
        "text",
        "small RSA key",
    ],
)
def test_a_wrong_file_is_a_configuration_error_naming_the_file(
    made: NewCertificate, other: NewCertificate, tmp_path: Path, case: str
) -> None:
    data, expected = bad_files(made, other)[case]
    path = write(tmp_path / "bad.pem", data)
    with pytest.raises(ParameterError) as refused:
        load_certificate(path, None)
    assert refused.value.exit_code is ExitCode.CONFIGURATION
    assert refused.value.parameter == CERTIFICATE
    assert str(path) in refused.value.message
    assert expected in refused.value.message
    assert refused.value.fix
    assert b"PRIVATE KEY" not in str(refused.value).encode()


def test_a_small_key_with_its_own_certificate_is_refused(tmp_path: Path) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "small")])
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(NOW)
        .not_valid_after(NOW + dt.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ) + certificate.public_bytes(serialization.Encoding.PEM)
    with pytest.raises(ParameterError, match="1024 bits"):
        load_certificate(write(tmp_path / "small.pem", pem), None)


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        ("missing", "does not exist"),
        ("folder", "is a folder"),
        ("loop", "cannot be read"),
        ("huge", "too large"),
    ],
)
def test_a_file_that_cannot_be_read(tmp_path: Path, kind: str, expected: str) -> None:
    path = tmp_path / "app.pem"
    if kind == "folder":
        path.mkdir()
    elif kind == "loop":
        path.symlink_to(path)  # reading fails with an OSError that is neither "missing" nor a folder
    elif kind == "huge":
        with path.open("wb") as handle:
            handle.truncate(2 * 1024 * 1024)
    with pytest.raises(ParameterError) as refused:
        load_certificate(path, None)
    assert str(path) in refused.value.message
    assert expected in refused.value.message
    assert refused.value.fix


# -- parameters ---------------------------------------------------------------------------------

BASE = {
    "WICBOX_MAILCLIENT_CLIENTID": "0b6e3f4c-1a2d-4e5f-8a9b-0c1d2e3f4a5b",
    "WICBOX_MAILCLIENT_TENANTID": "5f1c7d2e-8b4a-4c3e-9a6f-2d7e1b0c9a41",
    "WICBOX_MAILCLIENT_USERNAME": "wicbox@klant.example",
    "WICBOXACCOUNTMODE": "SINGLE",
}


def test_a_certificate_means_application_permissions_and_the_secret_is_ignored() -> None:
    parsed = parse_parameters(
        {**BASE, CERTIFICATE: '"C:\\WIC\\wicbox-app.pem"', CLIENT_SECRET: "Sx~an-old-secret-value"}
    )
    params = parsed.parameters
    assert params.permission_type is PermissionType.APPLICATION
    assert params.certificate == Path("C:\\WIC\\wicbox-app.pem")
    assert params.client_secret is None
    assert any(CLIENT_SECRET in w and "ignored" in w for w in parsed.warnings)
    assert all("Sx~an-old-secret-value" not in w for w in parsed.warnings)


def test_certificate_password_and_stray_settings() -> None:
    parsed = parse_parameters({**BASE, CERTIFICATE: "/etc/wicbox/app.pfx", CERTIFICATE_PASSWORD: PASSWORD})
    assert parsed.parameters.certificate_password == Secret(PASSWORD)
    assert PASSWORD not in repr(parsed.parameters)
    stray = parse_parameters({**BASE, "WICBOX_MAILCLIENT_PASSWORD": "pw", CERTIFICATE_PASSWORD: PASSWORD})
    assert stray.parameters.permission_type is PermissionType.DELEGATED
    assert any(CERTIFICATE_PASSWORD in w and "ignored" in w for w in stray.warnings)
    with pytest.raises(ParameterError, match="application permissions do not use"):
        parse_parameters({**BASE, CERTIFICATE: "/x.pem", "WICBOX_MAILCLIENT_PASSWORD": "pw"})


# -- key files ----------------------------------------------------------------------------------


def test_private_files_are_owner_only_and_never_overwritten(tmp_path: Path) -> None:
    path = tmp_path / "key.pem"
    write_private_file(path, b"secret")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert private_file_problem(path) is None
    with pytest.raises(ConfigurationError, match="never overwrites"):
        write_private_file(path, b"other")
    assert path.read_bytes() == b"secret"
    path.chmod(0o644)
    problem = private_file_problem(path)
    assert problem is not None and f"chmod 600 '{path}'" in problem


def test_the_windows_command_leaves_the_file_to_its_owner() -> None:
    command = owner_only_command(Path("C:/WIC/app.pem"), {"USERNAME": "svc-wic", "USERDOMAIN": "KLANT"})
    assert command[:3] == ["icacls", str(Path("C:/WIC/app.pem")), "/inheritance:r"]
    assert command[3:] == ["/grant:r", "KLANT\\svc-wic:F"]


def test_logs_never_show_a_private_key(made: NewCertificate) -> None:
    text = "loaded " + made.private_pem.decode() + " and client_assertion=eyJabc.def.ghi"
    masked = mask_tokens(text)
    body = made.private_pem.decode().splitlines()[1]
    assert body not in masked
    assert "BEGIN CERTIFICATE" in masked  # the public half stays readable
    assert "eyJabc" not in masked


# -- wicbox cert --------------------------------------------------------------------------------


def test_cert_new_writes_the_pair_and_prints_json(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["cert", "new", "--out", str(tmp_path), "--days", "400", "--json"])
    assert result.exit_code == 0, result.output
    shown = json.loads(result.output)
    assert set(shown) == {"certificate", "public_certificate", "thumbprint", "not_after"}
    private, public = Path(shown["certificate"]), Path(shown["public_certificate"])
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    assert b"PRIVATE KEY" not in public.read_bytes()
    loaded = load_certificate(private, None)
    assert loaded.sha1_thumbprint == shown["thumbprint"]
    left = loaded.days_left(dt.datetime.now(dt.timezone.utc))
    assert 399 < left <= 400
    again = CliRunner().invoke(cli, ["cert", "new", "--out", str(tmp_path)])
    assert again.exit_code == ExitCode.CONFIGURATION
    assert "never overwrites" in again.output
    assert load_certificate(private, None).sha1_thumbprint == shown["thumbprint"]


# -- application tokens with a certificate, against the emulator (real msal) -----------------------


@dataclasses.dataclass(frozen=True)
class CertApp:
    client_id: str
    platform: IdentityPlatform


@pytest.fixture
def cert_app(
    idp_clean: IdentityPlatformEmulator,
    idp_directory: SeededDirectory,
    loopback_pki: LoopbackPki,
    made: NewCertificate,
) -> Iterator[CertApp]:
    """An app registration of this test only, with ``made`` uploaded and the application roles."""
    client_id = str(uuid.uuid4())
    idp_clean.add_application(
        client_id,
        idp_directory.tenant_id,
        "WICBOX mail (certificate)",
        app_roles=APPLICATION_ROLES,
        certificates=[made.public_pem],
    )
    platform = IdentityPlatform(
        idp_clean.base_url, idp_directory.tenant_id, client_id, ca_bundle=loopback_pki.ca_cert
    )
    yield CertApp(client_id, platform)
    idp_clean.clock_offset = 0.0


def service(app: CertApp, tmp_path: Path, clock: float | None = None) -> TokenService:
    return TokenService(
        app.platform,
        tmp_path / "state" / CACHE_FILE_NAME,
        encrypt_cache=False,
        clock=time.time if clock is None else (lambda: clock),
    )


def credential(certificate: NewCertificate, tmp_path: Path, name: str = "app.pem") -> CertificateCredential:
    return load_certificate(write(tmp_path / name, certificate.private_pem), None)


def token_requests(idp: IdentityPlatformEmulator) -> list[tuple[str | None, int]]:
    return [(record.grant_type, record.status) for record in idp.request_log.token_requests()]


def test_application_token_with_a_certificate_then_from_the_cache(
    cert_app: CertApp, made: NewCertificate, tmp_path: Path, idp_clean: IdentityPlatformEmulator
) -> None:
    cold = service(cert_app, tmp_path).application((EXCHANGE_APPLICATION,), credential(made, tmp_path))()
    assert cold.claims["roles"] == ["IMAP.AccessAsApp", "SMTP.SendAsApp"]
    assert cold.claims["appid"] == cert_app.client_id
    assert token_requests(idp_clean) == [("client_credentials", 200)]
    warm = service(cert_app, tmp_path).application((EXCHANGE_APPLICATION,), credential(made, tmp_path))()
    assert warm.from_cache
    assert token_requests(idp_clean) == [("client_credentials", 200)]  # a warm run asks nothing


def test_a_pfx_with_password_signs_in(
    cert_app: CertApp, made: NewCertificate, tmp_path: Path, idp_clean: IdentityPlatformEmulator
) -> None:
    loaded = load_certificate(write(tmp_path / "app.pfx", pfx(made, PASSWORD)), Secret(PASSWORD))
    token = service(cert_app, tmp_path).application((EXCHANGE_APPLICATION,), loaded)()
    assert token.claims["appid"] == cert_app.client_id


def test_a_certificate_that_is_not_uploaded_is_aadsts700027(
    cert_app: CertApp, other: NewCertificate, tmp_path: Path, idp_clean: IdentityPlatformEmulator
) -> None:
    with pytest.raises(IdentityPlatformError) as refused:
        service(cert_app, tmp_path).application((EXCHANGE_APPLICATION,), credential(other, tmp_path))()
    assert refused.value.code == "AADSTS700027"
    assert refused.value.exit_code is ExitCode.AUTHENTICATION
    assert "wicbox cert show" in (refused.value.fix or "")
    assert "PRIVATE KEY" not in str(refused.value)
    idp_clean.upload_certificate(cert_app.client_id, other.public_pem)
    token = service(cert_app, tmp_path).application((EXCHANGE_APPLICATION,), credential(other, tmp_path))()
    assert token.claims["appid"] == cert_app.client_id


def test_a_clock_that_is_off_is_aadsts700024(
    cert_app: CertApp, made: NewCertificate, tmp_path: Path, idp_clean: IdentityPlatformEmulator
) -> None:
    idp_clean.clock_offset = 2 * 3600.0  # the directory's clock two hours ahead of this server's
    with pytest.raises(IdentityPlatformError) as refused:
        service(cert_app, tmp_path).application((EXCHANGE_APPLICATION,), credential(made, tmp_path))()
    assert refused.value.code == "AADSTS700024"
    assert "clock" in (refused.value.fix or "")
    idp_clean.clock_offset = 240.0  # within the five minutes Entra ID allows
    token = service(cert_app, tmp_path).application((EXCHANGE_APPLICATION,), credential(made, tmp_path))()
    assert token.claims["appid"] == cert_app.client_id


@pytest.mark.parametrize("when", ["expired", "not yet valid"])
def test_an_expired_or_future_certificate_fails_before_any_request(
    cert_app: CertApp, tmp_path: Path, idp_clean: IdentityPlatformEmulator, when: str
) -> None:
    now = time.time()
    moment = dt.datetime.fromtimestamp(now, dt.timezone.utc)
    start = moment - dt.timedelta(days=10) if when == "expired" else moment + dt.timedelta(days=2)
    dated = new_certificate("dated", days=1, now=start)
    idp_clean.upload_certificate(cert_app.client_id, dated.public_pem)
    provider = service(cert_app, tmp_path, clock=now).application(
        (EXCHANGE_APPLICATION,), credential(dated, tmp_path)
    )
    with pytest.raises(AuthenticationError) as refused:
        provider()
    assert refused.value.exit_code is ExitCode.AUTHENTICATION
    assert ("expired" if when == "expired" else "not valid before") in refused.value.message
    assert "wicbox cert new" in (refused.value.fix or "")
    assert token_requests(idp_clean) == []


def test_every_mailbox_shares_one_certificate_load(
    cert_app: CertApp, made: NewCertificate, tmp_path: Path
) -> None:
    path = write(tmp_path / "app.pem", made.private_pem)
    tokens = service(cert_app, tmp_path)
    assert tokens.certificate(path, None) is tokens.certificate(path, None)
    first = tokens.application((EXCHANGE_APPLICATION,), tokens.certificate(path, None))
    assert tokens.application((EXCHANGE_APPLICATION,), tokens.certificate(path, None)) is first


# -- the emulator checks client assertions as Entra ID does (hand-made assertions, plain HTTP) ----


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def assertion(
    certificate: NewCertificate,
    *,
    audience: str,
    issuer: str,
    signer: NewCertificate | None = None,
    algorithm: str = "PS256",
    thumbprint: str = "x5t#S256",
    lifetime: float = 600,
    start: float | None = None,
    jti: bool = True,
) -> str:
    now = time.time() if start is None else start
    claims: dict[str, object] = {
        "aud": audience,
        "iss": issuer,
        "sub": issuer,
        "nbf": now,
        "exp": now + lifetime,
    }
    if jti:
        claims["jti"] = str(uuid.uuid4())
    der = x509.load_pem_x509_certificate(certificate.public_pem).public_bytes(serialization.Encoding.DER)
    digest = hashlib.sha256(der) if thumbprint == "x5t#S256" else hashlib.sha1(der)
    key = (signer or certificate).private_pem
    if algorithm.startswith("HS"):
        key = b"a shared secret the directory does not know"
    return jwt.encode(claims, key, algorithm=algorithm, headers={thumbprint: b64url(digest.digest())})


def post_assertion(
    idp: IdentityPlatformEmulator, session: requests.Session, tenant: str, client_id: str, signed: str
) -> requests.Response:
    form = {
        "grant_type": "client_credentials",
        "client_id": client_id,
        "scope": "https://outlook.office365.com/.default",
        "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        "client_assertion": signed,
    }
    return session.post(f"{idp.base_url}/{tenant}/oauth2/v2.0/token", data=form, timeout=10)


@pytest.mark.parametrize(
    ("case", "code"),
    [
        ("valid, SHA-256 thumbprint, PS256", None),
        ("valid, SHA-1 thumbprint, RS256", None),
        ("audience is the domain's token endpoint", None),
        ("signed by another key", 700027),
        ("certificate not uploaded", 700027),
        ("audience of another tenant", 700023),
        ("issued for another app", 700021),
        ("expired an hour ago", 700024),
        ("starts in an hour", 700024),
        ("no jti", 50027),
        ("HS256", 5002738),
        ("not a JWT", 50027),
    ],
)
def test_the_emulator_checks_client_assertions(
    cert_app: CertApp,
    made: NewCertificate,
    other: NewCertificate,
    idp_clean: IdentityPlatformEmulator,
    idp_directory: SeededDirectory,
    idp_http_session: requests.Session,
    case: str,
    code: int | None,
) -> None:
    tenant = idp_directory.tenant_id
    endpoint = f"{idp_clean.base_url}/{tenant}/oauth2/v2.0/token"
    options: dict[str, object] = {"audience": endpoint, "issuer": cert_app.client_id}
    certificate = made
    if case.startswith("valid, SHA-1"):
        options |= {"thumbprint": "x5t", "algorithm": "RS256"}
    elif case.startswith("audience is the domain"):
        options["audience"] = f"{idp_clean.base_url}/{idp_directory.domains[0]}/oauth2/v2.0/token"
    elif case == "signed by another key":
        options["signer"] = other
    elif case == "certificate not uploaded":
        certificate = other
    elif case == "audience of another tenant":
        options["audience"] = f"{idp_clean.base_url}/{uuid.uuid4()}/oauth2/v2.0/token"
    elif case == "issued for another app":
        options["issuer"] = str(uuid.uuid4())
    elif case == "expired an hour ago":
        options["start"] = time.time() - 3600 - 600
    elif case == "starts in an hour":
        options["start"] = time.time() + 3600
    elif case == "no jti":
        options["jti"] = False
    elif case == "HS256":
        options["algorithm"] = "HS256"
    signed = "not.a.jwt" if case == "not a JWT" else assertion(certificate, **options)  # type: ignore[arg-type]

    reply = post_assertion(idp_clean, idp_http_session, tenant, cert_app.client_id, signed)

    if code is None:
        assert reply.status_code == 200, reply.text
        assert reply.json()["token_type"] == "Bearer"
    else:
        assert reply.status_code in (400, 401)
        assert reply.json()["error_codes"] == [code], reply.text


@pytest.mark.parametrize(
    ("offset", "expected"),
    [
        (dt.timedelta(hours=-1), Validity.NOT_YET_VALID),  # the certificate starts 5 minutes before NOW
        (dt.timedelta(0), Validity.VALID),
        (dt.timedelta(days=10), Validity.EXPIRING),  # 30 days left
        (dt.timedelta(days=40), Validity.EXPIRED),
    ],
)
def test_one_judgement_of_a_certificates_validity(offset: dt.timedelta, expected: Validity) -> None:
    credential = new_certificate("t", days=40, now=NOW).credential
    assert credential.validity(NOW + offset) is expected
    assert credential.validity(NOW + offset).usable is (expected in (Validity.VALID, Validity.EXPIRING))
