"""`wicbox check` and `wicbox token` against the identity-platform emulator with the real msal."""

from __future__ import annotations

import pytest

from tests.helpers.mailgen import make_mail
from tests.helpers.secrets import assert_no_secrets as scan_for_secrets
from tests.plugins.wic import Mailroom, WicInstallation, application_parameters
from tools.testbed.idp import IdentityPlatformEmulator
from tools.testbed.pki import LoopbackPki
from wicbox_bridge.store.parameters import get_parameter


def _imap_params(wic: WicInstallation) -> dict[str, str | None]:
    with wic.store() as store:
        return {
            name: get_parameter(store, name)[1]  # type: ignore[index]
            for name in ("WICBOX_MAILCLIENT_IMAPHOST", "WICBOX_MAILCLIENT_IMAPTLS")
        }


def _assert_no_secrets(output: str, *secrets: str) -> None:
    scan_for_secrets(output, secrets=secrets)


def test_check_passes_for_delegated_single_mode(
    mailroom: Mailroom, idp_clean: IdentityPlatformEmulator
) -> None:
    wic = mailroom.wic
    mailroom.deliver([make_mail(1), make_mail(2)])
    result = wic.cli("check")
    assert result.exit_code == 0, result.output
    assert (
        "[OK  ] login (global mailbox): signed in to wicbox@klant.example; 2 mail(s) waiting" in result.output
    )
    assert "[OK  ] protocol: IMAP" in result.output
    assert (
        "[OK  ] token (global mailbox): acquired for wicbox@klant.example from the identity platform"
        in result.output
    )
    assert "IMAP.AccessAsUser.All" in result.output
    assert idp_clean.request_log.count(grant_type="password") == 1
    _assert_no_secrets(result.output, wic.directory.mailbox.password)


def test_second_check_is_served_from_the_persisted_cache(
    mailroom: Mailroom, idp_clean: IdentityPlatformEmulator
) -> None:
    wic = mailroom.wic
    assert wic.cli("check").exit_code == 0
    idp_clean.request_log.clear()
    again = wic.cli("check")
    assert again.exit_code == 0
    assert "from the token cache" in again.output
    assert idp_clean.request_log.count() == 0


def test_wrong_password_names_the_parameter_and_exits_3(wic: WicInstallation) -> None:
    wic.set_params({"WICBOX_MAILCLIENT_PASSWORD": "Fout-Wachtwoord-99"})
    result = wic.cli("check")
    assert result.exit_code == 3, result.output
    assert "[FAIL] token (global mailbox)" in result.output
    assert "AADSTS50126" in result.output
    assert "WICBOX_MAILCLIENT_PASSWORD" in result.output
    _assert_no_secrets(result.output, "Fout-Wachtwoord-99")


def test_typo_in_client_id_is_named(wic: WicInstallation) -> None:
    wic.set_params({"WICBOX_MAILCLIENT_CLIENTID": "0d6e8c1a-1111-2222-3333-444455556666"})
    result = wic.cli("check")
    assert result.exit_code == 3
    assert "AADSTS700016" in result.output
    assert "WICBOX_MAILCLIENT_CLIENTID" in result.output


def test_application_permissions_print_the_exchange_steps(
    mailroom: Mailroom, idp_clean: IdentityPlatformEmulator, loopback_pki: LoopbackPki
) -> None:
    wic = mailroom.wic
    wic.set_params({**application_parameters(idp_clean, wic.directory, loopback_pki), **_imap_params(wic)})
    mailroom.dovecot.grant_app_access(wic.directory.confidential_client_sp_id, mailroom.mailbox)
    result = wic.cli("check")
    assert result.exit_code == 0, result.output
    assert "New-ServicePrincipal" in result.output
    assert wic.directory.confidential_client_sp_id in result.output
    assert "Add-MailboxPermission -Identity wicbox@klant.example" in result.output
    assert idp_clean.request_log.count(grant_type="client_credentials") == 1
    _assert_no_secrets(result.output, wic.directory.confidential_client_secret)


def test_application_permissions_without_the_mailbox_grant_fail_at_login(
    mailroom: Mailroom, idp_clean: IdentityPlatformEmulator, loopback_pki: LoopbackPki
) -> None:
    wic = mailroom.wic
    wic.set_params({**application_parameters(idp_clean, wic.directory, loopback_pki), **_imap_params(wic)})
    result = wic.cli("check")
    assert result.exit_code == 3, result.output
    assert "[FAIL] login (global mailbox)" in result.output
    assert "Add-MailboxPermission" in result.output


def test_vendor_guide_scope_selects_graph(wic: WicInstallation) -> None:
    wic.set_params({"WICBOX_MAILCLIENT_SCOPE": "Mail.ReadWrite"})
    result = wic.cli("check")
    assert "[OK  ] protocol: GRAPH" in result.output
    assert "[OK  ] token (global mailbox)" in result.output
    assert "Mail.ReadWrite" in result.output


def test_graph_scope_with_imap_protocol_is_a_configuration_error(wic: WicInstallation) -> None:
    wic.set_params({"WICBOX_MAILCLIENT_SCOPE": "Mail.ReadWrite", "WICBOX_MAILCLIENT_PROTOCOL": "IMAP"})
    result = wic.cli("check")
    assert result.exit_code == 2
    assert "[FAIL] protocol" in result.output
    assert "IMAP.AccessAsUser.All" in result.output


def test_token_command_shows_claims_never_the_token(wic: WicInstallation) -> None:
    result = wic.cli("token")
    assert result.exit_code == 0, result.output
    assert "https://outlook.office.com" in result.output
    assert "IMAP.AccessAsUser.All" in result.output
    assert "wicbox@klant.example" in result.output
    _assert_no_secrets(result.output, wic.directory.mailbox.password)


def test_token_for_an_unknown_project_names_the_known_codes(wic: WicInstallation) -> None:
    wic.add_project(1, "ALPHA", mailbox="alpha@klant.example")
    result = wic.cli("token", "--project", "X")
    assert result.exit_code == 2
    assert "wicbox: error: --project: no project with code 'X' in WIC_PROJECT." in result.stderr
    assert (
        "wicbox: fix: give the code of a project (the codes in WIC_PROJECT: ALPHA), or leave --project "
        "out for the global mailbox: `wicbox token`"
    ) in result.stderr


def test_token_for_a_project_account(wic: WicInstallation) -> None:
    user = wic.directory.project_users[0]
    wic.add_project(1, "ALPHA", mailbox=user.upn, username=user.upn, password=user.password)
    result = wic.cli("token", "--project", "alpha")
    assert result.exit_code == 0, result.output
    assert user.upn in result.output
    _assert_no_secrets(result.output, user.password)


def test_highest_verbosity_leaks_no_secret(mailroom: Mailroom) -> None:
    wic = mailroom.wic
    mailroom.deliver([make_mail(1)])
    secrets = (wic.directory.mailbox.password,)
    for args in (("-vvv", "check"), ("-vvv", "token"), ("-vvv", "params", "list"), ("-vvv", "run")):
        result = wic.cli(*args)
        assert result.exit_code == 0, result.output
        _assert_no_secrets(result.output, *secrets)


TYPOS = [
    # (parameter, wrong value, expected exit code, a code or phrase the message must contain)
    ("WICBOX_MAILCLIENT_CLIENTID", "49527ea8-7825-56ad-897b-dbcfce91f5ce", 3, "AADSTS700016"),
    ("WICBOX_MAILCLIENT_CLIENTID", "49527ea8-7825-56ad-897b", 2, "GUID"),
    ("WICBOX_MAILCLIENT_TENANTID", "5f1c7d2e-8b4a-4c3e-9a6f-2d7e1b0c9a42", 3, "AADSTS90002"),
    ("WICBOX_MAILCLIENT_TENANTID", "klant.onmicrosoft.co", 3, "AADSTS90002"),
    ("WICBOX_MAILCLIENT_USERNAME", "wicbx@klant.example", 3, "AADSTS50034"),
    ("WICBOX_MAILCLIENT_USERNAME", "wicbox.klant.example", 2, "e-mail"),
    ("WICBOX_MAILCLIENT_PASSWORD", "Pw-typo", 3, "AADSTS50126"),
    ("WICBOX_MAILCLIENT_SCOPE", "Mail.ReadWrit", 2, "WICBOX_MAILCLIENT_SCOPE"),
    ("WICBOX_MAILCLIENT_AUTHORITYHOST", "http://login.example", 2, "https"),
    ("WICBOXACCOUNTMODE", "SINGEL", 2, "SINGLE"),
]


@pytest.mark.parametrize(("parameter", "value", "exit_code", "phrase"), TYPOS)
def test_a_typo_in_any_single_value_is_named_with_its_fix(
    wic: WicInstallation, parameter: str, value: str, exit_code: int, phrase: str
) -> None:
    wic.set_params({parameter: value})
    result = wic.cli("check")
    assert result.exit_code == exit_code, result.output
    failing = [line for line in result.output.splitlines() if line.startswith("[FAIL]")]
    assert failing, result.output
    first_failure = result.output[result.output.index(failing[0]) :]
    assert parameter in first_failure, result.output
    assert phrase.lower() in first_failure.lower(), result.output
    assert "fix:" in first_failure
    _assert_no_secrets(result.output, wic.directory.mailbox.password)


def test_a_typo_in_the_client_secret_is_named(
    wic: WicInstallation, idp_clean: IdentityPlatformEmulator, loopback_pki: LoopbackPki
) -> None:
    wic.set_params(application_parameters(idp_clean, wic.directory, loopback_pki))
    wic.set_params({"WICBOX_MAILCLIENT_CLIENTSECRET": wic.directory.confidential_client_secret + "x"})
    result = wic.cli("check")
    assert result.exit_code == 3, result.output
    assert "AADSTS7000215" in result.output
    assert "WICBOX_MAILCLIENT_CLIENTSECRET" in result.output
    _assert_no_secrets(result.output, wic.directory.confidential_client_secret)
