"""Where wicbox-bridge keeps its own files: the embedded database and per-configuration state.

``WICBOX_HOME`` overrides the per-user base directory (tests and side-by-side installs use it).
Per-configuration state lives in directories named after a hash of the configuration file's
absolute path, so two WIC installations on one server never share it. There are two of them:

- the *account's* state directory (:func:`state_dir_for`): the token cache, which belongs to the
  account that signs in (on Windows it is protected with that account's DPAPI key);
- the *configuration's* machine-wide directory (:func:`machine_state_dir_for`): the run lock, the
  pause marker of ``wicbox schedule stop`` and the log file. On Windows it is under
  ``%ProgramData%``, so an administrator who stops the scheduled task sees the run lock and pause
  of the task's service account, and support finds one log per configuration. Elsewhere it is the
  account's state directory (the systemd units and cron line that ``wicbox schedule`` writes pass
  ``WICBOX_HOME`` on, so the service and an administrator using the same ``WICBOX_HOME`` agree).

``WICBOX_HOME`` replaces both bases.
"""

from __future__ import annotations

import hashlib
import os
import sys
from collections.abc import Mapping
from pathlib import Path

APP_DIR_NAME = "wicbox-bridge"


def user_data_dir(env: Mapping[str, str] | None = None, platform: str | None = None) -> Path:
    """The per-user base directory (``%LOCALAPPDATA%\\wicbox-bridge`` on Windows)."""
    env = os.environ if env is None else env
    platform = sys.platform if platform is None else platform
    if env.get("WICBOX_HOME"):
        return Path(env["WICBOX_HOME"])
    home = Path(env.get("USERPROFILE") or env.get("HOME") or Path.home())
    if platform == "win32":
        base = Path(env["LOCALAPPDATA"]) if env.get("LOCALAPPDATA") else home / "AppData" / "Local"
    elif platform == "darwin":
        base = home / "Library" / "Application Support"
    else:
        base = Path(env["XDG_DATA_HOME"]) if env.get("XDG_DATA_HOME") else home / ".local" / "share"
    return base / APP_DIR_NAME


def embedded_database_path(env: Mapping[str, str] | None = None, platform: str | None = None) -> Path:
    """The embedded SQLite database used when WicGlobal.config names no connection string."""
    return user_data_dir(env, platform) / "wicbox.db"


def state_dir_for(
    config_path: Path | None, env: Mapping[str, str] | None = None, platform: str | None = None
) -> Path:
    """The account's state directory of one configuration (``None``: the embedded defaults)."""
    return user_data_dir(env, platform) / "state" / _config_digest(config_path)


def _config_digest(config_path: Path | None) -> str:
    identity = str(config_path.resolve()) if config_path else "embedded-default"
    return hashlib.sha256(identity.encode("utf-8")).hexdigest()[:12]


def machine_data_dir(env: Mapping[str, str] | None = None, platform: str | None = None) -> Path:
    """The machine-wide base directory (``%ProgramData%\\wicbox-bridge`` on Windows)."""
    env = os.environ if env is None else env
    platform = sys.platform if platform is None else platform
    if platform == "win32" and not env.get("WICBOX_HOME"):
        return Path(env.get("PROGRAMDATA") or "C:\\ProgramData") / APP_DIR_NAME
    return user_data_dir(env, platform)


def machine_state_dir_for(
    config_path: Path | None, env: Mapping[str, str] | None = None, platform: str | None = None
) -> Path:
    """The machine-wide directory of one configuration: run lock, pause marker, log file."""
    return machine_data_dir(env, platform) / "state" / _config_digest(config_path)
