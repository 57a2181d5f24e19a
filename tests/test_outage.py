"""One network outage, one cause: ``check``, ``run``, ``token`` and ``send-test`` name the same kind of
failure (DNS, refused, untrusted certificate) with the same fix, each with the service, host and
port that failed.

The outages are real: host names under ``.invalid`` (RFC 2606: they resolve nowhere), a loopback
address where nothing listens, and the test bed's own servers while their CA is not trusted. Every
server of the installation is hit by the same outage, as in a real one: ``check`` meets it at the
identity platform (it asks for a token first), ``run`` at the IMAP server (it connects first), so
the hosts differ but the cause and its fix must not. On the embedded default (its servers allowed
in its own allowed-hosts.txt), on SQLite named by WicGlobal.config, and on PostgreSQL.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from tests.plugins.postgres import BACKENDS
from tests.plugins.wic import WicInstallation, delegated_parameters, loopback_hosts
from tools.testbed.dovecot import DovecotServer
from tools.testbed.graph import GraphEmulator
from tools.testbed.idp import IdentityPlatformEmulator, SeededDirectory
from tools.testbed.mailbed import random_loopback_ip
from tools.testbed.pki import LoopbackPki
from tools.testbed.postgres import ODBC_DRIVER, odbc_connection_string
from tools.testbed.wic_config import write_config
from wicbox_bridge.cli import cli
from wicbox_bridge.config.dbtarget import SqliteTarget
from wicbox_bridge.config.footprint import write_private_text
from wicbox_bridge.config.local_hosts import ALLOWED_HOSTS_FILE
from wicbox_bridge.config.paths import embedded_database_path
from wicbox_bridge.store import init_schema, open_store
from wicbox_bridge.store.parameters import set_parameter

pytestmark = pytest.mark.testbed

DOMAIN = "wicbox-outage.invalid"
NOWHERE = random_loopback_ip()  # a loopback address of its own: nothing listens there on any port
OUTAGE_HOSTS = (f"login.{DOMAIN}", f"imap.{DOMAIN}", f"smtp.{DOMAIN}", f"graph.{DOMAIN}", NOWHERE)

CAUSES = {
    "dns": (
        "DNS cannot resolve the name {host}",
        "check this computer's DNS (`nslookup {host}` must answer)",
    ),
    "refused": (
        "the connection was refused",
        "a firewall refuses it or nothing listens there; open outgoing TCP",
    ),
    "tls": (
        "the server's certificate could not be verified",
        "name it with WicBoxCaBundle under <appSettings> in WicGlobal.config (WicBoxCaBundle is not set), "
        "or, without a WicGlobal.config (the embedded default), with the environment variables "
        "SSL_CERT_FILE and REQUESTS_CA_BUNDLE of the account that runs wicbox",
    ),
}
_FAILURE = re.compile(
    r"(?:Cannot reach|TLS with) "
    r"(the identity platform|the IMAP server|Microsoft Graph|the SMTP server|the database server) "
    r"([^\s:]+):(\d+)(?::| failed:) ([^\n]*)\n\s*(?:fix|wicbox: fix):? ?([^\n]*)"
)


@dataclass(frozen=True)
class Failure:
    service: str
    host: str
    port: int
    cause: str
    fix: str


def failures(output: str) -> list[Failure]:
    """Every network failure a command printed, with the fix printed under it."""
    return [
        Failure(service, host, int(port), cause, fix)
        for service, host, port, cause, fix in _FAILURE.findall(output)
    ]


@dataclass(frozen=True)
class Installation:
    """How to invoke the CLI for one WIC and set its parameters; ``trusted``: the test bed's CA."""

    invoke: Callable[..., Result]
    set_params: Callable[[Mapping[str, str | None]], None]
    untrust: Callable[[], None]


def _runner(home: Path, cwd: Path, config: Path | None, env: dict[str, str | None]) -> Callable[..., Result]:
    def invoke(*args: str) -> Result:
        argv = ["--config", str(config), *args] if config else list(args)
        full = {"WICBOX_HOME": str(home), "WICBOX_CONFIG": None, **env}
        with pytest.MonkeyPatch.context() as patch:
            patch.chdir(cwd)
            return CliRunner().invoke(cli, argv, env=full, catch_exceptions=False)

    return invoke


@pytest.fixture
def embedded(
    tmp_path: Path,
    idp_clean: IdentityPlatformEmulator,
    idp_directory: SeededDirectory,
    loopback_pki: LoopbackPki,
    testbed_ip: str,
) -> Installation:
    """The embedded default: no WicGlobal.config; the test bed and the outage hosts allowed in its
    own allowed-hosts.txt, the test bed's CA trusted through the environment."""
    home = tmp_path / "home"
    home.mkdir(mode=0o700)
    write_private_text(home / ALLOWED_HOSTS_FILE, "\n".join((*loopback_hosts(testbed_ip), *OUTAGE_HOSTS)))
    target = SqliteTarget(embedded_database_path({"WICBOX_HOME": str(home)}), embedded=True)

    def set_params(values: Mapping[str, str | None]) -> None:
        with open_store(target) as store:
            for name, value in values.items():
                set_parameter(store, name, value)

    with open_store(target) as store:
        init_schema(store)
    set_params(delegated_parameters(idp_clean, idp_directory, loopback_pki))
    env: dict[str, str | None] = {
        "SSL_CERT_FILE": str(loopback_pki.ca_cert),
        "REQUESTS_CA_BUNDLE": str(loopback_pki.ca_cert),
    }
    work = tmp_path / "work"
    work.mkdir()

    def untrust() -> None:
        env.update({"SSL_CERT_FILE": None, "REQUESTS_CA_BUNDLE": None})

    return Installation(_runner(home, work, None, env), set_params, untrust)


@pytest.fixture
def configured(wic: WicInstallation, testbed_ip: str) -> Installation:
    """A WicGlobal.config naming the database (SQLite or PostgreSQL) and allowing the outage hosts."""
    text = wic.config.read_text(encoding="utf-8")
    allowed = ";".join(loopback_hosts(testbed_ip))
    assert f'value="{allowed}"' in text
    wic.config.write_text(text.replace(f'value="{allowed}"', f'value="{";".join((allowed, *OUTAGE_HOSTS))}"'))

    def untrust() -> None:
        changed = re.sub(
            r'<add key="WicBoxCaBundle" value="[^"]*"/>', "", wic.config.read_text(encoding="utf-8")
        )
        wic.config.write_text(changed, encoding="utf-8")

    env: dict[str, str | None] = {"SSL_CERT_FILE": None, "REQUESTS_CA_BUNDLE": None}
    return Installation(
        _runner(wic.cli_runner.home, wic.cli_runner.cwd, wic.config, env), wic.set_params, untrust
    )


@pytest.fixture(params=["embedded", *BACKENDS])
def database(request: pytest.FixtureRequest) -> str:
    """The embedded default, or the `wic` fixture's backend named by WicGlobal.config."""
    return str(request.param)


@pytest.fixture
def wic_backend(database: str) -> str:
    return database


@pytest.fixture
def installation(request: pytest.FixtureRequest, database: str) -> Installation:
    value = request.getfixturevalue("embedded" if database == "embedded" else "configured")
    assert isinstance(value, Installation)
    return value


def _outage(kind: str, idp: IdentityPlatformEmulator, dovecot: DovecotServer) -> dict[str, str | None]:
    if kind == "dns":
        return {
            "WICBOX_MAILCLIENT_AUTHORITYHOST": f"https://login.{DOMAIN}",
            "WICBOX_MAILCLIENT_IMAPHOST": f"imap.{DOMAIN}:993",
            "WICBOX_MAILCLIENT_SMTPHOST": f"smtp.{DOMAIN}:587",
        }
    if kind == "refused":
        return {
            "WICBOX_MAILCLIENT_AUTHORITYHOST": f"https://{NOWHERE}",
            "WICBOX_MAILCLIENT_IMAPHOST": f"{NOWHERE}:993",
            "WICBOX_MAILCLIENT_SMTPHOST": f"{NOWHERE}:587",
        }
    return {  # tls: the test bed's real servers, whose CA is then not trusted
        "WICBOX_MAILCLIENT_AUTHORITYHOST": idp.base_url,
        "WICBOX_MAILCLIENT_IMAPHOST": f"{dovecot.host}:{dovecot.imaps_port}",
    }


def _normalised(failure: Failure) -> tuple[str, str]:
    """The cause and the fix with the host, port and host parameter taken out: what must not differ."""

    def plain(text: str) -> str:
        text = text.replace(failure.host, "<host>").replace(str(failure.port), "<port>")
        return re.sub(r"WICBOX_MAILCLIENT_\w+HOST", "<parameter>", text)

    return plain(failure.cause), plain(failure.fix)


@pytest.mark.parametrize("kind", ["dns", "refused", "tls"])
def test_one_outage_reads_the_same_in_check_run_token_and_send_test(
    installation: Installation,
    kind: str,
    idp_clean: IdentityPlatformEmulator,
    dovecot_clean: DovecotServer,
    idp_directory: SeededDirectory,
    testbed_ip: str,
) -> None:
    mailbox = idp_directory.mailbox.upn
    dovecot_clean.add_mailbox(mailbox)
    installation.set_params(_outage(kind, idp_clean, dovecot_clean))
    if kind == "tls":
        installation.untrust()
    hosts = {
        "dns": {"the identity platform": f"login.{DOMAIN}", "the IMAP server": f"imap.{DOMAIN}"},
        "refused": {"the identity platform": NOWHERE, "the IMAP server": NOWHERE},
        "tls": {"the identity platform": testbed_ip, "the IMAP server": testbed_ip},
    }[kind]
    met = {}
    for command, service in (
        (("check",), "the identity platform"),  # a token first
        (("run",), "the IMAP server"),  # connects first
        (("token",), "the identity platform"),
        (("send-test", "--to", mailbox), "the identity platform"),
    ):
        result = installation.invoke(*command)
        assert result.exit_code == 4, result.output
        found = failures(result.output)
        assert [(failure.service, failure.host) for failure in found] == [(service, hosts[service])], (
            result.output
        )
        failure = found[0]
        cause, fix = CAUSES[kind]
        assert cause.format(host=failure.host) in failure.cause, result.output
        assert fix.format(host=failure.host) in failure.fix, result.output
        met[command[0]] = _normalised(failure)
    assert len(set(met.values())) == 1, met  # one cause, one fix: only the service's host differs


@pytest.mark.parametrize("kind", ["dns", "refused"])
@pytest.mark.parametrize("service", ["Microsoft Graph", "the SMTP server"])
def test_graph_and_smtp_outages_read_the_same_in_every_command(
    installation: Installation,
    kind: str,
    service: str,
    dovecot_clean: DovecotServer,
    graph_clean: GraphEmulator,
    idp_directory: SeededDirectory,
) -> None:
    """The identity platform answers; only Graph (read by check and run) or SMTP (check, send-test)
    is out."""
    mailbox = idp_directory.mailbox.upn
    dovecot_clean.add_mailbox(mailbox)
    graph_clean.add_mailbox(mailbox)
    host = f"graph.{DOMAIN}" if service == "Microsoft Graph" else f"smtp.{DOMAIN}"
    host = host if kind == "dns" else NOWHERE
    if service == "Microsoft Graph":
        installation.set_params(
            {"WICBOX_MAILCLIENT_SCOPE": "Mail.ReadWrite", "WICBOX_MAILCLIENT_GRAPHURL": f"https://{host}"}
        )
        commands: tuple[tuple[str, ...], ...] = (("check",), ("run",))
        port = 443
    else:
        installation.set_params(
            {
                "WICBOX_MAILCLIENT_IMAPHOST": f"{dovecot_clean.host}:{dovecot_clean.imaps_port}",
                "WICBOX_MAILCLIENT_SMTPHOST": f"{host}:587",
            }
        )
        commands = (("check",), ("send-test", "--to", mailbox))
        port = 587
    met = set()
    for command in commands:
        result = installation.invoke(*command)
        found = [failure for failure in failures(result.output) if failure.service == service]
        assert [(failure.host, failure.port) for failure in found] == [(host, port)], result.output
        cause, fix = CAUSES[kind]
        assert cause.format(host=host) in found[0].cause, result.output
        assert fix.format(host=host) in found[0].fix, result.output
        assert f"The connection to {host} broke" not in result.output  # nothing broke: it never began
        met.add(found[0].fix)
    assert len(met) == 1, met


@pytest.mark.parametrize("kind", ["dns", "refused"])
def test_a_database_server_outage_reads_like_every_other_service(tmp_path: Path, kind: str) -> None:
    """PostgreSQL (psqlODBC) not reached: the same message and fix as a mail server, in check and run."""
    host = f"db.{DOMAIN}" if kind == "dns" else NOWHERE
    connection = odbc_connection_string(host, 5432, "wic", "wic", "pw")
    config = write_config(tmp_path / "WicGlobal.config", connection)
    assert ODBC_DRIVER in config.read_text(encoding="utf-8")
    home, work = tmp_path / "home", tmp_path / "work"
    work.mkdir()
    invoke = _runner(home, work, config, {})
    met = set()
    for command in ("check", "run"):
        result = invoke(command)
        assert result.exit_code == 4, result.output
        found = failures(result.output)
        assert [(failure.service, failure.host, failure.port) for failure in found] == [
            ("the database server", host, 5432)
        ], result.output
        cause, fix = CAUSES[kind]
        assert cause.format(host=host) in found[0].cause, result.output
        assert fix.format(host=host) in found[0].fix, result.output
        met.add(_normalised(found[0]))
    assert len(met) == 1, met
