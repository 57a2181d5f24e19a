"""Control characters out of log lines and terminal output (pure).

A mail's subject, sender or Message-ID can carry ESC (terminal escape sequences), BEL, CR/LF (a
forged second log line), the rest of C0 and C1, and Unicode bidi overrides (text that reads other
than it is stored). Every log line and every error on the terminal passes through
:func:`escape_controls`: each such character becomes a visible ``\\xNN`` / ``\\uNNNN``.
"""

from __future__ import annotations

import logging
import re

# C0, DEL, C1; the bidi marks, embeddings, overrides and isolates; line and paragraph separators.
_CONTROLS = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
_CONTROLS_BUT_NEWLINE = re.compile(
    "[\x00-\x09\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]"
)


def _visible(match: re.Match[str]) -> str:
    code = ord(match.group(0))
    if code == 0x0A:
        return "\\n"
    if code == 0x0D:
        return "\\r"
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def escape_controls(text: str, *, keep_newlines: bool = False) -> str:
    """``text`` with every control or bidi character written visibly; ``keep_newlines`` keeps LF
    (a traceback's own line breaks)."""
    return (_CONTROLS_BUT_NEWLINE if keep_newlines else _CONTROLS).sub(_visible, text)


class EscapingFormatter(logging.Formatter):
    """A formatter whose message is one line of visible characters; a traceback keeps its lines."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        record.message = escape_controls(record.message)
        return super().formatMessage(record)

    def format(self, record: logging.LogRecord) -> str:
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = escape_controls(record.exc_text, keep_newlines=True)
        return super().format(record)
