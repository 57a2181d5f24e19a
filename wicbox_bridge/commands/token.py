"""``wicbox token``: acquire a token the way a run would and show what it grants (never the token)."""

from __future__ import annotations

import click

from wicbox_bridge.auth.accounts import MailboxAccount, global_account, project_account
from wicbox_bridge.auth.scopes import TokenProtocol, reading_token_protocol, resolve_mail_protocol
from wicbox_bridge.commands import examples, pass_runtime
from wicbox_bridge.commands._build import provider_factory, token_service
from wicbox_bridge.config.params import METHOD, AuthMethod, Parameters
from wicbox_bridge.diagnostics.token_report import check_token_for_protocol, describe_token
from wicbox_bridge.errors import ParameterError
from wicbox_bridge.runtime import Runtime
from wicbox_bridge.store import Store
from wicbox_bridge.store.projects import find_project, list_projects


@click.command(
    "token",
    epilog=examples(
        ("wicbox token", "the global mailbox's token, as a run gets it"),
        ("wicbox token --project P01", "project P01's own account"),
    ),
)
@click.option("--project", "project_code", help="Use this project's own mailbox account (MULTIPLE/MIX).")
@click.option(
    "--protocol",
    type=click.Choice(["imap", "smtp", "graph"]),
    default=None,
    help="The protocol to get a token for. Default: the one that reads the mailboxes.",
)
@pass_runtime
def token_command(runtime: Runtime, project_code: str | None, protocol: TokenProtocol | None) -> int:
    """Acquire a token as a run would and print its account, permissions, claims and expiry.

    The token itself is never printed. The last line says whether the token can do what the
    protocol needs, and if not, which Azure or Exchange setting to change.
    """
    with runtime.open_store() as store:
        params = runtime.load_parameters(store).parameters
        account = _account(runtime, params, store, project_code)
    if params.method is AuthMethod.BASIC:
        raise ParameterError(
            METHOD, "is Basic: no OAuth2 token is used.", fix="run `wicbox params set WICBOXMETHOD OAuth2`"
        )
    if protocol is None:
        protocol = reading_token_protocol(resolve_mail_protocol(params)[0])
    with token_service(runtime, params) as service:
        provider = provider_factory(service, params)(account, protocol)
        token = provider()
    scopes = tuple(getattr(provider, "scopes", ()))
    rows = describe_token(
        token,
        account=account.username or account.mailbox,
        permission_type=params.permission_type,
        scopes=scopes,
    )
    width = max(len(label) for label, _ in rows) + 1
    for label, value in rows:
        click.echo(f"{label + ':':<{width}} {value}")
    verdict = check_token_for_protocol(
        token, protocol, params.permission_type, mailbox=account.mailbox, client_id=params.client_id
    )
    click.echo(verdict.render())
    return 0 if verdict.passed else verdict.exit_code


def _account(runtime: Runtime, params: Parameters, store: Store, project_code: str | None) -> MailboxAccount:
    if project_code is None:
        return global_account(params)
    project = find_project(store, project_code)
    if project is None:
        codes = sorted(project.code for project in list_projects(store))
        shown = ", ".join(codes[:10]) + (f" and {len(codes) - 10} more" if len(codes) > 10 else "")
        known = f"the codes in WIC_PROJECT: {shown}" if codes else "WIC_PROJECT has no projects"
        raise ParameterError(
            "--project",
            f"no project with code {project_code!r} in WIC_PROJECT.",
            fix=f"give the code of a project ({known}), or leave --project out for the global "
            "mailbox: `wicbox token`",
        )
    account = project_account(params, project)
    runtime.redactor.register([account.password])
    return account
