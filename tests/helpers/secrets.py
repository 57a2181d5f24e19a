"""The secret scanner of the leak tests: a test names the secrets it knows (passwords, client
secrets, refresh tokens the emulator issued, connection-string passwords, key lines), and every
text is searched for them in the forms a leak takes (raw, URL-encoded, base64 and base64url, with
or without padding) and for the shapes no test needs to name: JWTs and PEM private keys."""

from __future__ import annotations

import base64
import re
from collections.abc import Iterable
from urllib.parse import quote, quote_plus

JWT_SHAPE = re.compile(r"eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}")
PEM_KEY = re.compile(r"-----BEGIN (?:[A-Z]+ )?PRIVATE KEY-----")
SHORTEST_SECRET = 6  # shorter values would match ordinary words


def forms(secret: str) -> dict[str, str]:
    """The ways ``secret`` appears when it leaks: as it is, URL-encoded, base64-encoded."""
    raw = secret.encode("utf-8")
    found = {
        "raw": secret,
        "URL-encoded": quote(secret, safe=""),
        "form-encoded": quote_plus(secret),
        "base64": base64.b64encode(raw).decode().rstrip("="),
        "base64url": base64.urlsafe_b64encode(raw).decode().rstrip("="),
    }
    return {name: value for name, value in found.items() if len(value) >= SHORTEST_SECRET}


def leaks(text: str, secrets: Iterable[str | None] = ()) -> list[str]:
    """What of ``secrets`` (and any JWT or private key) ``text`` contains, named without the value."""
    found = []
    for number, secret in enumerate(secret for secret in secrets if secret):
        if len(secret) < SHORTEST_SECRET:
            raise ValueError(f"secret #{number} is too short to look for reliably")
        found.extend(f"secret #{number} ({name})" for name, value in forms(secret).items() if value in text)
    if JWT_SHAPE.search(text):
        found.append("a JWT (an access token, id token or client assertion)")
    if PEM_KEY.search(text):
        found.append("a PEM private key")
    return found


def assert_no_secrets(*texts: str, secrets: Iterable[str | None] = ()) -> None:
    """Fail naming what leaked (never printing the secret or the text around it)."""
    known = list(secrets)
    for number, text in enumerate(texts):
        found = leaks(text, known)
        assert not found, f"text #{number} holds {', '.join(found)}"
