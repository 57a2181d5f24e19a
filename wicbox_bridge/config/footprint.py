"""The bridge's footprint on disk: folders and files only their owner reaches, and never a link.

What the bridge creates (the embedded database, the token cache, the run lock, the pause marker,
the log files and their folders) is created closed: on POSIX folders 0700 and files 0600 (the CLI
also sets the umask 077 once at start-up, for what libraries create), on Windows a new folder gets
its own access list (SYSTEM, Administrators and the creating account; inheritance off; no Users),
see :mod:`wicbox_bridge.config.winacl`.

A folder or file the bridge writes to is refused when it is a symbolic link, a junction or another
reparse point, from the bridge's own base folder down (``within``): a local user who could plant
one would redirect the bridge's writes (a log line into another account's file, the pause marker
anywhere). Above the base (``/home``, ``C:\\ProgramData``) the system's own links are left alone.

:func:`footprint_findings` is what ``wicbox check`` reports: a folder or file that other accounts
can read or write, with the one command that closes it and a repair ``--fix-permissions`` applies.
"""

from __future__ import annotations

import errno
import os
import stat
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from wicbox_bridge.config.winacl import (
    WindowsSecurity,
    dacl_problems,
    icacls_fix,
    parse_dacl,
    private_folder_dacl,
    tightened_dacl,
)
from wicbox_bridge.errors import ConfigurationError

PRIVATE_DIR_MODE = 0o700
PRIVATE_FILE_MODE = 0o600
PRIVATE_UMASK = 0o077
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)


def default_windows_security() -> WindowsSecurity | None:
    """The real Windows seam on Windows; ``None`` elsewhere (POSIX modes apply there)."""
    if sys.platform == "win32":  # pragma: no cover - Windows only
        from wicbox_bridge.config.winsec import WindowsApi  # noqa: PLC0415

        return WindowsApi()
    return None


class LinkRefused(ConfigurationError):
    """A path the bridge writes to is a symbolic link, a junction or another reparse point."""

    def __init__(self, path: Path) -> None:
        super().__init__(
            f"{path} is a symbolic link, junction or other reparse point; wicbox-bridge does not write "
            "through one (another account could redirect what it writes)",
            fix=f"remove the link (it is not wicbox-bridge's: `rm '{path}'` or `rmdir \"{path}\"` on "
            "Windows) and run the command again, which creates a real folder or file",
        )


def _chain(path: Path, within: Path | None) -> list[Path]:
    """``within``, then every folder below it down to ``path``; just ``path`` when outside it."""
    if within is None or not path.is_relative_to(within):
        return [path]
    chain = [within]
    for part in path.relative_to(within).parts:
        chain.append(chain[-1] / part)
    return chain


def is_link(path: Path, windows: WindowsSecurity | None = None) -> bool:
    """A symbolic link (``lstat``), or on Windows any reparse point (a junction too)."""
    try:
        if stat.S_ISLNK(os.lstat(path).st_mode):
            return True
    except FileNotFoundError:
        return False
    return bool(windows is not None and windows.is_reparse_point(path))


def refuse_links(path: Path, *, within: Path | None = None, windows: WindowsSecurity | None = None) -> None:
    """Raises :class:`LinkRefused` when ``path`` or a folder from ``within`` down to it is a link."""
    for part in _chain(path, within):
        if is_link(part, windows):
            raise LinkRefused(part)


def make_private_dir(
    path: Path, *, within: Path | None = None, windows: WindowsSecurity | None = None
) -> Path:
    """Creates ``path`` and its missing parents closed to other accounts; links from ``within`` down
    are refused.

    POSIX: mode 0700. Windows: the top folder created gets SYSTEM, Administrators and this
    account, inheritance off; the ones below inherit that. An existing folder is not changed (``wicbox
    check`` reports it).
    """
    refuse_links(path, within=within, windows=windows)
    missing = [path, *(parent for parent in path.parents)]
    missing = list(reversed(missing[: next(i for i, part in enumerate(missing) if part.exists())]))
    for index, part in enumerate(missing):  # every folder the bridge creates is closed, from the top
        try:
            part.mkdir(mode=PRIVATE_DIR_MODE)
        except FileExistsError:
            continue
        if windows is not None and index == 0:
            windows.write_dacl(part, private_folder_dacl(windows.current_sid()).text())
    refuse_links(path, within=within, windows=windows)
    return path


def open_private(
    path: Path, flags: int, *, windows: WindowsSecurity | None = None, create: bool = True
) -> int:
    """``os.open`` with mode 0600 for a new file (``create``) and never through a link (``O_NOFOLLOW``;
    Windows: no reparse point)."""
    if windows is not None and is_link(path, windows):
        raise LinkRefused(path)
    flags |= _NOFOLLOW | getattr(os, "O_BINARY", 0) | (os.O_CREAT if create else 0)
    try:
        return os.open(path, flags, PRIVATE_FILE_MODE)
    except OSError as exc:
        if exc.errno == errno.ELOOP or (exc.errno == errno.EEXIST and is_link(path)):
            raise LinkRefused(path) from exc
        raise


def touch_private(path: Path, *, windows: WindowsSecurity | None = None) -> None:
    """Creates ``path`` empty with mode 0600 when missing; refuses a link; an existing file is not
    opened at all (closing a descriptor of a SQLite database would drop the process' locks on it)."""
    if is_link(path, windows):
        raise LinkRefused(path)
    if path.exists():
        return
    try:
        os.close(open_private(path, os.O_WRONLY | os.O_EXCL, windows=windows))
    except FileExistsError:
        if is_link(path, windows):
            raise LinkRefused(path) from None


def write_private_text(path: Path, text: str, *, windows: WindowsSecurity | None = None) -> None:
    """Replaces ``path``'s content with ``text`` (UTF-8), created 0600, never through a link."""
    descriptor = open_private(path, os.O_WRONLY | os.O_TRUNC, windows=windows)
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        handle.write(text)


# --------------------------------------------------------------------------- the check


@dataclass(frozen=True)
class FootprintItem:
    """A folder or file of the bridge that must stay closed: what it is and where."""

    what: str
    path: Path
    folder: bool


@dataclass(frozen=True)
class Finding:
    """A folder or file that is too open, the command that closes it, and the repair (if any)."""

    item: FootprintItem
    problem: str
    fix: str
    repair: Callable[[], None] | None = None

    def line(self) -> str:
        return f"{self.item.what} {self.item.path} {self.problem}"


def footprint_findings(
    items: Sequence[FootprintItem], *, windows: WindowsSecurity | None = None, uid: int | None = None
) -> list[Finding]:
    """Every item that exists and is too open: a link, a loose mode or owner (POSIX), or a loose
    access list (Windows: folders; files inherit theirs)."""
    findings: list[Finding] = []
    for item in items:
        if is_link(item.path, windows):
            findings.append(_link_finding(item))
        elif not item.path.exists():
            continue
        elif windows is not None:
            findings += _windows_finding(item, windows) if item.folder else []
        else:
            findings += _posix_findings(item, os.getuid() if uid is None else uid)
    return findings


def _link_finding(item: FootprintItem) -> Finding:
    return Finding(
        item,
        "is a symbolic link or junction: wicbox-bridge refuses to write through it",
        f"rm '{item.path}'  (then run the command again; it creates a real "
        f"{'folder' if item.folder else 'file'})",
    )


def _posix_findings(item: FootprintItem, uid: int) -> list[Finding]:
    info = item.path.stat()
    findings = []
    open_bits = info.st_mode & (stat.S_IRWXG | stat.S_IRWXO)
    if open_bits:
        mode = PRIVATE_DIR_MODE if item.folder else PRIVATE_FILE_MODE
        who = "read" if open_bits & (stat.S_IRGRP | stat.S_IROTH) else "changed"
        findings.append(
            Finding(
                item,
                f"can be {who} by other accounts (mode {stat.filemode(info.st_mode)})",
                f"chmod {mode:o} '{item.path}'",
                _chmod(item.path, mode),
            )
        )
    if info.st_uid != uid:
        findings.append(
            Finding(
                item,
                f"belongs to another account (user id {info.st_uid}; this is {uid})",
                f"chown <the account that runs wicbox> '{item.path}'",
            )
        )
    return findings


def _chmod(path: Path, mode: int) -> Callable[[], None]:
    def repair() -> None:
        if is_link(path):
            raise LinkRefused(path)
        path.chmod(mode)

    return repair


def _windows_finding(item: FootprintItem, windows: WindowsSecurity) -> list[Finding]:
    dacl = parse_dacl(windows.read_dacl(item.path))
    problems = dacl_problems(dacl)
    if not problems:
        return []
    wanted = tightened_dacl(dacl)

    def repair() -> None:
        windows.write_dacl(item.path, wanted.text())

    return [Finding(item, "; ".join(problems), icacls_fix(item.path, dacl), repair)]
