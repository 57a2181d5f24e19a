"""The persisted token cache: owner-only files, a one-time warning, credential fingerprints,
forgetting an account's or the app's entries (real msal and msal-extensions, no emulator)."""

from __future__ import annotations

import base64
import json
import logging
import stat
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

import msal
import pytest

from wicbox_bridge.adapters.token_cache import (
    CACHE_FILE_NAME,
    FINGERPRINTS_FILE_NAME,
    PLAINTEXT_WARNING_MARKER,
    CredentialFingerprints,
    forget_app_tokens,
    forget_user,
    open_token_cache,
    plain_cache_advice,
    token_cache_path,
)
from wicbox_bridge.config.paths import state_dir_for

CLIENT_ID = "0d6c3b9e-1f2a-4b5c-8d7e-9f0a1b2c3d4e"
TENANT = "5f1c7d2e-8b4a-4c3e-9a6f-2d7e1b0c9a41"
TOKEN_ENDPOINT = f"https://login.microsoftonline.com/{TENANT}/oauth2/v2.0/token"


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def b64(data: Mapping[str, object]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")


def add_user_tokens(cache: msal.SerializableTokenCache, upn: str, uid: str) -> None:
    """What msal stores after a password grant (msal's own cache.add, as the grant would call it)."""
    claims = {
        "aud": CLIENT_ID,
        "iss": f"https://login.microsoftonline.com/{TENANT}/v2.0",
        "oid": uid,
        "preferred_username": upn,
        "tid": TENANT,
    }
    id_token = ".".join([b64({"alg": "none"}), b64(claims), ""])
    cache.add(
        {
            "client_id": CLIENT_ID,
            "scope": ["https://outlook.office.com/IMAP.AccessAsUser.All"],
            "token_endpoint": TOKEN_ENDPOINT,
            "response": {
                "access_token": f"at-{uid}",
                "token_type": "Bearer",
                "expires_in": 3600,
                "refresh_token": f"rt-{uid}",
                "id_token": id_token,
                "client_info": b64({"uid": uid, "utid": TENANT}),
            },
        }
    )


def add_app_token(cache: msal.SerializableTokenCache, client_id: str = CLIENT_ID) -> None:
    cache.add(
        {
            "client_id": client_id,
            "scope": ["https://outlook.office365.com/.default"],
            "token_endpoint": TOKEN_ENDPOINT,
            "response": {"access_token": "app-at", "token_type": "Bearer", "expires_in": 3600},
        }
    )


def counts(cache: msal.SerializableTokenCache) -> dict[str, int]:
    kinds = msal.TokenCache.CredentialType
    return {
        name: len(list(cache.search(getattr(kinds, name))))
        for name in ("ACCESS_TOKEN", "REFRESH_TOKEN", "ID_TOKEN", "ACCOUNT")
    }


def test_cache_path_is_per_configuration(tmp_path: Path) -> None:
    env = {"WICBOX_HOME": str(tmp_path)}
    first = token_cache_path(state_dir_for(tmp_path / "a" / "WicGlobal.config", env))
    second = token_cache_path(state_dir_for(tmp_path / "b" / "WicGlobal.config", env))
    assert first.name == CACHE_FILE_NAME
    assert first != second


def test_plain_cache_is_owner_only_and_persists(tmp_path: Path) -> None:
    path = tmp_path / "state" / CACHE_FILE_NAME
    cache = open_token_cache(path, encrypt=False)
    add_user_tokens(cache, "wicbox@klant.example", "u1")
    assert mode(path) == 0o600
    assert mode(path.parent) == 0o700
    again = open_token_cache(path, encrypt=False)
    assert counts(again)["REFRESH_TOKEN"] == 1


def test_existing_loose_permissions_are_tightened(tmp_path: Path) -> None:
    path = tmp_path / "state" / CACHE_FILE_NAME
    path.parent.mkdir(mode=0o755)
    path.write_text("")
    path.chmod(0o644)
    open_token_cache(path, encrypt=False)
    assert mode(path) == 0o600
    assert mode(path.parent) == 0o700


def test_plain_file_warning_is_given_once(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "state" / CACHE_FILE_NAME
    with caplog.at_level(logging.WARNING):
        open_token_cache(path, encrypt=False)
        open_token_cache(path, encrypt=False)
    warnings = [r for r in caplog.records if "not encrypted" in r.getMessage()]
    assert len(warnings) == 1
    assert (path.parent / PLAINTEXT_WARNING_MARKER).exists()


def test_forget_user_removes_only_that_account(tmp_path: Path) -> None:
    cache = open_token_cache(tmp_path / CACHE_FILE_NAME, encrypt=False)
    add_user_tokens(cache, "wicbox@klant.example", "u1")
    add_user_tokens(cache, "project-alpha@klant.example", "u2")
    add_app_token(cache)
    assert forget_user(cache, "WICBOX@klant.example") == 4
    reloaded = open_token_cache(tmp_path / CACHE_FILE_NAME, encrypt=False)
    assert counts(reloaded) == {"ACCESS_TOKEN": 2, "REFRESH_TOKEN": 1, "ID_TOKEN": 1, "ACCOUNT": 1}
    (account,) = reloaded.search(msal.TokenCache.CredentialType.ACCOUNT)
    assert account["username"] == "project-alpha@klant.example"


def test_forget_app_tokens_keeps_user_tokens(tmp_path: Path) -> None:
    cache = open_token_cache(tmp_path / CACHE_FILE_NAME, encrypt=False)
    add_user_tokens(cache, "wicbox@klant.example", "u1")
    add_app_token(cache)
    add_app_token(cache, client_id="another-client")
    scopes = ("https://outlook.office365.com/.default",)
    assert forget_app_tokens(cache, client_id=CLIENT_ID, scopes=scopes) == 1
    assert forget_app_tokens(cache) == 1
    assert counts(cache)["ACCESS_TOKEN"] == 1


def test_fingerprints_detect_changes_without_storing_the_secret(tmp_path: Path) -> None:
    prints = CredentialFingerprints(tmp_path / FINGERPRINTS_FILE_NAME)
    assert prints.matches("user:wicbox@klant.example", "tenant\0client\0Geheim-123") is None
    prints.remember("user:wicbox@klant.example", "tenant\0client\0Geheim-123")
    assert prints.matches("user:wicbox@klant.example", "tenant\0client\0Geheim-123") is True
    assert prints.matches("user:wicbox@klant.example", "tenant\0client\0Geheim-124") is False
    assert prints.matches("user:project-alpha@klant.example", "tenant\0client\0Geheim-123") is None
    stored = (tmp_path / FINGERPRINTS_FILE_NAME).read_text()
    assert "Geheim-123" not in stored
    assert mode(tmp_path / FINGERPRINTS_FILE_NAME) == 0o600


def test_fingerprints_are_salted_per_configuration(tmp_path: Path) -> None:
    first = CredentialFingerprints(tmp_path / "a" / FINGERPRINTS_FILE_NAME)
    second = CredentialFingerprints(tmp_path / "b" / FINGERPRINTS_FILE_NAME)
    first.remember("app", "same secret")
    second.remember("app", "same secret")
    digests = [json.loads(p.read_text())["accounts"]["app"] for p in (first.path, second.path)]
    assert digests[0] != digests[1]


def test_the_slow_fingerprint_is_computed_once_per_run(tmp_path: Path) -> None:
    """PBKDF2 is slow on purpose; a run asks for the same account's fingerprint for every mailbox."""
    prints = CredentialFingerprints(tmp_path / FINGERPRINTS_FILE_NAME)
    prints.remember("app", "x")
    assert all(prints.matches("app", "x") for _ in range(10))
    assert prints.matches("app", "y") is False
    assert len(prints._digests) == 2  # one derivation for "x", one for "y", however often asked


PLAIN_CACHES_OF_TWO_CONFIGURATIONS = (
    "import sys; from pathlib import Path\n"
    "from wicbox_bridge.logs.redact import Redactor\n"
    "from wicbox_bridge.logs.setup import LogSettings, configure_logging\n"
    "from wicbox_bridge.adapters.token_cache import open_token_cache\n"
    "configure_logging(LogSettings(), Redactor())\n"
    "for name in ('first', 'second'):\n"
    "    open_token_cache(Path(sys.argv[1]) / name / 'msal_token_cache.bin', encrypt=False)\n"
)


def test_plain_file_warning_reads_as_the_cli_s_own_once_per_process(tmp_path: Path) -> None:
    """The real process's stderr: `wicbox: warning:` and `wicbox: fix:` (no time stamp, no logger
    name), once for two configurations, with advice for the environment wicbox runs in."""
    done = subprocess.run(
        [sys.executable, "-c", PLAIN_CACHES_OF_TWO_CONFIGURATIONS, str(tmp_path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stderr.splitlines()
    assert len(lines) == 2, done.stderr
    first = tmp_path / "first" / CACHE_FILE_NAME
    assert lines[0].startswith(f"wicbox: warning: the token cache {first} (and any other of this account) is")
    assert lines[1] == f"wicbox: fix: {plain_cache_advice()}"
    assert (tmp_path / "second" / PLAINTEXT_WARNING_MARKER).exists()


def test_plain_file_advice_fits_the_environment() -> None:
    in_venv = plain_cache_advice("linux", in_venv=True)
    assert f"{sys.executable} -m pip install PyGObject" in in_venv
    assert "python3-gi" not in in_venv  # a virtual environment does not see the system's package
    assert "apt install gir1.2-secret-1 python3-gi" in plain_cache_advice("linux", in_venv=False)
    assert "nothing to install" in plain_cache_advice("win32")
