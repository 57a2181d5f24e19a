"""The per-account part of ``wicbox check``: the reading protocol, a token per account, and what it grants."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from wicbox_bridge.adapters.base import AccessToken, TokenProvider
from wicbox_bridge.auth.accounts import AccountPlan, MailboxAccount, MailboxOpener
from wicbox_bridge.auth.scopes import TokenProtocol, reading_token_protocol, resolve_mail_protocol
from wicbox_bridge.config.params import AuthMethod, Parameters, PermissionType
from wicbox_bridge.diagnostics.results import CheckResult, CheckStatus, failed
from wicbox_bridge.diagnostics.token_report import check_token_for_protocol
from wicbox_bridge.errors import BridgeError

ProviderFactory = Callable[[MailboxAccount, TokenProtocol], TokenProvider]

_WAITING_SHOWN = 1000


def protocol_check(params: Parameters) -> tuple[CheckResult, TokenProtocol | None]:
    """Which protocol reads the mailboxes, and why (or why the SCOPE cannot work)."""
    try:
        protocol, reason = resolve_mail_protocol(params)
    except BridgeError as error:
        return failed("protocol", error), None
    return CheckResult("protocol", CheckStatus.OK, f"{protocol.value}: {reason}"), reading_token_protocol(
        protocol
    )


def plan_checks(plan: AccountPlan) -> Iterator[CheckResult]:
    """One line per selected mailbox, and a FAIL for each project whose mailbox columns are unusable."""
    for account in plan.accounts:
        yield CheckResult("mailbox", CheckStatus.OK, f"{account.label}: {account.mailbox}")
    for _project, error in plan.broken:
        yield failed("mailbox", error)


def token_checks(
    params: Parameters, plan: AccountPlan, protocol: TokenProtocol, provider_for: ProviderFactory
) -> Iterator[CheckResult]:
    """A token for each account (one for the app with application permissions) and its grants."""
    if params.method is AuthMethod.BASIC:
        yield CheckResult("token", CheckStatus.SKIP, "WICBOXMETHOD is Basic: no OAuth2 token is used")
        return
    app_token: AccessToken | None = None
    for account in plan.accounts:
        if params.permission_type is PermissionType.APPLICATION and app_token is not None:
            token = app_token
        else:
            try:
                token = provider_for(account, protocol)()
            except BridgeError as error:
                yield failed(f"token ({account.label})", error)
                continue
            source = "token cache" if token.from_cache else "identity platform"
            who = (
                "the application"
                if params.permission_type is PermissionType.APPLICATION
                else account.username
            )
            yield CheckResult(
                f"token ({account.label})", CheckStatus.OK, f"acquired for {who} from the {source}"
            )
            app_token = token
        yield _grant_check(params, account, protocol, token)


def _grant_check(
    params: Parameters, account: MailboxAccount, protocol: TokenProtocol, token: AccessToken
) -> CheckResult:
    result = check_token_for_protocol(
        token, protocol, params.permission_type, mailbox=account.mailbox, client_id=params.client_id
    )
    return CheckResult(
        f"{result.name} ({account.label})", result.status, result.detail, result.fix, result.exit_code
    )


def login_checks(plan: AccountPlan, open_mailbox: MailboxOpener) -> Iterator[CheckResult]:
    """Sign in to each mailbox and select its source folder, as a run would; reads nothing."""
    for account in plan.accounts:
        name = f"login ({account.label})"
        try:
            session = open_mailbox(account)
        except BridgeError as error:
            yield failed(name, error)
            continue
        try:
            waiting = len(session.list_pending(_WAITING_SHOWN))
        except BridgeError as error:
            yield failed(name, error)
            continue
        finally:
            session.close()
        more = "+" if waiting == _WAITING_SHOWN else ""
        yield CheckResult(
            name, CheckStatus.OK, f"signed in to {account.mailbox}; {waiting}{more} mail(s) waiting"
        )
