"""Where wicbox-bridge keeps its own files: the embedded database and per-configuration state.

``WICBOX_HOME`` overrides the per-user base directory (tests and side-by-side installs use it).
Per-configuration state (token cache, run lock, logs) lives in a directory named after a hash of
the configuration file's absolute path, so two WIC installations on one server never share it.
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
    """The state directory of one configuration (``None``: running on embedded defaults)."""
    identity = str(config_path.resolve()) if config_path else "embedded-default"
    digest = hashlib.sha256(identity.encode("utf-8")).hexdigest()[:12]
    return user_data_dir(env, platform) / "state" / digest
