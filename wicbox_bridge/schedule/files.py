"""Writing scheduler files all or nothing: if a later step fails, what was written is undone."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from pathlib import Path

from wicbox_bridge.schedule.commandline import CommandLine, SchedulerError, run_tool


def write_then_run(
    files: Sequence[tuple[Path, bytes]],
    commands: Sequence[CommandLine],
    *,
    fix: str,
    after_undo: Sequence[CommandLine] = (),
) -> None:
    """Writes ``files``, then runs ``commands``; on any failure restores every file as it was.

    A file that did not exist is removed again, one that was replaced gets its old content back;
    then ``after_undo`` runs (best effort, e.g. ``systemctl daemon-reload``) and the error is raised.
    """
    written: list[tuple[Path, bytes | None]] = []
    try:
        for path, data in files:
            written.append((path, _read_if_present(path)))
            _write(path, data)
        for command in commands:
            run_tool(command, fix=fix)
    except BaseException:
        for path, previous in reversed(written):
            _restore(path, previous)
        for command in after_undo:
            with contextlib.suppress(SchedulerError):
                run_tool(command, fix=fix)
        raise


def remove_files(paths: Sequence[Path]) -> list[Path]:
    """Removes the files that exist; the ones removed."""
    removed = []
    for path in paths:
        try:
            path.unlink()
        except FileNotFoundError:
            continue
        except OSError as exc:
            raise SchedulerError(
                f"cannot remove {path}: {exc.strerror}",
                fix="run the command as the account that installed the schedule (root for system units)",
            ) from exc
        removed.append(path)
    return removed


def _read_if_present(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise SchedulerError(
            f"cannot read {path}: {exc.strerror}",
            fix="run the command as the account that may change that folder (root for system units)",
        ) from exc


def _write(path: Path, data: bytes) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    except OSError as exc:
        raise SchedulerError(
            f"cannot write {path}: {exc.strerror}",
            fix="run the command as root for system units, or add --user for your own units",
        ) from exc


def _restore(path: Path, previous: bytes | None) -> None:
    with contextlib.suppress(OSError):
        if previous is None:
            path.unlink(missing_ok=True)
        else:
            path.write_bytes(previous)
