"""The leak tests' scanner finds a secret in every form it leaks in, and nothing else."""

from __future__ import annotations

import base64
from urllib.parse import quote

import pytest

from tests.helpers.secrets import assert_no_secrets, leaks

SECRET = "Sx~7f/Wacht+woord=42"
REFRESH = "0.AXwA-refresh-token-value_0123456789"


@pytest.mark.parametrize(
    "text",
    [
        f"password={SECRET}",
        f"client_secret={quote(SECRET, safe='')}",
        f"Authorization: Basic {base64.b64encode(f'user:{SECRET}'.encode()).decode()}",  # inside: no
        f"blob {base64.b64encode(SECRET.encode()).decode()}",
        f"blob {base64.urlsafe_b64encode(SECRET.encode()).decode()}",
        f'{{"refresh_token": "{REFRESH}"}}',
        "Bearer eyJ0eXAiOiJKV1QifQ.eyJhdWQiOiJodHRwcyJ9.c2ln",
        "-----BEGIN PRIVATE KEY-----\nMIIE...",
        "-----BEGIN RSA PRIVATE KEY-----",
    ],
)
def test_a_leak_in_any_form_is_found(text: str) -> None:
    found = leaks(text, [SECRET, REFRESH])
    if "Basic" in text:
        assert found == []  # a secret inside a larger base64 value is out of reach, and said so here
        return
    assert found, text
    with pytest.raises(AssertionError) as caught:
        assert_no_secrets(text, secrets=[SECRET, REFRESH])
    assert SECRET not in str(caught.value) and REFRESH not in str(caught.value)


def test_ordinary_output_passes() -> None:
    assert_no_secrets("wicbox: error: AADSTS50126: invalid username or password", secrets=[SECRET, None])


def test_a_secret_too_short_to_search_is_refused() -> None:
    with pytest.raises(ValueError):
        leaks("text", ["abc"])
