"""The SMTP sender against the test bed's Exchange-like submission server (tokens from the real msal
through the identity-platform emulator), Exchange Online's answers scripted, and message building."""

from __future__ import annotations

import email
import email.policy
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from tests import adapter_bed
from tests.adapter_bed import IdentityParts
from tools.testbed.dovecot import DovecotServer, free_port
from tools.testbed.idp import IdentityPlatformEmulator, SeededDirectory
from tools.testbed.pki import LoopbackPki, create_loopback_pki
from tools.testbed.smtp import (
    AUTH_DISABLED_FOR_TENANT,
    AUTH_UNSUCCESSFUL,
    NOT_AUTHENTICATED,
    QUOTA_EXCEEDED,
    SEND_AS_DENIED,
    TRANSIENT_FAILURE,
    SmtpServer,
)
from wicbox_bridge.adapters.base import TokenProvider
from wicbox_bridge.adapters.identity import IdentityPlatform, TokenService
from wicbox_bridge.adapters.smtp import (
    Login,
    OAuthLogin,
    PasswordLogin,
    SmtpLogin,
    SmtpSender,
    SmtpSettings,
    Stage,
    StepReport,
)
from wicbox_bridge.adapters.smtp_errors import Answer, AnswerContext, answer_error
from wicbox_bridge.auth.scopes import EXCHANGE_APPLICATION, SMTP_DELEGATED
from wicbox_bridge.config.params import Endpoint, TlsMode
from wicbox_bridge.errors import (
    AuthenticationError,
    BridgeError,
    ConnectionFailure,
    ExitCode,
    ParameterError,
    SendError,
)
from wicbox_bridge.mail.outgoing import (
    OutgoingAttachment,
    OutgoingMail,
    build_message,
    envelope_of_raw,
    message_id_of,
    parse_addresses,
)
from wicbox_bridge.secret import Secret

pytestmark = pytest.mark.testbed

SENDER = "wicbox@klant.example"
RECIPIENT = "project-alpha@klant.example"
PASSWORD = "Zomer 2026!"
BASIC_DISABLED = "550 5.7.30 Basic authentication is not supported for Client Submission."
RECIPIENT_UNKNOWN = "550 5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient not found by SMTP address lookup"


# ---------------------------------------------------------------------------------- the bed


@dataclass
class Bed:
    smtp: SmtpServer
    dovecot: DovecotServer
    pki: LoopbackPki
    idp: IdentityPlatformEmulator
    directory: SeededDirectory
    cache_dir: Path

    def settings(self, tls: TlsMode = TlsMode.STARTTLS, **options: Any) -> SmtpSettings:
        port = self.smtp.starttls_port if tls is TlsMode.STARTTLS else self.smtp.implicit_tls_port
        options.setdefault("retry_backoff_s", 0.01)
        return SmtpSettings(
            Endpoint(self.smtp.host, port, tls), ca_bundle=self.pki.ca_cert, timeout_s=10, **options
        )

    def _service(self, client_id: str, name: str) -> TokenService:
        platform = IdentityPlatform(
            self.idp.base_url, self.directory.tenant_id, client_id, ca_bundle=self.pki.ca_cert
        )
        return TokenService(platform, self.cache_dir / name, encrypt_cache=False)

    def delegated_tokens(self, user: str = SENDER) -> TokenProvider:
        service = self._service(self.directory.public_client_id, "delegated.bin")
        return service.delegated((SMTP_DELEGATED,), user, Secret(self.directory.user(user).password))

    def application_tokens(self) -> TokenProvider:
        service = self._service(self.directory.confidential_client_id, "application.bin")
        return service.application((EXCHANGE_APPLICATION,), Secret(self.directory.confidential_client_secret))

    def delegated(self) -> OAuthLogin:
        return OAuthLogin(SENDER, self.delegated_tokens(), Login.DELEGATED)

    def application(self) -> OAuthLogin:
        return OAuthLogin(SENDER, self.application_tokens(), Login.APPLICATION)

    def sender(self, login: SmtpLogin, steps: list[StepReport] | None = None, **options: Any) -> SmtpSender:
        tls = options.pop("tls", TlsMode.STARTTLS)
        listener = steps.append if steps is not None else None
        return SmtpSender(self.settings(tls, **options), login, on_step=listener)


identity_parts = adapter_bed.identity_parts


@pytest.fixture
def bed(smtp_clean: SmtpServer, dovecot_clean: DovecotServer, identity_parts: IdentityParts) -> Bed:
    dovecot_clean.add_mailbox(SENDER, PASSWORD)
    dovecot_clean.add_mailbox(RECIPIENT)
    parts = identity_parts
    return Bed(smtp_clean, dovecot_clean, parts.pki, parts.idp, parts.directory, parts.cache_dir)


def _mail(subject: str = "Dossier 2026/0042 — één test", sender: str = SENDER) -> bytes:
    mail = OutgoingMail(
        from_addr=f"WICBOX Postbus <{sender}>",
        to=f"Projectteam Alpha <{RECIPIENT}>",
        subject=subject,
        body_text="Beste,\r\n.Een regel die met een punt begint.\r\nGroeten",
        body_html="<p>Beste, <b>één</b> bijlage.</p>",
        attachments=(OutgoingAttachment("verslag één.pdf", "application/pdf", b"%PDF-1.4 test\x00\xff"),),
    )
    return build_message(mail).as_bytes()


# ---------------------------------------------------------------------------------- sending


def test_delegated_send_arrives_intact_and_reports_every_step(bed: Bed) -> None:
    raw = _mail()
    steps: list[StepReport] = []
    result = bed.sender(bed.delegated(), steps).send(raw, SENDER, [RECIPIENT])
    assert [(step.stage, step.ok) for step in steps] == [
        (stage, True)
        for stage in (Stage.TOKEN, Stage.CONNECT, Stage.TLS, Stage.AUTH, Stage.MAIL, Stage.RCPT, Stage.DATA)
    ]
    assert "STARTTLS" in steps[2].detail and "certificate verified" in steps[2].detail
    assert result.message_id == message_id_of(raw)
    assert result.server_reply.startswith("250 2.6.0")
    [accepted] = bed.smtp.accepted()
    assert (accepted.mechanism, accepted.login_user, accepted.rcpt_tos) == ("XOAUTH2", SENDER, (RECIPIENT,))
    assert accepted.raw == raw
    [stored] = bed.dovecot.messages(RECIPIENT)
    assert stored.raw.endswith(raw)
    parsed = email.message_from_bytes(stored.raw, policy=email.policy.default)
    assert str(parsed["Subject"]) == "Dossier 2026/0042 — één test"
    [attachment] = list(parsed.iter_attachments())  # type: ignore[attr-defined]
    assert attachment.get_filename() == "verslag één.pdf"
    assert attachment.get_content() == b"%PDF-1.4 test\x00\xff"


def test_application_send_over_implicit_tls(bed: Bed) -> None:
    bed.dovecot.grant_app_access(bed.directory.confidential_client_sp_id, SENDER)
    steps: list[StepReport] = []
    bed.sender(bed.application(), steps, tls=TlsMode.IMPLICIT).send(_mail(), SENDER, [RECIPIENT])
    assert "implicit TLS" in steps[2].detail
    assert [mail.mechanism for mail in bed.smtp.accepted()] == ["XOAUTH2"]
    assert len(bed.dovecot.messages(RECIPIENT)) == 1


def test_application_without_the_mailbox_grant_names_the_exchange_steps(bed: Bed) -> None:
    with pytest.raises(AuthenticationError) as refused:
        bed.sender(bed.application()).send(_mail(), SENDER, [RECIPIENT])
    assert refused.value.exit_code == ExitCode.AUTHENTICATION
    assert "535 5.7.3" in refused.value.message
    assert refused.value.fix is not None
    assert f"Add-MailboxPermission -Identity {SENDER} -User {bed.directory.confidential_client_sp_id}" in (
        refused.value.fix
    )
    assert "SMTP.SendAsApp" in refused.value.fix
    assert bed.smtp.accepted() == []


def test_basic_login_and_a_wrong_password(bed: Bed) -> None:
    bed.sender(PasswordLogin(SENDER, Secret(PASSWORD))).verify_login()
    bed.sender(PasswordLogin(SENDER, Secret(PASSWORD))).send(_mail(), SENDER, [RECIPIENT])
    assert [mail.mechanism for mail in bed.smtp.accepted()] in (["PLAIN"], ["LOGIN"])
    with pytest.raises(AuthenticationError) as refused:
        bed.sender(PasswordLogin(SENDER, Secret("Winter 2026!"))).send(_mail(), SENDER, [RECIPIENT])
    assert "`wicbox params set WICBOXMethod OAuth2`" in str(refused.value)
    assert "Winter 2026!" not in str(refused.value)


def test_verify_login_sends_nothing(bed: Bed) -> None:
    steps: list[StepReport] = []
    bed.sender(bed.delegated(), steps).verify_login()
    assert [step.stage for step in steps] == [Stage.TOKEN, Stage.CONNECT, Stage.TLS, Stage.AUTH]
    assert bed.smtp.accepted() == []
    assert bed.smtp.auth_verdicts()[-1][2].accepted


def test_sending_as_another_address_is_refused_with_the_send_as_fix(bed: Bed) -> None:
    with pytest.raises(SendError) as refused:
        bed.sender(bed.delegated()).send(_mail(sender=RECIPIENT), RECIPIENT, [SENDER])
    assert refused.value.permanent
    assert f"Add-RecipientPermission {RECIPIENT} -Trustee {SENDER} -AccessRights SendAs" in str(refused.value)


EXCHANGE_ANSWERS = {
    "auth-disabled": (
        "AUTH",
        AUTH_DISABLED_FOR_TENANT,
        AuthenticationError,
        ExitCode.AUTHENTICATION,
        None,
        f"Set-CASMailbox -Identity {SENDER} -SmtpClientAuthenticationDisabled $false",
    ),
    "auth-disabled-tenant": (
        "AUTH",
        AUTH_DISABLED_FOR_TENANT,
        AuthenticationError,
        ExitCode.AUTHENTICATION,
        None,
        "Set-TransportConfig -SmtpClientAuthenticationDisabled $false",
    ),
    "auth-unsuccessful": (
        "AUTH",
        AUTH_UNSUCCESSFUL,
        AuthenticationError,
        ExitCode.AUTHENTICATION,
        None,
        "delegated permission SMTP.Send (Azure > App registrations > (the WICBox app) > API permissions > "
        "Add a permission > Microsoft Graph > Delegated permissions, then grant admin consent)",
    ),
    "basic-not-supported": (
        "AUTH",
        BASIC_DISABLED,
        AuthenticationError,
        ExitCode.AUTHENTICATION,
        None,
        "`wicbox params set WICBOXMethod OAuth2`",
    ),
    "not-authenticated": (
        "MAIL",
        NOT_AUTHENTICATED,
        AuthenticationError,
        ExitCode.AUTHENTICATION,
        None,
        "smtp.office365.com:587",
    ),
    "send-as": (
        "MAIL",
        SEND_AS_DENIED,
        SendError,
        ExitCode.PARTIAL,
        True,
        f"Add-RecipientPermission {SENDER} -Trustee {SENDER} -AccessRights SendAs",
    ),
    "quota": ("DATA", QUOTA_EXCEEDED, SendError, ExitCode.PARTIAL, False, "wait a minute"),
    "recipient": ("RCPT", RECIPIENT_UNKNOWN, SendError, ExitCode.PARTIAL, True, "check the recipient"),
    "transient-every-time": (
        "DATA",
        TRANSIENT_FAILURE,
        SendError,
        ExitCode.PARTIAL,
        False,
        "sent again later",
    ),
}


@pytest.mark.parametrize(
    ("stage", "reply", "error_class", "exit_code", "permanent", "fix"),
    EXCHANGE_ANSWERS.values(),
    ids=EXCHANGE_ANSWERS.keys(),
)
def test_exchange_answers_give_their_fix(
    bed: Bed,
    stage: str,
    reply: str,
    error_class: type[BridgeError],
    exit_code: ExitCode,
    permanent: bool | None,
    fix: str,
) -> None:
    bed.smtp.script_reply(stage, reply, times=3)
    steps: list[StepReport] = []
    with pytest.raises(error_class) as refused:
        bed.sender(bed.delegated(), steps, transient_retries=2).send(_mail(), SENDER, [RECIPIENT])
    error = refused.value
    assert error.exit_code == exit_code
    assert reply.split(" ", 2)[1] in error.message  # the enhanced status code is shown
    assert error.fix is not None and fix in error.fix, error.fix
    if permanent is not None:
        assert isinstance(error, SendError) and error.permanent is permanent
    failed = [step for step in steps if not step.ok]
    assert failed and failed[-1].stage.value == stage and failed[-1].error is error
    assert bed.smtp.accepted() == []


def test_transient_answer_is_retried_with_backoff(bed: Bed) -> None:
    bed.smtp.script_reply("DATA", TRANSIENT_FAILURE, times=2)
    waits: list[float] = []
    sender = SmtpSender(
        bed.settings(retry_backoff_s=0.5, transient_retries=3), bed.delegated(), sleep=waits.append
    )
    sender.send(_mail(), SENDER, [RECIPIENT])
    assert waits == [0.5, 1.0]
    assert len(bed.smtp.accepted()) == 1


def test_a_refused_cached_token_is_replaced_once(bed: Bed) -> None:
    login = bed.delegated()
    bed.sender(login).verify_login()  # the token is in the cache now
    bed.smtp.script_reply("AUTH", AUTH_UNSUCCESSFUL)
    steps: list[StepReport] = []
    bed.sender(login, steps).send(_mail(), SENDER, [RECIPIENT])
    tokens = [step.detail for step in steps if step.stage is Stage.TOKEN]
    assert tokens == [
        f"delegated token for {SENDER} from the token cache",
        f"delegated token for {SENDER} from the identity platform",
    ]
    assert len(bed.smtp.accepted()) == 1


def test_untrusted_certificate_names_the_ca_bundle(bed: Bed, tmp_path: Path) -> None:
    other_ca = create_loopback_pki(tmp_path / "other", (bed.smtp.host,)).ca_cert
    for tls in TlsMode:
        settings = SmtpSettings(bed.settings(tls).endpoint, ca_bundle=other_ca, timeout_s=10)
        with pytest.raises(ConnectionFailure) as failed:
            SmtpSender(settings, bed.delegated()).verify_login()
        assert "certificate could not be verified" in failed.value.message
        assert "WicBoxCaBundle" in str(failed.value)
    assert bed.smtp.auth_verdicts() == []


def test_closed_port_is_a_connection_failure(bed: Bed) -> None:
    settings = SmtpSettings(
        Endpoint(bed.smtp.host, free_port(bed.smtp.host), TlsMode.STARTTLS),
        ca_bundle=bed.pki.ca_cert,
        timeout_s=5,
    )
    with pytest.raises(ConnectionFailure) as failed:
        SmtpSender(settings, bed.delegated()).send(_mail(), SENDER, [RECIPIENT])
    assert failed.value.exit_code == ExitCode.CONNECTION
    assert "the connection was refused" in failed.value.message
    assert "WICBOX_MAILCLIENT_SMTPHOST" in str(failed.value.fix)


class _RecordingHandler:
    def __init__(self) -> None:
        self.commands: list[str] = []

    async def handle_EHLO(
        self, server: Any, session: Any, envelope: Any, hostname: str, responses: list[str]
    ) -> list[str]:
        self.commands.append("EHLO")
        return responses


@pytest.fixture
def plain_smtp(testbed_ip: str) -> Iterator[tuple[Controller, _RecordingHandler]]:
    """An SMTP server without STARTTLS (a network that strips it, or a wrong port)."""
    handler = _RecordingHandler()
    controller = Controller(handler, hostname=testbed_ip, port=free_port(testbed_ip), auth_require_tls=False)
    controller.start()
    try:
        yield controller, handler
    finally:
        controller.stop()


def test_no_sign_in_without_tls(bed: Bed, plain_smtp: tuple[Controller, _RecordingHandler]) -> None:
    controller, handler = plain_smtp
    settings = SmtpSettings(
        Endpoint(controller.hostname, controller.port, TlsMode.STARTTLS),
        ca_bundle=bed.pki.ca_cert,
        timeout_s=5,
    )
    steps: list[StepReport] = []
    with pytest.raises(ConnectionFailure) as failed:
        SmtpSender(settings, PasswordLogin(SENDER, Secret(PASSWORD)), on_step=steps.append).verify_login()
    assert "does not offer STARTTLS" in failed.value.message
    assert [(step.stage, step.ok) for step in steps] == [(Stage.CONNECT, True), (Stage.TLS, False)]
    assert handler.commands == ["EHLO"]  # and no AUTH


def test_nothing_secret_in_reprs(bed: Bed) -> None:
    login = PasswordLogin(SENDER, Secret(PASSWORD))
    assert PASSWORD not in repr(login)
    assert PASSWORD not in repr(bed.sender(login))


# ---------------------------------------------------------------------------------- answers (pure)

CONTEXT = AnswerContext(
    Endpoint("smtp.office365.com", 587, TlsMode.STARTTLS),
    SENDER,
    Login.APPLICATION,
    sender="info@klant.example",
    claims={"roles": ["IMAP.AccessAsApp"], "oid": "sp-1"},
)

ANSWER_CASES = {
    "139": (
        535,
        "5.7.139 Authentication unsuccessful, SmtpClientAuthentication is disabled",
        Stage.AUTH,
        AuthenticationError,
        "SmtpClientAuthenticationDisabled $false",
    ),
    "app-role-missing": (
        535,
        "5.7.3 Authentication unsuccessful",
        Stage.AUTH,
        AuthenticationError,
        "-User sp-1",
    ),
    "30": (550, "5.7.30 Basic authentication is not supported", Stage.AUTH, AuthenticationError, "OAuth2"),
    "57": (
        530,
        "5.7.57 Client not authenticated to send mail",
        Stage.MAIL,
        AuthenticationError,
        "smtp.office365.com:587",
    ),
    "60": (
        550,
        "5.7.60 SMTP; Client does not have permissions to send as this sender",
        Stage.MAIL,
        SendError,
        "Add-RecipientPermission info@klant.example -Trustee wicbox@klant.example",
    ),
    "quota": (
        554,
        "5.2.0 STOREDRV.Submission.Exception:SubmissionQuotaExceededException",
        Stage.DATA,
        SendError,
        "wait a minute",
    ),
    "421": (421, "4.3.2 Service not available", Stage.CONNECT, SendError, "sent again later"),
    "552": (
        552,
        "5.3.4 Message size exceeds fixed maximum message size",
        Stage.DATA,
        SendError,
        "not retried",
    ),
}


@pytest.mark.parametrize(
    ("code", "text", "stage", "error_class", "fix"), ANSWER_CASES.values(), ids=ANSWER_CASES.keys()
)
def test_answer_table(code: int, text: str, stage: Stage, error_class: type[BridgeError], fix: str) -> None:
    error = answer_error(Answer(code, text), stage, CONTEXT)
    assert type(error) is error_class
    assert error.fix is not None and fix in error.fix
    if isinstance(error, SendError):
        assert error.permanent is (code >= 500 and "Quota" not in text)


def test_application_refusal_names_the_missing_role() -> None:
    error = answer_error(Answer(535, "5.7.3 Authentication unsuccessful"), Stage.AUTH, CONTEXT)
    assert "lacks the application permission SMTP.SendAsApp" in error.message


# ---------------------------------------------------------------------------------- building (pure)

INJECTIONS = {
    "from": ({"from_addr": "wicbox@klant.example\r\nBcc: spion@elders.example"}, "From"),
    "to": ({"to": "a@klant.example\nBcc: spion@elders.example"}, "To"),
    "cc": ({"cc": "a@klant.example\r"}, "Cc"),
    "bcc": ({"bcc": "a@klant.example\r\nX: y"}, "Bcc"),
    "subject": ({"subject": "Hallo\r\nBcc: spion@elders.example"}, "Subject"),
    "subject-lf": ({"subject": "Hallo\nX-Injected: 1"}, "Subject"),
}


@pytest.mark.parametrize(("change", "field"), INJECTIONS.values(), ids=INJECTIONS.keys())
def test_header_injection_is_refused_naming_the_field(change: dict[str, str], field: str) -> None:
    values = {"from_addr": SENDER, "to": RECIPIENT, "subject": "Onderwerp", **change}
    with pytest.raises(ParameterError) as refused:
        build_message(OutgoingMail(**values))
    assert refused.value.parameter == field
    assert "header injection" in refused.value.message


ADDRESS_CASES = {
    "plain": ("a@klant.example", ["a@klant.example"]),
    "named": ('"Dupont, Jérôme" <jd@klant.example>', ["jd@klant.example"]),
    "semicolons": ("a@klant.example; Bee <b@klant.example>;", ["a@klant.example", "b@klant.example"]),
    "commas": ("a@klant.example, b@klant.example", ["a@klant.example", "b@klant.example"]),
    "empty": ("", []),
}


@pytest.mark.parametrize(("text", "expected"), ADDRESS_CASES.values(), ids=ADDRESS_CASES.keys())
def test_address_lists(text: str, expected: list[str]) -> None:
    assert [address.addr_spec for address in parse_addresses("To", text)] == expected


@pytest.mark.parametrize("text", ["geen adres", "a@b", "jérôme@klant.example", "a@@klant.example"])
def test_invalid_addresses_are_refused(text: str) -> None:
    with pytest.raises(ParameterError) as refused:
        parse_addresses("To", text)
    assert refused.value.parameter == "To"


def test_built_message_headers_envelope_and_bcc() -> None:
    built = build_message(
        OutgoingMail(
            from_addr="Zoë Peeters <wicbox@klant.example>",
            to="a@klant.example",
            cc="b@klant.example",
            bcc="geheim@klant.example",
            subject="Überweisung ✓",
            body_text="tekst",
        ),
        message_id="<vast-1@klant.example>",
    )
    raw = built.as_bytes()
    assert raw.isascii()
    assert b"geheim@klant.example" not in raw
    assert built.envelope.recipients == ("a@klant.example", "b@klant.example", "geheim@klant.example")
    assert message_id_of(raw) == "<vast-1@klant.example>"
    parsed = email.message_from_bytes(raw, policy=email.policy.default)
    assert str(parsed["Subject"]) == "Überweisung ✓"
    assert str(parsed["From"]) == "Zoë Peeters <wicbox@klant.example>"
    assert parsed["Date"] is not None
    envelope = envelope_of_raw(raw)
    assert envelope is not None and envelope.sender == "wicbox@klant.example"
