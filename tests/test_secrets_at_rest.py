"""Secrets at rest in the embedded database: the attacker reads the SQLite file, or copies it.

`params set` of a password or client secret stores it sealed (this account's key file here; DPAPI
on Windows): the file's bytes (and its WAL) never hold the secret, `params get` shows the mask, a
run still reads the real value, and a copy of the file under another account's key opens nothing.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.clihelp import WicboxCli
from wicbox_bridge.config.sealed import (
    SEALED_PREFIX,
    KeyFileSealer,
    is_sealed,
    seal_value,
    unseal_parameters,
    unseal_value,
)
from wicbox_bridge.errors import ParameterError
from wicbox_bridge.secret import MASK

SECRET = "Qx8~client.secret-value_42"
NAME = "WICBOX_MAILCLIENT_CLIENTSECRET"


@pytest.fixture
def wicbox(tmp_path: Path) -> WicboxCli:
    cwd = tmp_path / "work"
    cwd.mkdir()
    return WicboxCli(home=tmp_path / "home", cwd=cwd)


def _database_bytes(home: Path) -> bytes:
    return b"".join(path.read_bytes() for path in sorted(home.glob("wicbox.db*")))


def test_params_set_never_writes_the_secret_into_the_database_file(wicbox: WicboxCli) -> None:
    assert wicbox("db", "init").exit_code == 0
    result = wicbox("params", "set", NAME, "--stdin", input=f"{SECRET}\n")
    assert result.exit_code == 0
    assert SECRET not in result.output
    data = _database_bytes(wicbox.home)
    assert SECRET.encode() not in data
    assert SEALED_PREFIX.encode() in data  # what is there instead
    shown = wicbox("params", "get", NAME)
    assert shown.output.strip() == f"{NAME} = {MASK}"
    assert SECRET not in wicbox("params", "list").output
    assert "plain text" not in wicbox("check").output


def test_a_copy_of_the_database_under_another_key_does_not_open(wicbox: WicboxCli, tmp_path: Path) -> None:
    assert wicbox("db", "init").exit_code == 0
    assert wicbox("params", "set", NAME, "--stdin", input=f"{SECRET}\n").exit_code == 0
    thief = WicboxCli(home=tmp_path / "thief", cwd=wicbox.cwd)
    thief.home.mkdir()
    for path in wicbox.home.glob("wicbox.db*"):
        (thief.home / path.name).write_bytes(path.read_bytes())
    result = thief("check")
    assert result.exit_code == 2
    assert f"{NAME}: the protected value cannot be opened by this account on this computer" in result.output
    assert f"`wicbox params set {NAME} --prompt`" in result.output
    assert SECRET not in result.output
    KeyFileSealer(thief.home / "secrets.key").seal(b"x", b"y")  # the thief's own key now exists
    again = thief("check")
    assert "sealed with another key" in again.output
    assert SECRET not in again.output


def test_sealed_values_round_trip_and_are_bound_to_their_name(tmp_path: Path) -> None:
    sealer = KeyFileSealer(tmp_path / "secrets.key")
    sealed = seal_value(NAME, SECRET, sealer)
    assert is_sealed(sealed)
    assert SECRET not in sealed
    assert seal_value(NAME, SECRET, sealer) != sealed  # a fresh nonce every time
    assert unseal_value(NAME, sealed, sealer) == SECRET
    assert unseal_value(NAME.lower(), sealed, sealer) == SECRET  # names are case-insensitive
    with pytest.raises(ParameterError):  # moved to another parameter: does not open
        unseal_value("WICBOX_PASSWORD", sealed, sealer)
    tampered = sealed[:-6] + ("A" if sealed[-6] != "A" else "B") + sealed[-5:]
    with pytest.raises(ParameterError):
        unseal_value(NAME, tampered, sealer)
    # SQL Server: WIC writes WICMAN_PARAMETER in plain text; reading takes it as it is
    assert unseal_parameters({NAME: SECRET, "WICBOXMETHOD": "OAUTH2"}, sealer) == {
        NAME: SECRET,
        "WICBOXMETHOD": "OAUTH2",
    }
    assert (tmp_path / "secrets.key").stat().st_mode & 0o777 == 0o600


def test_check_warns_about_a_secret_an_older_version_left_in_plain_text(wicbox: WicboxCli) -> None:
    import sqlite3

    assert wicbox("db", "init").exit_code == 0
    with sqlite3.connect(wicbox.home / "wicbox.db") as connection:
        connection.execute("INSERT INTO WICMAN_PARAMETER (NAME, VALUE) VALUES (?, ?)", (NAME, SECRET))
    result = wicbox("check")
    assert f"{NAME} is stored in plain text in the embedded database" in result.output
    assert f"fix: store it sealed: `wicbox params set {NAME} --prompt`" in result.output
    assert SECRET not in result.output
