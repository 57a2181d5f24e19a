"""Issue 20: `wicbox status` shows the runs that failed (also before the database could be
reached), `status --json` always prints one document, `check --json`, and the help texts; as the
messages a user sees, against the embedded default and against PostgreSQL."""

from __future__ import annotations

import datetime as dt
import json
import stat
from pathlib import Path
from typing import Any

import click
import pytest

from tests.clihelp import WicboxCli, write_config
from tests.plugins.postgres import BACKENDS, PgDatabase
from tests.plugins.wic import WicInstallation
from wicbox_bridge.cli import cli
from wicbox_bridge.config.paths import machine_state_dir_for
from wicbox_bridge.errors import ParameterError, error_lines, split_fix, with_fix
from wicbox_bridge.status.failed_starts import (
    FILE_NAME,
    KEEP,
    FailedStart,
    read_failed_starts,
    record_failed_start,
)
from wicbox_bridge.store.schema import LATEST_VERSION

UTC = dt.timezone.utc
CLIENT_ID_MISSING = "WICBOX_MAILCLIENT_CLIENTID: is required for OAuth2"
TEXT_STATES = {"ok": "OK  ", "warning": "WARN", "failed": "FAIL", "skipped": "SKIP"}


@pytest.fixture
def wicbox(tmp_path: Path) -> WicboxCli:
    (tmp_path / "home").mkdir()
    (tmp_path / "work").mkdir()
    return WicboxCli(home=tmp_path / "home", cwd=tmp_path / "work")


def _json(output: str) -> dict[str, Any]:
    document = json.loads(output)
    assert isinstance(document, dict)
    return document


# --------------------------------------------------------------------------- one rendering


def test_an_error_and_its_fix_never_run_together() -> None:
    error = ParameterError("WICBOX_MAILCLIENT_CLIENTID", "is required for OAuth2", fix="copy the Value")
    assert str(error) == f"{CLIENT_ID_MISSING}. Fix: copy the Value"
    assert with_fix("ends well.", "x") == "ends well. Fix: x"
    assert with_fix("no fix", None) == "no fix"
    assert split_fix(str(error)) == (CLIENT_ID_MISSING, "copy the Value")
    assert error_lines(error.message, error.fix) == [
        f"wicbox: error: {CLIENT_ID_MISSING}",
        "wicbox: fix: copy the Value",
    ]


# --------------------------------------------------------------------------- embedded default


def test_runs_that_exit_2_are_shown_by_status_on_the_embedded_default(wicbox: WicboxCli) -> None:
    before_schema = wicbox("run")
    assert before_schema.exit_code == 2, before_schema.output
    assert "embedded SQLite default at " in before_schema.output
    assert " does not exist yet\nwicbox: fix: run `wicbox db init`" in before_schema.output
    assert wicbox("db", "init").exit_code == 0
    for _ in range(2):
        failed = wicbox("run")
        assert failed.exit_code == 2, failed.output
        assert f"wicbox: error: {CLIENT_ID_MISSING}\nwicbox: fix: copy " in failed.output

    text = wicbox("status")
    assert text.exit_code == 1, text.output
    assert "Runs: none yet" not in text.output and "none yet: `wicbox run`" not in text.output
    assert (
        "not flowing: no run has finished OK or PARTIAL yet; the last run (" in text.output
        and f"exit code 2) stopped on: {CLIENT_ID_MISSING}. Fix: copy " in text.output
    )
    assert "see the errors of the runs below" not in text.output
    assert text.output.count(" FAILED ") == 2
    assert f"      {CLIENT_ID_MISSING}\n      fix: copy " in text.output
    assert "Runs that stopped before the database could be reached (recorded on this machine):" in text.output
    assert "`wicbox run` exit code 2\n      embedded SQLite default at " in text.output
    assert "      fix: run `wicbox db init`" in text.output
    assert " Fix: " not in text.output.replace(f"{CLIENT_ID_MISSING}. Fix: ", "")  # never run together

    result = wicbox("status", "--json")
    assert result.exit_code == 1
    report = _json(result.stdout)
    runs = report["runs"]
    assert [(run["outcome"], run["exit_code"], run["error"]) for run in runs] == [
        ("FAILED", 2, CLIENT_ID_MISSING)
    ] * 2
    assert all(run["fix"].startswith("copy the 'Application (client) ID'") for run in runs)
    assert all(run["finished_at"] >= run["started_at"] for run in runs)
    [before] = report["failed_before_database"]
    assert (before["command"], before["exit_code"]) == ("run", 2)
    assert before["error"].endswith("does not exist yet")
    assert before["fix"].startswith("run `wicbox db init`")


def test_the_machine_local_record_is_owner_only_and_bounded(wicbox: WicboxCli) -> None:
    assert wicbox("run").exit_code == 2  # no schema: the database cannot take the run
    directory = machine_state_dir_for(None, env={"WICBOX_HOME": str(wicbox.home)})
    path = directory / FILE_NAME
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    start = dt.datetime(2026, 11, 2, 12, 0, tzinfo=UTC)
    for n in range(KEEP + 5):
        record_failed_start(directory, FailedStart(start + dt.timedelta(minutes=n), "run", 4, f"e{n}", None))
    entries = read_failed_starts(directory)
    assert len(entries) == KEEP
    assert entries[-1].message == f"e{KEEP + 4}"
    assert path.stat().st_size < 8 * 1024


def test_status_json_prints_a_document_when_there_is_no_schema(wicbox: WicboxCli) -> None:
    result = wicbox("status", "--json")
    assert result.exit_code == 2
    document = _json(result.stdout)
    assert (document["healthy"], document["exit_code"]) == (False, 2)
    assert document["error"]["message"].endswith("does not exist yet")
    assert document["error"]["fix"].startswith("run `wicbox db init`")
    assert "wicbox: fix: run `wicbox db init`" in result.stderr


def test_check_json_lists_each_check_with_the_exit_code_of_check(wicbox: WicboxCli) -> None:
    assert wicbox("db", "init").exit_code == 0
    text = wicbox("check")
    result = wicbox("check", "--json")
    assert result.exit_code == text.exit_code == 2
    document = _json(result.stdout)
    assert (document["passed"], document["exit_code"]) == (False, 2)
    states = {check["name"]: check["state"] for check in document["checks"]}
    assert states["configuration"] == "ok" and states["database"] == "ok"
    [parameters] = [check for check in document["checks"] if check["state"] == "failed"][:1]
    assert parameters["message"] == CLIENT_ID_MISSING
    assert parameters["fix"].startswith("copy the 'Application (client) ID'")
    assert f"[FAIL] {parameters['name']}: {CLIENT_ID_MISSING}\n       fix: copy " in text.output
    assert set(states.values()) <= {"ok", "warning", "failed", "skipped"}


# --------------------------------------------------------------------------- PostgreSQL (and SQLite)


@pytest.mark.testbed
@pytest.mark.parametrize("wic_backend", BACKENDS)
def test_a_run_that_exits_2_is_recorded_in_the_database(wic: WicInstallation) -> None:
    wic.set_params({"WICBOX_MAILCLIENT_CLIENTID": None})
    assert wic.cli("run").exit_code == 2
    result = wic.cli("status", "--json")
    assert result.exit_code == 1
    report = _json(result.stdout)
    [run] = report["runs"]
    assert (run["outcome"], run["exit_code"], run["error"]) == ("FAILED", 2, CLIENT_ID_MISSING)
    assert run["finished_at"] is not None
    assert report["reasons"][0].startswith("no run has finished OK or PARTIAL yet; the last run (")
    assert report["failed_before_database"] == []
    text = wic.cli("status").output
    assert f"      {CLIENT_ID_MISSING}\n      fix: copy " in text


@pytest.mark.testbed
@pytest.mark.parametrize("wic_backend", BACKENDS)
def test_check_json_against_the_test_bed(wic: WicInstallation) -> None:
    text = wic.cli("check")
    result = wic.cli("check", "--json")
    assert result.exit_code == text.exit_code, (text.output, result.output)
    document = _json(result.stdout)
    rendered = [line for line in text.output.splitlines() if line.startswith("[")]
    assert len(document["checks"]) == len(rendered)
    for check, line in zip(document["checks"], rendered, strict=True):
        assert line.startswith(f"[{TEXT_STATES[check['state']]}] {check['name']}: ")


@pytest.mark.testbed
def test_status_json_prints_a_document_when_postgresql_cannot_be_reached(
    pg_database: PgDatabase, wicbox: WicboxCli, tmp_path: Path
) -> None:
    missing = pg_database.server.connection_string(f"{pg_database.name}_missing")
    config = write_config(tmp_path / "WicGlobal.config", missing)
    run = wicbox("run", config=config)
    assert run.exit_code == 4, run.output
    result = wicbox("status", "--json", config=config)
    assert result.exit_code == 4
    document = _json(result.stdout)
    assert (document["healthy"], document["exit_code"]) == (False, 4)
    assert document["error"]["message"] and document["error"]["fix"]
    [before] = document["failed_before_database"]
    assert (before["command"], before["exit_code"]) == ("run", 4)
    text = wicbox("status", config=config)
    assert text.exit_code == 4
    assert "Runs that stopped before the database could be reached (recorded on this machine):" in text.output
    assert "`wicbox run` exit code 4" in text.output


@pytest.mark.testbed
@pytest.mark.parametrize("wic_backend", BACKENDS)
def test_status_json_without_the_latest_schema(wic: WicInstallation) -> None:
    with wic.store() as store:
        store.execute("DELETE FROM WICBOX_SCHEMA_VERSION WHERE VERSION = ?", (LATEST_VERSION,))
    result = wic.cli("status", "--json")
    assert result.exit_code == 2
    assert "wicbox db" in _json(result.stdout)["error"]["fix"]


# --------------------------------------------------------------------------- help


def _all_commands(
    command: click.Command, path: tuple[str, ...]
) -> list[tuple[tuple[str, ...], click.Command]]:
    found = [(path, command)]
    if isinstance(command, click.Group):
        ctx = click.Context(command)
        for name in command.list_commands(ctx):
            sub = command.get_command(ctx, name)
            assert sub is not None
            found += _all_commands(sub, (*path, name))
    return found


@pytest.mark.parametrize("path", [path for path, _ in _all_commands(cli, ())[1:]], ids=" ".join)
def test_every_command_help_has_examples(wicbox: WicboxCli, path: tuple[str, ...]) -> None:
    result = wicbox(*path, "--help")
    assert result.exit_code == 0
    assert "\nExamples:\n" in result.output or "\n  Examples:\n" in result.output, result.output
    examples = result.output.split("Examples:", 1)[1]
    assert f"wicbox {path[0]}" in examples or "wicbox --config" in examples


def test_the_command_list_is_not_cut_off(wicbox: WicboxCli) -> None:
    output = wicbox("--help").output
    commands = output.split("Commands:", 1)[1]
    assert "..." not in commands
    assert "the credentials' expiry and failures." in commands


GROUPS = [path for path, command in _all_commands(cli, ()) if isinstance(command, click.Group)]


@pytest.mark.parametrize("path", GROUPS, ids=lambda path: " ".join(path) or "wicbox")
def test_no_command_list_is_cut_off(wicbox: WicboxCli, path: tuple[str, ...]) -> None:
    listing = wicbox(*path, "--help").output.split("Commands:", 1)[1].split("Examples:", 1)[0]
    assert "..." not in listing, listing
    assert listing.rstrip().endswith("."), listing  # the last summary ends its sentence


def test_check_help_says_what_it_does(wicbox: WicboxCli) -> None:
    output = " ".join(wicbox("check", "--help").output.split())
    assert "Nothing is read from or sent to any mailbox" not in output
    assert "signs in to each mailbox and counts the mail waiting" in output
    assert "the table WICMAN_PARAMETER of the WIC database, where WIC keeps its settings" in output
    assert "--json" in output


def test_params_help_explains_the_jargon(wicbox: WicboxCli) -> None:
    group = " ".join(wicbox("params", "--help").output.split())
    assert "WICMan parameters are the rows of the table WICMAN_PARAMETER in the WIC database" in group
    migrate = " ".join(wicbox("params", "migrate", "--help").output.split())
    assert "KPD parameter scripts 40201575, 40201577 and 40201578 do (the SQL scripts WIC's vendor" in migrate
