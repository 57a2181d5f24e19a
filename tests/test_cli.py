"""The command line end to end, in-process, against SQLite and PostgreSQL over ODBC."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.clihelp import WicboxCli, write_config
from tests.plugins.postgres import PgDatabase
from wicbox_bridge import __version__
from wicbox_bridge.config.paths import embedded_database_path, machine_state_dir_for

SECRET = "Zeer-Geheim-Wachtwoord-7731"


@pytest.fixture
def wicbox(tmp_path: Path) -> WicboxCli:
    home = tmp_path / "home"
    cwd = tmp_path / "work"
    home.mkdir()
    cwd.mkdir()
    return WicboxCli(home=home, cwd=cwd)


@pytest.fixture(params=["sqlite", "postgresql-odbc"])
def configured(request: pytest.FixtureRequest, tmp_path: Path) -> Path:
    """A WicGlobal.config naming a fresh database of each backend."""
    if request.param == "sqlite":
        connection = f"sqlite:///{tmp_path / 'wic.db'}"
    else:
        database: PgDatabase = request.getfixturevalue("pg_database")
        connection = database.connection_string
    return write_config(tmp_path / "WicGlobal.config", connection, max_mails="250")


def default_log_file(wicbox: WicboxCli, config: Path | None) -> Path:
    """Where a configuration logs without WicBoxLogDirectory: its machine-wide directory."""
    return machine_state_dir_for(config, env={"WICBOX_HOME": str(wicbox.home)}) / "logs" / "wicbox.log"


def test_version(wicbox: WicboxCli) -> None:
    result = wicbox("--version")
    assert result.exit_code == 0
    assert __version__ in result.output


def test_help_lists_every_command(wicbox: WicboxCli) -> None:
    result = wicbox("--help")
    assert result.exit_code == 0
    for command in ("run", "check", "params", "db", "token"):
        assert f"  {command}" in result.output


@pytest.mark.parametrize(
    ("argv", "usage", "error", "fix"),
    [
        (
            ("chek",),
            " [OPTIONS] [COMMAND]",
            "No such command 'chek'.",
            "`wicbox --help` for its commands",
        ),
        (
            ("check", "--jsn"),
            " check [OPTIONS]",
            "Did you mean '--json'?",
            "`wicbox check --help` for its options",
        ),
        (
            ("params", "set"),
            " params set [OPTIONS] NAME",
            "Missing argument 'NAME'.",
            "`wicbox params set --help`",
        ),
        (("--confg", "x", "check"), " [OPTIONS]", "No such option '--confg'.", "`wicbox --help`"),
    ],
)
def test_click_s_own_usage_errors_end_with_a_fix_line_in_the_one_format(
    wicbox: WicboxCli, argv: tuple[str, ...], usage: str, error: str, fix: str
) -> None:
    result = wicbox(*argv)
    assert result.exit_code == 2
    first, second, third = result.stderr.splitlines()
    assert first.startswith("Usage: ")  # the program's name: "wicbox" (the test runner's differs)
    assert usage in first
    assert second.startswith("wicbox: error: ")
    assert error in second
    assert third.startswith("wicbox: fix: run ")
    assert fix in third
    assert "Try '" not in result.stderr


def test_db_init_is_idempotent_on_each_backend(wicbox: WicboxCli, configured: Path) -> None:
    first = wicbox("db", "init", config=configured)
    assert first.exit_code == 0, first.output
    assert "Schema initialised at version" in first.output
    second = wicbox("db", "init", config=configured)
    assert second.exit_code == 0
    assert "nothing to do" in second.output
    upgrade = wicbox("db", "upgrade", config=configured)
    assert upgrade.exit_code == 0
    assert "nothing to do" in upgrade.output


def test_params_set_get_list_mask_secrets(wicbox: WicboxCli, configured: Path) -> None:
    assert wicbox("db", "init", config=configured).exit_code == 0
    result = wicbox(
        "params", "set", "wicbox_mailclient_password", "--stdin", config=configured, input=f"{SECRET}\n"
    )
    assert result.exit_code == 0, result.output
    assert (
        wicbox(
            "params", "set", "WICBOX_MAILCLIENT_USERNAME", "wicbox@klant.example", config=configured
        ).exit_code
        == 0
    )
    got = wicbox("params", "get", "WICBOX_MAILCLIENT_PASSWORD", config=configured)
    assert got.exit_code == 0
    assert "********" in got.output
    listed = wicbox("params", "list", "--all", config=configured)
    assert listed.exit_code == 0
    assert "wicbox@klant.example" in listed.output
    assert "WICBOX_MAILCLIENT_CLIENTID" in listed.output  # known but not set
    for result in (got, listed):
        assert SECRET not in result.output


def test_params_set_prompt_hides_the_value(wicbox: WicboxCli, configured: Path) -> None:
    assert wicbox("db", "init", config=configured).exit_code == 0
    result = wicbox(
        "params",
        "set",
        "WICBOX_MAILCLIENT_CLIENTSECRET",
        "--prompt",
        config=configured,
        input=f"{SECRET}\n{SECRET}\n",
    )
    assert result.exit_code == 0, result.output
    assert SECRET not in result.output


def test_params_set_rejects_an_invalid_value(wicbox: WicboxCli, configured: Path) -> None:
    assert wicbox("db", "init", config=configured).exit_code == 0
    result = wicbox("params", "set", "WICBOXACCOUNTMODE", "SINGEL", config=configured)
    assert result.exit_code == 2
    assert "WICBOXACCOUNTMODE" in result.stderr


def test_params_get_missing_exits_1(wicbox: WicboxCli, configured: Path) -> None:
    assert wicbox("db", "init", config=configured).exit_code == 0
    result = wicbox("params", "get", "WICBOX_MAILCLIENT_SCOPE", config=configured)
    assert result.exit_code == 1
    assert "not set" in result.stderr


def test_params_get_an_empty_row_exits_1(wicbox: WicboxCli, configured: Path) -> None:
    assert wicbox("db", "init", config=configured).exit_code == 0
    assert wicbox("params", "migrate", config=configured).exit_code == 0  # adds the rows, empty
    result = wicbox("params", "get", "WICBOX_MAILCLIENT_SCOPE", config=configured)
    assert result.exit_code == 1
    assert "WICBOX_MAILCLIENT_SCOPE is not set (its row exists with an empty value)." in result.stderr


def test_params_migrate_renames_accountmode_and_is_safe_twice(wicbox: WicboxCli, configured: Path) -> None:
    assert wicbox("db", "init", config=configured).exit_code == 0
    assert wicbox("params", "set", "ACCOUNTMODE", "MULTIPLE", config=configured).exit_code == 0
    first = wicbox("params", "migrate", config=configured)
    assert first.exit_code == 0, first.output
    assert "renamed ACCOUNTMODE to WICBOXACCOUNTMODE" in first.output
    assert "added WICBOX_MAILCLIENT_SCOPE" in first.output
    second = wicbox("params", "migrate", config=configured)
    assert "nothing to change" in second.output
    got = wicbox("params", "get", "wicboxaccountmode", config=configured)
    assert "WICBOXACCOUNTMODE = MULTIPLE" in got.output


def test_commands_before_db_init_say_to_run_it(wicbox: WicboxCli, configured: Path) -> None:
    result = wicbox("params", "list", config=configured)
    assert result.exit_code == 2
    assert "wicbox db init" in result.stderr


def test_missing_config_file_names_the_path_and_the_option(wicbox: WicboxCli, tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "WicGlobal.config"
    result = wicbox("check", config=missing)
    assert result.exit_code == 2
    assert str(missing) in result.output
    assert result.output.count("--config") == 2  # the error once, and its fix
    assert "[SKIP] log file: not checked: the configuration file has to be fixed first\n" in result.output
    assert "log file: none" not in result.output


def test_a_missing_config_path_is_shown_resolved(wicbox: WicboxCli, tmp_path: Path) -> None:
    result = wicbox("check", config=Path("w/../cfg"))
    assert result.exit_code == 2
    assert f"[FAIL] configuration: {wicbox.cwd / 'cfg'}: the configuration file named by the --config " in (
        result.output
    )
    assert "w/../cfg" not in result.output


def test_check_on_a_fresh_install_creates_no_database(wicbox: WicboxCli) -> None:
    """Read-only probing: the embedded default that does not exist yet is named, with the command."""
    result = wicbox("check")
    database = embedded_database_path({"WICBOX_HOME": str(wicbox.home)})
    assert result.exit_code == 2
    assert f"[FAIL] database: embedded SQLite default at {database} does not exist yet\n" in result.output
    assert (
        "fix: run `wicbox db init` (it creates the database with the wicbox-bridge tables)" in result.output
    )
    assert not database.exists()
    assert wicbox("db", "init").exit_code == 0
    assert "does not exist yet" not in wicbox("check").output


@pytest.mark.parametrize(
    "command", [("status",), ("status", "--json"), ("params", "list"), ("run",), ("send",), ("db", "version")]
)
def test_no_command_but_db_init_creates_the_embedded_database(
    wicbox: WicboxCli, command: tuple[str, ...]
) -> None:
    """Only `wicbox db init` creates a database: any other command names it and leaves no empty file."""
    database = embedded_database_path({"WICBOX_HOME": str(wicbox.home)})
    result = wicbox(*command)
    assert result.exit_code == 2, result.output
    assert f"embedded SQLite default at {database} does not exist yet" in result.output
    assert "wicbox db init" in result.output
    assert not database.exists()


def test_check_before_db_init_names_the_command(wicbox: WicboxCli, configured: Path) -> None:
    """A named SQLite file is not created either; PostgreSQL is reachable but has no tables yet."""
    result = wicbox("check", config=configured)
    assert result.exit_code == 2
    assert "wicbox db init" in result.output
    assert not (configured.parent / "wic.db").exists()


def test_malformed_config_names_file_and_line(wicbox: WicboxCli, tmp_path: Path) -> None:
    config = tmp_path / "WicGlobal.config"
    config.write_text(
        '<configuration>\n<appSettings>\n<add key="x" value="1">\n</configuration>\n', encoding="utf-8"
    )
    result = wicbox("db", "init", config=config)
    assert result.exit_code == 2
    assert str(config) in result.stderr
    assert "line" in result.stderr


def test_cap_out_of_range_is_a_configuration_error(wicbox: WicboxCli, tmp_path: Path) -> None:
    config = write_config(tmp_path / "WicGlobal.config", f"sqlite:///{tmp_path / 'x.db'}", max_mails="0")
    result = wicbox("check", config=config)
    assert result.exit_code == 2
    assert "WicBoxMaxMailsPerRun" in result.output


def test_embedded_default_is_used_without_any_config(wicbox: WicboxCli) -> None:
    result = wicbox("db", "init")
    assert result.exit_code == 0, result.output
    expected = embedded_database_path({"WICBOX_HOME": str(wicbox.home)})
    assert str(expected) in result.output
    assert expected.exists()
    check = wicbox("check")
    assert "embedded defaults" in check.output
    assert "mail cap: at most 100 mails per run" in check.output
    log_file = default_log_file(wicbox, None)
    assert f"[OK  ] log file: {log_file}\n" in check.output
    assert log_file.is_file()


def test_config_in_working_directory_is_found(wicbox: WicboxCli) -> None:
    write_config(wicbox.cwd / "WicGlobal.config", f"sqlite:///{wicbox.cwd / 'found.db'}")
    result = wicbox("db", "init")
    assert result.exit_code == 0, result.output
    assert (wicbox.cwd / "found.db").exists()


def test_check_reports_each_step_and_fails_on_missing_parameters(wicbox: WicboxCli, configured: Path) -> None:
    assert wicbox("db", "init", config=configured).exit_code == 0
    result = wicbox("check", config=configured)
    assert "[OK  ] configuration" in result.output
    log_file = default_log_file(wicbox, configured)
    assert f"[OK  ] log file: {log_file}\n" in result.output
    assert log_file.is_file()  # the line names the file this very command wrote to
    assert "[OK  ] database" in result.output
    assert "[FAIL] parameters" in result.output
    assert "WICBOX_MAILCLIENT_CLIENTID" in result.output
    assert result.exit_code == 2


@pytest.mark.parametrize(
    ("log_directory", "expected"),
    [
        ("wic-logs", "wic-logs/wicbox.log"),  # relative to the configuration's folder
        ("{tmp}/elders/logs", "elders/logs/wicbox.log"),
    ],
)
def test_check_names_the_log_file_wicboxlogdirectory_chose(
    wicbox: WicboxCli, tmp_path: Path, log_directory: str, expected: str
) -> None:
    config = write_config(tmp_path / "WicGlobal.config", f"sqlite:///{tmp_path / 'wic.db'}")
    setting = f'<add key="WicBoxLogDirectory" value="{log_directory.format(tmp=tmp_path)}"/>'
    text = config.read_text(encoding="utf-8")
    config.write_text(
        text.replace("</configuration>", f"<appSettings>{setting}</appSettings></configuration>"),
        encoding="utf-8",
    )
    result = wicbox("check", config=config)
    assert f"[OK  ] log file: {tmp_path / expected}\n" in result.output
    assert (tmp_path / expected).is_file()


def test_check_warns_when_the_log_file_cannot_be_written(wicbox: WicboxCli, tmp_path: Path) -> None:
    config = write_config(tmp_path / "WicGlobal.config", f"sqlite:///{tmp_path / 'wic.db'}")
    (tmp_path / "logs" / "wicbox.log").mkdir(parents=True)  # a folder where the file should be
    setting = '<add key="WicBoxLogDirectory" value="logs"/>'
    text = config.read_text(encoding="utf-8")
    config.write_text(
        text.replace("</configuration>", f"<appSettings>{setting}</appSettings></configuration>"),
        encoding="utf-8",
    )
    result = wicbox("check", config=config)
    assert f"[WARN] log file: {tmp_path / 'logs' / 'wicbox.log'}: cannot be written" in result.output
    assert "name another folder with WicBoxLogDirectory" in result.output


def test_no_command_means_run(wicbox: WicboxCli, configured: Path) -> None:
    assert wicbox("db", "init", config=configured).exit_code == 0
    result = wicbox(config=configured)
    # No parameters yet: the run stops before any network call with a configuration error.
    assert result.exit_code == 2
    assert "WICBOX_MAILCLIENT_CLIENTID" in result.stderr
