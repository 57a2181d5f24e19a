"""Durations as the schedulers write them (pure)."""

from __future__ import annotations


def iso_duration(minutes: int) -> str:
    """An xs:duration as Task Scheduler writes it: ``PT5M``, ``PT2H``, ``PT1H30M``, ``P1D``."""
    days, rest = divmod(minutes, 1440)
    hours, mins = divmod(rest, 60)
    date_part = f"P{days}D" if days else "P"
    time_part = (f"{hours}H" if hours else "") + (f"{mins}M" if mins else "")
    return date_part + (f"T{time_part}" if time_part else "")


def systemd_calendar(every_minutes: int) -> str | None:
    """An OnCalendar= expression that fires exactly every N minutes, or None when none exists.

    Exact when N divides an hour (``*-*-* *:00/5:00``) or is a whole number of hours that divides
    a day (``*-*-* 00/2:00:00``); other intervals use a monotonic timer instead.
    """
    if every_minutes < 60 and 60 % every_minutes == 0:
        return f"*-*-* *:00/{every_minutes}:00"
    hours, rest = divmod(every_minutes, 60)
    if rest == 0 and 24 % hours == 0:
        return "*-*-* 00:00:00" if hours == 24 else f"*-*-* 00/{hours}:00:00"
    return None


def cron_schedule(every_minutes: int) -> str | None:
    """The five time fields of a crontab line, or None when cron cannot repeat at that interval.

    Below an hour cron counts from the full hour (``*/7`` runs at :00, :07 ... :56, then :00 again);
    from an hour on, only whole hours that divide a day can be written.
    """
    if every_minutes == 1:
        return "* * * * *"
    if every_minutes < 60:
        return f"*/{every_minutes} * * * *"
    hours, rest = divmod(every_minutes, 60)
    if rest or 24 % hours:
        return None
    if hours == 24:
        return "0 0 * * *"
    return "0 * * * *" if hours == 1 else f"0 */{hours} * * *"


def accuracy_seconds(every_minutes: int) -> int:
    """How late systemd may start a run to batch wake-ups: a tenth of the interval, 1 s to 1 min."""
    return max(1, min(60, every_minutes * 6))
