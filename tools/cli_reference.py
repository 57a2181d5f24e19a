"""The command reference of the admin guides, generated from the real click command tree.

Each command's ``--help`` appears verbatim in the guides (``docs/admin-guide.md`` and its Dutch
translation ``docs/nl/admin-guide.md``) as a fenced block introduced by a marker::

    <!-- wicbox-help: wicbox schedule install -->
    ```text
    Usage: wicbox schedule install [OPTIONS]
    ...
    ```

``python -m tools.cli_reference --write`` refreshes every block from the commands as they are
now: blocks of existing commands get the current help, a command without a block gets one (with a
heading) just before the ``<!-- wicbox-help-end -->`` marker, and the block of a command that no
longer exists is removed (its prose is left for a person to delete). ``--check`` changes nothing
and exits 1 with a diff when a guide is not up to date. The prose around the blocks is never
touched, so the Dutch guide keeps its Dutch text around the (English) help.
"""

from __future__ import annotations

import argparse
import difflib
import re
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import click

from wicbox_bridge.cli import cli

ROOT = Path(__file__).resolve().parent.parent
GUIDES = (ROOT / "docs" / "admin-guide.md", ROOT / "docs" / "nl" / "admin-guide.md")
PROGRAM = "wicbox"
HELP_WIDTH = 80
MARKER = "<!-- wicbox-help: {path} -->"
END_MARKER = "<!-- wicbox-help-end -->"
FENCE = "```"
_BLOCK = re.compile(
    r"^<!-- wicbox-help: (?P<path>[^>]*?) -->\n```text\n(?P<body>.*?)^```\n",
    re.MULTILINE | re.DOTALL,
)


@dataclass(frozen=True)
class CommandHelp:
    """One command of the tree: its full command line (``wicbox params set``) and its ``--help``."""

    path: str
    command: click.Command
    text: str


def _contexts(
    command: click.Command, name: str, parent: click.Context | None
) -> Iterator[tuple[click.Context, click.Command]]:
    settings = {**command.context_settings, "terminal_width": HELP_WIDTH, "max_content_width": HELP_WIDTH}
    context = click.Context(command, info_name=name, parent=parent, **settings)
    yield context, command
    if isinstance(command, click.Group):
        for sub_name in command.list_commands(context):
            sub = command.get_command(context, sub_name)
            if sub is not None and not sub.hidden:
                yield from _contexts(sub, sub_name, context)


def command_helps(root: click.Command = cli) -> list[CommandHelp]:
    """Every visible command and group of the tree, depth first, with its help at HELP_WIDTH columns."""
    return [
        CommandHelp(context.command_path, command, command.get_help(context).rstrip("\n") + "\n")
        for context, command in _contexts(root, PROGRAM, None)
    ]


def help_block(entry: CommandHelp) -> str:
    """The marker and the fenced block of one command, as they appear in a guide."""
    return f"{MARKER.format(path=entry.path)}\n{FENCE}text\n{entry.text}{FENCE}\n"


def blocks_in(text: str) -> dict[str, str]:
    """The help blocks of a guide: command line -> the text inside the fence."""
    return {match.group("path"): match.group("body") for match in _BLOCK.finditer(text)}


@dataclass(frozen=True)
class Refreshed:
    """A guide's new text, and which blocks were added and removed."""

    text: str
    added: tuple[str, ...]
    removed: tuple[str, ...]


def refresh(text: str, helps: Sequence[CommandHelp]) -> Refreshed:
    """``text`` with every block current; new commands' blocks go before the end marker."""
    current = {entry.path: entry for entry in helps}
    found: set[str] = set()
    removed: list[str] = []

    def replace(match: re.Match[str]) -> str:
        path = match.group("path")
        entry = current.get(path)
        if entry is None or path in found:
            removed.append(path)
            return ""
        found.add(path)
        return help_block(entry)

    text = _BLOCK.sub(replace, text)
    missing = [entry for entry in helps if entry.path not in found]
    if missing:
        if END_MARKER not in text:
            raise SystemExit(
                f"no {END_MARKER} marker: cannot add the blocks of {', '.join(e.path for e in missing)}"
            )
        new = "".join(f"### `{entry.path}`\n\n{help_block(entry)}\n" for entry in missing)
        text = text.replace(END_MARKER, new + END_MARKER, 1)
    return Refreshed(text, tuple(entry.path for entry in missing), tuple(removed))


def _diff(path: Path, old: str, new: str) -> str:
    name = str(path)
    return "".join(
        difflib.unified_diff(old.splitlines(True), new.splitlines(True), name, f"{name} (generated)")
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tools.cli_reference", description=__doc__.splitlines()[0]
    )
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--write", action="store_true", help="refresh the help blocks in both guides")
    mode.add_argument("--check", action="store_true", help="exit 1 with a diff when a guide is out of date")
    parser.add_argument("guides", nargs="*", type=Path, help="guides to process (default: both)")
    args = parser.parse_args(argv)
    helps = command_helps()
    stale = 0
    for path in args.guides or GUIDES:
        old = path.read_text(encoding="utf-8")
        result = refresh(old, helps)
        for command in result.removed:
            print(f"{path}: removed the block of `{command}` (no such command); review the prose around it")
        for command in result.added:
            print(f"{path}: added a block for `{command}`; write the prose around it")
        if result.text == old:
            continue
        stale += 1
        if args.write:
            path.write_text(result.text, encoding="utf-8")
            print(f"{path}: command reference refreshed")
        else:
            sys.stdout.write(_diff(path, old, result.text))
    if args.check and stale:
        print(f"{stale} guide(s) out of date: run `python -m tools.cli_reference --write`", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
