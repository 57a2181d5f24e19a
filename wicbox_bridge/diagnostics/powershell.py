"""``wicbox check --powershell``: the Exchange Online PowerShell the configured setup needs, filled in.

Pure: the caller gathers the facts (permission type, reading protocol, the mailboxes the account
plan opens, the senders WIC's outbox uses, the app's service principal) and this module writes the
commands an Exchange administrator runs after ``Connect-ExchangeOnline``. Application permissions
over IMAP still need ``New-ServicePrincipal`` and ``Add-MailboxPermission``; app-only SMTP takes
the least-privilege route Microsoft documents since late 2025 (RBAC for Applications: a management
scope over the sending mailboxes and the role "Application SMTP.SendAsApp", no Entra permission).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from wicbox_bridge.config.params import MailProtocol, PermissionType

SCOPE_NAME = "WICBox mailboxes"
# Addresses come from WIC's tables, which more people can write than can run PowerShell: only plain
# addresses go into the script, and each as a single-quoted literal; anything else is skipped.
_GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_PLAIN_ADDRESS = re.compile(r"^[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+$")
UNKNOWN_SERVICE_PRINCIPAL = "<Object ID under Enterprise applications > WICBox (not under App registrations)>"


@dataclass(frozen=True)
class ExchangeSetup:
    """What the commands depend on (names and ids, never a secret)."""

    client_id: str
    permission: PermissionType
    reading: MailProtocol  # IMAP or GRAPH (AUTO resolved)
    mailboxes: tuple[str, ...]  # every mailbox a run opens, in the plan's order
    senders: tuple[str, ...] = ()  # From addresses of WIC's outbox that are none of the mailboxes
    service_principal_id: str | None = None  # the app token's oid; None: not known


def powershell_script(setup: ExchangeSetup) -> str:
    """The commands, with comments saying what each block is for."""
    lines = [
        "# Exchange Online PowerShell for wicbox-bridge, filled in from this configuration.",
        "# Run after Connect-ExchangeOnline as an Exchange administrator. Permission changes can take",
        "# up to two hours to apply; `wicbox check` shows when they have.",
        "",
    ]
    skipped = [a for a in (*setup.mailboxes, *setup.senders) if a and not _PLAIN_ADDRESS.match(a)]
    if setup.permission is PermissionType.APPLICATION:
        lines += _application(setup)
    else:
        lines += _delegated(setup)
    if skipped:
        lines += ["", "# Left out, not plain e-mail addresses (check WIC_PROJECT and WICBOX_OUTBOX):"]
        lines += [f"#   {address!r}" for address in skipped]
    return "\n".join(lines).rstrip() + "\n"


def _mailbox_switches(setup: ExchangeSetup) -> list[str]:
    switches = "-SmtpClientAuthenticationDisabled $false"
    if setup.reading is MailProtocol.IMAP:
        switches = f"-ImapEnabled $true {switches}"
    return [f"Set-CASMailbox -Identity {_quoted(mailbox)} {switches}" for mailbox in _unique(setup.mailboxes)]


def _application(setup: ExchangeSetup) -> list[str]:
    given = setup.service_principal_id or ""
    principal = given if _GUID.match(given) else UNKNOWN_SERVICE_PRINCIPAL
    mailboxes = _unique(setup.mailboxes)
    senders = _unique([*mailboxes, *setup.senders])
    lines = [
        "# 1. The app's service principal in Exchange (once per tenant; an error saying it exists is fine)",
        f'New-ServicePrincipal -AppId {setup.client_id} -ObjectId {principal} -DisplayName "WICBox"',
        "",
    ]
    if setup.reading is MailProtocol.IMAP:
        lines += ["# 2. Reading over IMAP (IMAP.AccessAsApp): the app gets each mailbox a run opens"]
        lines += [
            f"Add-MailboxPermission -Identity {_quoted(mailbox)} -User {principal} -AccessRights FullAccess"
            for mailbox in mailboxes
        ]
    else:
        lines += [
            "# 2. Reading through Microsoft Graph: least privilege with RBAC for Applications, instead of",
            "#    the tenant-wide Mail.ReadWrite application permission (remove that one in Entra after)",
            f'New-ManagementScope -Name "{SCOPE_NAME} (read)" '
            f'-RecipientRestrictionFilter "{_filter(mailboxes)}"',
            f'New-ManagementRoleAssignment -Role "Application Mail.ReadWrite" -App {principal} '
            f'-CustomResourceScope "{SCOPE_NAME} (read)"',
        ]
    lines += [
        "",
        "# 3. IMAP and SMTP AUTH on for every mailbox the app opens",
        *_mailbox_switches(setup),
        "",
        "# 4. Sending with app-only SMTP, least privilege: the role over a scope of the sending mailboxes",
        "#    (no SMTP.SendAsApp permission in Entra needed)",
        f'New-ManagementScope -Name "{SCOPE_NAME} (send)" -RecipientRestrictionFilter "{_filter(senders)}"',
        f'New-ManagementRoleAssignment -Role "Application SMTP.SendAsApp" -App {principal} '
        f'-CustomResourceScope "{SCOPE_NAME} (send)"',
        "",
        "# 5. Verify (after the changes have applied)",
    ]
    lines += [
        f"Test-ServicePrincipalAuthorization -Identity {principal} -Resource {_quoted(mailbox)}"
        for mailbox in senders
    ]
    if principal == UNKNOWN_SERVICE_PRINCIPAL:
        lines += [
            "",
            "# The service principal's Object ID could not be read from an app token (see `wicbox check`):",
            "# copy it from Azure portal > Enterprise applications > WICBox > Overview.",
        ]
    return lines


def _delegated(setup: ExchangeSetup) -> list[str]:
    lines = [
        "# 1. IMAP and SMTP AUTH on for every mailbox account that signs in",
        *_mailbox_switches(setup),
    ]
    if setup.senders:
        plain = _unique(setup.mailboxes)
        sender_of = plain[0] if plain else "<the mailbox that sends>"
        lines += [
            "",
            f"# 2. WIC sends as other addresses: let {sender_of} send as each of them",
            *[
                f"Add-RecipientPermission -Identity {_quoted(sender)} -Trustee {_quoted(sender_of)} "
                "-AccessRights SendAs -Confirm:$false"
                for sender in _unique(setup.senders)
            ],
        ]
    return lines


def _filter(addresses: Iterable[str]) -> str:
    return " -or ".join(f"PrimarySmtpAddress -eq '{address}'" for address in addresses)


def _quoted(address: str) -> str:
    return f"'{address}'" if _PLAIN_ADDRESS.match(address) else address


def _unique(addresses: Iterable[str]) -> list[str]:
    """The plain addresses, each once (case-insensitive), in order."""
    seen: dict[str, str] = {}
    for address in addresses:
        if address and _PLAIN_ADDRESS.match(address) and address.casefold() not in seen:
            seen[address.casefold()] = address
    return list(seen.values())
