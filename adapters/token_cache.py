"""The durable, protected msal token cache of one configuration, and credential fingerprints.

The cache file is ``state_dir_for(config_path) / "msal_token_cache.bin"``. msal-extensions'
:class:`PersistedTokenCache` writes it after every change (so a rotated refresh token is never
lost) under a cross-process lock. It is encrypted with DPAPI on Windows, the Keychain on macOS and
libsecret on Linux where available; otherwise it is a plain file readable by its owner only (0600
in a 0700 directory), and a warning says so once per configuration (a marker file remembers it, so
a scheduled task does not warn every five minutes).

A changed password, client secret, client id, tenant or authority must not let stale tokens be
used: :class:`CredentialFingerprints` keeps a salted, slow hash of each account's credentials (never
the credentials) in a sidecar file, and a mismatch removes that account's (or the app's) entries.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import logging
import os
import secrets
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msal
from msal_extensions import CrossPlatLock, FilePersistence, PersistedTokenCache, build_encrypted_persistence

CACHE_FILE_NAME = "msal_token_cache.bin"
PLAINTEXT_WARNING_MARKER = "msal_token_cache.plaintext-warned"
FINGERPRINTS_FILE_NAME = "credential_fingerprints.json"
FINGERPRINT_ITERATIONS = 20_000

_LOG = logging.getLogger(__name__)
_CREDENTIAL_TYPES = ("ACCESS_TOKEN", "REFRESH_TOKEN", "ID_TOKEN", "ACCOUNT")


def token_cache_path(state_dir: Path) -> Path:
    """Where the token cache of the configuration owning ``state_dir`` lives."""
    return state_dir / CACHE_FILE_NAME


def make_private_dir(directory: Path) -> None:
    """Create ``directory`` (and parents) and make it accessible to its owner only."""
    directory.mkdir(parents=True, exist_ok=True)
    directory.chmod(0o700)


def make_private_file(path: Path) -> None:
    """Create ``path`` if missing, and make it readable and writable by its owner only."""
    os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
    path.chmod(0o600)


def _encrypted_persistence(cache_path: Path) -> Any:
    """DPAPI / Keychain / libsecret persistence, or None where the platform offers none."""
    try:
        return build_encrypted_persistence(str(cache_path))
    except Exception as exc:  # libsecret probing raises ImportError, GLib errors, ...
        _LOG.debug("no encrypted token cache on %s: %s", sys.platform, type(exc).__name__)
        return None


def _warn_once_about_plain_file(cache_path: Path) -> None:
    marker = cache_path.parent / PLAINTEXT_WARNING_MARKER
    if marker.exists():
        return
    _LOG.warning(
        "the token cache %s (and any other of this account) is not encrypted (this account has no "
        "DPAPI, Keychain or Secret Service keyring that wicbox can use); it is readable by this "
        "account only, which protects it on a server; this is said once",
        cache_path,
        extra={"fix": plain_cache_advice(), "once": PLAINTEXT_WARNING_MARKER},
    )
    make_private_file(marker)


def plain_cache_advice(platform: str = sys.platform, *, in_venv: bool | None = None) -> str:
    """What makes the cache encrypted here: the install that this Python environment can see."""
    if platform in {"win32", "darwin"}:
        return "run wicbox as an account with a user profile (DPAPI, Keychain); nothing to install"
    in_venv = sys.prefix != sys.base_prefix if in_venv is None else in_venv
    keyring = "a Secret Service keyring for this account (GNOME Keyring or KeePassXC, unlocked at login)"
    if in_venv:
        return (
            f"to encrypt it, this account needs {keyring}, and wicbox's own Python environment needs "
            "the bindings: install the system library (Debian/Ubuntu: `apt install gir1.2-secret-1 "
            f"libgirepository1.0-dev`) then `{sys.executable} -m pip install PyGObject`; a service "
            "account without a login session has no keyring: keep the owner-only file"
        )
    return (
        f"to encrypt it, this account needs {keyring} and the bindings (Debian/Ubuntu: `apt install "
        "gir1.2-secret-1 python3-gi`); a service account without a login session has no keyring: "
        "keep the owner-only file"
    )


def open_token_cache(cache_path: Path, *, encrypt: bool = True) -> msal.SerializableTokenCache:
    """The persisted token cache at ``cache_path`` (shared safely by concurrent processes).

    ``encrypt=False`` skips the platform's encryption (tests, or a service account without a
    keyring); the file is then owner-only and a one-time warning is logged.
    """
    make_private_dir(cache_path.parent)
    persistence = _encrypted_persistence(cache_path) if encrypt else None
    if persistence is None:
        make_private_file(cache_path)
        _warn_once_about_plain_file(cache_path)
        persistence = FilePersistence(str(cache_path))
    return PersistedTokenCache(persistence)


def cache_is_encrypted(cache: msal.SerializableTokenCache) -> bool:
    return bool(getattr(cache, "is_encrypted", False))


def _entries(cache: msal.SerializableTokenCache, kind: str) -> list[dict[str, Any]]:
    credential_type = getattr(msal.TokenCache.CredentialType, kind)
    return list(cache.search(credential_type))


def _remove(cache: msal.SerializableTokenCache, kind: str, entry: dict[str, Any]) -> None:
    remover = {
        "ACCESS_TOKEN": cache.remove_at,
        "REFRESH_TOKEN": cache.remove_rt,
        "ID_TOKEN": cache.remove_idt,
        "ACCOUNT": cache.remove_account,
    }[kind]
    remover(entry)


def forget_user(cache: msal.SerializableTokenCache, username: str) -> int:
    """Remove every token and the account record of ``username``; returns how many entries went."""
    wanted = username.casefold()
    home_ids = {
        account.get("home_account_id")
        for account in _entries(cache, "ACCOUNT")
        if str(account.get("username", "")).casefold() == wanted
    }
    removed = 0
    for kind in _CREDENTIAL_TYPES:
        for entry in _entries(cache, kind):
            if entry.get("home_account_id") in home_ids:
                _remove(cache, kind, entry)
                removed += 1
    return removed


def forget_app_tokens(
    cache: msal.SerializableTokenCache, *, client_id: str | None = None, scopes: tuple[str, ...] = ()
) -> int:
    """Remove the app-only (client credentials) access tokens, optionally of one client and scope."""
    removed = 0
    wanted_target = {scope.lower() for scope in scopes}
    for entry in _entries(cache, "ACCESS_TOKEN"):
        if entry.get("home_account_id"):
            continue
        if client_id and entry.get("client_id") != client_id:
            continue
        if wanted_target and not wanted_target <= set(str(entry.get("target", "")).lower().split()):
            continue
        _remove(cache, "ACCESS_TOKEN", entry)
        removed += 1
    return removed


class CredentialFingerprints:
    """Salted PBKDF2 fingerprints of each account's credentials, in a 0600 sidecar file.

    ``key`` names the account (``user:<upn>`` or ``app``); ``material`` joins everything that must
    invalidate the cached tokens when it changes (authority, tenant, client id, password/secret).
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        # PBKDF2 is slow on purpose; one run asks for the same account's fingerprint again and again
        # (every mailbox of an app, every pass). Digests are kept per (salt, hash of the material).
        self._digests: dict[tuple[str, str], str] = {}
        self._remembered: dict[str, str] = {}

    @contextlib.contextmanager
    def _locked(self) -> Iterator[dict[str, Any]]:
        make_private_dir(self.path.parent)
        with CrossPlatLock(str(self.path) + ".lockfile"):
            yield self._load()

    def _load(self) -> dict[str, Any]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            data = {}
        if not isinstance(data, dict) or not isinstance(data.get("accounts"), dict):
            data = {"accounts": {}}
        if not isinstance(data.get("salt"), str):
            data["salt"] = secrets.token_hex(16)
        return data

    def _save(self, data: dict[str, Any]) -> None:
        partial = self.path.with_name(self.path.name + ".new")
        make_private_file(partial)
        partial.write_text(json.dumps(data, indent=1, sort_keys=True), encoding="utf-8")
        partial.replace(self.path)

    def _digest(self, salt: str, material: str) -> str:
        memo_key = (salt, hashlib.sha256(material.encode("utf-8")).hexdigest())
        digest = self._digests.get(memo_key)
        if digest is None:
            digest = hashlib.pbkdf2_hmac(
                "sha256", material.encode("utf-8"), bytes.fromhex(salt), FINGERPRINT_ITERATIONS
            ).hex()
            self._digests[memo_key] = digest
        return digest

    def matches(self, key: str, material: str) -> bool | None:
        """True/False when a fingerprint of ``key`` is stored; None when there is none yet."""
        with self._locked() as data:
            stored = data["accounts"].get(key)
            if not isinstance(stored, str):
                return None
            return hmac.compare_digest(stored, self._digest(data["salt"], material))

    def remember(self, key: str, material: str) -> None:
        material_hash = hashlib.sha256(material.encode("utf-8")).hexdigest()
        if self._remembered.get(key) == material_hash:
            return  # written by this process already
        with self._locked() as data:
            digest = self._digest(data["salt"], material)
            if data["accounts"].get(key) != digest:
                data["accounts"][key] = digest
                self._save(data)
        self._remembered[key] = material_hash
