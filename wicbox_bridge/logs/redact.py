"""Keeps secrets out of log output: a logging filter that masks known secret values and bearer tokens.

Secret values (passwords, client secrets) are registered once when the settings are loaded; JWTs
and ``Bearer``/XOAUTH2 strings are masked by shape, so a token that reaches a log line by any path
(a library's debug output, an exception text) is still hidden.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Iterable

from wicbox_bridge.secret import MASK, Secret

_TOKEN_PATTERNS = (
    # Each pattern's first group is the text kept in front of the mask.
    # JSON Web Tokens (access and id tokens): three base64url segments starting with '{"'.
    re.compile(r"()eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*"),
    # Authorization headers and SASL XOAUTH2 initial responses.
    re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]{8,}"),
    re.compile(r"(?i)(auth=Bearer\s+)[^\x01\s]+"),
    re.compile(r"(?i)(AUTHENTICATE\s+XOAUTH2\s+)[A-Za-z0-9+/=]{8,}"),
    # OAuth form fields and JSON members that carry secrets; the token of a Graph upload URL.
    re.compile(
        r"(?i)((?:client_secret|client_assertion|password|refresh_token|access_token|id_token|device_code"
        r"|authtoken)"
        r"[\"']?\s*[=:]\s*[\"']?)[^&\s\"',}]+"
    ),
    # msal sends the device code a second time as "code": long values only, so that short ones such
    # as an AADSTS or SMTP code stay readable for support.
    re.compile(r"(?i)((?<![\w])[\"']?code[\"']?\s*[=:]\s*[\"']?)[^&\s\"',}]{20,}"),
    # A private key in PEM form, whole (certificate credentials).
    re.compile(r"(-----BEGIN [A-Z ]*PRIVATE KEY-----)[\s\S]*?-----END [A-Z ]*PRIVATE KEY-----"),
)


# Every pattern above can match only a text that holds one of these words (in any case): the JWT
# prefix "eyJ", "Bearer", "XOAUTH2", the field names (client_secret, client_assertion, password,
# the *_token fields and authtoken, device_code and code) and "PRIVATE KEY". Keep them in step.
_TRIGGER_WORDS = (
    "eyj",
    "bearer",
    "xoauth2",
    "secret",
    "assertion",
    "password",
    "token",
    "code",
    "private key",
)


def may_hold_token(text: str) -> bool:
    """False only when no pattern of :func:`mask_tokens` can match ``text``: a cheap test before
    seven regular expressions, for the common log line (a mail's trace line) that holds none.

    Only ASCII text is ruled out: there ``str.lower`` folds exactly what the patterns' IGNORECASE
    folds. Unicode case folding also matches e.g. KELVIN SIGN to "k", LONG S to "s" and DOTLESS I
    to "i", so any other text always takes the patterns.
    """
    if not text.isascii():
        return True
    lowered = text.lower()
    return any(word in lowered for word in _TRIGGER_WORDS)


def mask_tokens(text: str) -> str:
    """Masks anything that looks like a bearer token, a JWT or a secret form field."""
    if not may_hold_token(text):
        return text
    return mask_token_patterns(text)


def mask_token_patterns(text: str) -> str:
    """:func:`mask_tokens` without the pre-check: every pattern, always (the tests' reference)."""
    for pattern in _TOKEN_PATTERNS:
        text = pattern.sub(lambda match: match.group(1) + MASK, text)
    return text


class Redactor:
    """The set of secret values to mask; thread-safe, shared by the log filters of one process."""

    def __init__(self) -> None:
        self._values: set[str] = set()
        self._longest_first: tuple[str, ...] = ()
        self._lock = threading.Lock()

    def register(self, secrets: Iterable[Secret | str | None]) -> None:
        with self._lock:
            for secret in secrets:
                value = secret.reveal() if isinstance(secret, Secret) else secret
                # Very short values would mask ordinary words; they are still never logged on purpose.
                if value and len(value) >= 4:
                    self._values.add(value)
            # Sorted once here, not for every log line (as mask_values does: longest first, so a
            # value that contains a shorter one is masked whole).
            self._longest_first = tuple(sorted(self._values, key=len, reverse=True))

    def redact(self, text: str) -> str:
        values = self._longest_first  # replaced whole under the lock, read without it
        for value in values:
            if value in text:
                text = text.replace(value, MASK)
        return mask_tokens(text)


class RedactingFilter(logging.Filter):
    """Renders each record's message once and replaces it with the redacted text."""

    def __init__(self, redactor: Redactor) -> None:
        super().__init__()
        self._redactor = redactor

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self._redactor.redact(record.exc_text)
        record.msg = self._redactor.redact(message)
        record.args = None
        return True
