"""The log file: where it is, how it rotates, how its lines look, and what happens when it fails.

Where. One log file per configuration, ``wicbox.log`` in the folder ``logs`` of the configuration's
machine-wide state directory (:func:`wicbox_bridge.config.paths.machine_state_dir_for`)::

    Windows: %ProgramData%\\wicbox-bridge\\state\\<hash of the WicGlobal.config path>\\logs\\wicbox.log
    Linux:   ~/.local/share/wicbox-bridge/state/<hash of the WicGlobal.config path>/logs/wicbox.log

(``WICBOX_HOME`` replaces ``%ProgramData%\\wicbox-bridge`` and ``~/.local/share/wicbox-bridge``).
The appSettings key ``WicBoxLogDirectory`` in WicGlobal.config names another folder, e.g.
``<add key="WicBoxLogDirectory" value="D:\\Logs\\WIC"/>``; a relative path is relative to the folder of
WicGlobal.config. The scheduled task and an administrator's ``wicbox check`` use the same
configuration and therefore write to the same file. When no configuration file can be found at
all (``--config`` or ``WICBOX_CONFIG`` names a missing file) nothing is written to a file.

What. By default every line at INFO and above: each command's start, each run's start (run id,
mode, cap, configuration, version) and end (the summary), one ``wicbox.mail`` line per mail,
warnings and errors with their fix. ``wicbox --log-level debug|info|warning|error`` changes the
file's level; ``-v``/``-vv``/``-vvv`` control the terminal and the file always records at least
what the terminal shows. Every line goes through the same redaction as the terminal: no password,
client secret or token is written. A line is::

    2026-11-02T10:01:00.123+01:00 4242 INFO    wicbox.mail: mailbox=... key=... message_id=...

(local time with its UTC offset, the process id — several processes may write to the file at
once —, the level, the logger and the message; line breaks inside a message are written as ``\\n``
so that one record is always one line; a traceback follows its line, indented).

Rotation. At 10 MB the file becomes ``wicbox.log.1`` (the older ones move up to ``wicbox.log.10``;
the oldest is deleted): at most 110 MB. Several processes may write at once (the scheduled task
and an administrator's command), also on Windows, where an open file cannot be renamed:
concurrent-log-handler takes a lock file (``.__wicbox.lock`` next to the log) around every write
and every rotation.

Failure. A log file that cannot be opened (a folder the account may not write, a bad path) is
not fatal: one warning on the terminal names the file and the fix, and the command goes on with
the terminal only. A write that fails later (a full disk) is reported once the same way.
"""

from __future__ import annotations

import datetime as dt
import logging
import sys
from dataclasses import dataclass
from pathlib import Path

from concurrent_log_handler import ConcurrentRotatingFileHandler

from wicbox_bridge.config.footprint import (
    PRIVATE_FILE_MODE,
    LinkRefused,
    default_windows_security,
    make_private_dir,
    touch_private,
)
from wicbox_bridge.logs.escape import escape_controls

LOG_DIRECTORY_NAME = "logs"
LOG_FILE_NAME = "wicbox.log"
ENCODING = "utf-8"


@dataclass(frozen=True)
class Rotation:
    """When the log file is rotated and how many old files are kept."""

    max_bytes: int = 10 * 1024 * 1024
    backups: int = 10


def default_log_directory(state_dir: Path) -> Path:
    """The log folder of a configuration whose WicGlobal.config names none."""
    return state_dir / LOG_DIRECTORY_NAME


class LogFileFormatter(logging.Formatter):
    """``<ISO time with offset> <pid> <level> <logger>: <message>``; one record, one line."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(process)d %(levelname)-7s %(name)s: %(message)s")

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        moment = dt.datetime.fromtimestamp(record.created).astimezone()
        return moment.isoformat(timespec="milliseconds")

    def format(self, record: logging.LogRecord) -> str:
        record.message = record.getMessage()
        record.asctime = self.formatTime(record)
        line = escape_controls(self.formatMessage(record))
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        for extra in (record.exc_text, record.stack_info and self.formatStack(record.stack_info)):
            if extra:
                line += "\n" + _indented(escape_controls(extra, keep_newlines=True))
        return line


def _indented(text: str) -> str:
    return "\n".join("    " + line for line in text.splitlines())


class LogFileHandler(ConcurrentRotatingFileHandler):
    """A rotating file that several processes may write at once; a failed write warns once."""

    def __init__(self, path: Path, rotation: Rotation) -> None:
        super().__init__(
            str(path),
            maxBytes=rotation.max_bytes,
            backupCount=rotation.backups,
            encoding=ENCODING,
            unicode_error_policy="replace",
            chmod=PRIVATE_FILE_MODE if sys.platform != "win32" else None,
        )
        self.path = path
        self._warned = False
        self.setFormatter(LogFileFormatter())

    def handleError(self, record: logging.LogRecord) -> None:
        """Instead of a traceback per lost line: one warning, and the next lines are tried again."""
        if self._warned:
            return
        self._warned = True
        error = sys.exc_info()[1]
        reason = getattr(error, "strerror", None) or error or "unknown error"
        sys.stderr.write(
            f"wicbox: warning: cannot write to the log file {self.path}: {reason}; lines may be "
            "missing from it (the terminal still shows warnings and errors)\n"
            "wicbox: fix: free space on its drive and check that the account running wicbox may write "
            f"to {self.path.parent}\n"
        )


class LogFileUnavailable(Exception):
    """The log file could not be opened; ``reason`` is the operating system's."""

    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


def open_log_file(path: Path, rotation: Rotation = Rotation()) -> LogFileHandler:
    """The handler for ``path``, after checking that the folder, the file and its lock file open.

    The library opens the file on the first write only; opening both once here turns a folder the
    account may not write into one clear warning at the start instead of an error per line. A new
    folder is 0700, the files 0600 (Windows: the folder's own access list); a link is refused.
    """
    windows = default_windows_security()
    try:
        make_private_dir(path.parent, windows=windows)
        touch_private(path, windows=windows)
        handler = LogFileHandler(path, rotation)
        touch_private(Path(handler.lockFilename), windows=windows)
    except LinkRefused as exc:
        raise LogFileUnavailable(path, exc.message) from exc
    except OSError as exc:
        raise LogFileUnavailable(path, exc.strerror or exc.__class__.__name__) from exc
    return handler
