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

from wicbox_bridge.secret import MASK, Secret, mask_values

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


def mask_tokens(text: str) -> str:
    """Masks anything that looks like a bearer token, a JWT or a secret form field."""
    for pattern in _TOKEN_PATTERNS:
        text = pattern.sub(lambda match: match.group(1) + MASK, text)
    return text


class Redactor:
    """The set of secret values to mask; thread-safe, shared by the log filters of one process."""

    def __init__(self) -> None:
        self._values: set[str] = set()
        self._lock = threading.Lock()

    def register(self, secrets: Iterable[Secret | str | None]) -> None:
        with self._lock:
            for secret in secrets:
                value = secret.reveal() if isinstance(secret, Secret) else secret
                # Very short values would mask ordinary words; they are still never logged on purpose.
                if value and len(value) >= 4:
                    self._values.add(value)

    def redact(self, text: str) -> str:
        with self._lock:
            values = list(self._values)
        return mask_tokens(mask_values(text, values))


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
