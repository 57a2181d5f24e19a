"""What the emulator records about requests, and the faults tests ask it to inject.

The request log keeps only what identifies a request (never passwords, secrets or tokens), so a
test can assert on it and print it freely.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from tools.testbed.traffic import FaultPlanBase, RequestLogBase

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


class RequestLog(RequestLogBase[RequestRecord]):
    """Thread-safe list of :class:`RequestRecord`, e.g. ``entries(grant_type="refresh_token")``."""

    def __init__(self) -> None:
        super().__init__(RequestRecord)

    def token_requests(self, **criteria: object) -> tuple[RequestRecord, ...]:
        return tuple(r for r in self.entries(method="POST", **criteria) if r.path.endswith("/token"))


@dataclass(frozen=True)
class Fault:
    kind: FaultKind
    status: int
    retry_after: int | None = None


class FaultPlan(FaultPlanBase[Fault]):
    """Faults for the next token requests, answered in order, plus a delay for every one."""
