"""The project's one error tree.

Every third-party error (msal, imapclient, socket, ssl, pyodbc, sqlite3, aiosmtplib, requests) is
translated at the adapter edge into a subclass of :class:`BridgeError`, always with
``raise ... from exc``. Each error carries the exit code the CLI returns for it and, where one is
known, the fix an administrator should apply. Messages never contain secrets: code that builds
them passes names of parameters, never their values.
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """Documented process exit codes of ``wicbox``."""

    OK = 0
    PARTIAL = 1
    CONFIGURATION = 2
    AUTHENTICATION = 3
    CONNECTION = 4
    ALREADY_RUNNING = 5


class BridgeError(Exception):
    """Root of every error this project raises on purpose.

    ``message`` says what is wrong, ``fix`` says what to change. ``str()`` gives both.
    """

    exit_code: ExitCode = ExitCode.PARTIAL

    def __init__(self, message: str, *, fix: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.fix = fix

    def __str__(self) -> str:
        return with_fix(self.message, self.fix)


FIX_SEPARATOR = " Fix: "
"""Between an error and its fix in one line of text (:func:`with_fix`, :func:`split_fix`)."""

_SENTENCE_ENDS = (".", "!", "?")


def with_fix(message: str, fix: str | None) -> str:
    """An error and its fix as one line of text: two sentences, never run together.

    ``"... for OAuth2"`` and ``"copy the Value"`` give ``"... for OAuth2. Fix: copy the Value"``.
    """
    text = message.rstrip()
    if not fix:
        return text
    end = "" if text.endswith(_SENTENCE_ENDS) else "."
    return f"{text}{end}{FIX_SEPARATOR}{fix.strip()}"


def split_fix(text: str) -> tuple[str, str | None]:
    """The error and the fix of a line :func:`with_fix` made (no fix: ``None``)."""
    message, separator, fix = text.partition(FIX_SEPARATOR)
    if not separator:
        return text, None
    return message.removesuffix("."), fix


def error_lines(message: str, fix: str | None, *, prefix: str = "wicbox: ") -> list[str]:
    """An error and its fix as the terminal shows them: ``wicbox: error: ...``, ``wicbox: fix: ...``.

    Every command prints its errors through this one function (the CLI's error handler, the
    run's per-mailbox failures, the outbox's problems), so they all read the same.
    """
    lines = [f"{prefix}error: {message}"]
    if fix:
        lines.append(f"{prefix}fix: {fix}")
    return lines


def warning_line(message: str, *, prefix: str = "wicbox: ") -> str:
    """A warning as the terminal shows it: ``wicbox: warning: ...`` (the CLI's one format, as the
    log's terminal handler writes a logged warning)."""
    return f"{prefix}warning: {message}"


class ConfigurationError(BridgeError):
    """WicGlobal.config, a WICMan parameter or a command-line option is missing or invalid."""

    exit_code = ExitCode.CONFIGURATION


class ConfigFileError(ConfigurationError):
    """WicGlobal.config cannot be found, read or parsed; names the path and, where known, the line."""

    def __init__(
        self, message: str, *, path: str | None = None, line: int | None = None, fix: str | None = None
    ) -> None:
        where = path or ""
        if path and line:
            where = f"{path}, line {line}"
        super().__init__(f"{where}: {message}" if where else message, fix=fix)
        self.path = path
        self.line = line


class ParameterError(ConfigurationError):
    """A WICMan parameter (or a project's mailbox column) is missing, invalid or contradicts another."""

    def __init__(self, parameter: str, message: str, *, fix: str | None = None) -> None:
        super().__init__(f"{parameter}: {message}", fix=fix)
        self.parameter = parameter


class DatabaseError(BridgeError):
    """The WIC database cannot be reached or rejected a statement."""

    exit_code = ExitCode.CONNECTION


class DataRejected(DatabaseError):
    """The database refused one statement's data (a constraint, a type, a size), not the connection.

    Filing treats it as a problem of that one mail (quarantine), unlike a lost connection, which
    stops the run before anything more is acknowledged on the server.
    """

    exit_code = ExitCode.PARTIAL


class SchemaError(DatabaseError):
    """The database schema is missing or at a version this release cannot work with."""

    exit_code = ExitCode.CONFIGURATION


class AuthenticationError(BridgeError):
    """The identity platform or a mail server refused the credentials or the token.

    ``code`` is Microsoft's error code where there is one (``AADSTS50126``), ``description`` the
    server's own words (already free of secrets: Microsoft never echoes them).
    """

    exit_code = ExitCode.AUTHENTICATION

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        description: str | None = None,
        fix: str | None = None,
    ) -> None:
        super().__init__(message, fix=fix)
        self.code = code
        self.description = description


class ConnectionFailure(BridgeError):
    """A server (identity platform, IMAP, SMTP, Graph, database) could not be reached or TLS failed."""

    exit_code = ExitCode.CONNECTION


class MailboxError(BridgeError):
    """A mailbox operation failed after login (folder missing, server refused a command)."""

    exit_code = ExitCode.PARTIAL


class SendError(BridgeError):
    """A mail could not be submitted; ``permanent`` tells whether retrying can help."""

    exit_code = ExitCode.PARTIAL

    def __init__(self, message: str, *, permanent: bool, fix: str | None = None) -> None:
        super().__init__(message, fix=fix)
        self.permanent = permanent


class AlreadyRunning(BridgeError):
    """Another ``wicbox run`` holds the lock for this configuration."""

    exit_code = ExitCode.ALREADY_RUNNING


class LeaseLost(BridgeError):
    """This process no longer holds a mailbox's lease (it expired, or another host took it over)."""

    exit_code = ExitCode.PARTIAL
