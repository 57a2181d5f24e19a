"""The AADSTS catalogue: each code's specific fix; descriptions cut to their first line (pure)."""

from __future__ import annotations

import pytest

from wicbox_bridge.auth.aadsts import (
    CredentialNames,
    IdentityPlatformError,
    advice_for,
    error_code,
    error_from_reply,
    first_line,
    needs_reacquire,
    support_details,
)
from wicbox_bridge.errors import AuthenticationError, ExitCode

NAMES = CredentialNames(account="wicbox@klant.example")
PROJECT_NAMES = CredentialNames(
    account="project-alpha@klant.example",
    username_parameter="project mailbox user",
    password_parameter="project mailbox password",
    project="ALPHA",
)

DESCRIPTION = (
    "AADSTS50126: Error validating credentials due to invalid username or password.\r\n"
    "Trace ID: 0f8c2d4e-1111-2222-3333-444455556666\r\n"
    "Correlation ID: 9a7b6c5d-aaaa-bbbb-cccc-ddddeeeeffff\r\n"
    "Timestamp: 2026-11-03 08:15:02Z"
)


@pytest.mark.parametrize(
    ("code", "names", "fix_says"),
    [
        ("AADSTS50126", NAMES, "WICBOX_MAILCLIENT_PASSWORD"),
        ("AADSTS50126", NAMES, "wicbox@klant.example"),
        ("AADSTS50126", PROJECT_NAMES, "project mailbox password"),
        ("AADSTS7000218", NAMES, '"Allow public client flows"'),
        ("AADSTS7000218", NAMES, "`wicbox params set WICBOX_MAILCLIENT_CLIENTSECRET --prompt`"),
        ("AADSTS7000215", NAMES, "copy its Value (not its Secret ID) and run `wicbox params set"),
        ("AADSTS7000222", NAMES, "enter its Value with `wicbox params set"),
        ("AADSTS700016", NAMES, "WICBOX_MAILCLIENT_CLIENTID"),
        ("AADSTS700016", NAMES, "WICBOX_MAILCLIENT_TENANTID"),
        ("AADSTS90002", NAMES, "WICBOX_MAILCLIENT_TENANTID"),
        ("AADSTS65001", NAMES, "Grant admin consent"),
        ("AADSTS50076", NAMES, "application permissions"),
        ("AADSTS50079", NAMES, "WICBOX_MAILCLIENT_CERTIFICATE"),
        ("AADSTS50079", NAMES, "wicbox signin"),
        ("AADSTS53003", NAMES, "Conditional Access"),
        ("AADSTS50158", NAMES, "wicbox signin"),
        ("AADSTS50076", PROJECT_NAMES, "wicbox signin --project ALPHA"),
        ("AADSTS50055", NAMES, "has expired"),
        ("AADSTS50057", NAMES, "locked or disabled"),
        ("AADSTS7000222", NAMES, "wicbox cert new"),
        ("AADSTS70043", NAMES, "signs in again"),
        ("AADSTS50078", NAMES, "multi-factor authentication"),
        ("AADSTS700027", NAMES, "wicbox cert show"),
        ("AADSTS700024", NAMES, "clock"),
        ("AADSTS50034", NAMES, "WICBOX_MAILCLIENT_USERNAME"),
        ("AADSTS50034", PROJECT_NAMES, "project mailbox user"),
        ("AADSTS1002012", NAMES, "WICBOX_MAILCLIENT_SCOPE"),
        ("AADSTS70011", NAMES, "WICBOX_MAILCLIENT_SCOPE"),
        ("AADSTS50173", NAMES, "signs in again with WICBOX_MAILCLIENT_PASSWORD"),
        ("AADSTS70000", NAMES, "signs in again"),
        ("AADSTS999999", NAMES, "AADSTS999999"),
        (None, NAMES, "WICBOX_MAILCLIENT_CLIENTID"),
    ],
)
def test_each_code_has_its_fix(code: str | None, names: CredentialNames, fix_says: str) -> None:
    advice = advice_for(code, names)
    assert fix_says in advice.fix or fix_says in advice.problem


@pytest.mark.parametrize(
    ("code", "reacquire"),
    [
        ("AADSTS50173", True),
        ("AADSTS70000", True),
        ("AADSTS700082", True),
        ("AADSTS70008", True),
        ("AADSTS50126", False),
        ("AADSTS7000215", False),
        (None, False),
        ("AADSTS1", False),
    ],
)
def test_expired_refresh_tokens_are_reacquired(code: str | None, reacquire: bool) -> None:
    assert needs_reacquire(code) is reacquire


def test_the_catalogue_gives_each_listed_code_its_own_advice() -> None:
    listed = [
        "AADSTS50126",
        "AADSTS7000218",
        "AADSTS7000215",
        "AADSTS7000222",
        "AADSTS700016",
        "AADSTS90002",
        "AADSTS65001",
        "AADSTS50076",
        "AADSTS50034",
        "AADSTS50173",
        "AADSTS1002012",
    ]
    generic = advice_for("AADSTS1", NAMES)
    fixes = {advice_for(code, NAMES).fix for code in listed}
    assert generic.fix not in fixes
    assert len(fixes) == len(listed)


@pytest.mark.parametrize(
    ("reply", "code"),
    [
        ({"error": "invalid_grant", "error_description": DESCRIPTION}, "AADSTS50126"),
        ({"error": "invalid_grant", "error_codes": [7000218], "error_description": "x"}, "AADSTS7000218"),
        ({"error": "invalid_client"}, None),
        ({"error": "invalid_request", "error_description": "no code here"}, None),
    ],
)
def test_error_code(reply: dict[str, object], code: str | None) -> None:
    assert error_code(reply) == code


@pytest.mark.parametrize(
    ("description", "line"),
    [
        (DESCRIPTION, "AADSTS50126: Error validating credentials due to invalid username or password."),
        (
            "AADSTS90002: Tenant 'x' not found. Trace ID: abc Correlation ID: def",
            "AADSTS90002: Tenant 'x' not found.",
        ),
        ("", ""),
    ],
)
def test_first_line(description: str, line: str) -> None:
    assert first_line(description) == line


def test_support_details_come_from_fields_and_description() -> None:
    details = support_details({"error_description": DESCRIPTION, "trace_id": "t-from-field"})
    assert details == {
        "trace_id": "t-from-field",
        "correlation_id": "9a7b6c5d-aaaa-bbbb-cccc-ddddeeeeffff",
        "timestamp": "2026-11-03 08:15:02Z",
    }


def test_error_from_reply() -> None:
    reply = {"error": "invalid_grant", "error_description": DESCRIPTION, "error_codes": [50126]}
    error = error_from_reply(reply, NAMES)
    assert isinstance(error, AuthenticationError)
    assert isinstance(error, IdentityPlatformError)
    assert error.exit_code is ExitCode.AUTHENTICATION
    assert error.code == "AADSTS50126"
    assert error.description == DESCRIPTION.splitlines()[0]
    assert "Trace ID" not in str(error) and "9a7b6c5d" not in str(error)
    assert error.support["correlation_id"] == "9a7b6c5d-aaaa-bbbb-cccc-ddddeeeeffff"
    assert "wicbox@klant.example" in str(error)
    assert (
        "Fix: run `wicbox params set WICBOX_MAILCLIENT_PASSWORD --prompt` with the current password of "
        "wicbox@klant.example" in str(error)
    )
    assert not error.reacquire
