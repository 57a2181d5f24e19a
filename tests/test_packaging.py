"""The distribution ships every package, including adapters/ as wicbox_bridge.adapters."""

from __future__ import annotations

import configparser
import importlib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _declared_packages() -> set[str]:
    parser = configparser.ConfigParser()
    parser.read(ROOT / "setup.cfg")
    return {line.strip() for line in parser["options"]["packages"].splitlines() if line.strip()}


def _source_packages() -> set[str]:
    found = set()
    for init in (ROOT / "wicbox_bridge").rglob("__init__.py"):
        found.add(".".join(init.parent.relative_to(ROOT).parts))
    for init in (ROOT / "adapters").rglob("__init__.py"):
        found.add(".".join(("wicbox_bridge", *init.parent.relative_to(ROOT).parts)))
    return found


def test_setup_cfg_lists_every_package() -> None:
    assert _declared_packages() == _source_packages()


def test_adapters_import_under_the_installed_name() -> None:
    module = importlib.import_module("wicbox_bridge.adapters.base")
    assert Path(module.__file__ or "").resolve().parent == ROOT / "adapters"
