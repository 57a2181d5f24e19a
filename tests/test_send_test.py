"""`wicbox send-test` and the SMTP check end to end: the CLI, tokens from the real msal through the
identity-platform emulator, the Exchange-like submission server delivering into Dovecot."""

from __future__ import annotations

import email
import email.policy
import re
from dataclasses import dataclass

import pytest
from click.testing import Result

from tests.helpers.secrets import assert_no_secrets as scan_for_secrets
from tests.plugins.wic import Mailroom, application_parameters
from tools.testbed.dovecot import DovecotServer
from tools.testbed.idp import IdentityPlatformEmulator
from tools.testbed.pki import LoopbackPki
from tools.testbed.smtp import (
    AUTH_DISABLED_FOR_TENANT,
    AUTH_UNSUCCESSFUL,
    NOT_AUTHENTICATED,
    QUOTA_EXCEEDED,
    SmtpServer,
)
from wicbox_bridge.auth.accounts import global_account
from wicbox_bridge.commands._build import provider_factory, smtp_login_probe, token_service
from wicbox_bridge.config.params import parse_parameters
from wicbox_bridge.diagnostics.results import CheckStatus
from wicbox_bridge.diagnostics.smtp import smtp_checks
from wicbox_bridge.store.parameters import read_parameters

pytestmark = pytest.mark.testbed

SENDER = "wicbox@klant.example"
RECIPIENT = "project-alpha@klant.example"
STEPS = ("token", "connect", "TLS", "AUTH", "MAIL", "RCPT", "DATA")


@dataclass
class Sendroom:
    """SINGLE mode, delegated OAuth2: the global mailbox in Dovecot, SMTP pointed at the test server."""

    room: Mailroom
    smtp: SmtpServer

    @property
    def dovecot(self) -> DovecotServer:
        return self.room.dovecot

    def cli(self, *args: str) -> Result:
        return self.room.wic.cli(*args)

    def use_implicit_tls(self) -> None:
        self.room.wic.set_params(
            {
                "WICBOX_MAILCLIENT_SMTPHOST": f"{self.smtp.host}:{self.smtp.implicit_tls_port}",
                "WICBOX_MAILCLIENT_SMTPTLS": "IMPLICIT",
            }
        )

    def use_application_permissions(self, idp: IdentityPlatformEmulator, pki: LoopbackPki) -> None:
        wic = self.room.wic
        values = application_parameters(idp, wic.directory, pki)
        kept = (
            "WICBOX_MAILCLIENT_IMAPHOST",
            "WICBOX_MAILCLIENT_IMAPTLS",
            "WICBOX_MAILCLIENT_SMTPHOST",
            "WICBOX_MAILCLIENT_SMTPTLS",
        )
        with wic.store() as store:
            current = read_parameters(store)
        wic.set_params({name: value for name, value in values.items() if name not in kept})
        wic.set_params({name: current.get(name) for name in kept})
        self.dovecot.grant_app_access(wic.directory.confidential_client_sp_id, SENDER)

    def secrets(self) -> tuple[str, ...]:
        directory = self.room.wic.directory
        return (directory.mailbox.password, directory.confidential_client_secret)


def make_sendroom(mailroom: Mailroom, smtp: SmtpServer) -> Sendroom:
    """The installation of `mailroom` sending through the test bed's SMTP server (STARTTLS)."""
    mailroom.dovecot.add_mailbox(RECIPIENT)
    mailroom.wic.set_params(
        {
            "WICBOX_MAILCLIENT_SMTPHOST": f"{smtp.host}:{smtp.starttls_port}",
            "WICBOX_MAILCLIENT_SMTPTLS": "STARTTLS",
        }
    )
    return Sendroom(mailroom, smtp)


@pytest.fixture
def sendroom(mailroom: Mailroom, smtp_clean: SmtpServer) -> Sendroom:
    return make_sendroom(mailroom, smtp_clean)


def assert_no_secrets(output: str, *secrets: str) -> None:
    scan_for_secrets(output, secrets=secrets)


def _step_lines(output: str) -> list[tuple[str, str]]:
    return re.findall(r"^\[(OK|FAIL|SKIP) *\] (\w+):", output, re.MULTILINE)


# ---------------------------------------------------------------------------------- success


def test_send_test_delegated_prints_every_step_and_the_mail_arrives(sendroom: Sendroom) -> None:
    result = sendroom.cli("send-test", "--to", RECIPIENT, "--subject", "Proefbericht — één")
    assert result.exit_code == 0, result.output
    assert _step_lines(result.output) == [("OK", step) for step in STEPS]
    assert "delegated token for wicbox@klant.example" in result.output
    assert "The server accepted the test mail" in result.output
    [accepted] = sendroom.smtp.accepted()
    assert (accepted.login_user, accepted.mail_from, accepted.rcpt_tos) == (SENDER, SENDER, (RECIPIENT,))
    [stored] = sendroom.dovecot.messages(RECIPIENT)
    assert stored.raw.endswith(accepted.raw)  # intact, after the headers LMTP puts in front
    parsed = email.message_from_bytes(stored.raw, policy=email.policy.default)
    assert str(parsed["Subject"]) == "Proefbericht — één"
    assert "delegated (OAuth2)" in parsed.get_body().get_content()  # type: ignore[union-attr]
    assert_no_secrets(result.output, *sendroom.secrets())


def test_send_test_application_over_implicit_tls(
    sendroom: Sendroom, idp_clean: IdentityPlatformEmulator, loopback_pki: LoopbackPki
) -> None:
    sendroom.use_application_permissions(idp_clean, loopback_pki)
    sendroom.use_implicit_tls()
    result = sendroom.cli("-vvv", "send-test", "--to", RECIPIENT)
    assert result.exit_code == 0, result.output
    assert "application token for wicbox@klant.example" in result.output
    assert "implicit TLS" in result.output
    assert idp_clean.request_log.count(grant_type="client_credentials") == 1
    assert len(sendroom.dovecot.messages(RECIPIENT)) == 1
    assert_no_secrets(result.output, *sendroom.secrets())


def test_no_secret_or_token_at_vvv_even_when_refused(sendroom: Sendroom) -> None:
    sendroom.smtp.script_reply("AUTH", AUTH_UNSUCCESSFUL)
    result = sendroom.cli("-vvv", "send-test", "--to", RECIPIENT)
    assert result.exit_code == 3
    assert "DEBUG" in result.output  # the libraries' debug output is there, redacted
    assert_no_secrets(result.output, *sendroom.secrets())


# ---------------------------------------------------------------------------------- Exchange's answers

ANSWERS = {
    "5.7.139": (
        "AUTH",
        AUTH_DISABLED_FOR_TENANT,
        3,
        "Set-CASMailbox -Identity wicbox@klant.example -SmtpClientAuthenticationDisabled $false",
    ),
    "5.7.3": ("AUTH", AUTH_UNSUCCESSFUL, 3, "delegated permission SMTP.Send"),
    "5.7.57": ("MAIL", NOT_AUTHENTICATED, 3, "smtp.office365.com:587"),
    "quota": ("DATA", QUOTA_EXCEEDED, 1, "wait a minute"),
    "5.7.30": (
        "AUTH",
        "550 5.7.30 Basic authentication is not supported for Client Submission.",
        3,
        "`wicbox params set WICBOXMethod OAuth2`",
    ),
}


@pytest.mark.parametrize(("stage", "reply", "exit_code", "fix"), ANSWERS.values(), ids=ANSWERS.keys())
def test_exchange_answer_is_shown_with_its_fix_and_exit_code(
    sendroom: Sendroom, stage: str, reply: str, exit_code: int, fix: str
) -> None:
    sendroom.smtp.script_reply(stage, reply)
    result = sendroom.cli("send-test", "--to", RECIPIENT, "--via", "smtp")  # SMTP's answers alone
    assert result.exit_code == exit_code, result.output
    lines = _step_lines(result.output)
    assert lines[-1] == ("FAIL", stage)
    assert all(status == "OK" for status, _step in lines[:-1])
    assert reply.split(" ", 2)[1] in result.output
    assert "       fix: " in result.output and fix in result.output
    assert "NOT accepted" in result.output
    assert sendroom.smtp.accepted() == []


def test_send_as_another_address_names_add_recipient_permission(sendroom: Sendroom) -> None:
    result = sendroom.cli("send-test", "--to", RECIPIENT, "--from", "Info <info@klant.example>")
    assert result.exit_code == 1, result.output
    assert _step_lines(result.output)[-1] == ("FAIL", "MAIL")
    assert "550 5.7.60" in result.output
    fix = "Add-RecipientPermission info@klant.example -Trustee wicbox@klant.example -AccessRights SendAs"
    assert fix in result.output


def test_basic_method_with_a_password(sendroom: Sendroom) -> None:
    wic = sendroom.room.wic
    password = "Basic-Wachtwoord-2026"
    sendroom.dovecot.set_password(SENDER, password)
    wic.set_params({"WICBOXMETHOD": "Basic", "WICBOX_MAILCLIENT_PASSWORD": password})
    result = sendroom.cli("-vvv", "send-test", "--to", RECIPIENT)
    assert result.exit_code == 0, result.output
    assert "[SKIP] token" in result.output
    assert "Basic (password) as wicbox@klant.example" in result.output
    assert [mail.mechanism for mail in sendroom.smtp.accepted()] in (["PLAIN"], ["LOGIN"])
    assert_no_secrets(result.output, password)


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("--subject", "Hallo\r\nBcc: spion@elders.example"),
        ("--to", "a@klant.example\nBcc: b@elders.example"),
        ("--from", "wicbox@klant.example\r\nX: 1"),
    ],
)
def test_header_injection_is_refused_before_connecting(sendroom: Sendroom, option: str, value: str) -> None:
    args = ["send-test", "--to", RECIPIENT, option, value]
    result = sendroom.cli(*args)
    assert result.exit_code == 2, result.output
    assert f"{option}: contains a line break" in result.output
    assert sendroom.smtp.auth_verdicts() == []


def test_closed_port_exits_4(sendroom: Sendroom) -> None:
    sendroom.room.wic.set_params({"WICBOX_MAILCLIENT_SMTPHOST": "127.0.0.1:9"})
    result = sendroom.cli("send-test", "--to", RECIPIENT)
    assert result.exit_code == 4, result.output
    assert _step_lines(result.output)[-1] == ("FAIL", "connect")


# ---------------------------------------------------------------------------------- the SMTP check


def _smtp_check(sendroom: Sendroom, *, in_use: bool) -> list[tuple[CheckStatus, str, str | None]]:
    from wicbox_bridge.logs.redact import Redactor
    from wicbox_bridge.runtime import Invocation, Runtime

    wic = sendroom.room.wic
    env = {"WICBOX_HOME": str(wic.cli_runner.home)}
    runtime = Runtime(Invocation(wic.config, env, wic.cli_runner.cwd, wic.cli_runner.cwd), Redactor())
    with wic.store() as store:
        params = parse_parameters(read_parameters(store), wic.endpoints()).parameters
    with token_service(runtime, params) as service:
        probe = smtp_login_probe(params, provider_factory(service, params))
        results = list(smtp_checks([global_account(params)], probe, sending_in_use=in_use))
    return [(result.status, result.detail, result.fix) for result in results]


def test_smtp_check_signs_in_and_sends_nothing(sendroom: Sendroom) -> None:
    [(status, detail, _fix)] = _smtp_check(sendroom, in_use=True)
    assert status is CheckStatus.OK, detail
    assert "XOAUTH2 as wicbox@klant.example" in detail and "nothing sent" in detail
    assert sendroom.smtp.accepted() == []
    assert sendroom.smtp.auth_verdicts()[-1][2].accepted


@pytest.mark.parametrize(("in_use", "expected"), [(True, CheckStatus.FAIL), (False, CheckStatus.WARN)])
def test_smtp_check_fails_only_when_the_outbox_is_used(
    sendroom: Sendroom, in_use: bool, expected: CheckStatus
) -> None:
    sendroom.smtp.script_reply("AUTH", AUTH_DISABLED_FOR_TENANT)
    [(status, detail, fix)] = _smtp_check(sendroom, in_use=in_use)
    assert status is expected
    assert "5.7.139" in detail
    assert fix is not None and "SmtpClientAuthenticationDisabled $false" in fix
