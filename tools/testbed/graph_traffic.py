"""What the Graph emulator records about requests, the faults tests inject, and the per-mailbox
concurrency gauge (Exchange Online allows 4 concurrent requests per app and mailbox).

Records never hold tokens: method, path, query, the mailbox addressed, the reply and timestamps
(``time.monotonic()``), so tests can assert on timing and print the log freely.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Literal

from tools.testbed.traffic import FaultPlanBase, RequestLogBase

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
    size: int = 0  # bytes of the request body
    headers: tuple[tuple[str, str], ...] = ()  # Content-Range and Content-Type, when sent


class GraphRequestLog(RequestLogBase[GraphRequestRecord]):
    """Thread-safe list of :class:`GraphRequestRecord`, filterable by field values."""

    def __init__(self) -> None:
        super().__init__(GraphRequestRecord)


@dataclass(frozen=True)
class GraphFault:
    kind: GraphFaultKind
    status: int
    retry_after: float | None = None


class GraphFaultPlan(FaultPlanBase[GraphFault]):
    """Faults for the next requests (in order), and a delay before every answer."""


class ConcurrencyGauge:
    """Requests in flight per mailbox, the highest number seen, and Exchange's limit of 4."""

    def __init__(self, limit: int = MAILBOX_CONCURRENCY) -> None:
        self.limit = limit
        self._lock = threading.Lock()
        self._current: dict[str, int] = {}
        self._peak: dict[str, int] = {}
        self._peak_total = 0  # across every mailbox: the client's own bound (its workers)

    def enter(self, mailbox: str, count: int = 1) -> int:
        """Admit up to ``count`` requests; how many fit under the limit (the rest get 429)."""
        key = mailbox.casefold()
        with self._lock:
            current = self._current.get(key, 0)
            admitted = max(0, min(count, self.limit - current))
            self._current[key] = current + admitted
            self._peak[key] = max(self._peak.get(key, 0), current + count)
            self._peak_total = max(self._peak_total, sum(self._current.values()))
            return admitted

    def leave(self, mailbox: str, count: int = 1) -> None:
        key = mailbox.casefold()
        with self._lock:
            self._current[key] = max(0, self._current.get(key, 0) - count)

    def peak(self, mailbox: str) -> int:
        """The most requests that were ever in flight at once for ``mailbox`` (refused ones too)."""
        with self._lock:
            return self._peak.get(mailbox.casefold(), 0)

    def peak_total(self) -> int:
        """The most admitted requests that were ever in flight at once, all mailboxes together."""
        with self._lock:
            return self._peak_total

    def clear(self) -> None:
        with self._lock:
            self._current.clear()
            self._peak.clear()
            self._peak_total = 0
