"""Start-up (issue 18): ``wicbox --version`` and ``--help`` load no command and no protocol library.

The top-level help lists every command from the registry in :mod:`wicbox_bridge.cli`; these tests
hold the registry's short help equal to each command's own docstring, so the two cannot drift, and
check what the light invocations import in a fresh interpreter. The time itself is measured by
``tools/bench/startup_bench.py``, never asserted here.
"""

from __future__ import annotations

import importlib
import json
import pkgutil
import subprocess
import sys
from collections.abc import Iterator

import click
import pytest

from tools import cli_reference
from wicbox_bridge import cli as cli_module
from wicbox_bridge.cli import COMMANDS, CommandEntry, LazyGroup, cli, load_command
from wicbox_bridge.config.footprint import PRIVATE_UMASK

HEAVY = (
    "wicbox_bridge.commands",
    "wicbox_bridge.runtime",
    "wicbox_bridge.store",
    "wicbox_bridge.adapters",
    "msal",
    "requests",
    "imapclient",
    "aiosmtplib",
    "aiosmtpd",
    "pyodbc",
    "sqlite3",
    "cryptography",
)

_PROBE = """
import contextlib, io, json, sys
from wicbox_bridge.cli import main
out = io.StringIO()
with contextlib.redirect_stdout(out):
    try:
        main(sys.argv[1:])
    except SystemExit as stop:
        code = stop.code
print(json.dumps({"code": code, "out": out.getvalue(), "modules": sorted(sys.modules)}))
"""


def _fresh(*args: str) -> dict[str, object]:
    """Runs ``wicbox ARGS`` in a new interpreter; its exit code, output and loaded modules."""
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, *args], capture_output=True, text=True, check=True, timeout=60
    )
    result: dict[str, object] = json.loads(done.stdout)
    return result


def _first_paragraph(command: click.Command) -> str:
    return " ".join((command.help or "").partition("\n\n")[0].split())


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_registry_summary_is_the_commands_docstring(name: str) -> None:
    entry = COMMANDS[name]
    command = load_command(name, entry)
    assert command.short_help is None, f"{name}: the top-level help shows the docstring's first paragraph"
    assert entry.summary == _first_paragraph(command), (
        f"COMMANDS[{name!r}].summary differs from the first paragraph of {entry.module}.{entry.attribute}'s "
        "docstring: copy it into the registry"
    )


def _subcommands(group: click.Group) -> Iterator[click.Command]:
    for command in group.commands.values():
        yield command
        if isinstance(command, click.Group):
            yield from _subcommands(command)


def test_every_top_level_command_of_the_commands_package_is_registered() -> None:
    """A command module added without a registry entry would be missing from ``wicbox``."""
    package = importlib.import_module("wicbox_bridge.commands")
    found: dict[tuple[str, str], click.Command] = {}
    for module_info in pkgutil.iter_modules(package.__path__, "wicbox_bridge.commands."):
        module = importlib.import_module(module_info.name)
        for attribute, value in vars(module).items():
            if not isinstance(value, click.Command) or value.callback is None:
                continue
            if value.callback.__module__ == module_info.name:
                found[(module_info.name, attribute)] = value
    groups = [command for command in found.values() if isinstance(command, click.Group)]
    nested = {id(sub) for group in groups for sub in _subcommands(group)}
    top_level = {key for key, command in found.items() if id(command) not in nested}
    assert top_level == {(entry.module, entry.attribute) for entry in COMMANDS.values()}
    assert cli.list_commands(click.Context(cli)) == sorted(COMMANDS)


@pytest.mark.parametrize("args", [("--version",), ("--help",)])
def test_light_invocations_load_no_command_and_no_protocol_library(args: tuple[str, ...]) -> None:
    result = _fresh(*args)
    assert result["code"] in (0, None)
    modules = result["modules"]
    assert isinstance(modules, list)
    loaded = sorted(m for m in modules if any(m == h or m.startswith(h + ".") for h in HEAVY))
    assert loaded == [], f"`wicbox {' '.join(args)}` imported {loaded}"


def test_lazy_help_equals_the_help_of_the_loaded_commands() -> None:
    """The top-level help from the registry alone is the one click renders from the real commands."""
    lazy = _fresh("--help")["out"]
    ctx = click.Context(cli, info_name="wicbox")
    for name in COMMANDS:
        cli.get_command(ctx, name)
    eager = LazyGroup(  # nothing lazy left: the loaded commands, listed as `wicbox --help` lists them
        "wicbox",
        lazy_commands={},
        commands=[cli.get_command(ctx, name) for name in COMMANDS],
        params=cli.params,
        help=cli.help,
        invoke_without_command=cli.invoke_without_command,
        context_settings=cli.context_settings,
    )
    eager_help = eager.get_help(click.Context(eager, info_name="wicbox", **eager.context_settings))
    assert lazy == eager_help + "\n"


def test_version_is_printed() -> None:
    out = _fresh("--version")["out"]
    assert isinstance(out, str)
    assert out.startswith("wicbox, version ")


def test_a_registry_that_names_the_wrong_object_fails_loudly() -> None:
    wrong = CommandEntry("wicbox_bridge.cli", "COMMANDS", "Not a command.")
    group = LazyGroup("tool", lazy_commands={"bogus": wrong})
    with pytest.raises(TypeError, match="is not the click command 'bogus'"):
        group.get_command(click.Context(group), "bogus")
    renamed = CommandEntry("wicbox_bridge.commands.db", "db_group", "Create or upgrade.")
    with pytest.raises(TypeError, match="is not the click command 'database'"):
        load_command("database", renamed)
    assert group.get_command(click.Context(group), "nothing") is None


def test_the_cli_umask_is_the_footprint_umask() -> None:
    assert cli_module.PRIVATE_UMASK == PRIVATE_UMASK


def test_the_command_reference_still_sees_every_command() -> None:
    paths = {entry.path for entry in cli_reference.command_helps()}
    assert {f"wicbox {name}" for name in COMMANDS} <= paths


def test_the_run_command_loads_neither_graph_nor_smtp_until_it_needs_them() -> None:
    """An IMAP run with an empty outbox (every scheduled run of most customers) does not pay for
    Graph's adapters or aiosmtplib: they load where a Graph mailbox is opened or a mail is sent;
    nor for cryptography's X.509 support, which loads where a certificate is read or made."""
    probe = "import json, sys, wicbox_bridge.commands.run; print(json.dumps(sorted(sys.modules)))"
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    )
    modules = json.loads(done.stdout)
    assert "aiosmtplib" not in modules and "wicbox_bridge.adapters.smtp" not in modules
    assert not [name for name in modules if name.startswith("wicbox_bridge.adapters.graph")]
    assert "cryptography.x509" not in modules and "wicbox_bridge.auth.certificate_files" not in modules
    assert "wicbox_bridge.adapters.imap" in modules  # the probe sees the run's own adapters
