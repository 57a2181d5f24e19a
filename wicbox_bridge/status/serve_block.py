"""The `wicbox serve` block of ``wicbox status`` (pure: the heartbeat document is read by the caller).

`wicbox serve` rewrites its heartbeat file every few seconds (see :mod:`wicbox_bridge.serve.heartbeat`).
A heartbeat older than :data:`STALE_AFTER` means the service is not running (stopped, killed or
hanging); no heartbeat at all means serve never ran with this configuration and nothing is shown.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from wicbox_bridge.status.report import humanised

STALE_AFTER: Final = dt.timedelta(seconds=30)  # six heartbeats missed


@dataclass(frozen=True)
class ServeMailbox:
    label: str
    mailbox: str
    how: str
    last_pass_at: dt.datetime | None
    filed_total: int
    last_latency_s: float | None
    error: str | None
    lease_held: bool | None = None  # whether this serve holds the mailbox's lease (None: not told)


@dataclass(frozen=True)
class ServeStatus:
    host: str
    pid: int
    started_at: dt.datetime | None
    beat_at: dt.datetime
    age: dt.timedelta
    alive: bool
    mailboxes: tuple[ServeMailbox, ...]


def _moment(value: object) -> dt.datetime | None:
    if not isinstance(value, str):
        return None
    try:
        moment = dt.datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.timezone.utc)


def _number(value: object) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _mailbox(entry: Mapping[str, Any]) -> ServeMailbox:
    error = entry.get("error")
    return ServeMailbox(
        label=str(entry.get("label", "")),
        mailbox=str(entry.get("mailbox", "")),
        how=str(entry.get("how", "")),
        last_pass_at=_moment(entry.get("last_pass_at")),
        filed_total=int(_number(entry.get("filed_total")) or 0),
        last_latency_s=_number(entry.get("last_latency_s")),
        error=error if isinstance(error, str) else None,
        lease_held=lease if isinstance(lease := entry.get("lease_held"), bool) else None,
    )


def serve_status(document: Mapping[str, Any] | None, now: dt.datetime) -> ServeStatus | None:
    """The heartbeat as status shows it; None when there is none (or it cannot be understood)."""
    if document is None:
        return None
    beat_at = _moment(document.get("at"))
    if beat_at is None:
        return None
    entries = document.get("mailboxes")
    listed = entries if isinstance(entries, list) else []
    mailboxes = tuple(_mailbox(entry) for entry in listed if isinstance(entry, Mapping))
    age = max(dt.timedelta(0), now - beat_at)
    pid = _number(document.get("pid"))
    return ServeStatus(
        host=str(document.get("host", "")),
        pid=int(pid or 0),
        started_at=_moment(document.get("started_at")),
        beat_at=beat_at,
        age=age,
        alive=age <= STALE_AFTER,
        mailboxes=mailboxes,
    )


def _latency(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds:.1f} s"


def serve_lines(status: ServeStatus | None, now: dt.datetime) -> list[str]:
    """The text block; nothing when serve never ran."""
    if status is None:
        return []
    who = f"pid {status.pid} on {status.host}"
    if status.alive:
        head = f"Serve: running ({who}), last heartbeat {humanised(status.age)} ago"
    else:
        head = (
            f"Serve: NOT RUNNING: the last heartbeat ({who}) is {humanised(status.age)} old; "
            "start it again (`wicbox schedule start --serve`, or `wicbox serve`) or remove it "
            "(`wicbox schedule uninstall --serve`)"
        )
    lines = [head]
    for mailbox in status.mailboxes:
        last = "never" if mailbox.last_pass_at is None else f"{humanised(now - mailbox.last_pass_at)} ago"
        line = (
            f"  {mailbox.label} ({mailbox.mailbox}): {mailbox.how}; last pass {last}; "
            f"filed {mailbox.filed_total}; last arrival-to-filed {_latency(mailbox.last_latency_s)}"
        )
        if mailbox.lease_held is not None:
            line += "; lease held here" if mailbox.lease_held else "; lease held elsewhere (not worked here)"
        if mailbox.error:
            line += f"; last error: {mailbox.error}"
        lines.append(line)
    return lines


def _iso(moment: dt.datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()


def serve_json(status: ServeStatus | None) -> dict[str, Any] | None:
    """The ``serve`` member of ``wicbox status --json`` (null when serve never ran)."""
    if status is None:
        return None
    return {
        "alive": status.alive,
        "host": status.host,
        "pid": status.pid,
        "started_at": _iso(status.started_at),
        "heartbeat_at": status.beat_at.isoformat(),
        "heartbeat_age_seconds": int(status.age.total_seconds()),
        "mailboxes": [
            {
                "label": m.label,
                "mailbox": m.mailbox,
                "watched_by": m.how,
                "last_pass_at": _iso(m.last_pass_at),
                "filed": m.filed_total,
                "last_latency_seconds": m.last_latency_s,
                "last_error": m.error,
                "lease_held": m.lease_held,
            }
            for m in status.mailboxes
        ],
    }
