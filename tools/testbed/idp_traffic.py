"""What the emulator records about requests, and the faults tests ask it to inject.

The request log keeps only what identifies a request (never passwords, secrets or tokens), so a
test can assert on it and print it freely.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass, fields
from typing import Literal

FaultKind = Literal["throttle", "unavailable", "drop"]


@dataclass(frozen=True)
class RequestRecord:
    """One request the emulator answered (or, for a ``drop`` fault, did not answer: status 0)."""

    method: str
    path: str
    status: int
    grant_type: str | None = None
    client_id: str | None = None
    username: str | None = None
    scope: str | None = None
    error: str | None = None  # OAuth error, e.g. "invalid_grant"
    error_code: int | None = None  # AADSTS number, e.g. 50126
    fault: FaultKind | None = None


_RECORD_FIELDS = frozenset(f.name for f in fields(RequestRecord))


class RequestLog:
    """Thread-safe list of :class:`RequestRecord`, filterable by field values."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._records: list[RequestRecord] = []

    def append(self, record: RequestRecord) -> None:
        with self._lock:
            self._records.append(record)

    def entries(self, **criteria: object) -> tuple[RequestRecord, ...]:
        """Records whose fields equal all ``criteria``, e.g. ``entries(grant_type="refresh_token")``."""
        unknown = set(criteria) - _RECORD_FIELDS
        if unknown:
            raise TypeError(f"RequestRecord has no field(s) {sorted(unknown)}")
        with self._lock:
            records = tuple(self._records)
        return tuple(r for r in records if all(getattr(r, k) == v for k, v in criteria.items()))

    def count(self, **criteria: object) -> int:
        return len(self.entries(**criteria))

    def token_requests(self, **criteria: object) -> tuple[RequestRecord, ...]:
        return tuple(r for r in self.entries(method="POST", **criteria) if r.path.endswith("/token"))

    def clear(self) -> None:
        with self._lock:
            self._records.clear()


@dataclass(frozen=True)
class Fault:
    kind: FaultKind
    status: int
    retry_after: int | None = None


class FaultPlan:
    """Faults for the next token requests, answered in order, plus a delay for every one."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._queue: deque[Fault] = deque()
        self._delay = 0.0

    def add(self, fault: Fault, count: int) -> None:
        if count < 1:
            raise ValueError("count must be at least 1")
        with self._lock:
            self._queue.extend([fault] * count)

    def take(self) -> Fault | None:
        with self._lock:
            return self._queue.popleft() if self._queue else None

    @property
    def delay(self) -> float:
        with self._lock:
            return self._delay

    def set_delay(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("delay must not be negative")
        with self._lock:
            self._delay = seconds

    def clear(self) -> None:
        with self._lock:
            self._queue.clear()
            self._delay = 0.0
