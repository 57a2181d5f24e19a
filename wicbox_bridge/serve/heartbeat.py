"""The service's heartbeat: a small JSON file in the machine-wide state directory, rewritten every
few seconds, that `wicbox status` can show (when, which process, per mailbox how it is watched,
the last pass and how long it took from the watch firing)."""

from __future__ import annotations

import datetime as dt
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Final

HEARTBEAT_FILE_NAME: Final = "serve-heartbeat.json"


@dataclass(frozen=True)
class MailboxBeat:
    label: str
    mailbox: str
    how: str  # "IDLE", "delta polling", "starting", or "failing"
    last_pass_at: str | None = None
    last_filed: int = 0
    last_pass_s: float | None = None  # from the watch firing to the pass's end (filed and acknowledged)
    error: str | None = None
    filed_total: int = 0  # since serve started
    last_latency_s: float | None = None  # the last filed mail: from its received time to its commit
    last_latency_at: str | None = None  # when that mail was filed
    lease_held: bool | None = None  # whether this process holds the mailbox's lease (None: no leases)


@dataclass(frozen=True)
class Heartbeat:
    host: str
    pid: int
    started_at: str
    at: str
    mailboxes: tuple[MailboxBeat, ...]


def utc_text(moment: dt.datetime) -> str:
    return moment.astimezone(dt.timezone.utc).isoformat(timespec="seconds")


def write_heartbeat(path: Path, beat: Heartbeat) -> None:
    """Replace the file at once (a reader never sees half of it)."""
    document = asdict(beat)
    temporary = path.with_name(f".{path.name}.{os.getpid()}")
    temporary.write_text(json.dumps(document, indent=2), encoding="utf-8")
    temporary.replace(path)


def read_heartbeat(path: Path) -> dict[str, object] | None:
    """The last heartbeat written, or None when there is none (or it cannot be read)."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return document if isinstance(document, dict) else None
