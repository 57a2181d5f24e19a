"""The names and levels of the bridge's logging, apart from the handlers (:mod:`.setup`).

The command line reads them to declare ``--log-level`` before it knows whether it will log at all
(``--version`` and ``--help`` do not): this module loads nothing but :mod:`logging`.
"""

from __future__ import annotations

import logging

LOGGER_NAME = "wicbox"
DEFAULT_FILE_LEVEL = logging.INFO
FILE_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}
FILE_ONLY = {"wicbox_file_only": True}
"""``extra=`` of a line the command line has already printed: it goes to the log file only."""
