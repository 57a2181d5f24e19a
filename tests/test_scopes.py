"""Scopes per protocol and permission type, and the choice of the reading protocol (pure tables)."""

from __future__ import annotations

import dataclasses

import pytest

from wicbox_bridge.auth.scopes import (
    EXCHANGE_APPLICATION,
    GRAPH_APPLICATION,
    GRAPH_DELEGATED,
    IMAP_DELEGATED,
    SMTP_DELEGATED,
    Resource,
    parse_scope,
    resolve_mail_protocol,
    scopes_for,
    split_scope_value,
    where_to_add,
)
from wicbox_bridge.config.params import (
    AccountMode,
    AfterProcess,
    AuthMethod,
    Endpoint,
    MailProtocol,
    Parameters,
    PermissionType,
    TlsMode,
)
from wicbox_bridge.errors import ExitCode, ParameterError
from wicbox_bridge.secret import Secret

D = PermissionType.DELEGATED
A = PermissionType.APPLICATION


def make_params(
    scope: str, protocol: MailProtocol = MailProtocol.AUTO, secret: str | None = None
) -> Parameters:
    return Parameters(
        scope=scope,
        client_id="0d6c3b9e-1f2a-4b5c-8d7e-9f0a1b2c3d4e",
        client_secret=Secret(secret) if secret else None,
        tenant_id="5f1c7d2e-8b4a-4c3e-9a6f-2d7e1b0c9a41",
        username="wicbox@klant.example",
        password=None if secret else Secret("pw"),
        account_mode=AccountMode.SINGLE,
        method=AuthMethod.OAUTH2,
        protocol=protocol,
        authority_host="https://login.microsoftonline.com",
        imap=Endpoint("outlook.office365.com", 993, TlsMode.IMPLICIT),
        smtp=Endpoint("smtp.office365.com", 587, TlsMode.STARTTLS),
        graph_url="https://graph.microsoft.com",
        ca_bundle=None,
        source_folder="INBOX",
        after_process=AfterProcess.MOVE,
        processed_folder="Verwerkt",
        failed_folder="Mislukt",
        workers=1,
    )


@pytest.mark.parametrize(
    ("value", "items"),
    [
        ("", []),
        ("Mail.ReadWrite", ["Mail.ReadWrite"]),
        (" a b,c;d ,; e ", ["a", "b", "c", "d", "e"]),
        ("offline_access openid profile Mail.ReadWrite", ["Mail.ReadWrite"]),
    ],
)
def test_split_scope_value(value: str, items: list[str]) -> None:
    assert split_scope_value(value) == items


@pytest.mark.parametrize(
    ("value", "resource", "permission", "scope"),
    [
        ("Mail.ReadWrite", Resource.GRAPH, "Mail.ReadWrite", GRAPH_DELEGATED),
        ("mail.readwrite", Resource.GRAPH, "Mail.ReadWrite", GRAPH_DELEGATED),
        ("IMAP.AccessAsUser.All", Resource.EXCHANGE, "IMAP.AccessAsUser.All", IMAP_DELEGATED),
        ("SMTP.Send", Resource.EXCHANGE, "SMTP.Send", SMTP_DELEGATED),
        (IMAP_DELEGATED, Resource.EXCHANGE, "IMAP.AccessAsUser.All", IMAP_DELEGATED),
        (EXCHANGE_APPLICATION, Resource.EXCHANGE, ".default", EXCHANGE_APPLICATION),
        (GRAPH_APPLICATION, Resource.GRAPH, ".default", GRAPH_APPLICATION),
        (
            "https://outlook.office365.com/IMAP.AccessAsUser.All",
            Resource.EXCHANGE,
            "IMAP.AccessAsUser.All",
            "https://outlook.office365.com/IMAP.AccessAsUser.All",
        ),
    ],
)
def test_parse_scope_classifies_each_item(
    value: str, resource: Resource, permission: str, scope: str
) -> None:
    (entry,) = parse_scope(value)
    assert (entry.resource, entry.permission, entry.scope) == (resource, permission, scope)


@pytest.mark.parametrize(
    "value", ["Mail.Whatever", ".default", "https://example.org/x", "http://graph.microsoft.com/x"]
)
def test_parse_scope_rejects_unknown_items(value: str) -> None:
    with pytest.raises(ParameterError) as caught:
        parse_scope(value)
    assert caught.value.parameter == "WICBOX_MAILCLIENT_SCOPE"
    assert caught.value.exit_code is ExitCode.CONFIGURATION
    assert caught.value.fix


@pytest.mark.parametrize(
    ("scope", "protocol", "permission_type", "expected"),
    [
        # empty SCOPE: the protocol's defaults
        ("", "imap", D, (IMAP_DELEGATED,)),
        ("", "smtp", D, (SMTP_DELEGATED,)),
        ("", "graph", D, (GRAPH_DELEGATED,)),
        ("", "imap", A, (EXCHANGE_APPLICATION,)),
        ("", "smtp", A, (EXCHANGE_APPLICATION,)),
        ("", "graph", A, (GRAPH_APPLICATION,)),
        # the vendor's guide: Mail.ReadWrite
        ("Mail.ReadWrite", "graph", D, (GRAPH_DELEGATED,)),
        ("Mail.ReadWrite", "graph", A, (GRAPH_APPLICATION,)),
        # SMTP does not depend on the reading SCOPE
        ("Mail.ReadWrite", "smtp", D, (SMTP_DELEGATED,)),
        ("Mail.ReadWrite", "smtp", A, (EXCHANGE_APPLICATION,)),
        ("IMAP.AccessAsUser.All", "smtp", D, (SMTP_DELEGATED,)),
        # short names and full URLs
        ("IMAP.AccessAsUser.All", "imap", D, (IMAP_DELEGATED,)),
        ("IMAP.AccessAsUser.All SMTP.Send", "imap", D, (IMAP_DELEGATED, SMTP_DELEGATED)),
        ("IMAP.AccessAsUser.All, SMTP.Send", "smtp", D, (SMTP_DELEGATED,)),
        ("IMAP.AccessAsApp", "imap", A, (EXCHANGE_APPLICATION,)),
        ("IMAP.AccessAsUser.All", "imap", A, (EXCHANGE_APPLICATION,)),
        (EXCHANGE_APPLICATION, "imap", A, (EXCHANGE_APPLICATION,)),
        ("https://outlook.office.com/.default", "imap", A, ("https://outlook.office.com/.default",)),
        ("https://outlook.office.com/.default", "imap", D, ("https://outlook.office.com/.default",)),
        (
            "https://outlook.office365.com/IMAP.AccessAsUser.All",
            "imap",
            D,
            ("https://outlook.office365.com/IMAP.AccessAsUser.All",),
        ),
        (f"{IMAP_DELEGATED};{GRAPH_DELEGATED}", "graph", D, (GRAPH_DELEGATED,)),
        (f"{IMAP_DELEGATED};{GRAPH_DELEGATED}", "imap", D, (IMAP_DELEGATED,)),
        ("offline_access Mail.ReadWrite", "graph", D, (GRAPH_DELEGATED,)),
    ],
)
def test_scopes_for(
    scope: str, protocol: str, permission_type: PermissionType, expected: tuple[str, ...]
) -> None:
    assert scopes_for(scope, protocol, permission_type) == expected  # type: ignore[arg-type]


ADD = "Azure > App registrations > (the WICBox app) > API permissions > Add a permission"


@pytest.mark.parametrize(
    ("resource", "permission_type", "page"),
    [
        # Microsoft lists Exchange's delegated IMAP/SMTP permissions under Microsoft Graph
        (Resource.EXCHANGE, D, "Microsoft Graph > Delegated permissions"),
        (Resource.GRAPH, D, "Microsoft Graph > Delegated permissions"),
        (
            Resource.EXCHANGE,
            A,
            "APIs my organization uses > Office 365 Exchange Online > Application permissions",
        ),
        (Resource.GRAPH, A, "Microsoft Graph > Application permissions"),
    ],
)
def test_where_the_portal_lists_a_permission(
    resource: Resource, permission_type: PermissionType, page: str
) -> None:
    assert where_to_add(resource, permission_type) == f"{ADD} > {page}"


@pytest.mark.parametrize(
    ("scope", "protocol", "permission_type", "says"),
    [
        (
            "Mail.ReadWrite",
            "imap",
            D,
            f"add the delegated permission IMAP.AccessAsUser.All ({ADD} > "
            "Microsoft Graph > Delegated permissions)",
        ),
        (
            "Mail.ReadWrite",
            "imap",
            D,
            f"application permission IMAP.AccessAsApp ({ADD} > APIs my "
            "organization uses > Office 365 Exchange Online > Application permissions)",
        ),
        ("Mail.ReadWrite", "imap", A, f"or the application permission IMAP.AccessAsApp ({ADD} > APIs my"),
        ("Mail.ReadWrite", "imap", D, "`wicbox params set WICBOX_MAILCLIENT_PROTOCOL AUTO` (or GRAPH)"),
        ("IMAP.AccessAsUser.All", "graph", D, "Microsoft Graph permission Mail.ReadWrite"),
        (
            "SMTP.Send",
            "imap",
            D,
            f"add the delegated permission IMAP.AccessAsUser.All ({ADD} > Microsoft "
            "Graph > Delegated permissions)",
        ),
        (
            "Mail.Read",
            "graph",
            D,
            f"add the delegated permission Mail.ReadWrite ({ADD} > Microsoft Graph > Delegated permissions)",
        ),
        ("IMAP.AccessAsApp", "imap", D, "WICBOX_MAILCLIENT_CLIENTSECRET"),
    ],
)
def test_scope_that_cannot_work_names_the_permission_to_add(
    scope: str, protocol: str, permission_type: PermissionType, says: str
) -> None:
    with pytest.raises(ParameterError) as caught:
        scopes_for(scope, protocol, permission_type)  # type: ignore[arg-type]
    assert says in str(caught.value)
    assert caught.value.parameter == "WICBOX_MAILCLIENT_SCOPE"


@pytest.mark.parametrize(
    ("scope", "protocol", "expected", "reason_says"),
    [
        ("", MailProtocol.AUTO, MailProtocol.IMAP, "empty"),
        ("Mail.ReadWrite", MailProtocol.AUTO, MailProtocol.GRAPH, "Microsoft Graph"),
        ("https://graph.microsoft.com/.default", MailProtocol.AUTO, MailProtocol.GRAPH, "Microsoft Graph"),
        ("IMAP.AccessAsUser.All", MailProtocol.AUTO, MailProtocol.IMAP, "Exchange Online"),
        ("SMTP.Send Mail.ReadWrite", MailProtocol.AUTO, MailProtocol.GRAPH, "Microsoft Graph"),
        ("IMAP.AccessAsUser.All Mail.ReadWrite", MailProtocol.AUTO, MailProtocol.IMAP, "Exchange Online"),
        ("Mail.ReadWrite", MailProtocol.GRAPH, MailProtocol.GRAPH, "is GRAPH"),
        ("", MailProtocol.IMAP, MailProtocol.IMAP, "is IMAP"),
    ],
)
def test_resolve_mail_protocol(
    scope: str, protocol: MailProtocol, expected: MailProtocol, reason_says: str
) -> None:
    chosen, reason = resolve_mail_protocol(make_params(scope, protocol))
    assert chosen is expected
    assert reason_says in reason


def test_resolve_mail_protocol_rejects_graph_scope_for_imap() -> None:
    with pytest.raises(
        ParameterError, match=r"`wicbox params set WICBOX_MAILCLIENT_PROTOCOL AUTO` \(or GRAPH\)"
    ):
        resolve_mail_protocol(make_params("Mail.ReadWrite", MailProtocol.IMAP))


def test_application_permissions_follow_the_client_secret() -> None:
    params = make_params("Mail.ReadWrite", secret="s3cr3t-value")
    assert params.permission_type is A
    assert resolve_mail_protocol(params)[0] is MailProtocol.GRAPH
    assert dataclasses.replace(params, client_secret=None).permission_type is D
