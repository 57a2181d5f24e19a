"""Builds the adapters from the validated settings: the only place that does (see docs/architecture.md)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from wicbox_bridge.account_checks import MailboxOpener, ProviderFactory
from wicbox_bridge.accounts import AccountPlan, MailboxAccount
from wicbox_bridge.adapters.base import MailboxSession, TokenProvider
from wicbox_bridge.adapters.identity import TokenService
from wicbox_bridge.adapters.imap import ImapAdapter, ImapSettings
from wicbox_bridge.adapters.token_cache import token_cache_path
from wicbox_bridge.errors import ConfigurationError
from wicbox_bridge.params import MailProtocol, Parameters
from wicbox_bridge.runtime import Runtime
from wicbox_bridge.scopes import TokenProtocol, resolve_mail_protocol


@contextmanager
def token_service(runtime: Runtime, params: Parameters) -> Iterator[TokenService]:
    """The token layer of this configuration, with its persisted cache in the state directory."""
    service = TokenService.from_parameters(
        params, token_cache_path(runtime.state_dir), env=dict(runtime.invocation.env)
    )
    try:
        yield service
    finally:
        service.close()


def provider_factory(service: TokenService, params: Parameters) -> ProviderFactory:
    """Token providers per account: the account's own sign-in (delegated) or the app's (application)."""

    def provider_for(account: MailboxAccount, protocol: TokenProtocol) -> TokenProvider:
        return service.for_protocol(
            params, protocol, username=account.username, password=account.password, names=account.names
        )

    return provider_for


def register_account_secrets(runtime: Runtime, plan: AccountPlan) -> None:
    """Project passwords come from WIC_PROJECT: mask them in logs like the global ones."""
    runtime.redactor.register([account.password for account in plan.accounts])


def mailbox_opener(
    params: Parameters, plan: AccountPlan, provider_for: ProviderFactory | None
) -> tuple[str, MailboxOpener]:
    """The protocol that reads the mailboxes and a function opening a session per account.

    ``provider_for`` None means Basic authentication: each account signs in with its password.
    """
    protocol, _reason = resolve_mail_protocol(params)
    if protocol is MailProtocol.GRAPH:
        raise ConfigurationError(
            "this release reads mailboxes over IMAP only; WICBOX_MAILCLIENT_SCOPE selects Microsoft Graph",
            fix="grant the Office 365 Exchange Online permission IMAP.AccessAsUser.All (delegated) or "
            "IMAP.AccessAsApp (application) and set WICBOX_MAILCLIENT_SCOPE to it (see `wicbox check`)",
        )
    passwords = {account.mailbox: account.password for account in plan.accounts if account.password}
    adapter = ImapAdapter(ImapSettings.from_parameters(params), password=passwords)

    def open_mailbox(account: MailboxAccount) -> MailboxSession:
        tokens = provider_for(account, "imap") if provider_for is not None else None
        return adapter.open(account.mailbox, tokens)

    return "imap", open_mailbox
