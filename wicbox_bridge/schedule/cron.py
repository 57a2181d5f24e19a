"""The crontab line for systems without systemd (pure).

cron has no "no overlapping runs" setting of its own; wicbox's run lock gives it: a run that
finds another busy exits with code 5 at once. ``timeout`` ends a run after the time limit.
"""

from __future__ import annotations

import shlex

from wicbox_bridge.errors import ConfigurationError
from wicbox_bridge.schedule.spec import ScheduleSpec
from wicbox_bridge.schedule.timing import cron_schedule

CRON_LOG_NAME = "cron.log"


def cron_command(spec: ScheduleSpec, log_file: str) -> str:
    """The shell command of the line, before cron's ``%`` escaping."""
    program = shlex.join(spec.argv)
    home = f"WICBOX_HOME={shlex.quote(spec.wicbox_home)} " if spec.wicbox_home else ""
    return (
        f"cd {shlex.quote(spec.working_dir)} && {home}timeout --kill-after=1m {spec.time_limit_minutes}m "
        f"{program} >>{shlex.quote(log_file)} 2>&1"
    )


def cron_line(spec: ScheduleSpec, log_file: str) -> str:
    """One crontab line; a ``%`` is escaped because cron turns a bare one into a line break."""
    schedule = cron_schedule(spec.every_minutes)
    if schedule is None:
        raise ConfigurationError(
            f"--every {spec.every_minutes}: cron cannot start a run every {spec.every_minutes} minutes",
            fix="choose fewer than 60 minutes, or 60, 120, 180, 240, 360, 480, 720 or 1440; "
            "or use systemd (--platform systemd) where it runs",
        )
    return f"{schedule} {cron_command(spec, log_file).replace('%', chr(92) + '%')}"


def cron_notes(spec: ScheduleSpec) -> tuple[str, ...]:
    if spec.every_minutes < 60 and 60 % spec.every_minutes:
        return (
            f"cron counts from the full hour: with --every {spec.every_minutes} the last gap of each "
            f"hour is {60 % spec.every_minutes} minutes",
        )
    return ()
