"""WICMan parameters: every rule, every contradiction, the registry; secrets never in any message."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers.secrets import assert_no_secrets as scan_for_secrets
from wicbox_bridge.config.endpoints import EndpointPolicy, policy_from
from wicbox_bridge.config.params import (
    PARAMETER_SPECS,
    AccountMode,
    AfterProcess,
    AuthMethod,
    Endpoint,
    MailProtocol,
    ParsedParameters,
    PermissionType,
    TlsMode,
    find_spec,
    is_secret_parameter,
    parse_parameters,
    validate_value,
)
from wicbox_bridge.errors import ExitCode, ParameterError
from wicbox_bridge.secret import Secret

# Distinctive fake secrets: a leak anywhere is a plain substring match.
FAKE_PASSWORD = "Pw-fake-9Qx!7731"
FAKE_LEGACY_PASSWORD = "Legacy-pw-fake-5521"
FAKE_SECRET = "Sx8Q~fake.client.secret-value_0042"
SECRET_ID_LOOKALIKE = "9f8e7d6c-5b4a-4c3d-8e2f-1a0b9c8d7e6f"
SECRETS = (FAKE_PASSWORD, FAKE_LEGACY_PASSWORD, FAKE_SECRET, SECRET_ID_LOOKALIKE)

CLIENT_ID = "0b6e3f4c-1a2d-4e5f-8a9b-0c1d2e3f4a5b"
TENANT = "5f1c7d2e-8b4a-4c3e-9a6f-2d7e1b0c9a41"
MAILBOX = "wicbox@klant.example"

DELEGATED: dict[str, str | None] = {
    "WICBOX_MAILCLIENT_SCOPE": "Mail.ReadWrite",
    "WICBOX_MAILCLIENT_CLIENTID": CLIENT_ID,
    "WICBOX_MAILCLIENT_CLIENTSECRET": None,
    "WICBOX_MAILCLIENT_TENANTID": TENANT,
    "WICBOX_MAILCLIENT_USERNAME": MAILBOX,
    "WICBOX_MAILCLIENT_PASSWORD": FAKE_PASSWORD,
    "WICBOXACCOUNTMODE": "SINGLE",
    "WICBOXMethod": "OAuth2",
}
APPLICATION: dict[str, str | None] = {
    **DELEGATED,
    "WICBOX_MAILCLIENT_CLIENTSECRET": FAKE_SECRET,
    "WICBOX_MAILCLIENT_PASSWORD": "",
    "WICBOXPassword": FAKE_LEGACY_PASSWORD,  # the old Basic password usually stays behind
}


def with_(base: dict[str, str | None], **changes: str | None) -> dict[str, str | None]:
    result = dict(base)
    result.update(changes)
    return result


def assert_no_secret(*texts: str) -> None:
    scan_for_secrets(*texts, secrets=SECRETS)


# What a WicGlobal.config with WicBoxAllowedHosts naming the customer's and the loopback servers allows.
LOCAL = policy_from(["imap.klant.example", "smtp.klant.example", "127.0.0.1", "::1", "2001:db8::5"])


def parse_ok(raw: dict[str, str | None], policy: EndpointPolicy | None = None) -> ParsedParameters:
    parsed = parse_parameters(raw, policy)
    assert_no_secret(repr(parsed), str(parsed), *parsed.warnings)
    return parsed


def parse_error(raw: dict[str, str | None], policy: EndpointPolicy | None = None) -> ParameterError:
    with pytest.raises(ParameterError) as caught:
        parse_parameters(raw, policy)
    error = caught.value
    assert_no_secret(str(error), repr(error), error.fix or "", error.message)
    assert error.exit_code is ExitCode.CONFIGURATION
    assert error.fix, "every parameter error says how to fix it"
    return error


# --------------------------------------------------------------------------- the two setups of the guide


def test_delegated_setup_with_defaults() -> None:
    parsed = parse_ok(DELEGATED)
    p = parsed.parameters
    assert parsed.warnings == ()
    assert p.permission_type is PermissionType.DELEGATED
    assert (p.client_id, p.tenant_id, p.username) == (CLIENT_ID, TENANT, MAILBOX)
    assert p.password == Secret(FAKE_PASSWORD)
    assert p.client_secret is None
    assert (p.account_mode, p.method, p.protocol) == (
        AccountMode.SINGLE,
        AuthMethod.OAUTH2,
        MailProtocol.AUTO,
    )
    assert p.scope == "Mail.ReadWrite"
    assert p.authority_host == "https://login.microsoftonline.com"
    assert p.imap == Endpoint("outlook.office365.com", 993, TlsMode.IMPLICIT)
    assert p.smtp == Endpoint("smtp.office365.com", 587, TlsMode.STARTTLS)
    assert p.graph_url == "https://graph.microsoft.com"
    assert p.ca_bundle is None
    assert (p.source_folder, p.after_process) == ("INBOX", AfterProcess.MOVE)
    assert (p.processed_folder, p.failed_folder, p.workers) == ("WICBOX/Processed", "WICBOX/Failed", 4)


def test_application_setup_ignores_the_legacy_password() -> None:
    parsed = parse_ok(APPLICATION)
    p = parsed.parameters
    assert p.permission_type is PermissionType.APPLICATION
    assert p.client_secret == Secret(FAKE_SECRET)
    assert p.password is None
    assert parsed.warnings == ()


# --------------------------------------------------------------------------- names, values, duplicates


def test_names_any_case_and_values_stripped() -> None:
    raw = {name.lower(): f"  {value}\t" if value else value for name, value in DELEGATED.items()}
    p = parse_ok(raw).parameters
    assert p.client_id == CLIENT_ID
    assert p.username == MAILBOX
    assert p.password == Secret(FAKE_PASSWORD)
    assert p.scope == "Mail.ReadWrite"


@pytest.mark.parametrize("empty", [None, "", "   ", "\t\n"])
def test_empty_values_mean_not_set(empty: str | None) -> None:
    p = parse_ok(
        with_(DELEGATED, WICBOX_MAILCLIENT_SCOPE=empty, WICBOX_MAILCLIENT_CLIENTSECRET=empty)
    ).parameters
    assert p.scope == ""
    assert p.client_secret is None


@pytest.mark.parametrize(
    ("extra", "ok"),
    [
        ({"wicbox_mailclient_folder": "Archief"}, False),  # differs from WICBOX_MAILCLIENT_FOLDER=INBOX below
        ({"wicbox_mailclient_folder": "inbox "}, False),
        ({"wicbox_mailclient_folder": "INBOX "}, True),  # same value after stripping
        ({"wicbox_mailclient_folder": ""}, False),  # one set, one empty: ambiguous
    ],
)
def test_names_differing_only_in_case(extra: dict[str, str], ok: bool) -> None:
    raw = with_(DELEGATED, WICBOX_MAILCLIENT_FOLDER="INBOX")
    raw.update(extra)
    if ok:
        assert parse_ok(raw).parameters.source_folder == "INBOX"
    else:
        error = parse_error(raw)
        assert error.parameter == "WICBOX_MAILCLIENT_FOLDER"
        assert "twice" in error.message


def test_duplicate_secret_rows_do_not_show_values() -> None:
    raw = with_(DELEGATED)
    raw["wicbox_mailclient_password"] = FAKE_LEGACY_PASSWORD
    error = parse_error(raw)
    assert error.parameter == "WICBOX_MAILCLIENT_PASSWORD"


def test_a_wicglobal_key_in_the_database_gets_a_warning_with_unset() -> None:
    parsed = parse_ok(with_(DELEGATED, WicBoxMaxMailsPerRun="abc"))
    assert (
        "WICBOXMAXMAILSPERRUN is stored as a WICMan parameter but is read from WicGlobal.config only: it has "
        "no effect. Fix: `wicbox params unset WICBOXMAXMAILSPERRUN`; this goes in WicGlobal.config: "
        '<add key="WicBoxMaxMailsPerRun" value="..." />.'
    ) in parsed.warnings


def test_unknown_lookalike_names_get_a_warning() -> None:
    parsed = parse_ok(with_(DELEGATED, WICBOX_MAILCLIENT_WORKER="8", WICBOXINTERVAL="5"))
    assert any("WICBOX_MAILCLIENT_WORKER" in w and "WICBOX_MAILCLIENT_WORKERS" in w for w in parsed.warnings)
    assert not any("WICBOXINTERVAL" in w for w in parsed.warnings)


# --------------------------------------------------------------------------- client id, secret, tenant


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (CLIENT_ID, CLIENT_ID),
        (CLIENT_ID.upper(), CLIENT_ID),
        ("{" + CLIENT_ID + "}", CLIENT_ID),
    ],
)
def test_client_id_forms(value: str, expected: str) -> None:
    assert parse_ok(with_(DELEGATED, WICBOX_MAILCLIENT_CLIENTID=value)).parameters.client_id == expected


@pytest.mark.parametrize(
    "value", [None, "WICBox", "0b6e3f4c1a2d4e5f8a9b0c1d2e3f4a5b", CLIENT_ID + "0", FAKE_SECRET]
)
def test_client_id_missing_or_malformed(value: str | None) -> None:
    error = parse_error(with_(DELEGATED, WICBOX_MAILCLIENT_CLIENTID=value))
    assert error.parameter == "WICBOX_MAILCLIENT_CLIENTID"
    assert "Application (client) ID" in str(error)
    assert "App registrations" in str(error)


def test_secret_id_instead_of_secret_value_is_a_warning() -> None:
    parsed = parse_ok(with_(APPLICATION, WICBOX_MAILCLIENT_CLIENTSECRET=SECRET_ID_LOOKALIKE))
    assert parsed.parameters.client_secret == Secret(SECRET_ID_LOOKALIKE)
    (warning,) = parsed.warnings
    assert "WICBOX_MAILCLIENT_CLIENTSECRET" in warning
    assert "copy the secret's Value column, not the Secret ID" in warning


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (TENANT, TENANT),
        (TENANT.upper(), TENANT),
        ("klant.onmicrosoft.com", "klant.onmicrosoft.com"),
        ("Klant.Example", "klant.example"),
    ],
)
def test_tenant_forms(value: str, expected: str) -> None:
    assert parse_ok(with_(DELEGATED, WICBOX_MAILCLIENT_TENANTID=value)).parameters.tenant_id == expected
    assert parse_ok(with_(APPLICATION, WICBOX_MAILCLIENT_TENANTID=value)).parameters.tenant_id == expected


def test_organizations_is_allowed_for_delegated_permissions() -> None:
    p = parse_ok(with_(DELEGATED, WICBOX_MAILCLIENT_TENANTID="Organizations")).parameters
    assert p.tenant_id == "organizations"


@pytest.mark.parametrize(
    ("base", "value", "expected"),
    [
        (DELEGATED, None, "required"),
        (DELEGATED, "common", "work accounts"),
        (DELEGATED, "CONSUMERS", "work accounts"),
        (APPLICATION, "common", "work accounts"),
        (APPLICATION, "organizations", "application permissions"),
        (DELEGATED, "klant", "neither a GUID nor a domain"),
        (DELEGATED, "https://login.microsoftonline.com/klant.example", "neither a GUID nor a domain"),
        (DELEGATED, "5f1c7d2e-8b4a-4c3e-9a6f", "neither a GUID nor a domain"),
    ],
)
def test_tenant_refused(base: dict[str, str | None], value: str | None, expected: str) -> None:
    error = parse_error(with_(base, WICBOX_MAILCLIENT_TENANTID=value))
    assert error.parameter == "WICBOX_MAILCLIENT_TENANTID"
    assert expected in error.message
    assert "Directory (tenant) ID" in str(error.fix)


# --------------------------------------------------------------------------- username/password, legacy


def test_legacy_username_and_password_are_used_with_warnings() -> None:
    raw = with_(
        DELEGATED,
        WICBOX_MAILCLIENT_USERNAME="",
        WICBOX_MAILCLIENT_PASSWORD=None,
        WICBOXUSERNAME="legacy@klant.example",
        wicboxpassword=FAKE_LEGACY_PASSWORD,
    )
    parsed = parse_ok(raw)
    assert parsed.parameters.username == "legacy@klant.example"
    assert parsed.parameters.password == Secret(FAKE_LEGACY_PASSWORD)
    assert len(parsed.warnings) == 2
    assert "WICBOXUsername" in parsed.warnings[0]
    assert "WICBOXPassword" in parsed.warnings[1]


def test_new_parameters_win_over_legacy_ones_without_warning() -> None:
    parsed = parse_ok(
        with_(DELEGATED, WICBOXUsername="old@klant.example", WICBOXPassword=FAKE_LEGACY_PASSWORD)
    )
    assert parsed.parameters.username == MAILBOX
    assert parsed.parameters.password == Secret(FAKE_PASSWORD)
    assert parsed.warnings == ()


@pytest.mark.parametrize("value", ["wicbox", "wicbox@", "@klant.example", "wic box@klant.example", "a@b@c.d"])
def test_username_must_be_an_address(value: str) -> None:
    error = parse_error(with_(DELEGATED, WICBOX_MAILCLIENT_USERNAME=value))
    assert error.parameter == "WICBOX_MAILCLIENT_USERNAME"
    assert "e-mail address" in error.message


def test_malformed_legacy_username_is_refused_too() -> None:
    raw = with_(DELEGATED, WICBOX_MAILCLIENT_USERNAME=None, WICBOXUsername="DOMAIN\\wicbox")
    error = parse_error(raw)
    assert error.parameter == "WICBOX_MAILCLIENT_USERNAME"


# --------------------------------------------------------------------------- account mode and method


@pytest.mark.parametrize(
    ("changes", "mode", "method", "warning"),
    [
        ({"WICBOXACCOUNTMODE": "multiple"}, AccountMode.MULTIPLE, AuthMethod.OAUTH2, None),
        ({"WICBOXACCOUNTMODE": " Mix "}, AccountMode.MIX, AuthMethod.OAUTH2, None),
        (
            {"WICBOXACCOUNTMODE": None, "ACCOUNTMODE": "MULTIPLE"},
            AccountMode.MULTIPLE,
            AuthMethod.OAUTH2,
            "wicbox params migrate",
        ),
        ({"WICBOXACCOUNTMODE": None}, AccountMode.SINGLE, AuthMethod.OAUTH2, "neither WICBOXACCOUNTMODE"),
        (
            {"WICBOXACCOUNTMODE": "SINGLE", "ACCOUNTMODE": "MIX"},
            AccountMode.SINGLE,
            AuthMethod.OAUTH2,
            "ACCOUNTMODE (legacy) differs",
        ),
        (
            {"WICBOXACCOUNTMODE": "SINGLE", "ACCOUNTMODE": "single"},
            AccountMode.SINGLE,
            AuthMethod.OAUTH2,
            None,
        ),
        # the guide's "WICBOXMETHOD op MULTIPLE"
        (
            {"WICBOXACCOUNTMODE": None, "WICBOXMethod": "MULTIPLE"},
            AccountMode.MULTIPLE,
            AuthMethod.OAUTH2,
            "an account mode",
        ),
        (
            {"WICBOXACCOUNTMODE": "MIX", "WICBOXMethod": "mix"},
            AccountMode.MIX,
            AuthMethod.OAUTH2,
            "an account mode",
        ),
        (
            {"WICBOXACCOUNTMODE": None, "ACCOUNTMODE": "SINGLE", "WICBOXMethod": "MULTIPLE"},
            AccountMode.MULTIPLE,
            AuthMethod.OAUTH2,
            "an account mode",
        ),
        ({"WICBOXMethod": None}, AccountMode.SINGLE, AuthMethod.OAUTH2, None),
        ({"WICBOXMethod": "OAUTH2"}, AccountMode.SINGLE, AuthMethod.OAUTH2, None),
        ({"WICBOXMethod": "oauth"}, AccountMode.SINGLE, AuthMethod.OAUTH2, None),
        ({"WICBOXMethod": "OAuth 2.0"}, AccountMode.SINGLE, AuthMethod.OAUTH2, None),
        ({"WICBOXMethod": "oauth-2"}, AccountMode.SINGLE, AuthMethod.OAUTH2, None),
        ({"WICBOXMethod": "BASIC"}, AccountMode.SINGLE, AuthMethod.BASIC, None),
        ({"WICBOXMethod": "Basic Auth"}, AccountMode.SINGLE, AuthMethod.BASIC, None),
    ],
)
def test_mode_and_method(
    changes: dict[str, str | None], mode: AccountMode, method: AuthMethod, warning: str | None
) -> None:
    parsed = parse_ok(with_(DELEGATED, **changes))
    assert parsed.parameters.account_mode is mode
    assert parsed.parameters.method is method
    if warning is None:
        assert parsed.warnings == ()
    else:
        assert len(parsed.warnings) == 1
        assert warning in parsed.warnings[0]


@pytest.mark.parametrize(
    ("changes", "parameter", "expected"),
    [
        (
            {"WICBOXACCOUNTMODE": "MULTIPEL"},
            "WICBOXACCOUNTMODE",
            "'MULTIPEL' is not an account mode; did you mean MULTIPLE?",
        ),
        (
            {"WICBOXACCOUNTMODE": None, "ACCOUNTMODE": "2"},
            "ACCOUNTMODE",
            "'2' is not an account mode (one of: SINGLE, MULTIPLE, MIX)",
        ),
        ({"WICBOXMethod": "NTLM"}, "WICBOXMethod", "'NTLM' is not a sign-in method (one of: OAuth2, Basic)"),
        (
            {"WICBOXACCOUNTMODE": "SINGLE", "WICBOXMethod": "MULTIPLE"},
            "WICBOXMethod",
            "WICBOXACCOUNTMODE is SINGLE",
        ),
    ],
)
def test_mode_and_method_refused(changes: dict[str, str | None], parameter: str, expected: str) -> None:
    error = parse_error(with_(DELEGATED, **changes))
    assert error.parameter == parameter
    assert expected in error.message


# --------------------------------------------------------------------------- contradictions


@pytest.mark.parametrize(
    ("base", "changes", "parameter", "expected"),
    [
        # OAuth2 needs the app registration
        (
            DELEGATED,
            {"WICBOX_MAILCLIENT_CLIENTID": None},
            "WICBOX_MAILCLIENT_CLIENTID",
            "required for OAuth2",
        ),
        (
            APPLICATION,
            {"WICBOX_MAILCLIENT_CLIENTID": ""},
            "WICBOX_MAILCLIENT_CLIENTID",
            "required for OAuth2",
        ),
        (
            DELEGATED,
            {"WICBOX_MAILCLIENT_TENANTID": None},
            "WICBOX_MAILCLIENT_TENANTID",
            "required for OAuth2",
        ),
        # a client secret and a password together
        (
            APPLICATION,
            {"WICBOX_MAILCLIENT_PASSWORD": FAKE_PASSWORD},
            "WICBOX_MAILCLIENT_PASSWORD",
            "application permissions do not use WICBOX_MAILCLIENT_PASSWORD",
        ),
        # delegated in SINGLE / MIX needs the global mailbox (its password is optional: `wicbox signin`)
        (DELEGATED, {"WICBOX_MAILCLIENT_USERNAME": None}, "WICBOX_MAILCLIENT_USERNAME", "delegated"),
        (
            DELEGATED,
            {"WICBOXACCOUNTMODE": "MIX", "WICBOX_MAILCLIENT_USERNAME": None},
            "WICBOX_MAILCLIENT_USERNAME",
            "MIX mode",
        ),
        # application permissions in SINGLE / MIX need the mailbox to open
        (APPLICATION, {"WICBOX_MAILCLIENT_USERNAME": None}, "WICBOX_MAILCLIENT_USERNAME", "mailbox to open"),
        (
            APPLICATION,
            {"WICBOXACCOUNTMODE": "MIX", "WICBOX_MAILCLIENT_USERNAME": None},
            "WICBOX_MAILCLIENT_USERNAME",
            "MIX mode",
        ),
        # Basic needs a login; Graph has no Basic
        (
            DELEGATED,
            {"WICBOXMethod": "Basic", "WICBOX_MAILCLIENT_USERNAME": None},
            "WICBOX_MAILCLIENT_USERNAME",
            "Basic authentication",
        ),
        (
            DELEGATED,
            {"WICBOXMethod": "Basic", "WICBOX_MAILCLIENT_PASSWORD": None},
            "WICBOX_MAILCLIENT_PASSWORD",
            "Basic authentication",
        ),
        (
            DELEGATED,
            {"WICBOXMethod": "Basic", "WICBOX_MAILCLIENT_PROTOCOL": "graph"},
            "WICBOX_MAILCLIENT_PROTOCOL",
            "GRAPH needs OAuth2",
        ),
    ],
)
def test_contradictions(
    base: dict[str, str | None], changes: dict[str, str | None], parameter: str, expected: str
) -> None:
    error = parse_error(with_(base, **changes))
    assert error.parameter == parameter
    assert expected in str(error)


@pytest.mark.parametrize("mode", ["SINGLE", "MIX"])
@pytest.mark.parametrize("password", [None, " "])
def test_delegated_without_a_password_uses_the_saved_sign_in(mode: str, password: str | None) -> None:
    parsed = parse_parameters(with_(DELEGATED, WICBOXACCOUNTMODE=mode, WICBOX_MAILCLIENT_PASSWORD=password))
    assert parsed.parameters.password is None
    assert parsed.parameters.permission_type.value == "delegated"
    basic = parse_error(with_(DELEGATED, WICBOXMethod="Basic", WICBOX_MAILCLIENT_PASSWORD=password))
    assert basic.parameter == "WICBOX_MAILCLIENT_PASSWORD"  # Basic still needs the password


def test_secret_and_password_fix_says_what_to_clear() -> None:
    error = parse_error(with_(APPLICATION, WICBOX_MAILCLIENT_PASSWORD=FAKE_PASSWORD))
    assert error.fix == (
        "run `wicbox params set WICBOX_MAILCLIENT_PASSWORD --clear`, or "
        "`wicbox params set WICBOX_MAILCLIENT_CLIENTSECRET --clear` to use delegated permissions"
    )


@pytest.mark.parametrize(
    ("base", "changes"),
    [
        # MULTIPLE uses each project's own mailbox: no global login needed
        (
            DELEGATED,
            {
                "WICBOXACCOUNTMODE": "MULTIPLE",
                "WICBOX_MAILCLIENT_USERNAME": None,
                "WICBOX_MAILCLIENT_PASSWORD": None,
            },
        ),
        (APPLICATION, {"WICBOXACCOUNTMODE": "MULTIPLE", "WICBOX_MAILCLIENT_USERNAME": None}),
        (
            DELEGATED,
            {
                "WICBOXMethod": "Basic",
                "WICBOXACCOUNTMODE": "MULTIPLE",
                "WICBOX_MAILCLIENT_USERNAME": None,
                "WICBOX_MAILCLIENT_PASSWORD": None,
                "WICBOX_MAILCLIENT_CLIENTID": None,
                "WICBOX_MAILCLIENT_TENANTID": None,
            },
        ),
    ],
)
def test_multiple_mode_needs_no_global_login(
    base: dict[str, str | None], changes: dict[str, str | None]
) -> None:
    p = parse_ok(with_(base, **changes)).parameters
    assert p.account_mode is AccountMode.MULTIPLE
    assert p.username == ""


def test_basic_ignores_a_client_secret_with_a_warning() -> None:
    parsed = parse_ok(with_(DELEGATED, WICBOXMethod="Basic", WICBOX_MAILCLIENT_CLIENTSECRET=FAKE_SECRET))
    assert parsed.parameters.client_secret is None
    assert parsed.parameters.permission_type is PermissionType.DELEGATED
    assert parsed.parameters.password == Secret(FAKE_PASSWORD)
    (warning,) = parsed.warnings
    assert "WICBOX_MAILCLIENT_CLIENTSECRET" in warning
    assert "ignored" in warning


def test_basic_needs_no_app_registration() -> None:
    raw = with_(
        DELEGATED, WICBOXMethod="Basic", WICBOX_MAILCLIENT_CLIENTID=None, WICBOX_MAILCLIENT_TENANTID=None
    )
    assert parse_ok(raw).parameters.method is AuthMethod.BASIC


# --------------------------------------------------------------------------- servers


@pytest.mark.parametrize(
    ("host", "tls", "expected"),
    [
        (None, None, Endpoint("outlook.office365.com", 993, TlsMode.IMPLICIT)),
        ("imap.klant.example", None, Endpoint("imap.klant.example", 993, TlsMode.IMPLICIT)),
        ("IMAP.Klant.Example:143", None, Endpoint("imap.klant.example", 143, TlsMode.STARTTLS)),
        ("127.0.0.1:10993", None, Endpoint("127.0.0.1", 10993, TlsMode.IMPLICIT)),
        ("127.0.0.1:10143", "starttls", Endpoint("127.0.0.1", 10143, TlsMode.STARTTLS)),
        ("127.0.0.1:10993", "IMPLICIT", Endpoint("127.0.0.1", 10993, TlsMode.IMPLICIT)),
        ("[::1]:993", None, Endpoint("::1", 993, TlsMode.IMPLICIT)),
        ("[2001:db8::5]", None, Endpoint("2001:db8::5", 993, TlsMode.IMPLICIT)),
        ("[::1]:1143", "STARTTLS", Endpoint("::1", 1143, TlsMode.STARTTLS)),
        ("outlook.office365.com:993", "implicit", Endpoint("outlook.office365.com", 993, TlsMode.IMPLICIT)),
    ],
)
def test_imap_endpoint(host: str | None, tls: str | None, expected: Endpoint) -> None:
    raw = with_(DELEGATED, WICBOX_MAILCLIENT_IMAPHOST=host, WICBOX_MAILCLIENT_IMAPTLS=tls)
    assert parse_ok(raw, LOCAL).parameters.imap == expected


@pytest.mark.parametrize(
    ("host", "tls", "expected"),
    [
        (None, None, Endpoint("smtp.office365.com", 587, TlsMode.STARTTLS)),
        ("smtp.klant.example:25", None, Endpoint("smtp.klant.example", 25, TlsMode.STARTTLS)),
        ("smtp.klant.example:465", None, Endpoint("smtp.klant.example", 465, TlsMode.IMPLICIT)),
        ("smtp.klant.example", None, Endpoint("smtp.klant.example", 587, TlsMode.STARTTLS)),
        ("127.0.0.1:2525", None, Endpoint("127.0.0.1", 2525, TlsMode.STARTTLS)),
        ("127.0.0.1:2465", "implicit", Endpoint("127.0.0.1", 2465, TlsMode.IMPLICIT)),
        ("[::1]:587", None, Endpoint("::1", 587, TlsMode.STARTTLS)),
    ],
)
def test_smtp_endpoint(host: str | None, tls: str | None, expected: Endpoint) -> None:
    raw = with_(DELEGATED, WICBOX_MAILCLIENT_SMTPHOST=host, WICBOX_MAILCLIENT_SMTPTLS=tls)
    assert parse_ok(raw, LOCAL).parameters.smtp == expected


@pytest.mark.parametrize(
    ("changes", "parameter"),
    [
        ({"WICBOX_MAILCLIENT_IMAPHOST": "imaps://outlook.office365.com"}, "WICBOX_MAILCLIENT_IMAPHOST"),
        ({"WICBOX_MAILCLIENT_IMAPHOST": "::1:993"}, "WICBOX_MAILCLIENT_IMAPHOST"),
        ({"WICBOX_MAILCLIENT_IMAPHOST": "[::zz]:993"}, "WICBOX_MAILCLIENT_IMAPHOST"),
        ({"WICBOX_MAILCLIENT_IMAPHOST": "host:0"}, "WICBOX_MAILCLIENT_IMAPHOST"),
        ({"WICBOX_MAILCLIENT_IMAPHOST": "host:99999"}, "WICBOX_MAILCLIENT_IMAPHOST"),
        ({"WICBOX_MAILCLIENT_IMAPHOST": "host:"}, "WICBOX_MAILCLIENT_IMAPHOST"),
        ({"WICBOX_MAILCLIENT_IMAPHOST": "host:imap"}, "WICBOX_MAILCLIENT_IMAPHOST"),
        ({"WICBOX_MAILCLIENT_IMAPHOST": "bad_host!"}, "WICBOX_MAILCLIENT_IMAPHOST"),
        ({"WICBOX_MAILCLIENT_IMAPHOST": "two words"}, "WICBOX_MAILCLIENT_IMAPHOST"),
        ({"WICBOX_MAILCLIENT_IMAPTLS": "maybe"}, "WICBOX_MAILCLIENT_IMAPTLS"),
        (
            {"WICBOX_MAILCLIENT_IMAPHOST": "host:993", "WICBOX_MAILCLIENT_IMAPTLS": "STARTTLS"},
            "WICBOX_MAILCLIENT_IMAPTLS",
        ),
        (
            {"WICBOX_MAILCLIENT_IMAPHOST": "host:143", "WICBOX_MAILCLIENT_IMAPTLS": "implicit"},
            "WICBOX_MAILCLIENT_IMAPTLS",
        ),
        (
            {"WICBOX_MAILCLIENT_SMTPHOST": "smtp:465", "WICBOX_MAILCLIENT_SMTPTLS": "starttls"},
            "WICBOX_MAILCLIENT_SMTPTLS",
        ),
        ({"WICBOX_MAILCLIENT_SMTPHOST": "smtp:abc"}, "WICBOX_MAILCLIENT_SMTPHOST"),
    ],
)
def test_endpoint_refused(changes: dict[str, str | None], parameter: str) -> None:
    assert parse_error(with_(DELEGATED, **changes)).parameter == parameter


def test_host_with_credentials_is_not_echoed() -> None:
    error = parse_error(with_(DELEGATED, WICBOX_MAILCLIENT_IMAPHOST=f"user:{FAKE_PASSWORD}@imap.example:993"))
    assert error.parameter == "WICBOX_MAILCLIENT_IMAPHOST"


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("WICBOX_MAILCLIENT_AUTHORITYHOST", None, "https://login.microsoftonline.com"),
        ("WICBOX_MAILCLIENT_AUTHORITYHOST", "https://127.0.0.1:8443", "https://127.0.0.1:8443"),
        (
            "WICBOX_MAILCLIENT_AUTHORITYHOST",
            "HTTPS://Login.Microsoftonline.US/",
            "https://login.microsoftonline.us",
        ),
        ("WICBOX_MAILCLIENT_AUTHORITYHOST", "https://[::1]:8443", "https://[::1]:8443"),
        ("WICBOX_MAILCLIENT_GRAPHURL", None, "https://graph.microsoft.com"),
        ("WICBOX_MAILCLIENT_GRAPHURL", "https://graph.microsoft.us/", "https://graph.microsoft.us"),
        ("WICBOX_MAILCLIENT_GRAPHURL", "https://127.0.0.1:9443", "https://127.0.0.1:9443"),
    ],
)
def test_https_addresses(name: str, value: str | None, expected: str) -> None:
    p = parse_ok(with_(DELEGATED, **{name: value}), LOCAL).parameters
    assert (p.authority_host if "AUTHORITY" in name else p.graph_url) == expected


@pytest.mark.parametrize("name", ["WICBOX_MAILCLIENT_AUTHORITYHOST", "WICBOX_MAILCLIENT_GRAPHURL"])
@pytest.mark.parametrize(
    "value",
    [
        "http://login.microsoftonline.com",
        "login.microsoftonline.com",
        "https://login.microsoftonline.com/klant.example",
        "https://graph.microsoft.com/v1.0",
        "https://host?x=1",
        "https://host#frag",
        f"https://user:{FAKE_PASSWORD}@host",
        "https://host:notaport",
        "https://",
    ],
)
def test_https_addresses_refused(name: str, value: str) -> None:
    error = parse_error(with_(DELEGATED, **{name: value}))
    assert error.parameter == name
    assert "https://" in str(error)


# --------------------------------------------------------------------------- folders, workers, the rest


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({}, ("INBOX", AfterProcess.MOVE, "WICBOX/Processed", "WICBOX/Failed")),
        (
            {"WICBOX_MAILCLIENT_FOLDER": "Postvak IN/WIC", "WICBOX_MAILCLIENT_AFTERPROCESS": "delete"},
            ("Postvak IN/WIC", AfterProcess.DELETE, "WICBOX/Processed", "WICBOX/Failed"),
        ),
        (
            {"WICBOX_MAILCLIENT_AFTERPROCESS": "Seen", "WICBOX_MAILCLIENT_PROCESSEDFOLDER": "INBOX"},
            ("INBOX", AfterProcess.SEEN, "INBOX", "WICBOX/Failed"),
        ),  # processed folder unused unless MOVE
        (
            {"WICBOX_MAILCLIENT_PROCESSEDFOLDER": "Verwerkt", "WICBOX_MAILCLIENT_FAILEDFOLDER": "Mislukt"},
            ("INBOX", AfterProcess.MOVE, "Verwerkt", "Mislukt"),
        ),
    ],
)
def test_folders(changes: dict[str, str | None], expected: tuple[str, AfterProcess, str, str]) -> None:
    p = parse_ok(with_(DELEGATED, **changes)).parameters
    assert (p.source_folder, p.after_process, p.processed_folder, p.failed_folder) == expected


@pytest.mark.parametrize(
    ("changes", "parameter"),
    [
        ({"WICBOX_MAILCLIENT_PROCESSEDFOLDER": "inbox"}, "WICBOX_MAILCLIENT_PROCESSEDFOLDER"),
        (
            {"WICBOX_MAILCLIENT_FOLDER": "WIC", "WICBOX_MAILCLIENT_PROCESSEDFOLDER": "wic/"},
            "WICBOX_MAILCLIENT_PROCESSEDFOLDER",
        ),
        ({"WICBOX_MAILCLIENT_FAILEDFOLDER": "INBOX"}, "WICBOX_MAILCLIENT_FAILEDFOLDER"),
        ({"WICBOX_MAILCLIENT_FAILEDFOLDER": "wicbox/processed"}, "WICBOX_MAILCLIENT_FAILEDFOLDER"),
        (
            {"WICBOX_MAILCLIENT_AFTERPROCESS": "SEEN", "WICBOX_MAILCLIENT_FAILEDFOLDER": "WICBOX/Processed"},
            "WICBOX_MAILCLIENT_FAILEDFOLDER",
        ),
        ({"WICBOX_MAILCLIENT_AFTERPROCESS": "ARCHIVE"}, "WICBOX_MAILCLIENT_AFTERPROCESS"),
        ({"WICBOX_MAILCLIENT_PROTOCOL": "POP3"}, "WICBOX_MAILCLIENT_PROTOCOL"),
    ],
)
def test_folder_and_choice_refused(changes: dict[str, str | None], parameter: str) -> None:
    assert parse_error(with_(DELEGATED, **changes)).parameter == parameter


@pytest.mark.parametrize(("value", "expected"), [(None, 4), ("1", 1), (" 16 ", 16), ("8", 8)])
def test_workers(value: str | None, expected: int) -> None:
    assert parse_ok(with_(DELEGATED, WICBOX_MAILCLIENT_WORKERS=value)).parameters.workers == expected


@pytest.mark.parametrize("value", ["0", "17", "-1", "four", "2.5"])
def test_workers_refused(value: str) -> None:
    error = parse_error(with_(DELEGATED, WICBOX_MAILCLIENT_WORKERS=value))
    assert error.parameter == "WICBOX_MAILCLIENT_WORKERS"
    assert "1 to 16" in error.message


@pytest.mark.parametrize(
    ("value", "protocol"),
    [("imap", MailProtocol.IMAP), ("Graph", MailProtocol.GRAPH), ("AUTO", MailProtocol.AUTO)],
)
def test_protocol(value: str, protocol: MailProtocol) -> None:
    assert parse_ok(with_(DELEGATED, WICBOX_MAILCLIENT_PROTOCOL=value)).parameters.protocol is protocol


@pytest.mark.parametrize("machine", [None, Path(r"C:\WIC\certs\proxy-ca.pem")])
@pytest.mark.parametrize("value", [r"C:\Users\attacker\ca.pem", "/tmp/evil-ca.pem"])
def test_a_ca_bundle_in_the_database_is_ignored_with_a_warning(value: str, machine: Path | None) -> None:
    # Attack: a database writer names a CA of their own, so that their server's certificate is trusted.
    parsed = parse_ok(with_(DELEGATED, WICBOX_MAILCLIENT_CABUNDLE=value), EndpointPolicy(ca_bundle=machine))
    assert parsed.parameters.ca_bundle == machine
    assert any("WICBOX_MAILCLIENT_CABUNDLE" in w and "WicBoxCaBundle" in w for w in parsed.warnings)


def test_the_ca_bundle_comes_from_the_machine() -> None:
    parsed = parse_ok(DELEGATED, EndpointPolicy(ca_bundle=Path("/etc/ssl/proxy.pem")))
    assert parsed.parameters.ca_bundle == Path("/etc/ssl/proxy.pem")
    assert not [w for w in parsed.warnings if "CABUNDLE" in w]


def test_scope_is_kept_as_text() -> None:
    scope = "https://outlook.office.com/IMAP.AccessAsUser.All  SMTP.Send"
    assert parse_ok(with_(DELEGATED, WICBOX_MAILCLIENT_SCOPE=f"  {scope} ")).parameters.scope == scope


# --------------------------------------------------------------------------- registry and `params set`


def test_registry_is_complete_and_consistent() -> None:
    names = [spec.name.upper() for spec in PARAMETER_SPECS]
    assert len(names) == len(set(names))
    for expected in (
        "WICBOX_MAILCLIENT_SCOPE",
        "WICBOX_MAILCLIENT_CLIENTID",
        "WICBOX_MAILCLIENT_CLIENTSECRET",
        "WICBOX_MAILCLIENT_TENANTID",
        "WICBOX_MAILCLIENT_USERNAME",
        "WICBOX_MAILCLIENT_PASSWORD",
        "WICBOXACCOUNTMODE",
        "WICBOXMETHOD",
        "WICBOX_MAILCLIENT_PROTOCOL",
        "WICBOX_MAILCLIENT_WORKERS",
        "WICBOX_MAILCLIENT_IMAPHOST",
        "WICBOX_MAILCLIENT_IMAPTLS",
        "WICBOX_MAILCLIENT_SMTPHOST",
        "WICBOX_MAILCLIENT_SMTPTLS",
        "WICBOX_MAILCLIENT_GRAPHURL",
        "WICBOX_MAILCLIENT_CABUNDLE",
        "WICBOX_MAILCLIENT_AUTHORITYHOST",
        "WICBOX_MAILCLIENT_FOLDER",
        "WICBOX_MAILCLIENT_AFTERPROCESS",
        "WICBOX_MAILCLIENT_PROCESSEDFOLDER",
        "WICBOX_MAILCLIENT_FAILEDFOLDER",
        "WICBOXUSERNAME",
        "WICBOXPASSWORD",
        "ACCOUNTMODE",
    ):
        assert expected in names
    for spec in PARAMETER_SPECS:
        assert spec.description and "\n" not in spec.description
        assert spec.secret is is_secret_parameter(spec.name)
        legacy = ("WICBOXUSERNAME", "WICBOXPASSWORD", "ACCOUNTMODE", "WICBOX_MAILCLIENT_CABUNDLE")
        assert spec.legacy is (spec.name.upper() in legacy)
        if spec.default is not None:
            validate_value(spec.name, spec.default)  # every default passes its own check
        if spec.example and not spec.secret and not spec.example.startswith("("):
            validate_value(spec.name, spec.example)


def test_defaults_in_registry_match_parsing() -> None:
    p = parse_ok(DELEGATED).parameters
    defaults = {spec.name: spec.default for spec in PARAMETER_SPECS}
    assert defaults["WICBOX_MAILCLIENT_IMAPHOST"] == f"{p.imap.host}:{p.imap.port}"
    assert defaults["WICBOX_MAILCLIENT_SMTPHOST"] == f"{p.smtp.host}:{p.smtp.port}"
    assert defaults["WICBOX_MAILCLIENT_WORKERS"] == str(p.workers)
    assert defaults["WICBOX_MAILCLIENT_FAILEDFOLDER"] == p.failed_folder


@pytest.mark.parametrize(
    ("name", "secret"),
    [
        ("WICBOX_MAILCLIENT_PASSWORD", True),
        ("wicbox_mailclient_clientsecret", True),
        ("WICBOXPassword", True),
        ("WICBOXPASSWORD", True),
        ("SMTP_RELAY_PASSWORD", True),
        ("SomeApiSecret", True),
        (" wicbox_mailclient_password ", True),
        ("WICBOX_MAILCLIENT_USERNAME", False),
        ("WICBOX_MAILCLIENT_CLIENTID", False),
        ("PASSWORD_POLICY_URL", False),
    ],
)
def test_is_secret_parameter(name: str, secret: bool) -> None:
    assert is_secret_parameter(name) is secret


def test_find_spec_is_case_insensitive() -> None:
    spec = find_spec("wicboxmethod")
    assert spec is not None
    assert spec.name == "WICBOXMethod"
    assert spec.default == "OAuth2"
    assert find_spec("NOT_A_PARAMETER") is None


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("WICBOXACCOUNTMODE", "mix"),
        ("ACCOUNTMODE", "SINGLE"),
        ("WICBOXMethod", "oauth2"),
        ("WICBOX_MAILCLIENT_PROTOCOL", "Graph"),
        ("WICBOX_MAILCLIENT_AFTERPROCESS", "seen"),
        ("WICBOX_MAILCLIENT_IMAPTLS", "starttls"),
        ("WICBOX_MAILCLIENT_WORKERS", "16"),
        ("WICBOX_MAILCLIENT_CLIENTID", CLIENT_ID),
        ("WICBOX_MAILCLIENT_TENANTID", "klant.onmicrosoft.com"),
        ("WICBOX_MAILCLIENT_IMAPHOST", "[::1]:10993"),
        ("WICBOX_MAILCLIENT_GRAPHURL", "https://127.0.0.1:9443"),
        ("WICBOX_MAILCLIENT_WORKERS", ""),  # clearing is always allowed
        ("WICBOX_MAILCLIENT_WORKERS", None),
        ("WICBOX_MAILCLIENT_PASSWORD", FAKE_PASSWORD),
        ("WICBOX_MAILCLIENT_FOLDER", "anything goes"),
        ("SOME_OTHER_WIC_PARAMETER", "x"),  # unknown names are the caller's business
    ],
)
def test_validate_value_accepts(name: str, value: str | None) -> None:
    validate_value(name, value)


@pytest.mark.parametrize(
    ("name", "value", "parameter"),
    [
        ("wicboxaccountmode", "MULTIPEL", "WICBOXACCOUNTMODE"),
        ("ACCOUNTMODE", "ALL", "ACCOUNTMODE"),
        ("WICBOXMethod", "MULTIPLE", "WICBOXMethod"),  # an account mode does not belong there
        ("WICBOXMethod", "Kerberos", "WICBOXMethod"),
        ("WICBOX_MAILCLIENT_PROTOCOL", "EWS", "WICBOX_MAILCLIENT_PROTOCOL"),
        ("WICBOX_MAILCLIENT_AFTERPROCESS", "KEEP", "WICBOX_MAILCLIENT_AFTERPROCESS"),
        ("WICBOX_MAILCLIENT_SMTPTLS", "none", "WICBOX_MAILCLIENT_SMTPTLS"),
        ("WICBOX_MAILCLIENT_WORKERS", "100", "WICBOX_MAILCLIENT_WORKERS"),
        ("WICBOX_MAILCLIENT_CLIENTID", FAKE_SECRET, "WICBOX_MAILCLIENT_CLIENTID"),
        ("WICBOX_MAILCLIENT_TENANTID", "common", "WICBOX_MAILCLIENT_TENANTID"),
        ("WICBOX_MAILCLIENT_USERNAME", "wicbox", "WICBOX_MAILCLIENT_USERNAME"),
        ("WICBOX_MAILCLIENT_SMTPHOST", "smtp://x", "WICBOX_MAILCLIENT_SMTPHOST"),
        ("WICBOX_MAILCLIENT_AUTHORITYHOST", "http://login", "WICBOX_MAILCLIENT_AUTHORITYHOST"),
    ],
)
def test_validate_value_refuses(name: str, value: str, parameter: str) -> None:
    with pytest.raises(ParameterError) as caught:
        validate_value(name, value)
    assert caught.value.parameter == parameter
    assert caught.value.fix
    assert_no_secret(str(caught.value))


# --------------------------------------------------------------------------- never a secret anywhere


def test_every_error_and_warning_path_is_free_of_secrets() -> None:
    """Run every table above with all secret parameters set to distinctive fakes (the helpers check)."""
    everything = with_(
        APPLICATION,
        WICBOX_MAILCLIENT_CLIENTSECRET=SECRET_ID_LOOKALIKE,
        WICBOXPassword=FAKE_LEGACY_PASSWORD,
        WICBOX_MAILCLIENT_USERNAME=None,
        WICBOXUsername="legacy@klant.example",
    )
    parsed = parse_ok(everything)
    assert len(parsed.warnings) == 2
    assert FAKE_LEGACY_PASSWORD not in repr(parsed.parameters)
    secret = parsed.parameters.client_secret
    assert secret is not None
    assert secret.reveal() == SECRET_ID_LOOKALIKE
