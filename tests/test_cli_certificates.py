"""Application permissions with a certificate, end to end: `wicbox check`, `wicbox run` into Dovecot,
`wicbox cert show`, and the failures that must stop a run before anything is filed or acknowledged."""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from tests.helpers.mailgen import make_mail
from tests.helpers.secrets import assert_no_secrets as scan_for_secrets
from tests.plugins.wic import Mailroom, application_parameters
from tests.test_logging import log_file
from tools.testbed.idp import IdentityPlatformEmulator
from tools.testbed.pki import LoopbackPki
from wicbox_bridge.auth.certificate import NewCertificate, new_certificate

pytestmark = pytest.mark.testbed


@pytest.fixture(scope="module")
def certificate() -> NewCertificate:
    return new_certificate("wicbox-bridge e2e", days=730, now=dt.datetime.now(dt.timezone.utc))


def use_certificate(
    mailroom: Mailroom,
    idp: IdentityPlatformEmulator,
    pki: LoopbackPki,
    made: NewCertificate,
    folder: Path,
    *,
    upload: bool = True,
    keep_secret: bool = False,
) -> Path:
    """Application parameters with the certificate at ``folder``/app.pem (mode 0600), Exchange access."""
    wic = mailroom.wic
    path = folder / "app.pem"
    path.write_bytes(made.private_pem)
    path.chmod(0o600)
    if upload:
        idp.upload_certificate(wic.directory.confidential_client_id, made.public_pem)
    values = application_parameters(idp, wic.directory, pki)
    values["WICBOX_MAILCLIENT_IMAPHOST"] = f"{mailroom.dovecot.host}:{mailroom.dovecot.imaps_port}"
    values["WICBOX_MAILCLIENT_CERTIFICATE"] = str(path)
    if not keep_secret:
        values["WICBOX_MAILCLIENT_CLIENTSECRET"] = None
    wic.set_params(values)
    mailroom.dovecot.grant_app_access(wic.directory.confidential_client_sp_id, mailroom.mailbox)
    return path


def assert_nothing_secret(text: str, made: NewCertificate, *secrets: str) -> None:
    key_line = made.private_pem.decode().splitlines()[1]
    scan_for_secrets(text, secrets=[key_line, *secrets])


def test_check_then_run_with_a_certificate_files_mail_asking_the_platform_once(
    mailroom: Mailroom,
    idp_clean: IdentityPlatformEmulator,
    loopback_pki: LoopbackPki,
    certificate: NewCertificate,
    tmp_path: Path,
) -> None:
    wic = mailroom.wic
    use_certificate(mailroom, idp_clean, loopback_pki, certificate, tmp_path, keep_secret=True)

    checked = wic.cli("-vvv", "check")

    assert checked.exit_code == 0, checked.output
    assert f"credential: certificate {tmp_path / 'app.pem'}, thumbprint " in checked.output
    assert certificate.credential.sha1_thumbprint in checked.output
    assert re.search(r"\[WARN\] parameters: WICBOX_MAILCLIENT_CLIENTSECRET is set beside", checked.output)
    assert idp_clean.request_log.count(grant_type="client_credentials") == 1

    mailroom.deliver([make_mail(n) for n in range(3)])
    ran = wic.cli("-vvv", "run")

    assert ran.exit_code == 0, ran.output
    assert len(mailroom.filed()) == 3
    assert mailroom.messages("INBOX") == []
    assert idp_clean.request_log.count(grant_type="client_credentials") == 1  # the warm run asked nothing
    secret = wic.directory.confidential_client_secret
    for text in (checked.output, ran.output, log_file(wic).read_text(encoding="utf-8")):
        assert_nothing_secret(text, certificate, secret)


@pytest.mark.parametrize("problem", ["expired", "not uploaded", "missing file", "wrong password"])
def test_a_certificate_problem_stops_the_run_before_anything_is_filed(
    mailroom: Mailroom,
    idp_clean: IdentityPlatformEmulator,
    loopback_pki: LoopbackPki,
    certificate: NewCertificate,
    tmp_path: Path,
    problem: str,
) -> None:
    wic = mailroom.wic
    made = certificate
    if problem == "expired":
        made = new_certificate("old", days=1, now=dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=3))
    if problem == "not uploaded":
        made = new_certificate("never uploaded", days=30, now=dt.datetime.now(dt.timezone.utc))
    path = use_certificate(
        mailroom, idp_clean, loopback_pki, made, tmp_path, upload=problem != "not uploaded"
    )
    if problem == "missing file":
        path.unlink()
    if problem == "wrong password":
        wic.set_params({"WICBOX_MAILCLIENT_CERTIFICATEPASSWORD": "Not-The-Pfx-Password"})
        key = serialization.load_pem_private_key(made.private_pem, None)
        encrypted = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"The-Right-Password"),
        )
        path.write_bytes(encrypted + made.public_pem)
    mailroom.deliver([make_mail(1)])

    ran = wic.cli("run")

    expected = {"expired": 3, "not uploaded": 3, "missing file": 2, "wrong password": 2}[problem]
    assert ran.exit_code == expected, ran.output
    phrase = {
        "expired": "expired on",
        "not uploaded": "AADSTS700027",
        "missing file": "does not exist",
        "wrong password": "WICBOX_MAILCLIENT_CERTIFICATE",
    }[problem]
    assert phrase in ran.output
    assert "fix:" in ran.output
    assert mailroom.filed() == []
    assert len(mailroom.messages("INBOX")) == 1  # still on the server for the next run
    if problem in ("expired", "missing file", "wrong password"):
        assert idp_clean.request_log.count(grant_type="client_credentials") == 0
    assert_nothing_secret(ran.output, made, "Not-The-Pfx-Password")
    checked = wic.cli("check")
    assert checked.exit_code == expected, checked.output
    assert "[FAIL]" in checked.output


def test_cert_show_prints_the_configured_certificate_and_warns_about_other_readers(
    mailroom: Mailroom,
    idp_clean: IdentityPlatformEmulator,
    loopback_pki: LoopbackPki,
    certificate: NewCertificate,
    tmp_path: Path,
) -> None:
    wic = mailroom.wic
    path = use_certificate(mailroom, idp_clean, loopback_pki, certificate, tmp_path)

    shown = wic.cli("cert", "show", "--json")

    assert shown.exit_code == 0, shown.output
    details = json.loads(shown.output)
    assert details["thumbprint"] == certificate.credential.sha1_thumbprint
    assert details["certificate"] == str(path)
    assert 729 < details["days_left"] <= 730
    assert "warning" not in details
    path.chmod(0o644)
    loose = wic.cli("cert", "show")
    assert loose.exit_code == 0, loose.output
    assert f"chmod 600 '{path}'" in loose.output
    checked = wic.cli("check")
    assert re.search(r"\[WARN\] credential: .* can be read by other accounts", checked.output)
    assert_nothing_secret(shown.output + loose.output + checked.output, certificate)


def test_a_password_sign_in_warns_once_per_run_and_check_names_the_way_off(mailroom: Mailroom) -> None:
    wic = mailroom.wic
    mailroom.deliver([make_mail(1), make_mail(2)])
    for _ in range(2):  # the first run signs in with the password, the second from the token cache
        ran = wic.cli("run")
        assert ran.exit_code == 0, ran.output
        assert ran.output.count("Microsoft has deprecated it") == 1, ran.output
        assert "DeprecationWarning" not in ran.output
    log_text = log_file(wic).read_text(encoding="utf-8")
    assert log_text.count("signs in with a stored password") == 2
    checked = wic.cli("check")
    assert checked.exit_code == 0, checked.output
    assert re.search(
        r"\[WARN\] credential: delegated permissions sign in with a stored password", checked.output
    )
    assert "wicbox cert new" in checked.output
