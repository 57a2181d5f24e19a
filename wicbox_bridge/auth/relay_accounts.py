"""The relay's local accounts: who may hand mail to ``wicbox relay``, from where, and as which senders.

They live in ``relay_accounts.json`` in the configuration's machine-wide directory, written readable
by its owner only (replaced atomically, never edited in place). A password is stored as a salted
scrypt hash (``scrypt$N$r$p$salt$hash``, parameters kept per account so they can grow later); the
relay never stores or logs a password. A file that other accounts could write is refused: whoever
writes it could give themselves a relay account.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import json
import os
import re
import secrets
import stat
import subprocess
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from wicbox_bridge.auth.keyfile import owner_only_command
from wicbox_bridge.errors import ConfigurationError, ParameterError
from wicbox_bridge.secret import Secret

ACCOUNTS_FILE_NAME: Final = "relay_accounts.json"
FORMAT: Final = 1
SCRYPT_N: Final = 2**15
SCRYPT_R: Final = 8
SCRYPT_P: Final = 1
_SCRYPT_MAXMEM: Final = 256 * 1024 * 1024
MIN_PASSWORD_LENGTH: Final = 12
_NAME: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")
_ADDRESS: Final = re.compile(r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+$")
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class RelayAccount:
    """One relay account: its password hash, the sender addresses it may use, the networks it may
    connect from (empty: any address the relay listens to)."""

    name: str
    password_hash: str = field(repr=False)
    senders: tuple[str, ...]
    sources: tuple[Network, ...] = ()

    def may_send_as(self, address: str) -> bool:
        return address.casefold() in {sender.casefold() for sender in self.senders}

    def may_connect_from(self, peer: str) -> bool:
        if not self.sources:
            return True
        try:
            address = ipaddress.ip_address(peer)
        except ValueError:
            return False
        return any(address in network for network in self.sources)

    def to_json(self) -> dict[str, object]:
        return {
            "password": self.password_hash,
            "senders": list(self.senders),
            "sources": [str(network) for network in self.sources],
        }


def hash_password(password: Secret, *, n: int = SCRYPT_N) -> str:
    """A new salted scrypt hash of ``password`` in the stored form."""
    salt = secrets.token_bytes(16)
    digest = _scrypt(password, salt, n, SCRYPT_R, SCRYPT_P)
    return f"scrypt${n}${SCRYPT_R}${SCRYPT_P}${_b64(salt)}${_b64(digest)}"


def password_matches(password: Secret, stored: str) -> bool:
    """Whether ``password`` is the one ``stored`` was made from (constant-time comparison)."""
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        expected = base64.b64decode(digest, validate=True)
        actual = _scrypt(password, base64.b64decode(salt, validate=True), int(n), int(r), int(p))
    except ValueError:
        return False
    return hmac.compare_digest(actual, expected)


def _scrypt(password: Secret, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(
        password.reveal().encode("utf-8"), salt=salt, n=n, r=r, p=p, maxmem=_SCRYPT_MAXMEM, dklen=32
    )


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


# --------------------------------------------------------------------------- checking what is added


def checked_name(name: str) -> str:
    if not _NAME.match(name):
        raise ParameterError(
            "NAME",
            f"{name!r} is not a relay account name.",
            fix="use 1-64 letters, digits, '.', '_', '@' or '-', starting with a letter or digit",
        )
    return name


def checked_senders(addresses: Iterable[str]) -> tuple[str, ...]:
    found = tuple(dict.fromkeys(address.strip() for address in addresses if address.strip()))
    if not found:
        raise ParameterError("--from", "is missing.", fix="name every sender address the account may use")
    for address in found:
        if not _ADDRESS.match(address):
            raise ParameterError(
                "--from",
                f"{address!r} is not a plain mail address.",
                fix="give addresses such as dossiers@klant.be, one per --from",
            )
    return found


def checked_sources(networks: Iterable[str]) -> tuple[Network, ...]:
    found: list[Network] = []
    for text in networks:
        try:
            found.append(ipaddress.ip_network(text.strip(), strict=False))
        except ValueError as exc:
            raise ParameterError(
                "--source",
                f"{text!r} is not an IP address or network.",
                fix="give an address (10.0.0.5) or a network (10.0.0.0/24), one per --source",
            ) from exc
    return tuple(found)


def checked_password(password: Secret) -> Secret:
    text = password.reveal()
    if len(text) < MIN_PASSWORD_LENGTH:
        raise ParameterError(
            "password",
            f"is shorter than {MIN_PASSWORD_LENGTH} characters.",
            fix=f"choose a password of at least {MIN_PASSWORD_LENGTH} characters (the old WIC stores it as "
            "its SMTP password)",
        )
    if "\x00" in text or "\n" in text or "\r" in text:
        raise ParameterError("password", "contains a NUL or line break.", fix="choose another password")
    return password


# --------------------------------------------------------------------------- the file


class RelayAccountFile:
    """``relay_accounts.json``: read on demand (again when it changed), replaced atomically."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._seen: tuple[int, int] | None = None
        self._accounts: dict[str, RelayAccount] = {}

    def __repr__(self) -> str:
        return f"RelayAccountFile({str(self.path)!r})"

    def accounts(self) -> dict[str, RelayAccount]:
        """The accounts by name (casefolded), read again when the file changed since the last call."""
        try:
            status = self.path.stat()
        except FileNotFoundError:
            self._seen, self._accounts = None, {}
            return {}
        except OSError as exc:
            raise self._unreadable(exc) from exc
        stamp = (status.st_mtime_ns, status.st_size)
        if stamp != self._seen:
            self._refuse_if_writable_by_others(status)
            self._accounts = self._read()
            self._seen = stamp
        return dict(self._accounts)

    def find(self, name: str) -> RelayAccount | None:
        return self.accounts().get(name.casefold())

    def add(self, account: RelayAccount) -> None:
        current = self.accounts()
        if account.name.casefold() in current:
            raise ParameterError(
                "NAME",
                f"the relay account {account.name!r} exists already.",
                fix=f"choose another name, or `wicbox relay user remove {account.name}` first",
            )
        current[account.name.casefold()] = account
        self._write(current.values())

    def remove(self, name: str) -> bool:
        current = self.accounts()
        if current.pop(name.casefold(), None) is None:
            return False
        self._write(current.values())
        return True

    def _read(self) -> dict[str, RelayAccount]:
        try:
            document = json.loads(self.path.read_text(encoding="utf-8"))
            entries = document["accounts"]
            if document.get("format") != FORMAT or not isinstance(entries, Mapping):
                raise ValueError("unknown format")
            accounts = {}
            for name, entry in entries.items():
                account = RelayAccount(
                    name=checked_name(str(name)),
                    password_hash=str(entry["password"]),
                    senders=checked_senders(str(sender) for sender in entry["senders"]),
                    sources=checked_sources(str(source) for source in entry.get("sources", ())),
                )
                accounts[account.name.casefold()] = account
        except (OSError, ValueError, KeyError, TypeError, AttributeError, ParameterError) as exc:
            raise self._unreadable(exc) from exc
        return accounts

    def _write(self, accounts: Iterable[RelayAccount]) -> None:
        ordered = sorted(accounts, key=lambda account: account.name.casefold())
        document = {"format": FORMAT, "accounts": {account.name: account.to_json() for account in ordered}}
        data = (json.dumps(document, indent=1) + "\n").encode("utf-8")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.path.with_name(f".{self.path.name}.{secrets.token_hex(6)}")
        descriptor = os.open(
            temporary, os.O_CREAT | os.O_EXCL | os.O_WRONLY | getattr(os, "O_BINARY", 0), 0o600
        )
        try:
            with os.fdopen(descriptor, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            if sys.platform == "win32":  # pragma: no cover - Windows only
                command = owner_only_command(temporary, os.environ)
                subprocess.run(command, check=True, capture_output=True)  # noqa: S603
            temporary.replace(self.path)
        finally:
            temporary.unlink(missing_ok=True)
        self._seen = None

    def _refuse_if_writable_by_others(self, status: os.stat_result) -> None:
        if sys.platform == "win32":  # pragma: no cover - written with an owner-only ACL
            return
        if status.st_mode & (stat.S_IWGRP | stat.S_IWOTH) or status.st_uid != os.getuid():
            raise ConfigurationError(
                f"the relay's account file {self.path} can be changed by other accounts (mode "
                f"{stat.filemode(status.st_mode)}, owner uid {status.st_uid}): anyone who can write it "
                "could give themselves a relay account",
                fix=f"chown the file to the account the relay runs as and chmod 600 '{self.path}', or "
                "remove it and add the relay accounts again",
            )

    def _unreadable(self, exc: BaseException) -> ConfigurationError:
        return ConfigurationError(
            f"the relay's account file {self.path} cannot be read ({type(exc).__name__}: {exc})",
            fix="restore it from a backup, or remove it and add the relay accounts again with "
            "`wicbox relay user add`",
        )
