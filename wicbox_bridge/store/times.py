"""How times are stored: UTC without a time zone, which every dialect takes the same way."""

from __future__ import annotations

import datetime as dt
from typing import overload


def utc_now() -> dt.datetime:
    """Now in UTC, as stored."""
    return dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)


@overload
def naive_utc(moment: dt.datetime) -> dt.datetime: ...
@overload
def naive_utc(moment: None) -> None: ...
def naive_utc(moment: dt.datetime | None) -> dt.datetime | None:
    """``moment`` in UTC, as stored (a naive moment is taken to be UTC already)."""
    if moment is None or moment.tzinfo is None:
        return moment
    return moment.astimezone(dt.timezone.utc).replace(tzinfo=None)


def as_utc(value: object) -> dt.datetime | None:
    """A stored timestamp (datetime, or ISO text on SQLite) as an aware UTC datetime."""
    if value is None or value == "":
        return None
    moment = value if isinstance(value, dt.datetime) else dt.datetime.fromisoformat(str(value))
    if moment.tzinfo is None:
        return moment.replace(tzinfo=dt.timezone.utc)
    return moment.astimezone(dt.timezone.utc)
