"""``wicbox params list|get|set|unset|migrate``: the WICMan parameters, with secrets shown masked."""

from __future__ import annotations

import sys
from typing import NoReturn

import click

from wicbox_bridge.auth.scopes import parse_scope
from wicbox_bridge.commands import examples, pass_runtime
from wicbox_bridge.config.params import (
    PARAMETER_SPECS,
    SCOPE,
    ParameterSpec,
    canonical_name,
    check_new_name,
    find_spec,
    is_app_setting_key,
    is_secret_parameter,
    unset_command,
    validate_value,
)
from wicbox_bridge.errors import ConfigurationError, warning_line
from wicbox_bridge.helpformat import WholeSummaryGroup
from wicbox_bridge.runtime import Runtime
from wicbox_bridge.secret import mask
from wicbox_bridge.store.parameters import delete_parameter, get_parameter, read_parameters, set_parameter
from wicbox_bridge.store.schema import require_schema
from wicbox_bridge.store.wicman_migration import migrate_parameters


@click.group(
    "params",
    cls=WholeSummaryGroup,
    epilog=examples(
        ("wicbox params list", "the parameters set, secrets masked"),
        ("wicbox params set WICBOX_MAILCLIENT_USERNAME wic@example.be", "the global mailbox"),
    ),
)
def params_group() -> None:
    """Show and change the WICMan parameters that wicbox-bridge reads.

    WICMan parameters are the rows of the table WICMAN_PARAMETER in the WIC database, where WIC
    keeps its settings; wicbox-bridge reads its own there (WICBOX_MAILCLIENT_* and a few WIC ones).
    """


def _shown(name: str, value: str | None) -> str:
    if is_secret_parameter(name):
        return mask(value)
    return "" if value is None else value


@params_group.command(
    "list", epilog=examples(("wicbox params list --all", "also every known parameter not set"))
)
@click.option("--all", "show_all", is_flag=True, help="Also list every known parameter that is not set.")
@pass_runtime
def params_list(runtime: Runtime, show_all: bool) -> int:
    """List the parameters in the database (secrets masked), marking legacy and unknown names."""
    store = runtime.open_store()
    try:
        require_schema(store)
        stored = read_parameters(store)
    finally:
        store.close()
    relevant = {name: value for name, value in stored.items() if _is_wicbox_name(name)}
    rows = [_row(name, value) for name, value in sorted(relevant.items())]
    if show_all:
        present = {name.upper() for name in relevant}
        rows += [_unset_row(spec) for spec in PARAMETER_SPECS if spec.name.upper() not in present]
    width = max((len(name) for name, _, _ in rows), default=10)
    for name, value, note in rows:
        click.echo(f"{name:<{width}}  {value}{'  # ' + note if note else ''}")
    return 0


def _is_wicbox_name(name: str) -> bool:
    upper = name.upper()
    return upper.startswith("WICBOX") or upper == "ACCOUNTMODE"


def _row(name: str, value: str | None) -> tuple[str, str, str]:
    """A stored row; an empty one (as `params migrate` adds them) shows the default that applies."""
    spec = find_spec(name)
    if is_app_setting_key(name):
        return name, _shown(name, value), f"no effect: a WicGlobal.config key ({unset_command(name)})"
    if spec is None:
        return name, _shown(name, value), "unknown to wicbox-bridge"
    legacy = "legacy; " if spec.legacy else ""
    if (value or "").strip():
        return name, _shown(name, value), legacy.removesuffix("; ")
    if spec.default is not None:
        return name, spec.default, f"{legacy}default (the row is empty)"
    return name, "", f"{legacy}empty (no default)"


def _unset_row(spec: ParameterSpec) -> tuple[str, str, str]:
    legacy = "legacy; " if spec.legacy else ""
    return spec.name, "", f"{legacy}not set (default: {spec.default or 'none'})"


@params_group.command("get", epilog=examples(("wicbox params get WICBOX_MAILCLIENT_CLIENTID", "")))
@click.argument("name")
@pass_runtime
def params_get(runtime: Runtime, name: str) -> int:
    """Print the value of parameter NAME (a secret is shown masked); exit 1 when it is not set.

    A parameter whose row exists with an empty value (as `params migrate` creates them) counts as
    not set, as it does for a run.
    """
    store = runtime.open_store()
    try:
        require_schema(store)
        found = get_parameter(store, name)
    finally:
        store.close()
    if found is None:
        click.echo(f"{name} is not set.", err=True)
        return 1
    if not (found[1] or "").strip():
        click.echo(f"{found[0]} is not set (its row exists with an empty value).", err=True)
        return 1
    stored_name, value = found
    click.echo(f"{stored_name} = {_shown(stored_name, value)}")
    return 0


@params_group.command(
    "set",
    epilog=examples(
        ("wicbox params set WICBOX_MAILCLIENT_CLIENTSECRET --prompt", "asks for the secret's Value"),
        ("wicbox params set WICBOX_MAILCLIENT_CLIENTSECRET_EXPIRES 2027-06-30", "its Expires date"),
    ),
)
@click.argument("name")
@click.argument("value", required=False)
@click.option(
    "--prompt",
    "prompt_value",
    is_flag=True,
    help="Ask for the value without echoing it (use this for passwords and secrets).",
)
@click.option(
    "--stdin",
    "stdin_value",
    is_flag=True,
    help="Read the value from the first line of standard input (for scripts; nothing is echoed).",
)
@click.option(
    "--clear",
    is_flag=True,
    help="Set the parameter to empty (NULL); its row stays (`params unset` removes it).",
)
@click.option(
    "--force", is_flag=True, help="Store a name wicbox-bridge does not read (a parameter of another program)."
)
@pass_runtime
def params_set(
    runtime: Runtime,
    name: str,
    value: str | None,
    *,
    prompt_value: bool,
    stdin_value: bool,
    clear: bool,
    force: bool,
) -> int:
    """Set parameter NAME to VALUE (NAME matched case-insensitively; created when missing).

    Give exactly one of VALUE, --prompt, --stdin or --clear. A password or secret is never taken as
    VALUE (the command line lands in the shell history and in process lists): use --prompt or --stdin.
    A value that cannot work (a typo in a choice, a malformed GUID, host or URL, a server this machine
    does not allow, a client secret's ID instead of its value) is refused before anything is stored,
    and so is a name wicbox-bridge does not read (unless --force) or a key of WicGlobal.config. A
    password or client secret going into the embedded database is stored sealed with this account's
    protection (Windows: DPAPI; elsewhere an owner-only key file), never in plain text.

    \b
    Examples:
      wicbox params set WICBOX_MAILCLIENT_USERNAME wicbox@contoso.com
      wicbox params set WICBOX_MAILCLIENT_CLIENTSECRET --prompt
    """
    given = sum([value is not None, prompt_value, stdin_value, clear])
    if given != 1:
        raise click.UsageError("give exactly one of: VALUE, --prompt, --stdin or --clear")
    warning = check_new_name(name, force=force)
    if value is not None and is_secret_parameter(name):
        _refuse_secret_argument(name, value)
    if stdin_value:
        line = sys.stdin.readline()
        value = line.rstrip("\r\n")
    if prompt_value:
        value = click.prompt(name, hide_input=True, confirmation_prompt=True)
    if value is not None:
        value = _checked_value(runtime, name, value)
    if warning is not None:
        click.echo(warning_line(warning), err=True)
    store = runtime.open_store()
    try:
        require_schema(store)
        stored = runtime.stored_value(name, value) if value and is_secret_parameter(name) else value
        stored_name = set_parameter(store, name, stored or None)
    finally:
        store.close()
    click.echo(f"{stored_name} = {_shown(stored_name, value)}")
    return 0


def _refuse_secret_argument(name: str, value: str) -> NoReturn:
    validate_value(name, value)  # a secret's ID is not secret: say what it is before anything else
    raise ConfigurationError(
        f"{canonical_name(name)} is a secret and is not taken from the command line: it would stay in "
        "the shell history and be visible in the process list (nothing was stored)",
        fix=f"run `wicbox params set {canonical_name(name)} --prompt` (asked twice, not shown), or "
        "pass it on standard input with --stdin; and remove the line from the shell history",
    )


def _checked_value(runtime: Runtime, name: str, value: str) -> str:
    """The value stripped, refused when it cannot work (a secret is registered for redaction first)."""
    value = value.strip()
    if is_secret_parameter(name):
        runtime.redactor.register([value])
    validate_value(name, value, runtime.config.endpoints)
    if value and canonical_name(name) == SCOPE:
        parse_scope(value)  # a permission wicbox-bridge does not know cannot work
    return value


@params_group.command(
    "unset", epilog=examples(("wicbox params unset WICBOXMAXMAILSPERRUN", "a row stored by mistake"))
)
@click.argument("name")
@pass_runtime
def params_unset(runtime: Runtime, name: str) -> int:
    """Remove the row of parameter NAME (matched case-insensitively); exit 1 when there is none.

    Use it for a row stored by mistake (a typo, a WicGlobal.config key). A parameter wicbox-bridge
    reads then takes its default; `params set NAME --clear` keeps the row with an empty value.
    """
    store = runtime.open_store()
    try:
        require_schema(store)
        removed = delete_parameter(store, name)
    finally:
        store.close()
    if not removed:
        click.echo(f"{name} is not set: there is no row to remove.", err=True)
        return 1
    for stored_name in removed:
        click.echo(f"removed {stored_name}")
    return 0


@params_group.command("migrate", epilog=examples(("wicbox params migrate", "safe to run twice")))
@pass_runtime
def params_migrate(runtime: Runtime) -> int:
    """Add the WICBOX_MAILCLIENT_* parameters and rename ACCOUNTMODE to WICBOXACCOUNTMODE (safe twice).

    It does what the vendor's KPD parameter scripts 40201575, 40201577 and 40201578 do (the SQL
    scripts WIC's vendor ships to add these WICMan parameters to WICMAN_PARAMETER): run it instead
    of them, or after them; parameters that exist already are left as they are.
    """
    store = runtime.open_store()
    try:
        require_schema(store)
        report = migrate_parameters(store)
    finally:
        store.close()
    for line in report.lines():
        click.echo(line)
    return 0
