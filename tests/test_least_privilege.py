"""Least privilege for the scheduled task: SYSTEM, an administrator or root is warned about, and
the systemd services can change nothing but the bridge's own folders (checked by systemd-analyze)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.clihelp import WicboxCli, write_config
from wicbox_bridge.schedule.plan import plan_text, systemd_plan
from wicbox_bridge.schedule.privilege import privilege_warnings
from wicbox_bridge.schedule.relay import RelaySpec
from wicbox_bridge.schedule.spec import Logon, Platform, Program, ScheduleSpec, installed_program
from wicbox_bridge.schedule.systemd import SERVICE_HOME, relay_unit, service_unit


def _spec(**changes: object) -> ScheduleSpec:
    values: dict[str, object] = {
        "name": "WICBOX",
        "config_path": "D:\\WIC\\WicGlobal.config",
        "program": Program("C:\\wicbox\\wicbox.exe"),
    }
    values.update(changes)
    return ScheduleSpec(**values)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("changes", "words"),
    [
        ({"logon": Logon.SYSTEM}, "runs as SYSTEM"),
        ({"run_as": "NT AUTHORITY\\SYSTEM"}, "runs as SYSTEM"),
        ({"run_as": "LocalSystem"}, "runs as SYSTEM"),
        ({"run_as": "KLANT\\Administrator"}, "an administrator of this server"),
        ({"run_as": "BUILTIN\\Administrators"}, "an administrator of this server"),
        ({"run_as": "KLANT\\svc-wicbox", "highest": True}, "--highest"),
    ],
)
def test_windows_task_with_too_many_rights_is_warned_about(changes: dict[str, object], words: str) -> None:
    warnings = privilege_warnings(_spec(**changes), Platform.WINDOWS)
    assert any(words in warning for warning in warnings), warnings


def test_a_dedicated_account_or_gmsa_gets_no_warning_unless_known_as_administrator() -> None:
    for account in ("KLANT\\wicbox$", "KLANT\\svc-wicbox"):
        assert privilege_warnings(_spec(run_as=account), Platform.WINDOWS) == ()
    known = privilege_warnings(_spec(run_as="KLANT\\jan"), Platform.WINDOWS, account_is_admin=True)
    assert "an administrator of this server" in known[0]
    assert "gMSA (`--run-as DOMAIN\\wicbox$`)" in known[0]


def test_a_root_service_is_warned_about_with_the_account_to_create() -> None:
    spec = _spec(config_path="/srv/wic/WicGlobal.config", program=installed_program())
    [warning] = privilege_warnings(spec, Platform.SYSTEMD)
    assert "runs as root" in warning
    assert "useradd --system" in warning
    assert privilege_warnings(ScheduleSpec(**{**spec.__dict__, "run_as": "root"}), Platform.SYSTEMD)
    assert privilege_warnings(ScheduleSpec(**{**spec.__dict__, "run_as": "wicbox"}), Platform.SYSTEMD) == ()
    assert privilege_warnings(spec, Platform.SYSTEMD, user_units=True) == ()


def test_show_prints_the_warning(tmp_path: Path) -> None:
    folder = tmp_path / "WIC"
    folder.mkdir()
    config = write_config(folder / "WicGlobal.config", f"sqlite:///{tmp_path / 'wic.db'}")
    wicbox = WicboxCli(home=tmp_path / "home", cwd=folder)
    result = wicbox("schedule", "show", "--platform", "windows", "--logon", "system", "--config", str(config))
    assert result.exit_code == 0, result.output
    assert "# warning: the task runs as SYSTEM (LocalSystem)" in result.output


def test_system_services_are_hardened_and_write_only_their_own_folders() -> None:
    spec = _spec(config_path="/srv/wic/WicGlobal.config", program=installed_program(), run_as="wicbox",
                 wicbox_home=SERVICE_HOME, writable_paths=("/var/log/wic logs",))  # fmt: skip
    for unit in (service_unit(spec, user_units=False), relay_unit(spec, RelaySpec(), user_units=False)):
        for line in ("NoNewPrivileges=yes", "PrivateTmp=yes", "ProtectSystem=strict", "ProtectHome=read-only",
                     "UMask=0077", "User=wicbox", "StateDirectory=wicbox-bridge", "StateDirectoryMode=0700",
                     f"Environment=WICBOX_HOME={SERVICE_HOME}",
                     f'ReadWritePaths=-{SERVICE_HOME} "-/var/log/wic logs"'):  # fmt: skip
            assert f"\n{line}\n" in unit, (line, unit)
    user = service_unit(spec, user_units=True)
    assert "\nNoNewPrivileges=yes\n" in user
    assert "ProtectSystem" not in user
    text = "\n".join(plan_text(systemd_plan(spec, Path("/etc/systemd/system"), user_units=False)))
    assert f"`schedule stop` as that account with WICBOX_HOME={SERVICE_HOME}" in text


@pytest.mark.skipif(os.geteuid() != 0, reason="system units are written by root (CI runs as root)")
def test_show_names_the_folders_the_service_writes(tmp_path: Path) -> None:
    folder = tmp_path / "WIC"
    folder.mkdir()
    config = write_config(folder / "WicGlobal.config", f"sqlite:///{tmp_path / 'wic.db'}")
    wicbox = WicboxCli(home=tmp_path / "home", cwd=folder)
    result = wicbox("schedule", "show", "--platform", "systemd", "--config", str(config))
    assert result.exit_code == 0, result.output
    assert f"Environment=WICBOX_HOME={wicbox.home}\n" in result.output  # the one set stays
    assert f"ReadWritePaths=-{wicbox.home} -{tmp_path}\n" in result.output  # and the SQLite folder
    assert "ProtectSystem=strict" in result.output


def test_systemd_analyze_accepts_the_hardened_units(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    assert analyze is not None, "systemd-analyze is part of Debian's systemd package"
    spec = _spec(config_path="/srv/wic/WicGlobal.config", program=installed_program(), run_as="root",
                 wicbox_home=SERVICE_HOME, writable_paths=(str(tmp_path / "logs 100%"),))  # fmt: skip
    plan = systemd_plan(spec, tmp_path / "units", user_units=False, relay=RelaySpec())
    for planned in plan.files:
        Path(planned.path).parent.mkdir(parents=True, exist_ok=True)
        Path(planned.path).write_bytes(planned.data)
    completed = subprocess.run(
        [analyze, "verify", *(f.path for f in plan.files)], capture_output=True, text=True, check=False
    )
    assert completed.returncode == 0, completed.stderr
    assert "wicbox" not in completed.stderr, completed.stderr
