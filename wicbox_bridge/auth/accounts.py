"""Which mailboxes a run opens, and with which sign-in, per the vendor's account modes.

- SINGLE: the global mailbox (WICBOX_MAILCLIENT_USERNAME); its mails are routed to projects.
- MULTIPLE: each selected project's own mailbox; every mail in it belongs to that project.
  Delegated permissions sign in as the project's own WICBOX_USERNAME, with the sign-in
  `wicbox signin --project CODE` saved or else with its WICBOX_PASSWORD;
  application permissions use the one app token and open WICBOX_MAILBOX (else WICBOX_USERNAME).
- MIX: the global mailbox first, then the MULTIPLE pass over the projects not marked SINGLE.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from wicbox_bridge.adapters.base import MailboxSession
from wicbox_bridge.auth.aadsts import CredentialNames
from wicbox_bridge.config.params import (
    PASSWORD,
    USERNAME,
    AccountMode,
    AuthMethod,
    Parameters,
    PermissionType,
)
from wicbox_bridge.errors import ParameterError
from wicbox_bridge.secret import Secret
from wicbox_bridge.store.base import Store
from wicbox_bridge.store.projects import Project, projects_for_mix, projects_for_multiple


@dataclass(frozen=True)
class MailboxAccount:
    """One mailbox to read and how to sign in to it (``username`` None: the application token)."""

    label: str
    mailbox: str
    project: Project | None
    username: str | None
    password: Secret | None
    names: CredentialNames

    @property
    def project_code(self) -> str | None:
        return self.project.code if self.project else None


MailboxOpener = Callable[[MailboxAccount], MailboxSession]
"""Opens a session on one account's mailbox (built by the CLI from the reading adapter)."""


def _signs_in_with_password(params: Parameters) -> bool:
    return params.method is AuthMethod.BASIC or params.permission_type is PermissionType.DELEGATED


def global_account(params: Parameters) -> MailboxAccount:
    """The global WICBOX mailbox (SINGLE mode and the first pass of MIX)."""
    with_password = _signs_in_with_password(params)
    return MailboxAccount(
        label="global mailbox",
        mailbox=params.username,
        project=None,
        username=params.username if with_password else None,
        password=params.password if with_password else None,
        names=CredentialNames(
            account=params.username, username_parameter=USERNAME, password_parameter=PASSWORD
        ),
    )


def project_account(params: Parameters, project: Project) -> MailboxAccount:
    """A project's own mailbox. Raises ParameterError naming the project's column to fill in."""
    column = f"WIC_PROJECT.{{}} of project {project.code}"
    mailbox = project.mailbox or project.username
    if not mailbox:
        raise ParameterError(
            column.format("WICBOX_MAILBOX"),
            "is empty: the project has no mailbox of its own.",
            fix="fill in WICBOX_MAILBOX (or WICBOX_USERNAME) for the project, or clear its mailbox columns "
            "so it is served by the global mailbox",
        )
    names = CredentialNames(
        account=project.username or mailbox,
        username_parameter=column.format("WICBOX_USERNAME"),
        password_parameter=column.format("WICBOX_PASSWORD"),
        project=project.code,
    )
    if not _signs_in_with_password(params):
        return MailboxAccount(f"project {project.code}", mailbox, project, None, None, names)
    password_required = params.method is AuthMethod.BASIC  # OAuth2: or a `wicbox signin --project`
    if not project.username or (password_required and not project.password):
        missing = "WICBOX_USERNAME" if not project.username else "WICBOX_PASSWORD"
        raise ParameterError(
            column.format(missing),
            "is empty, but delegated permissions sign in with the project's own account.",
            fix=f"fill in {missing} for project {project.code}, or use application permissions "
            "(`wicbox params set WICBOX_MAILCLIENT_CLIENTSECRET --prompt`)",
        )
    return MailboxAccount(
        f"project {project.code}", mailbox, project, project.username, project.password, names
    )


@dataclass(frozen=True)
class AccountPlan:
    """The mailboxes of one run, in order, and the projects whose mailbox settings are unusable."""

    accounts: tuple[MailboxAccount, ...]
    broken: tuple[tuple[Project, ParameterError], ...]


def plan_accounts(params: Parameters, store: Store) -> AccountPlan:
    """The accounts the account mode selects; a project with bad columns is reported, not fatal."""
    accounts: list[MailboxAccount] = []
    broken: list[tuple[Project, ParameterError]] = []
    if params.account_mode in (AccountMode.SINGLE, AccountMode.MIX):
        accounts.append(global_account(params))
    if params.account_mode is AccountMode.MULTIPLE:
        projects = projects_for_multiple(store)
    elif params.account_mode is AccountMode.MIX:
        projects = projects_for_mix(store)
    else:
        projects = []
    for project in projects:
        try:
            accounts.append(project_account(params, project))
        except ParameterError as error:
            broken.append((project, error))
    if params.account_mode is AccountMode.MULTIPLE and not accounts and not broken:
        raise ParameterError(
            "WICBOXACCOUNTMODE",
            "is MULTIPLE, but no active project has a mailbox of its own.",
            fix="fill in WICBOX_MAILBOX (and for delegated permissions WICBOX_USERNAME/WICBOX_PASSWORD) "
            "in WIC_PROJECT for the projects to read, or run `wicbox params set WICBOXACCOUNTMODE SINGLE`",
        )
    return AccountPlan(tuple(accounts), tuple(broken))
