"""What the emulators share about traffic: a thread-safe request log filterable by field values,
and a plan of faults to inject into the next requests plus a delay before every answer.

Records are frozen dataclasses that never hold passwords, secrets or tokens, so tests can assert
on them and print them freely.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import fields
from typing import Any, Generic, TypeVar

RecordT = TypeVar("RecordT")
FaultT = TypeVar("FaultT")


class RequestLogBase(Generic[RecordT]):
    """Thread-safe list of records of one dataclass type, filterable by field values."""

    def __init__(self, record_type: type[Any]) -> None:
        self._record_name: str = record_type.__name__
        self._fields = frozenset(f.name for f in fields(record_type))
        self._lock = threading.Lock()
        self._records: list[RecordT] = []

    def append(self, record: RecordT) -> None:
        with self._lock:
            self._records.append(record)

    def entries(self, **criteria: object) -> tuple[RecordT, ...]:
        """Records whose fields equal all ``criteria``, e.g. ``entries(status=429)``."""
        unknown = set(criteria) - self._fields
        if unknown:
            raise TypeError(f"{self._record_name} has no field(s) {sorted(unknown)}")
        with self._lock:
            records = tuple(self._records)
        return tuple(r for r in records if all(getattr(r, k) == v for k, v in criteria.items()))

    def count(self, **criteria: object) -> int:
        return len(self.entries(**criteria))

    def clear(self) -> None:
        with self._lock:
            self._records.clear()


class FaultPlanBase(Generic[FaultT]):
    """Faults for the next requests, answered in order, plus a delay before every answer."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._queue: deque[FaultT] = deque()
        self._delay = 0.0

    def add(self, fault: FaultT, count: int) -> None:
        if count < 1:
            raise ValueError("count must be at least 1")
        with self._lock:
            self._queue.extend([fault] * count)

    def take(self) -> FaultT | None:
        with self._lock:
            return self._queue.popleft() if self._queue else None

    def pending(self) -> int:
        with self._lock:
            return len(self._queue)

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
