"""Secrets at rest in the embedded database: sealed with the platform's protection, never plain.

``wicbox params set`` stores a password or client secret into the *embedded* SQLite database (the
per-account default used when there is no WicGlobal.config) as sealed text::

    wicbox-sealed:v1:dpapi:<base64>              Windows: DPAPI, this account's key
    wicbox-sealed:v1:key:<key id>:<base64>       elsewhere: AES-256-GCM with this account's key file

The key file (``secrets.key`` in the per-account folder, beside the token cache's folder) holds 32
random bytes, is created 0600 in a 0700 folder (the token cache's own fallback when there is no
keyring), and never goes into the database. The parameter's name is bound into the seal, so a
sealed value copied to another parameter does not open. A database file copied to another account
or computer cannot be opened there: the key (DPAPI's or the file) stays behind.

Reading is the same for every database: a value that starts with ``wicbox-sealed:`` is unsealed,
any other value is used as stored. WIC itself writes WICMAN_PARAMETER on SQL Server in plain text;
there the database's permissions protect it (see docs/security.md).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import secrets
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from wicbox_bridge.config.footprint import LinkRefused, make_private_dir, open_private
from wicbox_bridge.errors import ParameterError

SEALED_PREFIX = "wicbox-sealed:v1:"
KEY_FILE_NAME = "secrets.key"
_KEY_BYTES = 32
_NONCE_BYTES = 12


class Sealer(Protocol):
    """Seals and opens bytes with a key that belongs to this account (and computer)."""

    scheme: str

    def seal(self, data: bytes, context: bytes) -> str:
        """The sealed text after ``<prefix><scheme>:``."""

    def unseal(self, text: str, context: bytes) -> bytes:
        """The data; ``ValueError`` when this key cannot open it."""


class KeyFileSealer:
    """AES-256-GCM with a 32-byte key kept in an owner-only file (created on the first seal)."""

    scheme = "key"

    def __init__(self, key_path: Path) -> None:
        self.key_path = key_path

    def _key(self, *, create: bool) -> bytes | None:
        try:
            return self._read_key()
        except FileNotFoundError:
            if not create:
                return None
        make_private_dir(self.key_path.parent)
        try:
            descriptor = open_private(self.key_path, os.O_WRONLY | os.O_EXCL)
        except FileExistsError:  # another process made it a moment ago
            return self._read_key()
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(secrets.token_bytes(_KEY_BYTES))
        return self._read_key()

    def _read_key(self) -> bytes:
        descriptor = open_private(self.key_path, os.O_RDONLY, create=False)
        with os.fdopen(descriptor, "rb") as handle:
            key = handle.read()
        if len(key) != _KEY_BYTES:
            raise ValueError(f"the key file {self.key_path} is damaged")
        return key

    @staticmethod
    def key_id(key: bytes) -> str:
        return hashlib.sha256(b"wicbox key id" + key).hexdigest()[:16]

    def seal(self, data: bytes, context: bytes) -> str:
        key = self._key(create=True)
        assert key is not None
        nonce = secrets.token_bytes(_NONCE_BYTES)
        sealed = AESGCM(key).encrypt(nonce, data, context)
        return f"{self.key_id(key)}:{base64.b64encode(nonce + sealed).decode('ascii')}"

    def unseal(self, text: str, context: bytes) -> bytes:
        key_id, _, payload = text.partition(":")
        key = self._key(create=False)
        if key is None:
            raise ValueError(f"there is no key file {self.key_path} for this account")
        if key_id != self.key_id(key):
            raise ValueError(f"it was sealed with another key than {self.key_path}")
        try:
            raw = base64.b64decode(payload, validate=True)
            return AESGCM(key).decrypt(raw[:_NONCE_BYTES], raw[_NONCE_BYTES:], context)
        except (binascii.Error, InvalidTag) as exc:
            raise ValueError("it does not open with this account's key (damaged or changed)") from exc


class DpapiSealer:  # pragma: no cover - Windows only
    """DPAPI (CryptProtectData) with this account's key; the parameter's name as extra entropy."""

    scheme = "dpapi"

    def seal(self, data: bytes, context: bytes) -> str:
        from msal_extensions.windows import WindowsDataProtectionAgent  # noqa: PLC0415

        sealed = WindowsDataProtectionAgent(entropy=context.decode("utf-8")).protect(data.decode("utf-8"))
        return base64.b64encode(sealed).decode("ascii")

    def unseal(self, text: str, context: bytes) -> bytes:
        from msal_extensions.windows import WindowsDataProtectionAgent  # noqa: PLC0415

        try:
            opened = WindowsDataProtectionAgent(entropy=context.decode("utf-8")).unprotect(
                base64.b64decode(text, validate=True)
            )
        except (OSError, binascii.Error) as exc:
            raise ValueError("DPAPI cannot open it for this account") from exc
        return opened.encode("utf-8") if isinstance(opened, str) else bytes(opened)


def default_sealer(user_data_dir: Path, platform: str | None = None) -> Sealer:
    """DPAPI on Windows; elsewhere the key file in the per-account folder ``user_data_dir``."""
    if (platform or sys.platform) == "win32":
        return DpapiSealer()  # pragma: no cover - Windows only
    return KeyFileSealer(user_data_dir / KEY_FILE_NAME)


def _context(name: str) -> bytes:
    return f"WICMAN_PARAMETER:{name.strip().upper()}".encode()


def is_sealed(value: str | None) -> bool:
    return bool(value) and str(value).startswith(SEALED_PREFIX)


def seal_value(name: str, value: str, sealer: Sealer) -> str:
    """The text to store for the secret parameter ``name``."""
    return f"{SEALED_PREFIX}{sealer.scheme}:{sealer.seal(value.encode('utf-8'), _context(name))}"


def unseal_value(name: str, value: str | None, sealer: Sealer) -> str | None:
    """The value of parameter ``name``: unsealed when sealed, else as stored (SQL Server, WIC)."""
    if value is None or not is_sealed(value):
        return value
    scheme, _, text = value[len(SEALED_PREFIX) :].partition(":")
    try:
        if scheme != sealer.scheme:
            raise ValueError(f"it was sealed with {scheme}, and this computer uses {sealer.scheme}")
        return sealer.unseal(text, _context(name)).decode("utf-8")
    except (ValueError, UnicodeDecodeError, LinkRefused) as exc:
        raise ParameterError(
            name,
            f"the protected value cannot be opened by this account on this computer ({exc}); a "
            "database file copied from another account or computer keeps its secrets closed",
            fix=f"set it again as the account that runs wicbox: `wicbox params set {name} --prompt`",
        ) from exc


def unseal_parameters(raw: Mapping[str, str | None], sealer: Sealer) -> dict[str, str | None]:
    """Every parameter with its sealed values opened (plain ones unchanged)."""
    return {name: unseal_value(name, value, sealer) for name, value in raw.items()}
