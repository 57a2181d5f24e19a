"""Secrets never reach log output, by value or by shape."""

from __future__ import annotations

import logging

import pytest

from wicbox_bridge.logs.redact import (
    RedactingFilter,
    Redactor,
    mask_token_patterns,
    mask_tokens,
    may_hold_token,
)
from wicbox_bridge.secret import MASK, Secret, mask, mask_values

JWT = "eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9.eyJhdWQiOiJodHRwczovL291dGxvb2sifQ.c2lnbmF0dXJlLWJ5dGVz"


@pytest.mark.parametrize(
    ("text", "kept"),
    [
        (f"token {JWT} end", "token ********** end".replace("**********", MASK)),
        ("Authorization: Bearer abcdefgh12345678", f"Authorization: Bearer {MASK}"),
        ("user=a@b\x01auth=Bearer abcdefgh12345678\x01\x01", f"user=a@b\x01auth=Bearer {MASK}\x01\x01"),
        ("AUTHENTICATE XOAUTH2 dXNlcj1hQGIBYXV0aD1CZWFyZXI=", f"AUTHENTICATE XOAUTH2 {MASK}"),
        ("client_secret=s3cr3t-value&scope=x", f"client_secret={MASK}&scope=x"),
        (
            "AttachmentSessions('AAMk=')?authtoken=Ab-c_d9 (",
            f"AttachmentSessions('AAMk=')?authtoken={MASK} (",
        ),
        ('{"refresh_token": "0.AAAA-bbb"}', f'{{"refresh_token": "{MASK}"}}'),
        ("password=hunter22 user=x", f"password={MASK} user=x"),
        ("nothing secret here", "nothing secret here"),
        ("client_assertion=eyJhbGciOi.x.y&a=b", f"client_assertion={MASK}&a=b"),
        ('"device_code": "GAQABAAEAAAD--DLA3VO7QrddgJg7We"', f'"device_code": "{MASK}"'),
        ('"code": "GAQABAAEAAAD--DLA3VO7QrddgJg7We"', f'"code": "{MASK}"'),  # msal sends it twice
        ('"code": "AADSTS50126", "error_code": 535', '"code": "AADSTS50126", "error_code": 535'),
        ("user_code: FKDXDL9VN", "user_code: FKDXDL9VN"),  # the code a person types: shown on purpose
        (
            "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBg\n-----END PRIVATE KEY-----\n"
            "-----BEGIN CERTIFICATE-----",
            f"-----BEGIN PRIVATE KEY-----{MASK}\n-----BEGIN CERTIFICATE-----",
        ),
    ],
)
def test_mask_tokens_by_shape(text: str, kept: str) -> None:
    assert mask_tokens(text) == kept


SHAPES = [
    f"token {JWT} end",
    "Authorization: Bearer abcdefgh12345678",
    "user=a@b\x01auth=Bearer abcdefgh12345678\x01\x01",
    "AUTHENTICATE XOAUTH2 dXNlcj1hQGIBYXV0aD1CZWFyZXI=",
    "client_secret=s3cr3t-value&scope=x",
    "?authtoken=Ab-c_d9 (",
    '{"refresh_token": "0.AAAA-bbb"}',
    '{"access_token": "0.AAAA-bbb", "id_token": "x.y.z"}',
    "password=hunter22 user=x",
    "client_assertion=eyJhbGciOi.x.y&a=b",
    '"device_code": "GAQABAAEAAAD--DLA3VO7QrddgJg7We"',
    '"code": "GAQABAAEAAAD--DLA3VO7QrddgJg7We"',
    "-----BEGIN RSA PRIVATE KEY-----\nMIIEvQIBADANBg\n-----END RSA PRIVATE KEY-----\n",
]


def _case_variants(text: str) -> list[str]:
    """The text as written, upper, lower and swapped case, and with Unicode characters that the
    patterns' IGNORECASE folds onto ASCII letters (KELVIN SIGN, LONG S, DOTLESS I)."""
    unicode_folds = text.replace("k", "\u212a").replace("s", "\u017f").replace("i", "\u0131")
    return [text, text.upper(), text.lower(), text.swapcase(), unicode_folds]


@pytest.mark.parametrize("text", [variant for shape in SHAPES for variant in _case_variants(shape)])
def test_the_pre_check_never_skips_a_text_a_pattern_masks(text: str) -> None:
    assert mask_tokens(text) == mask_token_patterns(text)
    if mask_token_patterns(text) != text:
        assert may_hold_token(text)


def test_the_pre_check_lets_an_ordinary_mail_line_skip_the_patterns() -> None:
    line = (
        "mailbox=wic@example.be uid=4711 message_id=<abc.123@mail.example.be> project=P-2026-17 "
        "outcome=filed mail_id=90210 size=20480"
    )
    assert not may_hold_token(line)
    assert mask_tokens(line) == line
    assert may_hold_token(line.replace("outcome", "Password"))
    assert may_hold_token(line + " \u00e9")  # not ASCII: the patterns always run


def test_registered_values_are_masked_longest_first() -> None:
    redactor = Redactor()
    redactor.register([Secret("Zomer2026!"), "Zomer2026!-extra", None, "abc"])
    assert redactor.redact("a Zomer2026!-extra b Zomer2026! c abc") == f"a {MASK} b {MASK} c abc"
    redactor.register(["Zomer2026!-extra-long"])  # a later, longer value is still masked whole
    assert redactor.redact("x Zomer2026!-extra-long y") == f"x {MASK} y"


def test_filter_masks_message_args_and_traceback(caplog: pytest.LogCaptureFixture) -> None:
    redactor = Redactor()
    redactor.register([Secret("Wachtwoord-42")])
    logger = logging.getLogger("wicbox.test.redact")
    handler = caplog.handler
    handler.addFilter(RedactingFilter(redactor))
    try:
        with caplog.at_level(logging.INFO, logger="wicbox.test.redact"):
            logger.info("login with %s and %s", "Wachtwoord-42", JWT)
            try:
                raise ValueError("bad password Wachtwoord-42")
            except ValueError:
                logger.exception("failed")
    finally:
        handler.removeFilter(handler.filters[-1])
    assert "Wachtwoord-42" not in caplog.text
    assert JWT not in caplog.text
    assert caplog.text.count(MASK) >= 3


def test_secret_never_shows_its_value() -> None:
    secret = Secret("Geheim-123")
    shown_forms = (repr(secret), str(secret), f"{secret}", f"{secret!r}", f"{secret}")
    for shown in (*shown_forms, "%s" % (secret,)):  # noqa: UP031 - the old formatting path too
        assert "Geheim-123" not in shown
    assert secret.reveal() == "Geheim-123"
    assert secret == Secret("Geheim-123")
    assert secret != Secret("other")
    assert mask("x") == MASK
    assert mask(None) == ""
    assert not Secret("")


def test_mask_values_masks_longest_first_and_skips_empty() -> None:
    text = "pw=abcd1234 and abcd1234-long, nothing for ''"
    masked = mask_values(text, [Secret("abcd1234"), "abcd1234-long", None, ""])
    assert masked == f"pw={MASK} and {MASK}, nothing for ''"
