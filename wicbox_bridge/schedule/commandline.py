"""The command lines of schtasks and systemctl, and the one function that runs them.

A :class:`CommandLine` may carry a password for the tool's own prompt (``schtasks /Create /RU``
without ``/RP`` asks for it) as a :class:`Secret` on its standard input: it never appears in the
argument list (which Windows' process auditing records), and it is shown everywhere else as the
mask, including in error messages.
"""

from __future__ import annotations

import shlex
import subprocess
from dataclasses import dataclass

from wicbox_bridge.errors import BridgeError, ExitCode
from wicbox_bridge.secret import MASK, Secret, mask_values

TOOL_TIMEOUT_SECONDS = 120


class SchedulerError(BridgeError):
    """The scheduler (schtasks, systemctl) refused a step, or a scheduler file could not be written."""

    exit_code = ExitCode.PARTIAL


@dataclass(frozen=True)
class CommandLine:
    """One command of a scheduler tool; ``display()`` is safe to print."""

    argv: tuple[str | Secret, ...]
    stdin: Secret | None = None  # answered to the tool's password prompt

    def revealed(self) -> list[str]:
        return [part.reveal() if isinstance(part, Secret) else part for part in self.argv]

    def display(self) -> str:
        shown = " ".join(MASK if isinstance(part, Secret) else _quote(part) for part in self.argv)
        return shown + (" (password on its standard input)" if self.stdin is not None else "")

    @property
    def secrets(self) -> tuple[Secret, ...]:
        given = tuple(part for part in self.argv if isinstance(part, Secret))
        return given + ((self.stdin,) if self.stdin is not None else ())


def _quote(part: str) -> str:
    """Quoted for reading (and pasting into a shell) when it holds spaces or special characters."""
    if part and all(ch.isalnum() or ch in "-_./:=\\@,+%" for ch in part):
        return part
    if part.startswith("<") and part.endswith(">"):  # a placeholder such as <temporary file>
        return part
    if "\\" in part and '"' not in part:  # Windows paths read better in double quotes
        return f'"{part}"'
    return shlex.quote(part)


def run_tool(command: CommandLine, *, fix: str) -> str:
    """Runs ``command``; its standard output, or SchedulerError with the tool's own words and ``fix``."""
    completed = _completed(command)
    if completed.returncode != 0:
        said = mask_values(" ".join((completed.stderr + " " + completed.stdout).split()), command.secrets)
        raise SchedulerError(
            f"`{command.display()}` failed (exit code {completed.returncode}): {said or 'no output'}",
            fix=fix,
        )
    return completed.stdout


def tool_succeeds(command: CommandLine) -> bool:
    """Whether ``command`` exits 0 (for questions such as "does this task exist?")."""
    return _completed(command).returncode == 0


def tool_answer(command: CommandLine) -> str:
    """What ``command`` prints, whatever its exit code (``systemctl is-active`` exits 3 for "failed")."""
    return _completed(command).stdout.strip()


def _completed(command: CommandLine) -> subprocess.CompletedProcess[str]:
    tool = command.revealed()[0]
    try:
        return subprocess.run(  # noqa: S603 - fixed argv built by this package, no shell
            command.revealed(),
            input=None if command.stdin is None else command.stdin.reveal() + "\n",
            capture_output=True,
            text=True,
            errors="replace",
            check=False,
            timeout=TOOL_TIMEOUT_SECONDS,
        )
    except FileNotFoundError as exc:
        raise SchedulerError(
            f"`{command.display()}` could not start: {tool} was not found on this computer",
            fix=f"run this on the computer whose scheduler should start wicbox, where {tool} exists; "
            "`wicbox schedule show` prints what would be installed without installing",
        ) from exc
    except subprocess.TimeoutExpired as exc:
        raise SchedulerError(
            f"`{command.display()}` did not answer within {TOOL_TIMEOUT_SECONDS} seconds",
            fix="check that the scheduler service is running, then try again",
        ) from exc
