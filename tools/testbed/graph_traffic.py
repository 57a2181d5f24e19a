"""What the Graph emulator records about requests, the faults tests inject, and the per-mailbox
concurrency gauge (Exchange Online allows 4 concurrent requests per app and mailbox).

Records never hold tokens: method, path, query, the mailbox addressed, the reply and timestamps
(``time.monotonic()``), so tests can assert on timing and print the log freely.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass, fields
from typing import Literal

GraphFaultKind = Literal["throttle", "unavailable", "drop"]
MAILBOX_CONCURRENCY = 4


@dataclass(frozen=True)
class GraphRequestRecord:
    """One request (or one request inside a ``$batch``: ``in_batch`` True) and its reply."""

    method: str
    path: str
    query: str
    mailbox: str | None
    status: int
    code: str | None
    started: float
    ended: float
    in_batch: bool = False
    immutable_ids: bool = False
    fault: GraphFaultKind | None = None


_FIELDS = frozenset(f.name for f in fields(GraphRequestRecord))


class GraphRequestLog:
    """Thread-safe list of :class:`GraphRequestRecord`, filterable by field values."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._records: list[GraphRequestRecord] = []

    def append(self, record: GraphRequestRecord) -> None:
        with self._lock:
            self._records.append(record)

    def entries(self, **criteria: object) -> tuple[GraphRequestRecord, ...]:
        unknown = set(criteria) - _FIELDS
        if unknown:
            raise TypeError(f"GraphRequestRecord has no field(s) {sorted(unknown)}")
        with self._lock:
            records = tuple(self._records)
        return tuple(r for r in records if all(getattr(r, k) == v for k, v in criteria.items()))

    def count(self, **criteria: object) -> int:
        return len(self.entries(**criteria))

    def clear(self) -> None:
        with self._lock:
            self._records.clear()


@dataclass(frozen=True)
class GraphFault:
    kind: GraphFaultKind
    status: int
    retry_after: float | None = None


class GraphFaultPlan:
    """Faults for the next requests (in order), and a delay before every answer."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._queue: deque[GraphFault] = deque()
        self._delay = 0.0

    def add(self, fault: GraphFault, count: int) -> None:
        if count < 1:
            raise ValueError("count must be at least 1")
        with self._lock:
            self._queue.extend([fault] * count)

    def take(self) -> GraphFault | None:
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


class ConcurrencyGauge:
    """Requests in flight per mailbox, the highest number seen, and Exchange's limit of 4."""

    def __init__(self, limit: int = MAILBOX_CONCURRENCY) -> None:
        self.limit = limit
        self._lock = threading.Lock()
        self._current: dict[str, int] = {}
        self._peak: dict[str, int] = {}

    def enter(self, mailbox: str, count: int = 1) -> int:
        """Admit up to ``count`` requests; how many fit under the limit (the rest get 429)."""
        key = mailbox.casefold()
        with self._lock:
            current = self._current.get(key, 0)
            admitted = max(0, min(count, self.limit - current))
            self._current[key] = current + admitted
            self._peak[key] = max(self._peak.get(key, 0), current + count)
            return admitted

    def leave(self, mailbox: str, count: int = 1) -> None:
        key = mailbox.casefold()
        with self._lock:
            self._current[key] = max(0, self._current.get(key, 0) - count)

    def peak(self, mailbox: str) -> int:
        """The most requests that were ever in flight at once for ``mailbox`` (refused ones too)."""
        with self._lock:
            return self._peak.get(mailbox.casefold(), 0)

    def clear(self) -> None:
        with self._lock:
            self._current.clear()
            self._peak.clear()
