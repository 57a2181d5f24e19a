"""`wicbox check --powershell`: the Exchange Online commands a setup needs (pure tables), and the
command against the test bed with the app's real service principal."""

from __future__ import annotations

import pytest

from tests.plugins.wic import Mailroom, application_parameters
from tools.testbed.idp import IdentityPlatformEmulator
from tools.testbed.pki import LoopbackPki
from wicbox_bridge.config.params import MailProtocol, PermissionType
from wicbox_bridge.diagnostics.powershell import UNKNOWN_SERVICE_PRINCIPAL, ExchangeSetup, powershell_script

CLIENT = "0b6e3f4c-1a2d-4e5f-8a9b-0c1d2e3f4a5b"
SP = "7e1f0a9b-2c3d-4e5f-8a9b-0c1d2e3f4a5b"
GLOBAL = "wicbox@klant.be"
ALPHA = "project-alpha@klant.be"


def script(**changes: object) -> str:
    values: dict[str, object] = {
        "client_id": CLIENT,
        "permission": PermissionType.APPLICATION,
        "reading": MailProtocol.IMAP,
        "mailboxes": (GLOBAL, ALPHA),
        "service_principal_id": SP,
    }
    values.update(changes)
    return powershell_script(ExchangeSetup(**values))  # type: ignore[arg-type]


def test_application_imap_needs_the_service_principal_and_each_mailbox() -> None:
    text = script()
    assert f'New-ServicePrincipal -AppId {CLIENT} -ObjectId {SP} -DisplayName "WICBox"' in text
    for mailbox in (GLOBAL, ALPHA):
        assert f"Add-MailboxPermission -Identity '{mailbox}' -User {SP} -AccessRights FullAccess" in text
        switches = "-ImapEnabled $true -SmtpClientAuthenticationDisabled $false"
        assert f"Set-CASMailbox -Identity '{mailbox}' {switches}" in text
        assert f"Test-ServicePrincipalAuthorization -Identity {SP} -Resource '{mailbox}'" in text
    assert (
        'New-ManagementScope -Name "WICBox mailboxes (send)" -RecipientRestrictionFilter '
        f"\"PrimarySmtpAddress -eq '{GLOBAL}' -or PrimarySmtpAddress -eq '{ALPHA}'\""
    ) in text
    assert f'New-ManagementRoleAssignment -Role "Application SMTP.SendAsApp" -App {SP}' in text
    assert "two hours" in text


def test_application_graph_uses_rbac_for_applications_not_mailbox_permissions() -> None:
    text = script(reading=MailProtocol.GRAPH)
    assert "Add-MailboxPermission" not in text
    assert f'New-ManagementRoleAssignment -Role "Application Mail.ReadWrite" -App {SP}' in text
    assert "-ImapEnabled" not in text and "-SmtpClientAuthenticationDisabled $false" in text


def test_without_the_service_principal_the_script_says_where_to_find_it() -> None:
    text = script(service_principal_id=None)
    assert UNKNOWN_SERVICE_PRINCIPAL in text
    assert "Enterprise applications > WICBox > Overview" in text
    assert UNKNOWN_SERVICE_PRINCIPAL in script(service_principal_id="not-a-guid; Remove-Mailbox x")


def test_delegated_needs_the_mailbox_switches_and_send_as_for_other_senders() -> None:
    text = script(permission=PermissionType.DELEGATED, mailboxes=(GLOBAL,), senders=("dossiers@klant.be",))
    assert "New-ServicePrincipal" not in text and "Add-MailboxPermission" not in text
    assert f"Set-CASMailbox -Identity '{GLOBAL}' -ImapEnabled $true" in text
    assert (
        f"Add-RecipientPermission -Identity 'dossiers@klant.be' -Trustee '{GLOBAL}' -AccessRights SendAs"
        in text
    )


@pytest.mark.parametrize(
    "hostile",
    [
        "x@klant.be; Remove-Mailbox -Identity ceo@klant.be",
        "x@klant.be' -or '1'='1",
        "x@klant.be\nRemove-Mailbox ceo@klant.be",
        "$(Remove-Mailbox ceo)@klant.be",
    ],
)
def test_an_address_from_a_wic_table_cannot_inject_powershell(hostile: str) -> None:
    for text in (script(mailboxes=(GLOBAL, hostile)), script(senders=(hostile,))):
        commands = [line for line in text.splitlines() if line and not line.startswith("#")]
        assert all("Remove-Mailbox" not in line and "'1'='1" not in line for line in commands)
        assert repr(hostile) in text  # named as left out, escaped, in a comment


@pytest.mark.testbed
def test_check_powershell_names_the_apps_real_service_principal(
    mailroom: Mailroom, idp_clean: IdentityPlatformEmulator, loopback_pki: LoopbackPki
) -> None:
    wic = mailroom.wic
    wic.set_params(
        {
            **application_parameters(idp_clean, wic.directory, loopback_pki),
            "WICBOX_MAILCLIENT_IMAPHOST": f"{mailroom.dovecot.host}:{mailroom.dovecot.imaps_port}",
        }
    )
    result = wic.cli("check", "--powershell")
    assert result.exit_code == 0, result.output
    sp = wic.directory.confidential_client_sp_id
    assert f"-AppId {wic.directory.confidential_client_id} -ObjectId {sp}" in result.output
    assert f"Add-MailboxPermission -Identity '{mailroom.mailbox}' -User {sp}" in result.output
    assert wic.directory.confidential_client_secret not in result.output
