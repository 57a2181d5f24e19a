"""Results of ``wicbox check``: one line per check, OK or FAIL with the fix."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class CheckStatus(str, Enum):
    OK = "OK"
    WARN = "WARN"
    FAIL = "FAIL"
    SKIP = "SKIP"


@dataclass(frozen=True)
class CheckResult:
    """One diagnostic: what was checked, how it went, details, and the fix when it failed."""

    name: str
    status: CheckStatus
    detail: str
    fix: str | None = None

    @property
    def passed(self) -> bool:
        return self.status in (CheckStatus.OK, CheckStatus.WARN, CheckStatus.SKIP)

    def render(self) -> str:
        line = f"[{self.status.value:<4}] {self.name}: {self.detail}"
        if self.fix and self.status is not CheckStatus.OK:
            line += f"\n       fix: {self.fix}"
        return line
