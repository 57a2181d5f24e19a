"""Runs that failed before the database could be reached: a small machine-local record.

A run that cannot open the WIC database (or finds no schema there) cannot record itself in
WICBOX_RUN, so ``wicbox status`` would not see it. Such a run appends its error and fix here, in
the configuration's machine-wide directory (where the run lock and the log file live): one JSON
file, owner-only (0600 in a 0700 folder, never through a link), holding the last
:data:`KEEP` entries. A missing or unreadable file reads as no entries; recording never fails the
run (the error is already on the terminal and in the log file).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from wicbox_bridge.config.footprint import make_private_dir, write_private_text
from wicbox_bridge.errors import BridgeError

FILE_NAME: Final = "failed-runs.json"
KEEP: Final = 20
"""The most entries kept; older ones are dropped (the file stays a few kilobytes)."""
_TEXT_LIMIT: Final = 1000

log = logging.getLogger("wicbox.status")


@dataclass(frozen=True)
class FailedStart:
    """One run that stopped before the database: when, its exit code, the error and its fix."""

    at: dt.datetime  # aware UTC
    command: str
    exit_code: int
    message: str
    fix: str | None

    def as_json(self) -> dict[str, Any]:
        return {
            "at": self.at.isoformat().replace("+00:00", "Z"),
            "command": self.command,
            "exit_code": self.exit_code,
            "error": self.message,
            "fix": self.fix,
        }


def _entry(raw: Any) -> FailedStart:
    fix = raw.get("fix")
    return FailedStart(
        at=dt.datetime.fromisoformat(str(raw["at"]).replace("Z", "+00:00")).astimezone(dt.timezone.utc),
        command=str(raw["command"]),
        exit_code=int(raw["exit_code"]),
        message=str(raw["error"]),
        fix=None if fix is None else str(fix),
    )


def read_failed_starts(directory: Path) -> list[FailedStart]:
    """The recorded entries, oldest first (none when the file is missing or unreadable)."""
    try:
        document = json.loads((directory / FILE_NAME).read_text(encoding="utf-8"))
        return [_entry(raw) for raw in document["runs"]]
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return []


def record_failed_start(directory: Path, entry: FailedStart) -> None:
    """Appends ``entry``, keeping the last :data:`KEEP`; a write that fails is only logged."""
    clipped = FailedStart(
        entry.at,
        entry.command,
        entry.exit_code,
        entry.message[:_TEXT_LIMIT],
        (entry.fix or "")[:_TEXT_LIMIT] or None,
    )
    entries = [*read_failed_starts(directory), clipped][-KEEP:]
    document = {"format": 1, "runs": [item.as_json() for item in entries]}
    try:
        make_private_dir(directory)
        write_private_text(directory / FILE_NAME, json.dumps(document, indent=1))
    except (OSError, BridgeError) as exc:
        log.warning("Could not record the failed run in %s: %s", directory / FILE_NAME, exc)


def failed_since(entries: list[FailedStart], since: dt.datetime | None) -> list[FailedStart]:
    """The entries newer than ``since`` (None: all), newest first."""
    return sorted((e for e in entries if since is None or e.at > since), key=lambda e: e.at, reverse=True)
