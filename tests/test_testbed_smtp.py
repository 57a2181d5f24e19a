"""The test bed's SMTP submission server: XOAUTH2 with Exchange's rules, delivery, scripted faults."""

from __future__ import annotations

import asyncio
import base64
import smtplib
import ssl
from typing import Any

import aiosmtplib
import pytest

from tools.testbed.dovecot import SENT_ITEMS, DovecotServer
from tools.testbed.pki import LoopbackPki
from tools.testbed.smtp import (
    AUTH_DISABLED_FOR_TENANT,
    SmtpServer,
    Stage,
    SubmissionQuota,
    parse_xoauth2,
)
from tools.testbed.tokens import application_claims, delegated_claims, sign_claims

pytestmark = pytest.mark.testbed

SENDER = "wicbox@klant.example"
RECIPIENT = "project-alpha@klant.example"
OUTSIDER = "klant@elders.example"
APP_SP_OID = "9e8d7c6b-5a4f-4e3d-8c2b-1a0f9e8d7c6b"


def _message(subject: str, sender: str = SENDER) -> bytes:
    return (
        f"From: {sender}\r\nTo: {RECIPIENT}\r\nSubject: {subject}\r\n"
        "Message-ID: <t1@klant.example>\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
        "Dossier 2026/0042 is bijgewerkt.\r\n.Lijn die met een punt begint.\r\n"
    ).encode()


def _token(pki: LoopbackPki, claims: dict[str, Any]) -> str:
    return sign_claims(claims, pki.signing_key.read_bytes(), pki.signing_kid)


def _tls(smtp: SmtpServer) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=smtp.ca_path)


def _send(
    smtp: SmtpServer,
    raw: bytes,
    *,
    user: str = SENDER,
    token: str | None = None,
    password: str | None = None,
    sender: str = SENDER,
    recipients: tuple[str, ...] = (RECIPIENT,),
    implicit_tls: bool = False,
) -> None:
    async def token_generator() -> str:
        assert token is not None
        return token

    asyncio.run(
        aiosmtplib.send(
            raw,
            sender=sender,
            recipients=list(recipients),
            hostname=smtp.host,
            port=smtp.implicit_tls_port if implicit_tls else smtp.starttls_port,
            use_tls=implicit_tls,
            start_tls=not implicit_tls,
            tls_context=_tls(smtp),
            username=user,
            password=password,
            oauth_token_generator=token_generator if token is not None else None,
            timeout=10,
        )
    )


@pytest.fixture
def bed(smtp_clean: SmtpServer, dovecot_clean: DovecotServer) -> SmtpServer:
    for mailbox in (SENDER, RECIPIENT):
        dovecot_clean.add_mailbox(mailbox)
    return smtp_clean


def test_xoauth2_delegated_send_is_delivered_over_lmtp(
    bed: SmtpServer, dovecot_clean: DovecotServer, loopback_pki: LoopbackPki
) -> None:
    raw = _message("Delegated")
    _send(bed, raw, token=_token(loopback_pki, delegated_claims(SENDER)), recipients=(RECIPIENT, OUTSIDER))
    [mail] = bed.accepted()
    assert (mail.login_user, mail.mechanism, mail.mail_from) == (SENDER, "XOAUTH2", SENDER)
    assert (mail.rcpt_tos, mail.raw) == ((RECIPIENT, OUTSIDER), raw)
    [stored] = dovecot_clean.messages(RECIPIENT)
    assert stored.raw.endswith(raw)  # LMTP puts Return-Path/Delivered-To/Received in front
    assert dovecot_clean.messages(SENDER) == []
    [kept] = dovecot_clean.messages(SENDER, SENT_ITEMS)  # as Exchange: a copy in the sender's Sent Items
    assert (kept.raw, kept.flags) == (raw, ("\\Seen",))
    assert dovecot_clean.messages(RECIPIENT, SENT_ITEMS) == []


def test_the_sent_items_copy_is_in_the_signed_in_mailbox_also_for_outside_recipients_only(
    bed: SmtpServer, dovecot_clean: DovecotServer, loopback_pki: LoopbackPki
) -> None:
    dovecot_clean.grant_app_access(APP_SP_OID, RECIPIENT)
    raw = _message("Naar buiten", sender=RECIPIENT)
    token = _token(loopback_pki, application_claims(APP_SP_OID))
    _send(bed, raw, user=RECIPIENT, token=token, sender=RECIPIENT, recipients=(OUTSIDER,))
    assert [message.raw for message in dovecot_clean.messages(RECIPIENT, SENT_ITEMS)] == [raw]
    assert dovecot_clean.messages(SENDER, SENT_ITEMS) == []
    assert dovecot_clean.messages(RECIPIENT) == []


def test_wait_until_idle_waits_for_the_connections_since_a_mark(
    bed: SmtpServer, loopback_pki: LoopbackPki
) -> None:
    mark = bed.connections_so_far()
    assert bed.wait_until_idle(timeout_s=1.0, since=mark)
    client = smtplib.SMTP(bed.host, bed.starttls_port, timeout=10)
    try:
        client.starttls(context=_tls(bed))  # the same connection after STARTTLS
        client.ehlo()
        assert bed.connections_so_far() == mark + 1
        assert not bed.wait_until_idle(timeout_s=0.2, since=mark), "a client is still connected"
        assert bed.wait_until_idle(timeout_s=0.2, since=mark + 1)
    finally:
        client.close()  # gone without QUIT, as a killed sender
    assert bed.wait_until_idle(timeout_s=5.0, since=mark)
    _send(bed, _message("Daarna"), token=_token(loopback_pki, delegated_claims(SENDER)))
    assert bed.wait_until_idle(timeout_s=5.0, since=mark)
    assert len(bed.accepted()) == 1


def test_xoauth2_application_send_over_implicit_tls(
    bed: SmtpServer, dovecot_clean: DovecotServer, loopback_pki: LoopbackPki
) -> None:
    dovecot_clean.grant_app_access(APP_SP_OID, SENDER)
    raw = _message("Application")
    _send(bed, raw, token=_token(loopback_pki, application_claims(APP_SP_OID)), implicit_tls=True)
    assert [mail.raw for mail in bed.accepted()] == [raw]
    assert len(dovecot_clean.messages(RECIPIENT)) == 1


@pytest.mark.parametrize(
    ("claims", "reason"),
    [
        pytest.param(
            delegated_claims(SENDER, scopes=("IMAP.AccessAsUser.All",)), "scope SMTP.Send missing", id="scope"
        ),
        pytest.param(delegated_claims(RECIPIENT), "upn does not match the login user", id="upn"),
        pytest.param(
            application_claims(APP_SP_OID, roles=("IMAP.AccessAsApp",)),
            "role SMTP.SendAsApp missing",
            id="role",
        ),
        pytest.param(
            application_claims("0f0e0d0c-0000-4000-8000-00000000abcd"),
            "app has no permission on the mailbox",
            id="grant",
        ),
        pytest.param(delegated_claims(SENDER, lifetime_s=-5), "token expired", id="expired"),
        pytest.param(
            delegated_claims(SENDER, audience="https://graph.microsoft.com"), "wrong audience", id="audience"
        ),
    ],
)
def test_xoauth2_refusals_answer_535_5_7_3(
    bed: SmtpServer,
    dovecot_clean: DovecotServer,
    loopback_pki: LoopbackPki,
    claims: dict[str, Any],
    reason: str,
) -> None:
    dovecot_clean.grant_app_access(APP_SP_OID, SENDER)
    with pytest.raises(aiosmtplib.SMTPAuthenticationError) as refused:
        _send(bed, _message("Refused"), token=_token(loopback_pki, claims))
    assert (refused.value.code, refused.value.message) == (535, "5.7.3 Authentication unsuccessful")
    assert bed.auth_verdicts()[-1][2].reason == reason
    assert bed.accepted() == []


def test_basic_auth_login(bed: SmtpServer, dovecot_clean: DovecotServer) -> None:
    dovecot_clean.set_password(SENDER, "Zomer 2026!")
    with pytest.raises(aiosmtplib.SMTPAuthenticationError):
        _send(bed, _message("Basic"), password="Winter 2026!")
    _send(bed, _message("Basic"), password="Zomer 2026!")
    assert [mail.mechanism for mail in bed.accepted()] in (["LOGIN"], ["PLAIN"])


async def _auth_before_starttls(smtp: SmtpServer, token: str) -> tuple[int, str]:
    client = aiosmtplib.SMTP(hostname=smtp.host, port=smtp.starttls_port, start_tls=False)
    await client.connect()
    try:
        await client.ehlo()
        assert "auth" not in client.esmtp_extensions
        blob = base64.b64encode(f"user={SENDER}\x01auth=Bearer {token}\x01\x01".encode()).decode()
        response = await client.execute_command(b"AUTH", b"XOAUTH2", blob.encode())
        return response.code, response.message
    finally:
        client.close()


def test_auth_refused_before_starttls(bed: SmtpServer, loopback_pki: LoopbackPki) -> None:
    code, _message_text = asyncio.run(
        _auth_before_starttls(bed, _token(loopback_pki, delegated_claims(SENDER)))
    )
    assert code == 530
    assert bed.auth_verdicts() == []


def test_long_token_fits_the_auth_line(bed: SmtpServer, loopback_pki: LoopbackPki) -> None:
    padded = delegated_claims(SENDER) | {"xms_padding": "p" * 6000}  # real tokens reach 2-4 KB
    _send(bed, _message("Long token"), token=_token(loopback_pki, padded))
    assert len(bed.accepted()) == 1


def test_mail_without_auth_and_send_as_other_sender(bed: SmtpServer, loopback_pki: LoopbackPki) -> None:
    async def unauthenticated_mail() -> int:
        client = aiosmtplib.SMTP(hostname=bed.host, port=bed.starttls_port, tls_context=_tls(bed))
        await client.connect()
        try:
            with pytest.raises(aiosmtplib.SMTPSenderRefused) as refused:
                await client.mail(SENDER)
            return refused.value.code
        finally:
            client.close()

    assert asyncio.run(unauthenticated_mail()) == 530
    with pytest.raises(aiosmtplib.SMTPSenderRefused) as refused:
        _send(
            bed, _message("Send as"), token=_token(loopback_pki, delegated_claims(SENDER)), sender=RECIPIENT
        )
    assert refused.value.code == 550
    assert refused.value.message.startswith("5.7.60 ")


@pytest.mark.parametrize(
    ("stage", "reply", "error"),
    [
        (Stage.AUTH, AUTH_DISABLED_FOR_TENANT, aiosmtplib.SMTPAuthenticationError),
        (Stage.AUTH, "535 5.7.3 Authentication unsuccessful", aiosmtplib.SMTPAuthenticationError),
        (Stage.MAIL, "530 5.7.57 Client not authenticated to send mail", aiosmtplib.SMTPSenderRefused),
        (
            Stage.MAIL,
            "550 5.7.60 SMTP; Client does not have permissions to send as this sender",
            aiosmtplib.SMTPSenderRefused,
        ),
        (
            Stage.RCPT,
            "550 5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient not found",
            aiosmtplib.SMTPRecipientsRefused,
        ),
        (
            Stage.DATA,
            "554 5.2.0 STOREDRV.Submission.Exception:SubmissionQuotaExceededException; Failed to process",
            aiosmtplib.SMTPDataError,
        ),
        (Stage.DATA, "451 4.4.4 Temporary server error. Please try again later", aiosmtplib.SMTPDataError),
    ],
)
def test_scripted_reply_reaches_the_client_once(
    bed: SmtpServer, loopback_pki: LoopbackPki, stage: Stage, reply: str, error: type[Exception]
) -> None:
    token = _token(loopback_pki, delegated_claims(SENDER))
    bed.script_reply(stage, reply)
    with pytest.raises(error) as refused:
        _send(bed, _message("Scripted"), token=token)
    code, text = reply.split(" ", 1)
    error_value = refused.value
    if isinstance(error_value, aiosmtplib.SMTPRecipientsRefused):
        error_value = error_value.recipients[0]
    assert isinstance(error_value, aiosmtplib.SMTPResponseException)
    assert (error_value.code, error_value.message) == (int(code), text)
    assert bed.accepted() == []
    _send(bed, _message("Scripted"), token=token)
    assert len(bed.accepted()) == 1


def test_submission_quota(bed: SmtpServer, loopback_pki: LoopbackPki) -> None:
    bed.enable_submission_quota(per_minute=3)
    token = _token(loopback_pki, delegated_claims(SENDER))
    for number in range(3):
        _send(bed, _message(f"Quota {number}"), token=token)
    with pytest.raises(aiosmtplib.SMTPDataError) as refused:
        _send(bed, _message("Quota 4"), token=token)
    assert refused.value.code == 554
    assert "SubmissionQuotaExceededException" in refused.value.message
    assert len(bed.accepted()) == 3


def test_quota_window_slides() -> None:
    now = [0.0]
    quota = SubmissionQuota(clock=lambda: now[0])
    assert quota.try_consume("a@x")  # disabled: unlimited
    quota.enable(per_window=2, window_s=60)
    assert [quota.try_consume("A@x"), quota.try_consume("a@x"), quota.try_consume("a@x")] == [
        True,
        True,
        False,
    ]
    assert quota.try_consume("b@x")
    now[0] = 60.0
    assert quota.try_consume("a@x")


@pytest.mark.parametrize(
    ("blob", "expected"),
    [
        (b"user=a@x\x01auth=Bearer tok.en\x01\x01", ("a@x", "tok.en")),
        (b"user=a@x\x01auth=bearer tok\x01\x01", ("a@x", "tok")),
        (b"user=a@x\x01\x01", None),
        (b"auth=Bearer tok\x01\x01", None),
        (b"user=a@x\x01auth=Basic tok\x01\x01", None),
    ],
)
def test_parse_xoauth2(blob: bytes, expected: tuple[str, str] | None) -> None:
    assert parse_xoauth2(blob) == expected
