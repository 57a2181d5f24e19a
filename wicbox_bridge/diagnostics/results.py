"""Results of ``wicbox check``: one line per check, OK or FAIL with the fix."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Any

from wicbox_bridge.errors import BridgeError


class CheckStatus(str, Enum):
    OK = "OK"
    WARN = "WARN"
    FAIL = "FAIL"
    SKIP = "SKIP"


@dataclass(frozen=True)
class CheckResult:
    """One diagnostic: what was checked, how it went, details, and the fix when it failed.

    ``exit_code`` is what ``wicbox check`` returns when this is the first failing check (the
    documented codes: 2 configuration, 3 authentication, 4 connection, 1 otherwise).
    """

    name: str
    status: CheckStatus
    detail: str
    fix: str | None = None
    exit_code: int = 1

    @property
    def passed(self) -> bool:
        return self.status in (CheckStatus.OK, CheckStatus.WARN, CheckStatus.SKIP)

    def render(self) -> str:
        line = f"[{self.status.value:<4}] {self.name}: {self.detail}"
        if self.fix and self.status is not CheckStatus.OK:
            line += f"\n       fix: {self.fix}"
        return line


def failed(name: str, error: BridgeError) -> CheckResult:
    """A FAIL result from one of the project's errors: its message, fix and exit code."""
    return CheckResult(name, CheckStatus.FAIL, error.message, error.fix, int(error.exit_code))


JSON_FORMAT = 1
"""The shape of ``wicbox check --json`` (fields are only ever added; docs/admin-guide.md)."""

JSON_STATES = {
    CheckStatus.OK: "ok",
    CheckStatus.WARN: "warning",
    CheckStatus.FAIL: "failed",
    CheckStatus.SKIP: "skipped",
}


def checks_json(results: list[CheckResult], exit_code: int) -> dict[str, Any]:
    """``wicbox check --json``: every check with its state, message and fix, and the exit code."""
    return {
        "format": JSON_FORMAT,
        "passed": exit_code == 0,
        "exit_code": exit_code,
        "checks": [
            {
                "name": result.name,
                "state": JSON_STATES[result.status],
                "message": result.detail,
                "fix": result.fix,
            }
            for result in results
        ],
    }


def overall_exit_code(results: list[CheckResult]) -> int:
    """0 when every check passed, else the exit code of the first failure."""
    for result in results:
        if not result.passed:
            return result.exit_code
    return 0
