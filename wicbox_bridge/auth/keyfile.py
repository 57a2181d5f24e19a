"""Key files at rest: written readable by their owner only, and checked for other readers.

POSIX: mode 0600, created that way (never readable by others for a moment). Windows: the file's
inherited permissions are removed and only the current account gets access (``icacls``), since a
folder such as ProgramData lets every local user read what is created in it.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

from wicbox_bridge.errors import ConfigurationError

__all__ = [
    "foreign_owner_problem",
    "owner_only_command",
    "private_file_problem",
    "write_private_file",
    "write_public_file",
]


def write_private_file(path: Path, data: bytes) -> None:
    """Create ``path`` (never overwriting one) readable and writable by its owner only."""
    try:
        descriptor = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY | getattr(os, "O_BINARY", 0), 0o600)
    except FileExistsError as exc:
        raise _exists(path) from exc
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(data)
    if sys.platform == "win32":  # pragma: no cover - Windows only
        subprocess.run(owner_only_command(path, os.environ), check=True, capture_output=True)  # noqa: S603


def write_public_file(path: Path, data: bytes) -> None:
    """Create ``path`` (never overwriting one) with data anyone may read (a public certificate)."""
    try:
        with path.open("xb") as handle:
            handle.write(data)
    except FileExistsError as exc:
        raise _exists(path) from exc


def owner_only_command(path: Path, env: Mapping[str, str]) -> list[str]:
    """The icacls command line that leaves ``path`` to the current Windows account alone."""
    user = env.get("USERNAME", "")
    domain = env.get("USERDOMAIN", "")
    account = f"{domain}\\{user}" if domain and user else user or "%USERNAME%"
    return ["icacls", str(path), "/inheritance:r", "/grant:r", f"{account}:F"]


def private_file_problem(path: Path) -> str | None:
    """A warning with the command that fixes it when other accounts can read ``path`` (POSIX)."""
    if sys.platform == "win32":  # pragma: no cover - ACLs need the Windows API; `cert new` sets them
        return None
    try:
        mode = path.stat().st_mode
    except OSError:
        return None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        return (
            f"{path} can be read by other accounts (mode {stat.filemode(mode)}): it holds a private key. "
            f"Fix: chmod 600 '{path}'"
        )
    return None


def foreign_owner_problem(path: Path, uid: int | None = None) -> str | None:
    """A warning when ``path`` (a token cache) belongs to another account than this one (POSIX).

    A cache written by one account is useless to another: on Windows it is encrypted for its
    owner (DPAPI), elsewhere it is readable by its owner only.
    """
    if sys.platform == "win32":  # pragma: no cover - DPAPI binds the cache to its account already
        return None
    try:
        owner = path.stat().st_uid
    except OSError:
        return None
    current = os.getuid() if uid is None else uid
    if owner == current:
        return None
    return (
        f"the token cache {path} belongs to another account (user id {owner}, this is {current}): "
        "sign-ins saved there are not this account's"
    )


def _exists(path: Path) -> ConfigurationError:
    return ConfigurationError(
        f"{path} exists already; wicbox-bridge never overwrites a key or certificate file",
        fix="choose another --name or --out, or move the old file away first",
    )
