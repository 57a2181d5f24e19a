"""Waiting until no ``wicbox run`` of a configuration is busy, through its run lock."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

from wicbox_bridge.errors import AlreadyRunning
from wicbox_bridge.run.runlock import HOLDER_FILE_NAME, run_is_busy

POLL_SECONDS = 0.5
REMIND_SECONDS = 30.0


class RunStillBusy(AlreadyRunning):
    """``wicbox schedule stop`` waited in vain for a busy run (exit code 5)."""


def describe_holder(state_dir: Path) -> str:
    """Who holds the run lock, from the holder file the run writes: PID, host, start."""
    try:
        holder = json.loads((state_dir / HOLDER_FILE_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return "a run whose process is unknown"
    if not isinstance(holder, dict):
        return "a run whose process is unknown"
    return f"process {holder.get('pid')} on {holder.get('host')}, started {holder.get('started')}"


def wait_until_idle(
    state_dir: Path,
    *,
    timeout: float,
    on_wait: Callable[[str], None],
    end_hint: str,
) -> bool:
    """Returns once no run is busy (True when it had to wait), or raises RunStillBusy after ``timeout``.

    ``on_wait`` hears who is busy when the wait starts, when the holder changes and every half minute.
    """
    deadline = time.monotonic() + timeout
    told: tuple[str, float] | None = None
    while run_is_busy(state_dir):
        holder, now = describe_holder(state_dir), time.monotonic()
        if now >= deadline:
            raise RunStillBusy(
                f"a wicbox run is still busy after waiting {timeout:g} seconds: {holder}; new runs stay "
                "paused",
                fix=f"wait longer (`wicbox schedule stop --timeout 900`), or end the run: {end_hint}. "
                "A run that is ended loses no mail: the next run continues where it stopped",
            )
        if told is None or told[0] != holder or now - told[1] >= REMIND_SECONDS:
            on_wait(f"waiting for the busy run to finish ({holder}); {deadline - now:.0f} s left")
            told = (holder, now)
        time.sleep(min(POLL_SECONDS, max(deadline - now, 0.0)))
    return told is not None
