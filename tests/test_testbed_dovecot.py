"""The test bed's Dovecot: Exchange Online's sign-in rules, Basic LOGIN, exact bytes, restart."""

from __future__ import annotations

import datetime as dt
import ssl
import time
import warnings
from collections.abc import Callable
from typing import Any

import msal
import pytest
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from imapclient import IMAPClient
from imapclient.exceptions import LoginError

from tests.corpus import require_corpus
from tests.helpers.mailgen import to_crlf
from tools.testbed.dovecot import DovecotServer
from tools.testbed.dovecot_auth import parse_lookup_key, tab_unescape
from tools.testbed.idp import IdentityPlatformEmulator, SeededDirectory
from tools.testbed.pki import LoopbackPki
from tools.testbed.tokens import application_claims, delegated_claims, sign_claims

pytestmark = pytest.mark.testbed

MAILBOX = "wicbox@klant.example"
OTHER_MAILBOX = "project-alpha@klant.example"
APP_SP_OID = "3d2c1b0a-9f8e-4d7c-8b6a-5e4f3a2b1c0d"
APP_CLIENT_ID = "6a5b4c3d-2e1f-4a0b-9c8d-7e6f5a4b3c2d"


def _sign(pki: LoopbackPki, claims: dict[str, Any]) -> str:
    return sign_claims(claims, pki.signing_key.read_bytes(), pki.signing_kid)


def _foreign_key_pem() -> bytes:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _app(**overrides: Any) -> dict[str, Any]:
    return {**application_claims(APP_SP_OID, client_id=APP_CLIENT_ID), **overrides}


TokenFactory = Callable[[LoopbackPki], str]

# (case id, login user, token factory, expected verdict reason)
SIGN_IN_CASES: list[tuple[str, str, TokenFactory, str]] = [
    ("delegated", MAILBOX, lambda p: _sign(p, delegated_claims(MAILBOX)), "accepted"),
    (
        "delegated-upn-other-case",
        MAILBOX,
        lambda p: _sign(p, delegated_claims("WICBOX@Klant.Example")),
        "accepted",
    ),
    (
        "delegated-office365-audience",
        MAILBOX,
        lambda p: _sign(p, delegated_claims(MAILBOX, audience="https://outlook.office365.com")),
        "accepted",
    ),
    ("app-granted", MAILBOX, lambda p: _sign(p, _app()), "accepted"),
    (
        "wrong-upn",
        MAILBOX,
        lambda p: _sign(p, delegated_claims(OTHER_MAILBOX)),
        "upn does not match the login user",
    ),
    (
        "missing-scope",
        MAILBOX,
        lambda p: _sign(p, delegated_claims(MAILBOX, scopes=("SMTP.Send",))),
        "scope IMAP.AccessAsUser.All missing",
    ),
    (
        "missing-role",
        MAILBOX,
        lambda p: _sign(p, _app(roles=["SMTP.SendAsApp"])),
        "role IMAP.AccessAsApp missing",
    ),
    (
        "no-roles-claim",
        MAILBOX,
        lambda p: _sign(p, application_claims(APP_SP_OID, roles=())),
        "role IMAP.AccessAsApp missing",
    ),
    (
        "app-without-mailbox-grant",
        OTHER_MAILBOX,
        lambda p: _sign(p, _app()),
        "app has no permission on the mailbox",
    ),
    (
        "expired",
        MAILBOX,
        lambda p: _sign(p, delegated_claims(MAILBOX, lifetime_s=-60)),
        "token expired",
    ),
    (
        "bad-signature",
        MAILBOX,
        lambda p: sign_claims(delegated_claims(MAILBOX), _foreign_key_pem(), p.signing_kid),
        "bad signature",
    ),
    (
        "wrong-audience",
        MAILBOX,
        lambda p: _sign(p, delegated_claims(MAILBOX, audience="https://graph.microsoft.com")),
        "wrong audience",
    ),
    (
        "other-tenant",
        MAILBOX,
        lambda p: _sign(p, delegated_claims(MAILBOX, tenant_id="0a0b0c0d-0000-4000-8000-000000000000")),
        "wrong issuer",
    ),
    (
        "no-such-mailbox",
        "nobody@klant.example",
        lambda p: _sign(p, delegated_claims("nobody@klant.example")),
        "mailbox does not exist",
    ),
]


@pytest.fixture
def mailboxes(dovecot_clean: DovecotServer) -> DovecotServer:
    dovecot_clean.add_mailbox(MAILBOX)
    dovecot_clean.add_mailbox(OTHER_MAILBOX)
    dovecot_clean.grant_app_access(APP_SP_OID, MAILBOX)
    return dovecot_clean


@pytest.mark.parametrize(
    ("user", "make_token", "reason"),
    [pytest.param(user, factory, reason, id=case) for case, user, factory, reason in SIGN_IN_CASES],
)
def test_xoauth2_sign_in_follows_exchange_rules(
    mailboxes: DovecotServer, loopback_pki: LoopbackPki, user: str, make_token: TokenFactory, reason: str
) -> None:
    client = mailboxes.imap_client()
    try:
        if reason == "accepted":
            client.oauth2_login(user, make_token(loopback_pki))
            assert client.select_folder("INBOX")[b"EXISTS"] == 0
        else:
            with pytest.raises(LoginError, match=r"AUTHENTICATE failed\.$"):
                client.oauth2_login(user, make_token(loopback_pki))
    finally:
        client.shutdown()
    sign_in = mailboxes.sign_ins()[-1]
    assert (sign_in.mechanism, sign_in.user, sign_in.verdict.reason) == ("XOAUTH2", user, reason)


def test_app_granted_by_client_id(mailboxes: DovecotServer, loopback_pki: LoopbackPki) -> None:
    mailboxes.grant_app_access(APP_CLIENT_ID, OTHER_MAILBOX)
    client = mailboxes.imap_client()
    try:
        client.oauth2_login(OTHER_MAILBOX, _sign(loopback_pki, _app()))
        assert client.select_folder("INBOX")[b"EXISTS"] == 0
    finally:
        client.logout()


def test_oauthbearer_sign_in(mailboxes: DovecotServer, loopback_pki: LoopbackPki) -> None:
    client = mailboxes.imap_client()
    try:
        client.oauthbearer_login(MAILBOX, _sign(loopback_pki, delegated_claims(MAILBOX)))
        assert mailboxes.sign_ins()[-1].mechanism == "OAUTHBEARER"
        assert "Sent Items" in [name for _flags, _sep, name in client.list_folders()]
    finally:
        client.logout()


def test_starttls_port_takes_xoauth2(mailboxes: DovecotServer, loopback_pki: LoopbackPki) -> None:
    client = IMAPClient(mailboxes.host, port=mailboxes.imap_starttls_port, ssl=False)
    try:
        client.starttls(ssl.create_default_context(cafile=str(mailboxes.ca_path)))
        client.oauth2_login(MAILBOX, _sign(loopback_pki, delegated_claims(MAILBOX)))
        assert client.noop()[0].startswith(b"NOOP completed")
    finally:
        client.logout()


def test_basic_login_with_password(mailboxes: DovecotServer) -> None:
    mailboxes.set_password(MAILBOX, "Zomer 2026!")
    client = mailboxes.imap_client()
    try:
        with pytest.raises(LoginError, match=r"\] LOGIN failed\.'?$"):
            client.login(MAILBOX, "Winter 2026!")
        client.login(MAILBOX, "Zomer 2026!")
    finally:
        client.logout()
    reasons = [sign_in.verdict.reason for sign_in in mailboxes.sign_ins()]
    assert reasons == ["wrong password", "accepted"]


def test_token_is_not_a_password(mailboxes: DovecotServer, loopback_pki: LoopbackPki) -> None:
    """Exchange takes tokens only through AUTHENTICATE; LOGIN with a token as password fails."""
    mailboxes.set_password(MAILBOX, "Zomer 2026!")
    client = mailboxes.imap_client()
    try:
        with pytest.raises(LoginError):
            client.login(MAILBOX, _sign(loopback_pki, delegated_claims(MAILBOX)))
    finally:
        client.shutdown()


def _corpus_mails(limit: int) -> list[bytes]:
    files = sorted(require_corpus().rglob("*.eml"))[:limit]
    # IMAP hands out CRLF line ends, so the test bed stores CRLF mail.
    return [to_crlf(path.read_bytes()) for path in files]


def test_append_and_fetch_keep_exact_bytes(mailboxes: DovecotServer) -> None:
    raws = _corpus_mails(limit=25)
    when = dt.datetime(2026, 3, 14, 9, 26, 53, tzinfo=dt.timezone.utc)
    uids = [mailboxes.append(MAILBOX, "INBOX", raw, flags=("\\Seen",), internal_date=when) for raw in raws]
    mailboxes.append(MAILBOX, "Archief/2026", b"Subject: x\r\n\r\ny\r\n")
    stored = mailboxes.messages(MAILBOX)
    assert [message.uid for message in stored] == uids
    assert [message.raw for message in stored] == raws
    assert all(message.flags == ("\\Seen",) for message in stored)
    assert stored[0].internal_date.astimezone(dt.timezone.utc).replace(tzinfo=None) == when.replace(
        tzinfo=None
    )
    assert "Archief/2026" in mailboxes.folders(MAILBOX)


def test_reset_empties_mailboxes_and_forgets_accounts(
    dovecot_clean: DovecotServer, loopback_pki: LoopbackPki
) -> None:
    dovecot_clean.add_mailbox(MAILBOX)
    dovecot_clean.append(MAILBOX, "INBOX", b"Subject: old\r\n\r\nold\r\n")
    dovecot_clean.reset()
    dovecot_clean.add_mailbox(MAILBOX)
    assert dovecot_clean.messages(MAILBOX) == []
    dovecot_clean.reset()
    client = dovecot_clean.imap_client()
    try:
        with pytest.raises(LoginError):
            client.oauth2_login(MAILBOX, _sign(loopback_pki, delegated_claims(MAILBOX)))
    finally:
        client.shutdown()


def test_stop_breaks_sessions_and_start_serves_again(
    mailboxes: DovecotServer, loopback_pki: LoopbackPki
) -> None:
    token = _sign(loopback_pki, delegated_claims(MAILBOX))
    client = mailboxes.imap_client()
    client.oauth2_login(MAILBOX, token)
    mailboxes.stop()
    with pytest.raises((OSError, IMAPClient.Error, IMAPClient.AbortError)):
        client.noop()
        client.select_folder("INBOX")
    client.shutdown()
    with pytest.raises(OSError):
        mailboxes.imap_client()
    mailboxes.start()
    again = mailboxes.imap_client()
    try:
        again.oauth2_login(MAILBOX, token)
    finally:
        again.logout()


def test_logins_are_fast(mailboxes: DovecotServer, loopback_pki: LoopbackPki) -> None:
    """Suites log in hundreds of times: connect + TLS + XOAUTH2 + LOGOUT stays well under 50 ms."""
    token = _sign(loopback_pki, delegated_claims(MAILBOX))
    rounds = 40
    started = time.perf_counter()
    for _ in range(rounds):
        client = mailboxes.imap_client()
        client.oauth2_login(MAILBOX, token)
        client.logout()
    per_login_ms = (time.perf_counter() - started) / rounds * 1000
    print(f"Dovecot XOAUTH2 login (connect, TLS, AUTHENTICATE, LOGOUT): {per_login_ms:.1f} ms")
    assert per_login_ms < 50


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("shared/passdb/XOAUTH2/a@b.example/eyJ.x.y", ("XOAUTH2", "a@b.example", "eyJ.x.y")),
        ("shared/passdb/PLAIN/a@b.example/pa/ss word", ("PLAIN", "a@b.example", "pa/ss word")),
        ("shared/passdb/PLAIN/a@b.example/", ("PLAIN", "a@b.example", "")),
        ("shared/passdb/PLAIN", None),
        ("shared/userdb/PLAIN/a@b.example/x", None),
    ],
)
def test_parse_lookup_key(key: str, expected: tuple[str, str, str] | None) -> None:
    assert parse_lookup_key(key) == expected


@pytest.mark.parametrize(
    ("escaped", "plain"),
    [("a\x01tb", "a\tb"), ("\x011\x01n", "\x01\n"), ("x\x01ry", "x\ry"), ("plain", "plain")],
)
def test_tab_unescape(escaped: str, plain: str) -> None:
    assert tab_unescape(escaped) == plain


def test_tokens_from_the_identity_platform_emulator_open_the_mailbox(
    dovecot_clean: DovecotServer,
    idp: IdentityPlatformEmulator,
    idp_directory: SeededDirectory,
    idp_http_session: requests.Session,
) -> None:
    """Smoke test of the whole chain: real msal -> emulator -> XOAUTH2 at Dovecot, both token kinds."""
    mailbox = idp_directory.mailbox
    dovecot_clean.add_mailbox(mailbox.upn)
    dovecot_clean.grant_app_access(idp_directory.confidential_client_sp_id, mailbox.upn)
    public = msal.PublicClientApplication(
        idp_directory.public_client_id,
        authority=idp_directory.authority,
        http_client=idp_http_session,
        instance_discovery=False,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # msal discourages ROPC; WICBOX needs it
        delegated = public.acquire_token_by_username_password(
            mailbox.upn, mailbox.password, scopes=["https://outlook.office.com/IMAP.AccessAsUser.All"]
        )
    confidential = msal.ConfidentialClientApplication(
        idp_directory.confidential_client_id,
        client_credential=idp_directory.confidential_client_secret,
        authority=idp_directory.authority,
        http_client=idp_http_session,
        instance_discovery=False,
    )
    application = confidential.acquire_token_for_client(scopes=["https://outlook.office365.com/.default"])
    for result in (delegated, application):
        assert "access_token" in result, result.get("error_description")
        client = dovecot_clean.imap_client()
        try:
            client.oauth2_login(mailbox.upn, result["access_token"])
            assert client.select_folder("INBOX")[b"EXISTS"] == 0
        finally:
            client.logout()
    assert [sign_in.verdict.principal for sign_in in dovecot_clean.sign_ins()] == [
        mailbox.upn,
        idp_directory.confidential_client_sp_id,
    ]
