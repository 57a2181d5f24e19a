"""Logging for the CLI: stderr with a level from ``-v``, every handler behind the redacting filter."""

from __future__ import annotations

import logging
import sys

from wicbox_bridge.redact import RedactingFilter, Redactor

LOGGER_NAME = "wicbox"

_LEVELS = {0: logging.WARNING, 1: logging.INFO}


def level_for_verbosity(verbosity: int) -> int:
    """0 = warnings and errors, 1 (-v) = progress, 2 (-vv) and more = debug."""
    return _LEVELS.get(verbosity, logging.DEBUG)


def configure_logging(verbosity: int, redactor: Redactor) -> None:
    """Route the project's and the libraries' log records to stderr, redacted.

    At ``-vvv`` the libraries' own debug output (msal, imapclient, urllib3) is included too; it is
    redacted like everything else.
    """
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, "_wicbox", False):
            root.removeHandler(handler)
    handler = logging.StreamHandler(sys.stderr)
    handler._wicbox = True  # type: ignore[attr-defined]
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
    handler.addFilter(RedactingFilter(redactor))
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if verbosity >= 3 else logging.WARNING)
    logging.getLogger(LOGGER_NAME).setLevel(level_for_verbosity(verbosity))
