"""`wicbox params` as an administrator meets it: names that are refused, `params unset`, values that
cannot work, the wrong value quoted with the closest valid choice, and fix lines that name the command
to run. Each test runs against the embedded default (no WicGlobal.config) and against PostgreSQL."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import Result

from tests.clihelp import WicboxCli, write_config
from tests.plugins.postgres import PgDatabase
from wicbox_bridge.config.dbtarget import DatabaseTarget, SqliteTarget
from wicbox_bridge.store import open_store
from wicbox_bridge.store.parameters import read_parameters, set_parameter

SECRET_ID = "3c9d2a71-6b5e-4f80-9a1c-7e2d4b6f8a09"  # what Azure shows in the Secret ID column
SECRET_VALUE = "Qx8~fake.secret-Value_0042"


@dataclass(frozen=True)
class Install:
    """One test's installation: the CLI, its WicGlobal.config (None: the embedded default) and database."""

    wicbox: WicboxCli
    config: Path | None
    target: DatabaseTarget

    def cli(self, *args: str, input: str | None = None) -> Result:
        return self.wicbox(*args, config=self.config, input=input)

    def rows(self) -> dict[str, str | None]:
        with open_store(self.target) as store:
            return {name.upper(): value for name, value in read_parameters(store).items()}

    def store_raw(self, name: str, value: str) -> None:
        """A value as WICMan (or an older release) could have written it, past `params set`."""
        with open_store(self.target) as store:
            set_parameter(store, name, value)


@pytest.fixture(params=["embedded", "postgresql-odbc"])
def install(request: pytest.FixtureRequest, tmp_path: Path) -> Install:
    home, cwd = tmp_path / "home", tmp_path / "work"
    home.mkdir()
    cwd.mkdir()
    wicbox = WicboxCli(home=home, cwd=cwd)
    if request.param == "embedded":
        chosen = Install(wicbox, None, SqliteTarget(home / "wicbox.db"))
    else:
        database: PgDatabase = request.getfixturevalue("pg_database")
        config = write_config(tmp_path / "WicGlobal.config", database.connection_string)
        chosen = Install(wicbox, config, database.target)
    initialised = chosen.cli("db", "init")
    assert initialised.exit_code == 0, initialised.output
    return chosen


# --------------------------------------------------------------------------- names


def test_a_wicglobal_config_key_is_refused_with_the_line_to_write(install: Install) -> None:
    result = install.cli("params", "set", "WicBoxMaxMailsPerRun", "abc")
    assert result.exit_code == 2
    assert (
        "wicbox: error: WicBoxMaxMailsPerRun: is not a WICMan parameter: it is read from WicGlobal.config "
        "only (nothing was stored)"
    ) in result.stderr
    assert (
        'wicbox: fix: this goes in WicGlobal.config: <add key="WicBoxMaxMailsPerRun" value="..." /> '
        "under <appSettings>"
    ) in result.stderr
    assert "WICBOXMAXMAILSPERRUN" not in install.rows()
    forced = install.cli("params", "set", "wicboxmaxmailsperrun", "250", "--force")
    assert forced.exit_code == 2  # --force is for another program's parameters, not for this file's keys
    assert 'this goes in WicGlobal.config: <add key="WicBoxMaxMailsPerRun"' in forced.stderr


def test_an_unknown_name_is_refused_with_the_closest_known_one(install: Install) -> None:
    result = install.cli("params", "set", "WICBOX_MAILCLIENT_USERNAM", "wicbox@klant.example")
    assert result.exit_code == 2
    assert (
        "wicbox: error: WICBOX_MAILCLIENT_USERNAM: is not a parameter wicbox-bridge reads; did you mean "
        "WICBOX_MAILCLIENT_USERNAME? (nothing was stored)"
    ) in result.stderr
    assert (
        "wicbox: fix: run `wicbox params set WICBOX_MAILCLIENT_USERNAME <value>`; to store a parameter "
        "of another program anyway, add --force"
    ) in result.stderr
    assert install.rows() == {}


@pytest.mark.parametrize(
    ("typed", "meant"),
    [
        ("WICBOX_MAILCLIENT_ACCOUNTMODE", "WICBOXACCOUNTMODE"),  # not ..._CABUNDLE, which shares the prefix
        ("WICBOXPROTOCOL", "WICBOX_MAILCLIENT_PROTOCOL"),
        ("WICBOX_MAILCLIENT_TENANT", "WICBOX_MAILCLIENT_TENANTID"),
    ],
)
def test_the_closest_name_is_found_by_the_part_after_the_prefix(
    install: Install, typed: str, meant: str
) -> None:
    result = install.cli("params", "set", typed, "x")
    assert result.exit_code == 2
    assert f"{typed}: is not a parameter wicbox-bridge reads; did you mean {meant}? (nothing was stored)" in (
        result.stderr
    )
    assert install.rows() == {}


def test_force_stores_an_unknown_name_and_unset_removes_it(install: Install) -> None:
    forced = install.cli("params", "set", "WICBOXACOUNTMODE", "SINGLE", "--force")
    assert forced.exit_code == 0, forced.output
    assert (
        "warning: WICBOXACOUNTMODE is not a parameter wicbox-bridge reads; did you mean WICBOXACCOUNTMODE? "
        "(stored because of --force)"
    ) in forced.stderr
    listed = install.cli("params", "list").output
    assert "WICBOXACOUNTMODE  SINGLE  # unknown to wicbox-bridge" in listed
    removed = install.cli("params", "unset", "wicboxacountmode")
    assert removed.exit_code == 0, removed.output
    assert removed.stdout == "removed WICBOXACOUNTMODE\n"
    assert "WICBOXACOUNTMODE" not in install.cli("params", "list").output
    again = install.cli("params", "unset", "WICBOXACOUNTMODE")
    assert again.exit_code == 1
    assert "WICBOXACOUNTMODE is not set: there is no row to remove." in again.stderr


def test_clear_keeps_the_row_and_unset_removes_it(install: Install) -> None:
    assert install.cli("params", "set", "WICBOX_MAILCLIENT_FOLDER", "Postvak IN").exit_code == 0
    cleared = install.cli("params", "set", "WICBOX_MAILCLIENT_FOLDER", "--clear")
    assert cleared.exit_code == 0, cleared.output
    assert install.rows() == {"WICBOX_MAILCLIENT_FOLDER": None}
    assert (
        "WICBOX_MAILCLIENT_FOLDER  INBOX  # default (the row is empty)"
        in install.cli("params", "list").output
    )
    assert install.cli("params", "unset", "WICBOX_MAILCLIENT_FOLDER").exit_code == 0
    assert install.rows() == {}
    assert "WICBOX_MAILCLIENT_FOLDER" not in install.cli("params", "list").output


# --------------------------------------------------------------------------- values that cannot work


SECRET_ID_FIX = "copy the secret's Value column (not the Secret ID"


@pytest.mark.parametrize("how", ["value", "prompt", "stdin"])
def test_a_client_secret_id_is_refused_before_anything_is_stored(install: Install, how: str) -> None:
    name = "WICBOX_MAILCLIENT_CLIENTSECRET"
    if how == "value":
        result = install.cli("params", "set", name, SECRET_ID)
    elif how == "prompt":
        result = install.cli("params", "set", name, "--prompt", input=f"{SECRET_ID}\n{SECRET_ID}\n")
    else:
        result = install.cli("params", "set", name, "--stdin", input=f"{SECRET_ID}\n")
    assert result.exit_code == 2, result.output
    assert (
        f"wicbox: error: {name}: the value given is a GUID: that is the secret's ID, not the secret itself"
    ) in result.stderr
    assert SECRET_ID_FIX in result.stderr
    assert f"`wicbox params set {name} --prompt`" in result.stderr
    assert SECRET_ID not in result.output
    assert install.rows() == {}


def test_the_secrets_value_is_stored(install: Install) -> None:
    name = "WICBOX_MAILCLIENT_CLIENTSECRET"
    result = install.cli("params", "set", name, "--stdin", input=f"{SECRET_VALUE}\n")
    assert result.exit_code == 0, result.output
    assert SECRET_VALUE not in result.output
    assert name in install.rows()


@pytest.mark.parametrize(
    ("name", "value", "error", "fix"),
    [
        (
            "WICBOXACCOUNTMODE",
            "SINGEL",
            "WICBOXACCOUNTMODE: 'SINGEL' is not an account mode; did you mean SINGLE?",
            "run `wicbox params set WICBOXACCOUNTMODE SINGLE` (one of: SINGLE, MULTIPLE, MIX)",
        ),
        (
            "wicboxmethod",
            "oath2",
            "WICBOXMethod: 'oath2' is not a sign-in method; did you mean OAuth2?",
            "run `wicbox params set WICBOXMethod OAuth2` (one of: OAuth2, Basic)",
        ),
        (
            "WICBOX_MAILCLIENT_PROTOCOL",
            "IMAPS",
            "WICBOX_MAILCLIENT_PROTOCOL: 'IMAPS' is not a protocol for reading mail; did you mean IMAP?",
            "run `wicbox params set WICBOX_MAILCLIENT_PROTOCOL IMAP` (one of: AUTO, IMAP, GRAPH)",
        ),
        (
            "WICBOX_MAILCLIENT_SENDPROTOCOL",
            "SMPT",
            "WICBOX_MAILCLIENT_SENDPROTOCOL: 'SMPT' is not a protocol for sending mail; did you mean SMTP?",
            "run `wicbox params set WICBOX_MAILCLIENT_SENDPROTOCOL SMTP` (one of: AUTO, SMTP, GRAPH)",
        ),
        (
            "WICBOX_MAILCLIENT_CLIENTID",
            "0b6e3f4c 1a2d-4e5f-8a9b-0c1d2e3f4a5b",
            "WICBOX_MAILCLIENT_CLIENTID: '0b6e3f4c 1a2d-4e5f-8a9b-0c1d2e3f4a5b' is not a GUID (it has spaces "
            "in it",
            "and run `wicbox params set WICBOX_MAILCLIENT_CLIENTID <application-id>`",
        ),
        (
            "WICBOX_MAILCLIENT_TENANTID",
            "wicbox@klant.onmicrosoft.com",
            "WICBOX_MAILCLIENT_TENANTID: 'wicbox@klant.onmicrosoft.com' is an e-mail address, not a tenant; "
            "did you mean klant.onmicrosoft.com?",
            "run `wicbox params set WICBOX_MAILCLIENT_TENANTID klant.onmicrosoft.com`, or copy",
        ),
        (
            "WICBOX_MAILCLIENT_USERNAME",
            "wicbox",
            "WICBOX_MAILCLIENT_USERNAME: 'wicbox' has no domain: give the mailbox's full e-mail address, "
            "such as wicbox@contoso.com",
            "run `wicbox params set WICBOX_MAILCLIENT_USERNAME wicbox@<domain>`",
        ),
        (
            "WICBOXUsername",
            "DOMAIN\\wicbox",
            "WICBOXUsername: 'DOMAIN\\\\wicbox' is a Windows logon name (DOMAIN\\user): give the mailbox's "
            "e-mail address, such as wicbox@contoso.com",
            "run `wicbox params set WICBOXUsername wicbox@<domain>`",
        ),
        (
            "WICBOX_MAILCLIENT_WORKERS",
            "vier",
            "WICBOX_MAILCLIENT_WORKERS: 'vier' is not a whole number from 1 to 16",
            "run `wicbox params set WICBOX_MAILCLIENT_WORKERS 4`",
        ),
        (
            "WICBOX_MAILCLIENT_IMAPHOST",
            "imap.klant.example",
            "WICBOX_MAILCLIENT_IMAPHOST: 'imap.klant.example' names a server that is not one of Microsoft's",
            "run `wicbox params set WICBOX_MAILCLIENT_IMAPHOST --clear` to use outlook.office365.com:993",
        ),
        (
            "WICBOX_MAILCLIENT_SCOPE",
            "Mail.ReadWrte",
            "WICBOX_MAILCLIENT_SCOPE: 'Mail.ReadWrte' is not a mail permission wicbox-bridge knows; did you "
            "mean Mail.ReadWrite?",
            "run `wicbox params set WICBOX_MAILCLIENT_SCOPE Mail.ReadWrite` (one of ",
        ),
        (
            "WICBOX_MAILCLIENT_PROCESSEDFOLDER",
            "WICBOX//Processed",
            "WICBOX_MAILCLIENT_PROCESSEDFOLDER: 'WICBOX//Processed' is not a folder name (an empty level "
            "between '/')",
            "run `wicbox params set WICBOX_MAILCLIENT_PROCESSEDFOLDER WICBOX/Processed`",
        ),
        (
            "WICBOX_MAILCLIENT_CABUNDLE",
            "C:\\certs\\proxy-ca.pem",
            "WICBOX_MAILCLIENT_CABUNDLE: is ignored in the database",
            'put <add key="WicBoxCaBundle" value="PATH"/> under <appSettings> in WicGlobal.config',
        ),
    ],
)
def test_a_value_that_cannot_work_is_quoted_with_the_closest_choice(
    install: Install, name: str, value: str, error: str, fix: str
) -> None:
    result = install.cli("params", "set", name, value)
    assert result.exit_code == 2, result.output
    assert f"wicbox: error: {error}" in result.stderr
    assert fix in result.stderr
    assert "wicbox: fix: " in result.stderr
    assert install.rows() == {}


def test_a_secret_pasted_as_the_client_id_is_not_shown(install: Install) -> None:
    result = install.cli("params", "set", "WICBOX_MAILCLIENT_CLIENTID", SECRET_VALUE)
    assert result.exit_code == 2
    assert "WICBOX_MAILCLIENT_CLIENTID: the value (not shown: it has characters a GUID does not have)" in (
        result.stderr
    )
    assert SECRET_VALUE not in result.output


# --------------------------------------------------------------------------- fix lines and `list`


def test_check_names_the_command_for_a_missing_mailbox(install: Install) -> None:
    for name, value in (
        ("WICBOX_MAILCLIENT_CLIENTID", "0b6e3f4c-1a2d-4e5f-8a9b-0c1d2e3f4a5b"),
        ("WICBOX_MAILCLIENT_TENANTID", "klant.onmicrosoft.com"),
        ("WICBOXACCOUNTMODE", "SINGLE"),
    ):
        assert install.cli("params", "set", name, value).exit_code == 0
    stored = install.cli(
        "params", "set", "WICBOX_MAILCLIENT_CLIENTSECRET", "--stdin", input=f"{SECRET_VALUE}\n"
    )
    assert stored.exit_code == 0
    result = install.cli("check")
    assert result.exit_code == 2
    assert "fix: run `wicbox params set WICBOX_MAILCLIENT_USERNAME <mailbox>` with the global mailbox" in (
        result.output
    )
    assert SECRET_VALUE not in result.output


def test_a_stored_typo_is_quoted_with_the_command_that_mends_it(install: Install) -> None:
    install.store_raw("WICBOXACCOUNTMODE", "SINGEL")
    result = install.cli("check")
    assert result.exit_code == 2
    assert "WICBOXACCOUNTMODE: 'SINGEL' is not an account mode; did you mean SINGLE?" in result.output
    assert "fix: run `wicbox params set WICBOXACCOUNTMODE SINGLE` (one of: SINGLE, MULTIPLE, MIX)" in (
        result.output
    )


def test_list_shows_the_default_of_rows_migrate_left_empty(install: Install) -> None:
    assert install.cli("params", "migrate").exit_code == 0
    assert install.cli("params", "set", "WICBOX_MAILCLIENT_PROTOCOL", "IMAP").exit_code == 0
    lines = {line.split()[0]: line for line in install.cli("params", "list").stdout.splitlines()}
    assert lines["WICBOX_MAILCLIENT_PROTOCOL"].split("#")[0].split() == ["WICBOX_MAILCLIENT_PROTOCOL", "IMAP"]
    assert "#" not in lines["WICBOX_MAILCLIENT_PROTOCOL"]
    assert lines["WICBOXMETHOD"].split() == [
        "WICBOXMETHOD",
        "OAuth2",
        "#",
        "default",
        "(the",
        "row",
        "is",
        "empty)",
    ]
    assert lines["WICBOX_MAILCLIENT_SCOPE"].split() == [
        "WICBOX_MAILCLIENT_SCOPE",
        "#",
        "empty",
        "(no",
        "default)",
    ]


def test_list_all_marks_the_legacy_names(install: Install) -> None:
    assert install.cli("params", "set", "ACCOUNTMODE", "MULTIPLE").exit_code == 0
    lines = {line.split()[0]: line for line in install.cli("params", "list", "--all").stdout.splitlines()}
    assert lines["ACCOUNTMODE"].split("#")[1].strip() == "legacy"
    for legacy in ("WICBOXUsername", "WICBOXPassword", "WICBOX_MAILCLIENT_CABUNDLE"):
        assert lines[legacy].split("#")[1].strip() == "legacy; not set (default: none)"
    assert lines["WICBOX_MAILCLIENT_FOLDER"].split("#")[1].strip() == "not set (default: INBOX)"


def test_a_wicglobal_key_stored_by_an_older_release_is_named_with_unset(install: Install) -> None:
    install.store_raw("WICBOXMAXMAILSPERRUN", "abc")  # what `params set` stored before it refused such names
    listed = install.cli("params", "list").stdout
    assert (
        "WICBOXMAXMAILSPERRUN  abc  # no effect: a WicGlobal.config key (`wicbox params unset "
        "WICBOXMAXMAILSPERRUN`)\n"
    ) in listed
    removed = install.cli("params", "unset", "WicBoxMaxMailsPerRun")
    assert removed.stdout == "removed WICBOXMAXMAILSPERRUN\n"
    assert "WICBOXMAXMAILSPERRUN" not in install.cli("params", "list").output
