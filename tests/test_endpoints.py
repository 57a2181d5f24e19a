"""Servers the bridge hands a credential to: Microsoft's clouds, or what this machine's WicGlobal.config
allows. Each case is an attack by someone who can write WICMAN_PARAMETER, and it must fail."""

from __future__ import annotations

import pytest

from tests.plugins.wic import WicInstallation
from tools.testbed.idp import IdentityPlatformEmulator
from tools.testbed.wic_config import write_config
from wicbox_bridge.config.endpoints import EndpointPolicy, canonical_host, parse_allowed_hosts, policy_from
from wicbox_bridge.config.params import parse_parameters
from wicbox_bridge.errors import ExitCode, ParameterError

BASE: dict[str, str | None] = {
    "WICBOX_MAILCLIENT_CLIENTID": "0b6e3f4c-1a2d-4e5f-8a9b-0c1d2e3f4a5b",
    "WICBOX_MAILCLIENT_TENANTID": "5f1c7d2e-8b4a-4c3e-9a6f-2d7e1b0c9a41",
    "WICBOX_MAILCLIENT_USERNAME": "wicbox@klant.example",
    "WICBOX_MAILCLIENT_PASSWORD": "Pw-fake-9Qx!7731",
    "WICBOXACCOUNTMODE": "SINGLE",
}
AUTHORITY, IMAP, SMTP, GRAPH = (
    "WICBOX_MAILCLIENT_AUTHORITYHOST",
    "WICBOX_MAILCLIENT_IMAPHOST",
    "WICBOX_MAILCLIENT_SMTPHOST",
    "WICBOX_MAILCLIENT_GRAPHURL",
)
# The machine allows one server of its own; the look-alikes must not ride on it either.
MACHINE = policy_from(["imap.klant.example"])

LOOK_ALIKES = [
    (AUTHORITY, "https://login.microsoftonline.com.example.net"),
    (AUTHORITY, "https://login.microsoftonline.com.:443"),
    (AUTHORITY, "https://login.microsoftonline.com."),
    (AUTHORITY, "https://login.microsoftonline.com:8443"),
    (AUTHORITY, "https://login.microsoftonline.com@evil.example"),
    (AUTHORITY, "https://evil.example\\@login.microsoftonline.com"),
    (AUTHORITY, "https://login.micr\u043esoftonline.com"),  # Cyrillic o: an IDN homograph
    (AUTHORITY, "https://xn--login-microsoftonline-com.example"),
    (AUTHORITY, "https://login%2emicrosoftonline.com"),
    (AUTHORITY, "https://loginmicrosoftonline.com"),
    (AUTHORITY, "https://login.microsoftonline.co"),
    (AUTHORITY, "https://127.0.0.1"),
    (GRAPH, "https://graph.microsoft.com@evil"),
    (GRAPH, "https://graph.microsoft.com.evil.example"),
    (GRAPH, "https://evil-graph.microsoft.com.example"),
    (GRAPH, "https://graph.microsoft.com:444"),
    (GRAPH, "https://graph.microsoft.com."),
    (GRAPH, "https://gr\u0430ph.microsoft.com"),  # Cyrillic a
    (GRAPH, "https://[::1]"),
    (IMAP, "graph.microsoft.com@evil:993"),
    (IMAP, "outlook.office365.com.evil.example:993"),
    (IMAP, "outlook.office365.com.:993"),
    (IMAP, "outlook.office365.com:2993"),
    (IMAP, "outl\u043eok.office365.com:993"),
    (IMAP, "imap.klant.example.:993"),  # the allowed host with a trailing dot
    (IMAP, "sub.imap.klant.example:993"),  # no wildcards
    (IMAP, "user@imap.klant.example"),
    (IMAP, "10.0.0.5:993"),
    (SMTP, "smtp.office365.com:2525"),
    (SMTP, "smtp.office365.com.evil.example"),
    (SMTP, "outlook.office365.com:587"),  # Microsoft's, but the IMAP server: not an SMTP endpoint here
    (SMTP, "[::1]:587"),
]


@pytest.mark.parametrize(("parameter", "value"), LOOK_ALIKES)
def test_look_alike_hosts_are_refused(parameter: str, value: str) -> None:
    with pytest.raises(ParameterError) as caught:
        parse_parameters({**BASE, parameter: value}, MACHINE)
    assert caught.value.parameter == parameter
    assert caught.value.exit_code is ExitCode.CONFIGURATION
    assert "Pw-fake-9Qx!7731" not in str(caught.value)


NATIONAL_CLOUDS = [
    (AUTHORITY, "https://login.microsoftonline.com"),
    (AUTHORITY, "https://LOGIN.microsoftonline.us"),
    (AUTHORITY, "https://login.chinacloudapi.cn:443"),
    (GRAPH, "https://graph.microsoft.us"),
    (GRAPH, "https://dod-graph.microsoft.us"),
    (GRAPH, "https://microsoftgraph.chinacloudapi.cn"),
    (IMAP, "outlook.office365.us:993"),
    (IMAP, "outlook-dod.office365.us"),
    (IMAP, "partner.outlook.cn:993"),
    (IMAP, "outlook.office365.com:143"),
    (SMTP, "smtp.office365.us:587"),
    (SMTP, "smtp.office365.com:25"),
    (SMTP, "smtp.partner.outlook.cn"),
    (IMAP, "IMAP.klant.example:10993"),  # allowed by the machine, on any port
]


@pytest.mark.parametrize(("parameter", "value"), NATIONAL_CLOUDS)
def test_microsoft_clouds_and_the_machines_own_hosts_are_accepted(parameter: str, value: str) -> None:
    parse_parameters({**BASE, parameter: value}, MACHINE)


def test_without_a_policy_only_microsoft_is_reachable() -> None:
    with pytest.raises(ParameterError):
        parse_parameters({**BASE, IMAP: "imap.klant.example"})
    parse_parameters(BASE)  # the defaults are Microsoft's


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Host.Example", "host.example"),
        ("[::1]", "::1"),
        ("0:0::1", "::1"),
        ("host.example.", None),
        ("*.example", None),
        ("h\u00f6st.example", None),
        ("a@b", None),
        ("host:993", None),
        ("host\r\n", None),
    ],
)
def test_canonical_host(text: str, expected: str | None) -> None:
    assert canonical_host(text) == expected


def test_allowed_hosts_list() -> None:
    assert parse_allowed_hosts(" a.example ;B.EXAMPLE;; 127.0.0.1 ") == (
        frozenset({"a.example", "b.example", "127.0.0.1"}),
        (),
    )
    assert parse_allowed_hosts("a.example;*.evil")[1] == ("*.evil",)
    assert EndpointPolicy().allowed_hosts == frozenset()


def test_a_refused_authority_stops_the_command_before_any_request(
    wic: WicInstallation, idp_clean: IdentityPlatformEmulator, testbed_ip: str
) -> None:
    # The attacker's "identity platform" (the emulator, which records every request) is not allowed on
    # this machine: the password must not reach it.
    write_config(wic.config, f"sqlite:///{wic.database}", allowed_hosts=("127.0.0.1",))
    idp_clean.request_log.clear()
    result = wic.cli("check")
    assert result.exit_code == ExitCode.CONFIGURATION, result.output
    assert "WICBOX_MAILCLIENT_AUTHORITYHOST" in result.output
    assert "WicBoxAllowedHosts" in result.output
    assert idp_clean.request_log.count() == 0
    assert wic.directory.mailbox.password not in result.output
