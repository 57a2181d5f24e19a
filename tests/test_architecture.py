"""The import rules between the parts (setup.cfg's [importlinter] contracts) hold, and can fail.

Each wrong arrow below is written into a copy of the package in its installed layout (adapters/ as
wicbox_bridge.adapters), and import-linter must reject that copy naming the contract it breaks; the
unchanged copy must pass, so a failure is the injected import's and nothing else's.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from tools.architecture import contract_names, layers_diagram, read_contracts

ROOT = Path(__file__).resolve().parents[1]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")

# (module file in the installed layout, import line added at its end, contract that must break)
WRONG_ARROWS = [
    # the store calling back up into filing: the one-way flow of a mail
    ("store/mails.py", "from wicbox_bridge.run.filing import file_prepared", "layers"),
    # a part of the core building a concrete adapter itself
    ("run/runner.py", "from wicbox_bridge.adapters.imap import ImapAdapter", "adapters-behind-contract"),
    ("status/gather.py", "import wicbox_bridge.adapters.graph", "adapters-behind-contract"),
    # the pure mail part doing I/O
    ("mail/parse.py", "import socket", "mail-is-pure"),
    ("mail/outgoing.py", "import logging", "mail-is-pure"),
    # an adapter reaching into the database or the run
    ("adapters/imap.py", "from wicbox_bridge.store.mails import mark_filed", "adapters-below-core"),
    ("adapters/smtp.py", "import wicbox_bridge.run.runlock", "adapters-below-core"),
    # the store signing in
    ("store/projects.py", "from wicbox_bridge.auth.scopes import Protocol", "store-below-auth"),
    ("store/odbc.py", "import msal", "store-below-auth"),
    # a lower part importing the face
    ("config/params.py", "import wicbox_bridge.commands", "layers"),
]


def installed_copy(destination: Path) -> Path:
    """A writable copy of the package as it is installed, with the repository's setup.cfg."""
    package = destination / "wicbox_bridge"
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(ROOT / "wicbox_bridge", package, ignore=ignore)
    shutil.copytree(ROOT / "adapters", package / "adapters", ignore=ignore)
    shutil.copy(ROOT / "setup.cfg", destination / "setup.cfg")
    return destination


def lint_imports(tree: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    return subprocess.run(
        [str(LINT_IMPORTS), "--config", str(tree / "setup.cfg"), "--no-cache", "--no-logo"],
        cwd=tree,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return installed_copy(tmp_path_factory.mktemp("pristine"))


def test_the_repository_keeps_every_contract() -> None:
    result = subprocess.run(
        [str(ROOT / "tools" / "lint-imports"), str(LINT_IMPORTS)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    names = contract_names(read_contracts(ROOT / "setup.cfg"))
    assert f"Contracts: {len(names)} kept, 0 broken." in result.stdout


def test_the_unchanged_copy_keeps_every_contract(pristine: Path) -> None:
    result = lint_imports(pristine)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


@pytest.mark.parametrize(("module", "line", "contract"), WRONG_ARROWS)
def test_a_wrong_arrow_breaks_its_contract(
    pristine: Path, tmp_path: Path, module: str, line: str, contract: str
) -> None:
    tree = installed_copy(tmp_path)
    target = tree / "wicbox_bridge" / module
    assert target.is_file(), f"{module} moved: update WRONG_ARROWS"
    target.write_text(target.read_text(encoding="utf-8") + f"\n{line}  # noqa\n", encoding="utf-8")

    result = lint_imports(tree)

    assert result.returncode != 0, result.stdout
    contracts = read_contracts(tree / "setup.cfg")
    broken = f"{contracts[contract]['name']} BROKEN"
    assert broken in " ".join(result.stdout.split()), result.stdout


def test_every_part_says_what_it_does_and_what_it_may_use() -> None:
    """Each subpackage's docstring names its job and the parts it may import."""
    for init in sorted((ROOT / "wicbox_bridge").glob("*/__init__.py")):
        text = init.read_text(encoding="utf-8")
        assert text.startswith('"""'), f"{init.parent.name}/__init__.py has no docstring"
        docstring = text.split('"""')[1]
        assert "May use:" in docstring, f"{init.parent.name}/__init__.py does not say what it may use"
    adapters = (ROOT / "adapters" / "__init__.py").read_text(encoding="utf-8")
    assert "May use:" in adapters.split('"""')[1]


def test_the_top_of_the_package_shows_the_parts() -> None:
    modules = sorted(p.name for p in (ROOT / "wicbox_bridge").glob("*.py"))
    assert len(modules) <= 8, modules
    stems = [Path(name).stem.strip("_") for name in modules]
    prefixes = [stem.split("_")[0] for stem in stems if "_" in stem]
    families = {prefix for prefix in prefixes if prefixes.count(prefix) > 1 or prefix in stems}
    assert not families, f"module families by prefix at the top: {families}"
    layered = {
        name.removeprefix("wicbox_bridge.")
        for layer in read_contracts(ROOT / "setup.cfg")["layers"]["layers"]
        for name in layer
    }
    parts = {p.name for p in (ROOT / "wicbox_bridge").iterdir() if (p / "__init__.py").is_file()}
    assert parts <= layered, f"parts outside the layers contract: {parts - layered}"


def test_the_architecture_picture_is_drawn_from_the_contracts() -> None:
    doc = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    expected = layers_diagram(read_contracts(ROOT / "setup.cfg"))
    assert expected in doc, "docs/architecture.md: run `python -m tools.architecture --write`"


@pytest.mark.parametrize("script", ["typecheck", "lint-imports"])
def test_the_checker_scripts_fail_when_their_checker_fails(tmp_path: Path, script: str) -> None:
    """The test command trusts these scripts' exit status: a checker's failure must come through."""
    fake = tmp_path / "checker"
    fake.write_text("#!/bin/sh\necho 'wicbox_bridge/errors.py:1: error: injected'\nexit 1\n")
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    result = subprocess.run(
        [str(ROOT / "tools" / script), str(fake)], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert "injected" in result.stdout
