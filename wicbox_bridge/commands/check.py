"""``wicbox check``: one line per check with OK/FAIL and the fix; exit 0 only when all pass."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from email.utils import parseaddr

import click

from wicbox_bridge.adapters.token_cache import token_cache_path
from wicbox_bridge.auth.accounts import AccountPlan, plan_accounts
from wicbox_bridge.auth.keyfile import foreign_owner_problem
from wicbox_bridge.auth.scopes import reading_token_protocol, resolve_mail_protocol
from wicbox_bridge.commands import pass_runtime
from wicbox_bridge.commands._build import (
    mailbox_opener,
    provider_factory,
    register_account_secrets,
    smtp_login_probe,
    token_service,
)
from wicbox_bridge.config.footprint import FootprintItem, default_windows_security
from wicbox_bridge.config.params import AuthMethod, Parameters, PermissionType
from wicbox_bridge.diagnostics.accounts import (
    ProviderFactory,
    login_checks,
    plan_checks,
    protocol_check,
    token_checks,
)
from wicbox_bridge.diagnostics.credentials import credential_checks
from wicbox_bridge.diagnostics.permissions import permission_checks
from wicbox_bridge.diagnostics.powershell import ExchangeSetup, powershell_script
from wicbox_bridge.diagnostics.results import (
    CheckResult,
    CheckStatus,
    checks_json,
    failed,
    overall_exit_code,
)
from wicbox_bridge.diagnostics.smtp import smtp_checks
from wicbox_bridge.diagnostics.steps import AccountChecks, LoadedSettings, run_checks
from wicbox_bridge.errors import BridgeError
from wicbox_bridge.runtime import Runtime
from wicbox_bridge.store import Store
from wicbox_bridge.store.outbox import outbox_in_use, outbox_senders


def _account_checks(runtime: Runtime) -> AccountChecks:
    def checks(settings: LoadedSettings, store: Store) -> Iterator[CheckResult]:
        params = settings.parameters
        result, protocol = protocol_check(params)
        yield result
        try:
            plan = plan_accounts(params, store)
        except BridgeError as error:
            yield failed("mailbox", error)
            return
        register_account_secrets(runtime, plan)
        yield from plan_checks(plan)
        if protocol is None:
            return
        credentials = list(credential_checks(params, dt.datetime.now(dt.timezone.utc)))
        credentials += _token_cache_owner(runtime)
        yield from credentials
        if any(result.status is CheckStatus.FAIL for result in credentials):
            return
        sending_in_use = outbox_in_use(store)
        if params.method is AuthMethod.BASIC:
            yield from login_checks(plan, mailbox_opener(params, plan, None)[1])
            yield from smtp_checks(
                plan.accounts, smtp_login_probe(params, None), sending_in_use=sending_in_use
            )
            return
        with token_service(runtime, params) as service:
            provider_for = provider_factory(service, params)
            results = list(token_checks(params, plan, protocol, provider_for))
            yield from results
            if all(result.passed for result in results):
                yield from _login_checks(params, plan, provider_for)
                yield from smtp_checks(
                    plan.accounts, smtp_login_probe(params, provider_for), sending_in_use=sending_in_use
                )

    return checks


def _token_cache_owner(runtime: Runtime) -> list[CheckResult]:
    problem = foreign_owner_problem(token_cache_path(runtime.state_dir))
    if problem is None:
        return []
    fix = "run `wicbox signin` (and `wicbox check`) as the account the scheduled task runs as"
    return [CheckResult("credential", CheckStatus.WARN, problem, fix)]


def _permissions(runtime: Runtime, *, fix: bool) -> list[CheckResult]:
    try:
        extra = [FootprintItem("the token cache", token_cache_path(runtime.state_dir), folder=False)]
    except BridgeError:
        extra = []
    return permission_checks(runtime, fix=fix, windows=default_windows_security(), extra=extra)


def _exchange_setup(runtime: Runtime) -> ExchangeSetup:
    """The facts the PowerShell depends on; the app's service principal from an app token's oid."""
    with runtime.open_store() as store:
        params = runtime.load_parameters(store).parameters
        plan = plan_accounts(params, store)
        senders = tuple(parseaddr(sender)[1] or sender for sender in outbox_senders(store))
    reading, _reason = resolve_mail_protocol(params)
    principal = None
    if params.permission_type is PermissionType.APPLICATION and plan.accounts:
        try:
            with token_service(runtime, params) as service:
                token = provider_factory(service, params)(plan.accounts[0], reading_token_protocol(reading))()
            principal = str(token.claims.get("oid") or "") or None
        except BridgeError as error:
            click.echo(f"# (no app token: {error.message})", err=True)
    mailboxes = tuple(account.mailbox for account in plan.accounts)
    own = {mailbox.casefold() for mailbox in mailboxes}
    return ExchangeSetup(
        client_id=params.client_id,
        permission=params.permission_type,
        reading=reading,
        mailboxes=mailboxes,
        senders=tuple(sender for sender in senders if sender.casefold() not in own),
        service_principal_id=principal,
    )


def _login_checks(
    params: Parameters, plan: AccountPlan, provider_for: ProviderFactory
) -> Iterator[CheckResult]:
    try:
        _protocol, opener = mailbox_opener(params, plan, provider_for)
    except BridgeError as error:
        yield failed("login", error)
        return
    yield from login_checks(plan, opener)


@click.command("check")
@click.option(
    "--powershell",
    is_flag=True,
    help="Print the Exchange Online PowerShell this setup needs, filled in, instead of checking.",
)
@click.option(
    "--fix-permissions",
    is_flag=True,
    help="Close the bridge's folders and files to other accounts where a permissions line warns "
    "(POSIX: chmod 700/600; Windows: the folder's access list: SYSTEM, Administrators and the "
    "accounts granted on purpose, inheritance off, no Users).",
)
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="Print the checks as one JSON document on stdout: each check with its state "
    "(ok, warning, failed, skipped), message and fix; the same exit code.",
)
@pass_runtime
def check_command(runtime: Runtime, powershell: bool, fix_permissions: bool, as_json: bool) -> int:
    """Check the configuration, the database, the parameters and each mail account.

    Run it right after following the Azure steps of the guide: the first FAIL line says what to
    change. It reads WicGlobal.config and the WICMan parameters (the table WICMAN_PARAMETER of the
    WIC database, where WIC keeps its settings), gets a token from the Microsoft identity platform
    as a run would, signs in to each mailbox and counts the mail waiting in its source folder, and
    signs in to the SMTP server and quits. It files, moves, deletes or marks no mail and sends none;
    it changes nothing in the database. The permissions lines name every folder or file of the
    bridge that another account could read or change, with the command that closes it;
    --fix-permissions applies those fixes.

    \b
    Examples:
      wicbox check                  one line per check; exit 0 only when all pass
      wicbox --config D:\\WIC\\WicGlobal.config check --json
    """
    if powershell:
        click.echo(powershell_script(_exchange_setup(runtime)), nl=False)
        return 0
    results = run_checks(
        runtime, _account_checks(runtime), lambda: _permissions(runtime, fix=fix_permissions)
    )
    code = overall_exit_code(results)
    if as_json:
        click.echo(json.dumps(checks_json(results, code), indent=2))
        return code
    for result in results:
        click.echo(result.render())
    click.echo("All checks passed." if code == 0 else "Some checks failed: fix the first FAIL above.")
    return code
