"""The wheel, as an admin installs it: built from this tree, installed into a clean virtual
environment (no access to the source tree), and used: `wicbox --version`, `db init` on SQLite, and
one `wicbox run` against the test bed that files the delivered mails."""

from __future__ import annotations

import os
import subprocess
import sys
import venv
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.helpers.filing import assert_filed_exactly_once
from tests.helpers.mailgen import make_mail
from tests.plugins.wic import Mailroom
from wicbox_bridge import __version__

pytestmark = [pytest.mark.testbed, pytest.mark.slow]
ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class InstalledWheel:
    wheel: Path
    environment: Path

    @property
    def wicbox(self) -> Path:
        return self.environment / "bin" / "wicbox"

    @property
    def python(self) -> Path:
        return self.environment / "bin" / "python"


def _run(
    command: list[str], cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=300, check=False)


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InstalledWheel]:
    work = tmp_path_factory.mktemp("wheel")
    built = _run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(work), str(ROOT)], work)
    assert built.returncode == 0, built.stderr
    wheels = sorted(work.glob("wicbox_bridge-*.whl"))
    assert len(wheels) == 1, wheels
    environment = work / "venv"
    venv.EnvBuilder(with_pip=True, clear=True).create(environment)
    pip = _run([str(environment / "bin" / "python"), "-m", "pip", "install", "-q", str(wheels[0])], work)
    assert pip.returncode == 0, pip.stderr
    yield InstalledWheel(wheels[0], environment)


def clean_env(home: Path) -> dict[str, str]:
    """No PYTHONPATH, no WICBOX_CONFIG: the installed package alone."""
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("PYTHONPATH", "WICBOX_CONFIG", "VIRTUAL_ENV")
    }
    env["WICBOX_HOME"] = str(home)
    return env


def test_the_wheel_carries_every_part_and_nothing_of_the_tests(
    installed: InstalledWheel, tmp_path: Path
) -> None:
    where = _run(
        [
            str(installed.python),
            "-c",
            "import wicbox_bridge.adapters.base as b, wicbox_bridge.send.relay; print(b.__file__)",
        ],
        tmp_path,
        clean_env(tmp_path),
    )
    assert where.returncode == 0, where.stderr
    assert str(installed.environment) in where.stdout and str(ROOT) not in where.stdout
    tests_inside = _run([str(installed.python), "-c", "import tests"], tmp_path, clean_env(tmp_path))
    assert tests_inside.returncode != 0
    version = _run([str(installed.wicbox), "--version"], tmp_path, clean_env(tmp_path))
    assert version.returncode == 0 and version.stdout.strip() == f"wicbox, version {__version__}"


def test_db_init_on_sqlite_from_the_wheel(installed: InstalledWheel, tmp_path: Path) -> None:
    database = tmp_path / "wic.db"
    config = tmp_path / "WicGlobal.config"
    config.write_text(
        '<?xml version="1.0" encoding="utf-8"?>\n<configuration><connectionStrings>'
        f'<add name="WIC" connectionString="sqlite:///{database}"/></connectionStrings></configuration>\n',
        encoding="utf-8",
    )
    result = _run(
        [str(installed.wicbox), "--config", str(config), "db", "init"], tmp_path, clean_env(tmp_path)
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert database.stat().st_size > 0
    again = _run(
        [str(installed.wicbox), "--config", str(config), "db", "init"], tmp_path, clean_env(tmp_path)
    )
    assert again.returncode == 0, again.stdout + again.stderr  # idempotent


def test_a_run_from_the_wheel_files_the_mail(installed: InstalledWheel, mailroom: Mailroom) -> None:
    delivered = [make_mail(number, subject=f"Uit het wiel {number}") for number in range(5)]
    mailroom.deliver(delivered)
    wic = mailroom.wic
    result = _run(
        [str(installed.wicbox), "--config", str(wic.config), "run"],
        wic.cli_runner.cwd,
        clean_env(wic.cli_runner.home),
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert_filed_exactly_once(mailroom, delivered)
