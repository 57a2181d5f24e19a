"""``wicbox signin``: a one-time interactive sign-in (device code) that runs then reuse without a password."""

from __future__ import annotations

import getpass
import json
import sys
import threading

import click

from wicbox_bridge.adapters.identity import DeviceCodePrompt
from wicbox_bridge.auth.accounts import MailboxAccount, global_account, project_account
from wicbox_bridge.auth.scopes import reading_token_protocol, resolve_mail_protocol, scopes_for
from wicbox_bridge.commands import examples, pass_runtime
from wicbox_bridge.commands._build import token_service
from wicbox_bridge.config.params import CERTIFICATE, METHOD, AuthMethod, Parameters, PermissionType
from wicbox_bridge.errors import ParameterError
from wicbox_bridge.runtime import Runtime
from wicbox_bridge.store import Store
from wicbox_bridge.store.projects import find_project


@click.command(
    "signin",
    epilog=examples(
        ("wicbox signin", "the global mailbox's account"),
        ("wicbox signin --project P01", "project P01's own account (MULTIPLE/MIX)"),
    ),
)
@click.option("--project", "project_code", help="Sign in for this project's own mailbox (MULTIPLE/MIX).")
@click.option("--json", "as_json", is_flag=True, help="Print the code and the result as JSON lines.")
@pass_runtime
def signin_command(runtime: Runtime, project_code: str | None, as_json: bool) -> None:
    """Sign the mailbox account in once, in a browser, and keep the sign-in for the runs.

    Prints a web address and a code: open the address on any device, type the code and sign in as
    the mailbox account (multi-factor authentication works). The sign-in is saved in the token
    cache of the account this command runs as: run it as the account the scheduled task runs as.
    Afterwards runs need no WICBOX_MAILCLIENT_PASSWORD (delegated permissions).
    """
    with runtime.open_store() as store:
        params = runtime.load_parameters(store).parameters
        account = _account(params, store, project_code)
    protocol = reading_token_protocol(resolve_mail_protocol(params)[0])
    scopes = scopes_for(params.scope, protocol, PermissionType.DELEGATED)
    username = account.username or account.mailbox
    waiting = threading.Event()
    with token_service(runtime, params) as service:
        token = service.sign_in_with_device_code(
            scopes,
            username,
            account.names,
            show=lambda prompt: _show(prompt, username, as_json),
            wait=waiting.wait,
        )
        cache = service.cache_path
    if as_json:
        click.echo(
            json.dumps({"signed_in": username, "token_cache": str(cache), "expires_at": token.expires_at})
        )
        return
    click.echo(f"signed in as {username}.")
    click.echo(
        f"Runs of this configuration as {_current_account()} now read {account.mailbox} with this sign-in "
        f"(saved in {cache}); no password parameter is needed. Check with `wicbox check`."
    )


def _show(prompt: DeviceCodePrompt, username: str, as_json: bool) -> None:
    if as_json:
        shown = {
            "verification_uri": prompt.verification_uri,
            "user_code": prompt.user_code,
            "expires_in": prompt.expires_in,
        }
        click.echo(json.dumps(shown))
    else:
        minutes = max(1, prompt.expires_in // 60)
        click.echo(
            f"To sign in, open {prompt.verification_uri} in a browser on any device, enter the code "
            f"{prompt.user_code} and sign in as {username} (within {minutes} minutes)."
        )
        click.echo("Waiting for the sign-in...")
    sys.stdout.flush()  # the code must be on the screen (or in the pipe) while the command waits


def _account(params: Parameters, store: Store, project_code: str | None) -> MailboxAccount:
    if params.method is AuthMethod.BASIC:
        raise ParameterError(
            METHOD,
            "is Basic: there is no OAuth2 sign-in to save.",
            fix="run `wicbox params set WICBOXMETHOD OAuth2`",
        )
    if params.permission_type is PermissionType.APPLICATION:
        raise ParameterError(
            CERTIFICATE if params.certificate else "WICBOX_MAILCLIENT_CLIENTSECRET",
            "is set: application permissions sign in as the app, no account sign-in is needed.",
            fix="run `wicbox check`; `wicbox signin` is for delegated permissions (no certificate or "
            "client secret set)",
        )
    if project_code is None:
        account = global_account(params)
        if not account.mailbox:
            raise ParameterError(
                "WICBOX_MAILCLIENT_USERNAME",
                "is empty: there is no global mailbox to sign in for.",
                fix="set it, or sign in for a project's mailbox with --project CODE",
            )
        return account
    project = find_project(store, project_code)
    if project is None:
        raise ParameterError("--project", f"no project with code {project_code!r} in WIC_PROJECT.")
    return project_account(params, project)


def _current_account() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "this account"
