"""A WIC installation for end-to-end tests: WicGlobal.config, a database with the schema, and
WICMan parameters pointing at the loopback test bed (identity-platform emulator, Dovecot, SMTP)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import Result

from tests.clihelp import WicboxCli, write_config
from tests.plugins.postgres import PgDatabase
from tools.testbed.dovecot import DovecotServer, StoredMessage, append_message
from tools.testbed.idp import IdentityPlatformEmulator, SeededDirectory
from tools.testbed.pki import LoopbackPki
from wicbox_bridge.config.dbtarget import DatabaseTarget, SqliteTarget
from wicbox_bridge.config.endpoints import EndpointPolicy
from wicbox_bridge.config.wicglobal import load_global_config
from wicbox_bridge.store import DbApiStore, init_schema, open_store
from wicbox_bridge.store.parameters import set_parameter


@dataclass
class WicInstallation:
    """One test's WIC: its config file, database and CLI, with helpers to set parameters."""

    config: Path
    target: DatabaseTarget
    cli_runner: WicboxCli
    directory: SeededDirectory

    @property
    def database(self) -> Path | None:
        """The SQLite file (None on PostgreSQL)."""
        return self.target.path if isinstance(self.target, SqliteTarget) else None

    def cli(self, *args: str, input: str | None = None) -> Result:
        return self.cli_runner(*args, config=self.config, input=input)

    def store(self) -> DbApiStore:
        return open_store(self.target)

    def endpoints(self) -> EndpointPolicy:
        """The servers and the CA its WicGlobal.config allows (for tests that parse the parameters)."""
        return load_global_config(self.config, env={"WICBOX_HOME": str(self.cli_runner.home)}).endpoints

    def set_params(self, values: Mapping[str, str | None]) -> None:
        with self.store() as store:
            for name, value in values.items():
                set_parameter(store, name, value)

    def add_project(
        self,
        project_id: int,
        code: str,
        *,
        mailbox: str | None = None,
        username: str | None = None,
        password: str | None = None,
        account_mode: str | None = None,
        active: bool = True,
    ) -> None:
        with self.store() as store:
            store.execute(
                "INSERT INTO WIC_PROJECT (PROJECT_ID, CODE, NAME, ACTIVE, WICBOX_MAILBOX, WICBOX_USERNAME, "
                "WICBOX_PASSWORD, WICBOX_ACCOUNTMODE) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (project_id, code, f"Project {code}", int(active), mailbox, username, password, account_mode),
            )


def delegated_parameters(
    idp: IdentityPlatformEmulator, directory: SeededDirectory, pki: LoopbackPki
) -> dict[str, str | None]:
    """SINGLE mode, OAuth2, delegated permissions on the global mailbox, against the emulator."""
    return {
        "WICBOXACCOUNTMODE": "SINGLE",
        "WICBOXMETHOD": "OAuth2",
        "WICBOX_MAILCLIENT_SCOPE": "https://outlook.office.com/IMAP.AccessAsUser.All",
        "WICBOX_MAILCLIENT_CLIENTID": directory.public_client_id,
        "WICBOX_MAILCLIENT_TENANTID": directory.tenant_id,
        "WICBOX_MAILCLIENT_USERNAME": directory.mailbox.upn,
        "WICBOX_MAILCLIENT_PASSWORD": directory.mailbox.password,
        "WICBOX_MAILCLIENT_AUTHORITYHOST": idp.base_url,
        # Never the production hosts: a closed loopback port until a test points them at a server.
        "WICBOX_MAILCLIENT_IMAPHOST": "127.0.0.1:9",
        "WICBOX_MAILCLIENT_IMAPTLS": "IMPLICIT",
        "WICBOX_MAILCLIENT_SMTPHOST": "127.0.0.1:9",
        "WICBOX_MAILCLIENT_SMTPTLS": "STARTTLS",
        "WICBOX_MAILCLIENT_GRAPHURL": "https://127.0.0.1:9",
    }


def application_parameters(
    idp: IdentityPlatformEmulator, directory: SeededDirectory, pki: LoopbackPki
) -> dict[str, str | None]:
    """The same installation with application permissions (client secret, no password)."""
    values = delegated_parameters(idp, directory, pki)
    values.update(
        {
            "WICBOX_MAILCLIENT_CLIENTID": directory.confidential_client_id,
            "WICBOX_MAILCLIENT_CLIENTSECRET": directory.confidential_client_secret,
            "WICBOX_MAILCLIENT_PASSWORD": None,
            "WICBOX_MAILCLIENT_SCOPE": "https://outlook.office365.com/.default",
        }
    )
    return values


def loopback_hosts(testbed_ip: str) -> tuple[str, ...]:
    """The test bed's servers (its own loopback address) and 127.0.0.1 (the closed port 9)."""
    return (testbed_ip, "127.0.0.1")


@pytest.fixture
def wic_backend() -> str:
    """The database of the `wic` fixture; override with @pytest.mark.parametrize("wic_backend", BACKENDS)."""
    return "sqlite"


def _database(request: pytest.FixtureRequest, backend: str, tmp_path: Path) -> tuple[str, DatabaseTarget]:
    if backend == "sqlite":
        database = tmp_path / "wic.db"
        return f"sqlite:///{database}", SqliteTarget(database)
    pg: PgDatabase = request.getfixturevalue("pg_database")
    return pg.connection_string, pg.target


@pytest.fixture
def wic(
    request: pytest.FixtureRequest,
    wic_backend: str,
    tmp_path: Path,
    idp_clean: IdentityPlatformEmulator,
    idp_directory: SeededDirectory,
    loopback_pki: LoopbackPki,
    testbed_ip: str,
) -> Iterator[WicInstallation]:
    """A WIC installation with the schema and delegated SINGLE-mode parameters (SQLite by default).

    Its WicGlobal.config allows the test bed's loopback servers (WicBoxAllowedHosts) and trusts the
    test bed's CA (WicBoxCaBundle), as an administrator's would for a server of their own.
    """
    home = tmp_path / "home"
    work = tmp_path / "work"
    home.mkdir()
    work.mkdir()
    connection, target = _database(request, wic_backend, tmp_path)
    config = write_config(
        tmp_path / "WicGlobal.config",
        connection,
        allowed_hosts=loopback_hosts(testbed_ip),
        ca_bundle=loopback_pki.ca_cert,
    )
    installation = WicInstallation(config, target, WicboxCli(home=home, cwd=work), idp_directory)
    with installation.store() as store:
        init_schema(store)
    installation.set_params(delegated_parameters(idp_clean, idp_directory, loopback_pki))
    yield installation


@dataclass
class Mailroom:
    """A WIC installation whose global mailbox lives in the test bed's Dovecot."""

    wic: WicInstallation
    dovecot: DovecotServer
    mailbox: str

    def deliver(self, raws: Sequence[bytes], folder: str = "INBOX", user: str | None = None) -> list[int]:
        """Append mails in one admin session (oldest first); their UIDs."""
        with self.dovecot.admin_session(user or self.mailbox) as client:
            return [append_message(client, folder, raw) for raw in raws]

    def messages(self, folder: str = "INBOX", user: str | None = None) -> list[StoredMessage]:
        user = user or self.mailbox
        if folder != "INBOX" and folder not in self.dovecot.folders(user):
            return []
        return self.dovecot.messages(user, folder)

    def filed(self) -> list[FiledRow]:
        with self.wic.store() as store:
            rows = store.query(
                "SELECT MAIL_ID, PROJECT_ID, MAILBOX, SHA256, STATUS, RAW_MIME, SUBJECT, ERROR "
                "FROM WICBOX_MAIL ORDER BY MAIL_ID"
            )
        return [FiledRow(*row) for row in rows]


@dataclass(frozen=True)
class FiledRow:
    mail_id: int
    project_id: int | None
    mailbox: str
    sha256: str
    status: str
    raw: bytes | None
    subject: str | None
    error: str | None


@pytest.fixture
def mailroom(wic: WicInstallation, dovecot_clean: DovecotServer) -> Mailroom:
    """SINGLE mode, delegated OAuth2, the global mailbox wicbox@klant.example in Dovecot over IMAPS."""
    mailbox = wic.directory.mailbox.upn
    dovecot_clean.add_mailbox(mailbox)
    wic.set_params({"WICBOX_MAILCLIENT_IMAPHOST": f"{dovecot_clean.host}:{dovecot_clean.imaps_port}"})
    wic.set_params({"WICBOX_MAILCLIENT_IMAPTLS": "IMPLICIT"})
    return Mailroom(wic, dovecot_clean, mailbox)
