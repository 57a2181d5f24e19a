"""Logging for the CLI: stderr with a level from ``-v``, the log file, every handler behind the
redacting filter.

Levels: the terminal shows warnings and errors (``-v`` progress, ``-vv`` debug, ``-vvv`` the
libraries' debug output too). The log file (:mod:`wicbox_bridge.logs.logfile`) records INFO and above
by default (``--log-level`` changes that) and at least what the terminal shows. Lines the command
line has already printed itself (a run's summary, an error and its fix) are logged with
``extra=FILE_ONLY``: they go to the file only, so the terminal does not show them twice.
"""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from wicbox_bridge.logs.escape import EscapingFormatter, escape_controls
from wicbox_bridge.logs.levels import DEFAULT_FILE_LEVEL, FILE_LEVELS, FILE_ONLY, LOGGER_NAME
from wicbox_bridge.logs.logfile import LogFileUnavailable, open_log_file
from wicbox_bridge.logs.redact import RedactingFilter, Redactor

__all__ = [
    "DEFAULT_FILE_LEVEL",
    "FILE_LEVELS",
    "FILE_ONLY",
    "LOGGER_NAME",
    "LogSettings",
    "configure_logging",
    "install_exception_hooks",
    "level_for_verbosity",
]


_LEVELS = {0: logging.WARNING, 1: logging.INFO}
_STDERR_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"  # -v progress and -vv debug
USER_PREFIX = (
    "wicbox"  # warnings and errors read as the CLI's own: "wicbox: warning: ...", "wicbox: fix: ..."
)


class UserMessageFormatter(EscapingFormatter):
    """Warnings and errors on the terminal in the CLI's one format: ``wicbox: warning: <message>``,
    then ``wicbox: fix: <fix>`` when the record carries ``extra={"fix": ...}``; progress and debug
    lines (``-v``, ``-vv``) keep their time stamp and logger name."""

    def __init__(self) -> None:
        super().__init__(_STDERR_FORMAT)
        self._user = EscapingFormatter(f"{USER_PREFIX}: %(wicbox_kind)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        if record.levelno < logging.WARNING:
            return super().format(record)
        record.wicbox_kind = "warning" if record.levelno < logging.ERROR else "error"
        text = self._user.format(record)
        fix = getattr(record, "fix", None)
        return f"{text}\n{USER_PREFIX}: fix: {escape_controls(str(fix))}" if fix else text


class _OncePerProcess(logging.Filter):
    """Lets a record marked ``extra={"once": True}`` through the first time its text is seen only,
    ``extra={"once": "<key>"}`` the first time its key is seen (a warning about this computer, not
    about one configuration, is said once per command)."""

    def __init__(self) -> None:
        super().__init__()
        self._seen: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        once = getattr(record, "once", None)
        if not once:
            return True
        text = once if isinstance(once, str) else record.getMessage()
        if text in self._seen:
            return False
        self._seen.add(text)
        return True


def level_for_verbosity(verbosity: int) -> int:
    """0 = warnings and errors, 1 (-v) = progress, 2 (-vv) and more = debug."""
    return _LEVELS.get(verbosity, logging.DEBUG)


@dataclass(frozen=True)
class LogSettings:
    """What one command logs where: ``-v`` count, the file's level, the file (``None``: no file)."""

    verbosity: int = 0
    file_level: int = DEFAULT_FILE_LEVEL
    file_path: Path | None = None

    @property
    def stderr_level(self) -> int:
        return level_for_verbosity(self.verbosity)

    @property
    def effective_file_level(self) -> int:
        """The file records at least what the terminal shows."""
        return min(self.file_level, self.stderr_level)


class _NotFileOnly(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not getattr(record, "wicbox_file_only", False)


class LoggingSetup:
    """The handlers one command added to the root logger; :meth:`close` removes them again."""

    def __init__(self, handlers: list[logging.Handler], log_file: Path | None) -> None:
        self.handlers = handlers
        self.log_file = log_file

    def close(self) -> None:
        root = logging.getLogger()
        for handler in self.handlers:
            root.removeHandler(handler)
            handler.close()


def configure_logging(settings: LogSettings, redactor: Redactor) -> LoggingSetup:
    """Route the project's and the libraries' log records to stderr and the log file, redacted.

    At ``-vvv`` the libraries' own debug output (msal, imapclient, urllib3) is included too, in the
    file as well; it is redacted like everything else. A log file that cannot be opened leaves one
    warning on stderr and the command goes on without it.
    """
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, "_wicbox", False):
            root.removeHandler(handler)
            handler.close()
    handlers = [_stderr_handler(settings.stderr_level)]
    file_handler = _file_handler(settings) if settings.file_path is not None else None
    if file_handler is not None:
        handlers.append(file_handler)
    for handler in handlers:
        handler._wicbox = True  # type: ignore[attr-defined]
        handler.addFilter(RedactingFilter(redactor))
        root.addHandler(handler)
    root.setLevel(logging.DEBUG if settings.verbosity >= 3 else logging.WARNING)
    project_level = settings.effective_file_level if file_handler is not None else settings.stderr_level
    logging.getLogger(LOGGER_NAME).setLevel(project_level)
    return LoggingSetup(handlers, settings.file_path if file_handler is not None else None)


def install_exception_hooks() -> Callable[[], None]:
    """Route an exception no code caught, in any thread (the relay's delivery thread), through the
    logging handlers, so that it is redacted and escaped like every other line; returns the undo."""
    previous_sys, previous_thread = sys.excepthook, threading.excepthook

    def sys_hook(kind: type[BaseException], value: BaseException, trace: TracebackType | None) -> None:
        logging.getLogger(LOGGER_NAME).critical(
            "wicbox stopped on an unexpected error", exc_info=(kind, value, trace)
        )

    def thread_hook(args: threading.ExceptHookArgs) -> None:
        if args.exc_type is SystemExit or args.exc_value is None:
            return
        name = args.thread.name if args.thread is not None else "a thread"
        logging.getLogger(LOGGER_NAME).critical(
            "%s stopped on an unexpected error",
            name,
            exc_info=(args.exc_type, args.exc_value, args.exc_traceback),
        )

    sys.excepthook, threading.excepthook = sys_hook, thread_hook

    def undo() -> None:
        sys.excepthook, threading.excepthook = previous_sys, previous_thread

    return undo


def _stderr_handler(level: int) -> logging.Handler:
    handler = logging.StreamHandler(sys.stderr)
    handler.setLevel(level)
    handler.setFormatter(UserMessageFormatter())
    handler.addFilter(_NotFileOnly())
    handler.addFilter(_OncePerProcess())
    return handler


def _file_handler(settings: LogSettings) -> logging.Handler | None:
    assert settings.file_path is not None
    try:
        handler = open_log_file(settings.file_path)
    except LogFileUnavailable as unavailable:
        sys.stderr.write(
            f"wicbox: warning: cannot open the log file {unavailable.path}: {unavailable.reason}; "
            "logging to the terminal only\n"
            "wicbox: fix: let the account running wicbox write to "
            f"{unavailable.path.parent}, or name a folder it may write with "
            '<add key="WicBoxLogDirectory" value="..."/> under <appSettings> in WicGlobal.config\n'
        )
        return None
    handler.setLevel(settings.effective_file_level)
    return handler
