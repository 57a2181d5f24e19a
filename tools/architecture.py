"""The picture of the parts in docs/architecture.md, drawn from setup.cfg's import-linter contracts.

    python -m tools.architecture            # print the picture
    python -m tools.architecture --write    # put it into docs/architecture.md (between the markers)

The contracts are the rules; the picture is only ever drawn from them, so the two cannot drift
apart (tests/test_architecture.py checks the document holds the picture of today's contracts).
"""

from __future__ import annotations

import argparse
import configparser
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "architecture.md"
BEGIN = "<!-- parts: drawn by `python -m tools.architecture --write` from setup.cfg; edit the contracts -->"
END = "<!-- /parts -->"
PACKAGE = "wicbox_bridge."

Contract = dict[str, object]


def read_contracts(setup_cfg: Path) -> dict[str, dict[str, object]]:
    """The [importlinter:contract:ID] sections: name, type, and their module lists.

    ``layers`` becomes a list of layers, each a list of the modules side by side in it.
    """
    parser = configparser.ConfigParser(interpolation=None)
    parser.read(setup_cfg, encoding="utf-8")
    contracts: dict[str, dict[str, object]] = {}
    for section in parser.sections():
        if not section.startswith("importlinter:contract:"):
            continue
        contract: dict[str, object] = {}
        for key, value in parser[section].items():
            lines = [line.strip() for line in value.splitlines() if line.strip()]
            if key == "layers":
                contract[key] = [[name.strip() for name in line.split("|")] for line in lines]
            elif key in ("name", "type"):
                contract[key] = " ".join(lines)
            else:
                contract[key] = lines
        contracts[section.removeprefix("importlinter:contract:")] = contract
    return contracts


def contract_names(contracts: dict[str, dict[str, object]]) -> list[str]:
    return [str(contract["name"]) for contract in contracts.values()]


def _short(module: str) -> str:
    return module.removeprefix(PACKAGE)


def _modules(contract: dict[str, object], key: str) -> list[str]:
    value = contract.get(key, [])
    assert isinstance(value, list)
    return [_short(str(item)) for item in value]


def layers_diagram(contracts: dict[str, dict[str, object]]) -> str:
    """The layers as stacked boxes, the adapters beside them, the other rules as a list."""
    layers = contracts["layers"]["layers"]
    assert isinstance(layers, list)
    rows = ["  ·  ".join(_short(name) for name in layer) for layer in layers]
    width = max(len(row) for row in rows) + 6
    left = (width - 1) // 2
    arrow = "├" + "─" * left + "▼" + "─" * (width - left - 1) + "┤"
    lines = ["┌" + "─" * width + "┐"]
    for index, row in enumerate(rows):
        lines.append("│" + row.center(width) + "│")
        lines.append(arrow if index < len(rows) - 1 else "└" + "─" * width + "┘")
    lines.append("")
    lines.append("▼: a part imports only the parts below it; parts side by side (·) never import each other.")
    for kind in ("protected", "forbidden"):
        for contract in (c for c in contracts.values() if c.get("type") == kind):
            lines += ["", f"{contract['name']}:", *_rule_lines(contract)]
    return "```text\n" + "\n".join(lines) + "\n```"


def _rule_lines(contract: dict[str, object]) -> list[str]:
    """A protected contract as who may use what; a forbidden one as the arrows it forbids."""
    if contract.get("type") == "protected":
        allowed = ", ".join(_modules(contract, "allowed_importers"))
        protected = ", ".join(_modules(contract, "protected_modules"))
        lines = [f"  {protected} (adapters/) ──▶ used only by {allowed}"]
        for ignored in _modules(contract, "ignore_imports"):
            importer, _, imported = ignored.partition(" -> ")
            who = "every part" if importer == "**" else importer
            lines.append(f"  {who} may import {_short(imported)}")
        return lines
    sources = ", ".join(_modules(contract, "source_modules"))
    return [f"  {sources} ──✗ {', '.join(_modules(contract, 'forbidden_modules'))}"]


def with_diagram(document: str, diagram: str) -> str:
    head, found, rest = document.partition(BEGIN)
    if not found:
        raise SystemExit(f"{DOC}: marker {BEGIN!r} not found")
    _, found, tail = rest.partition(END)
    if not found:
        raise SystemExit(f"{DOC}: marker {END!r} not found")
    return f"{head}{BEGIN}\n{diagram}\n{END}{tail}"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--write", action="store_true", help="write the picture into docs/architecture.md")
    args = parser.parse_args()
    diagram = layers_diagram(read_contracts(ROOT / "setup.cfg"))
    if args.write:
        DOC.write_text(with_diagram(DOC.read_text(encoding="utf-8"), diagram), encoding="utf-8")
    else:
        print(diagram)


if __name__ == "__main__":
    main()
