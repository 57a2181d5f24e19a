"""Where wicbox-bridge keeps its files: the account's state and the configuration's machine-wide state."""

from __future__ import annotations

from pathlib import Path, PurePosixPath

import pytest

from wicbox_bridge.config.paths import machine_state_dir_for, state_dir_for

CONFIG = Path("/srv/wic/WicGlobal.config")
WINDOWS_ENV = {
    "LOCALAPPDATA": "C:\\Users\\svc-wic\\AppData\\Local",
    "PROGRAMDATA": "C:\\ProgramData",
    "USERPROFILE": "C:\\Users\\svc-wic",
}


@pytest.mark.parametrize(
    ("env", "platform", "machine_base", "account_base"),
    [
        (
            WINDOWS_ENV,
            "win32",
            "C:\\ProgramData/wicbox-bridge",
            "C:\\Users\\svc-wic\\AppData\\Local/wicbox-bridge",
        ),
        (
            {"USERPROFILE": "C:\\Users\\x"},
            "win32",
            "C:\\ProgramData/wicbox-bridge",
            "C:\\Users\\x/AppData/Local/wicbox-bridge",
        ),
        ({**WINDOWS_ENV, "WICBOX_HOME": "D:\\wicbox"}, "win32", "D:\\wicbox", "D:\\wicbox"),
        (
            {"HOME": "/home/wic"},
            "linux",
            "/home/wic/.local/share/wicbox-bridge",
            "/home/wic/.local/share/wicbox-bridge",
        ),
        (
            {"HOME": "/home/wic", "WICBOX_HOME": "/var/lib/wicbox"},
            "linux",
            "/var/lib/wicbox",
            "/var/lib/wicbox",
        ),
    ],
)
def test_machine_and_account_state_directories(
    env: dict[str, str], platform: str, machine_base: str, account_base: str
) -> None:
    machine = machine_state_dir_for(CONFIG, env, platform)
    account = state_dir_for(CONFIG, env, platform)
    assert PurePosixPath(machine).parent.parent == PurePosixPath(machine_base)
    assert PurePosixPath(account).parent.parent == PurePosixPath(account_base)
    assert machine.name == account.name  # the same configuration digest in both


def test_on_windows_every_account_shares_the_machine_directory_but_not_the_token_cache() -> None:
    task = {**WINDOWS_ENV}
    admin = {
        **WINDOWS_ENV,
        "LOCALAPPDATA": "C:\\Users\\admin\\AppData\\Local",
        "USERPROFILE": "C:\\Users\\admin",
    }
    assert machine_state_dir_for(CONFIG, task, "win32") == machine_state_dir_for(CONFIG, admin, "win32")
    assert state_dir_for(CONFIG, task, "win32") != state_dir_for(CONFIG, admin, "win32")


def test_two_configurations_never_share_a_directory() -> None:
    env = {"HOME": "/home/wic"}
    first = machine_state_dir_for(Path("/srv/a/WicGlobal.config"), env, "linux")
    second = machine_state_dir_for(Path("/srv/b/WicGlobal.config"), env, "linux")
    embedded = machine_state_dir_for(None, env, "linux")
    assert len({first, second, embedded}) == 3
