"""The "paused" marker: while it exists, ``wicbox run`` exits 0 at once without touching anything.

``wicbox schedule stop`` writes it into the configuration's state directory (next to the run lock),
``wicbox schedule start`` removes it. It holds off runs even where the admin may not change the
scheduler entry, and runs started by hand during an upgrade.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
from dataclasses import dataclass
from pathlib import Path

from wicbox_bridge.config.footprint import default_windows_security, make_private_dir, write_private_text
from wicbox_bridge.schedule.commandline import SchedulerError

PAUSE_FILE_NAME = "paused.json"


@dataclass(frozen=True)
class PauseMarker:
    """When and by whom runs were paused."""

    at: str
    by: str

    def notice(self) -> str:
        """The one line ``wicbox run`` prints instead of running."""
        return (
            f"wicbox: paused by `wicbox schedule stop` at {self.at} by {self.by}; "
            "`wicbox schedule start` resumes"
        )


def pause_file(state_dir: Path) -> Path:
    return state_dir / PAUSE_FILE_NAME


def pause_runs(state_dir: Path, *, at: dt.datetime, by: str) -> Path:
    """Writes the marker (replacing an older one; 0600, never through a link); its path."""
    path = pause_file(state_dir)
    marker = {"at": at.isoformat(sep=" ", timespec="seconds"), "by": by}
    try:
        windows = default_windows_security()
        make_private_dir(state_dir, windows=windows)
        write_private_text(path, json.dumps(marker), windows=windows)
    except OSError as exc:
        raise SchedulerError(
            f"cannot write the pause marker {path}: {exc.strerror}",
            fix="run `wicbox schedule stop` as an administrator (Windows) or as the account the "
            "service runs as (or with its WICBOX_HOME), which can write this directory",
        ) from exc
    return path


def resume_runs(state_dir: Path) -> bool:
    """Removes the marker; whether there was one."""
    path = pause_file(state_dir)
    try:
        path.unlink()
    except FileNotFoundError:
        return False
    except OSError as exc:
        raise SchedulerError(
            f"cannot remove the pause marker {path}: {exc.strerror}",
            fix="run `wicbox schedule start` as the account that ran `wicbox schedule stop`, or delete "
            "the file by hand",
        ) from exc
    return True


def read_pause(state_dir: Path) -> PauseMarker | None:
    """The marker, or None when runs are not paused. A damaged marker still pauses."""
    path = pause_file(state_dir)
    if not path.exists():
        return None
    data: object = None
    with contextlib.suppress(OSError, ValueError):
        data = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict):
        return PauseMarker(at="an unknown time", by="an unknown user")
    return PauseMarker(at=str(data.get("at", "an unknown time")), by=str(data.get("by", "an unknown user")))


def paused_notice(state_dir: Path) -> str | None:
    """The notice ``wicbox run`` prints when runs are paused; None when they are not."""
    marker = read_pause(state_dir)
    return None if marker is None else marker.notice()
