"""The embedded default's own allow-list (allowed-hosts.txt in its owner-only data folder): used
only on the embedded default, only when no other account could have written it."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.clihelp import WicboxCli, write_config
from wicbox_bridge.config.footprint import write_private_text
from wicbox_bridge.config.local_hosts import ALLOWED_HOSTS_FILE, embedded_allowed_hosts
from wicbox_bridge.config.params import GRAPH_SERVICE, checked_https_base
from wicbox_bridge.config.wicglobal import embedded_default_config, load_global_config
from wicbox_bridge.errors import ConfigurationError, ParameterError

HOST = "imap.eigen-server.example"


@pytest.fixture
def home(tmp_path: Path) -> Path:
    folder = tmp_path / "home"
    folder.mkdir(mode=0o700)
    return folder


def test_no_file_allows_nothing_beyond_microsoft(home: Path) -> None:
    assert embedded_allowed_hosts(home) == frozenset()
    assert embedded_default_config({"WICBOX_HOME": str(home)}).endpoints.allowed_hosts == frozenset()


def test_the_owner_only_file_allows_its_hosts_on_the_embedded_default(home: Path) -> None:
    write_private_text(
        home / ALLOWED_HOSTS_FILE, f"# our own server\n{HOST}  # IMAP\n10.0.0.5;MAIL.Example.org\n"
    )
    policy = embedded_default_config({"WICBOX_HOME": str(home)}).endpoints
    assert policy.allowed_hosts == {HOST, "10.0.0.5", "mail.example.org"}


@pytest.mark.parametrize(("folder_mode", "file_mode"), [(0o700, 0o620), (0o700, 0o644), (0o770, 0o600)])
def test_a_file_others_could_change_is_refused_with_the_fix(
    home: Path, folder_mode: int, file_mode: int
) -> None:
    """POSIX modes (the Windows access-list rules are footprint's own, tests/test_footprint.py)."""
    path = home / ALLOWED_HOSTS_FILE
    write_private_text(path, HOST)
    path.chmod(file_mode)
    home.chmod(folder_mode)
    with pytest.raises(ConfigurationError, match="the embedded default's allow-list is not used") as caught:
        embedded_default_config({"WICBOX_HOME": str(home)})
    assert caught.value.fix is not None and caught.value.fix.startswith("chmod ")


def test_a_link_is_refused(home: Path, tmp_path: Path) -> None:
    elsewhere = tmp_path / "planted.txt"
    elsewhere.write_text(HOST, encoding="utf-8")
    (home / ALLOWED_HOSTS_FILE).symlink_to(elsewhere)
    with pytest.raises(ConfigurationError, match="symbolic link"):
        embedded_default_config({"WICBOX_HOME": str(home)})


def test_an_entry_that_is_not_a_host_is_refused(home: Path) -> None:
    write_private_text(home / ALLOWED_HOSTS_FILE, f"{HOST}\nhttps://evil.example/x\n*.example.org\n")
    with pytest.raises(ConfigurationError, match=r"https://evil.example/x, \*\.example\.org") as caught:
        embedded_default_config({"WICBOX_HOME": str(home)})
    assert caught.value.exit_code == 2


def test_a_wicglobal_config_never_reads_it(home: Path, tmp_path: Path) -> None:
    """A shared database (or any database a WicGlobal.config names) keeps WicBoxAllowedHosts alone."""
    write_private_text(home / ALLOWED_HOSTS_FILE, HOST)
    config = write_config(tmp_path / "WicGlobal.config", f"sqlite:///{tmp_path / 'wic.db'}")
    loaded = load_global_config(config, env={"WICBOX_HOME": str(home)})
    assert HOST not in loaded.endpoints.allowed_hosts
    assert loaded.endpoints.allowed_hosts == frozenset()


def test_check_names_the_refused_file_and_its_fix(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir(mode=0o700)
    work = tmp_path / "work"
    work.mkdir()
    path = home / ALLOWED_HOSTS_FILE
    write_private_text(path, HOST)
    path.chmod(0o666)
    result = WicboxCli(home=home, cwd=work)("check")
    assert result.exit_code == 2
    assert f"[FAIL] configuration: the embedded default's allow-list is not used: the allow-list {path}" in (
        result.output
    )
    assert f"fix: chmod 600 '{path}'" in result.output


def test_a_refused_host_names_where_this_installation_allows_one(home: Path, tmp_path: Path) -> None:
    embedded = embedded_default_config({"WICBOX_HOME": str(home)}).endpoints
    with pytest.raises(ParameterError) as caught:
        checked_https_base(GRAPH_SERVICE, f"https://{HOST}", embedded)
    assert caught.value.fix is not None
    assert f"in the embedded default's allow-list {home / ALLOWED_HOSTS_FILE}" in caught.value.fix
    config = write_config(tmp_path / "WicGlobal.config", f"sqlite:///{tmp_path / 'wic.db'}")
    configured = load_global_config(config, env={"WICBOX_HOME": str(home)}).endpoints
    with pytest.raises(ParameterError) as caught:
        checked_https_base(GRAPH_SERVICE, f"https://{HOST}", configured)
    assert caught.value.fix is not None
    assert 'in WicGlobal.config: <add key="WicBoxAllowedHosts"' in caught.value.fix
    assert ALLOWED_HOSTS_FILE not in caught.value.fix
