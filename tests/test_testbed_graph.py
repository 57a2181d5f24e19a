"""The Graph emulator itself: Graph's JSON shapes, paging, ids, folders, $batch, token rules and faults.

Requests go over HTTPS with plain requests; tokens are minted in the shared token format with the
test bed's signing key (the adapter tests use real msal tokens from the identity-platform emulator).
"""

from __future__ import annotations

import base64
import datetime as dt
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from tools.testbed.graph import GraphEmulator
from tools.testbed.pki import LoopbackPki
from tools.testbed.tokens import application_claims, delegated_claims, sign_claims

pytestmark = pytest.mark.testbed

USER = "wicbox@klant.example"
OTHER = "project-alpha@klant.example"
GRAPH_AUD = "https://graph.microsoft.com"
APP_ID = "0b8f3c9a-2d4e-4f6a-9c1b-7e5d3a2f1c0e"
IMMUTABLE = {"Prefer": 'IdType="ImmutableId"'}
T0 = dt.datetime(2026, 11, 2, 9, 0, tzinfo=dt.timezone.utc)


def mail(number: int) -> bytes:
    headers = f"From: a@b.example\r\nSubject: Bericht {number}\r\nMessage-ID: <m{number}@b>\r\n"
    return f"{headers}\r\nTekst {number}\r\n".encode()


class Client:
    """requests against the emulator with a bearer token, trusting only the test CA."""

    def __init__(self, graph: GraphEmulator, pki: LoopbackPki, token: str) -> None:
        self.base = f"{graph.base_url}/v1.0"
        self.session = requests.Session()
        self.session.trust_env = False
        self.session.verify = str(pki.ca_cert)
        self.session.headers["Authorization"] = f"Bearer {token}"

    def call(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        url = path if path.startswith("https://") else f"{self.base}{path}"
        return self.session.request(method, url, timeout=10, **kwargs)

    def ok(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self.call(method, path, **kwargs)
        assert response.status_code < 300, response.text
        return response.json() if response.content else None


def token(pki: LoopbackPki, claims: dict[str, Any]) -> str:
    return sign_claims(claims, pki.signing_key.read_bytes(), pki.signing_kid)


@pytest.fixture
def bed(graph_clean: GraphEmulator) -> GraphEmulator:
    graph_clean.add_mailbox(USER)
    graph_clean.add_mailbox(OTHER)
    return graph_clean


@pytest.fixture
def me(bed: GraphEmulator, loopback_pki: LoopbackPki) -> Iterator[Client]:
    client = Client(
        bed,
        loopback_pki,
        token(loopback_pki, delegated_claims(USER, ("Mail.ReadWrite",), audience=GRAPH_AUD)),
    )
    yield client
    client.session.close()


@pytest.fixture
def app(bed: GraphEmulator, loopback_pki: LoopbackPki) -> Iterator[Client]:
    claims = application_claims("sp-object-id", ("Mail.ReadWrite",), audience=GRAPH_AUD, client_id=APP_ID)
    client = Client(bed, loopback_pki, token(loopback_pki, claims))
    yield client
    client.session.close()


def error_of(response: requests.Response) -> tuple[int, str, str]:
    error = response.json()["error"]
    assert set(error) == {"code", "message", "innerError"}
    return response.status_code, error["code"], error["message"]


# ---------------------------------------------------------------------------------- folders


def test_folders_list_create_and_duplicate(me: Client, bed: GraphEmulator) -> None:
    top = me.ok("GET", "/me/mailFolders", params={"$top": "100"})
    assert "@odata.context" in top
    names = {folder["displayName"] for folder in top["value"]}
    assert {"Inbox", "Deleted Items", "Sent Items"} <= names
    inbox = me.ok("GET", "/me/mailFolders/inbox")
    assert inbox["displayName"] == "Inbox"
    created = me.ok("POST", "/me/mailFolders", json={"displayName": "WICBOX"})
    child = me.ok("POST", f"/me/mailFolders/{created['id']}/childFolders", json={"displayName": "Processed"})
    assert child["parentFolderId"] == created["id"]
    again = me.call("POST", "/me/mailFolders", json={"displayName": "wicbox"})
    assert error_of(again)[:2] == (409, "ErrorFolderExists")
    assert "WICBOX/Processed" in bed.folders(USER)


def test_folder_paging_and_select(me: Client, bed: GraphEmulator) -> None:
    for number in range(5):
        bed.add_folder(USER, f"Map {number}")
    first = me.ok("GET", "/me/mailFolders", params={"$top": "4", "$select": "displayName"})
    assert len(first["value"]) == 4
    assert set(first["value"][0]) == {"id", "displayName"}
    names = [f["displayName"] for f in first["value"]]
    link = first["@odata.nextLink"]
    while link:
        page = me.ok("GET", link)
        names += [f["displayName"] for f in page["value"]]
        link = page.get("@odata.nextLink")
    assert len(names) == len(set(names)) == 12


# ---------------------------------------------------------------------------------- messages


def test_messages_paging_order_select_and_filter(me: Client, bed: GraphEmulator) -> None:
    for number in (3, 1, 4, 0, 2):
        bed.add_message(
            USER, "Inbox", mail(number), received=T0 + dt.timedelta(minutes=number), is_read=number == 1
        )
    params = {"$select": "id,receivedDateTime", "$orderby": "receivedDateTime asc", "$top": "2"}
    page = me.ok("GET", "/me/mailFolders/inbox/messages", params=params, headers=IMMUTABLE)
    assert set(page["value"][0]) == {"@odata.etag", "id", "receivedDateTime"}
    times = [m["receivedDateTime"] for m in page["value"]]
    while "@odata.nextLink" in page:
        assert "$skiptoken=" in page["@odata.nextLink"]
        page = me.ok("GET", page["@odata.nextLink"], headers=IMMUTABLE)
        times += [m["receivedDateTime"] for m in page["value"]]
    assert times == sorted(times) and len(times) == 5
    unread = {
        **params,
        "$top": "10",
        "$filter": "receivedDateTime ge 1900-01-01T00:00:00Z and isRead eq false",
    }
    assert len(me.ok("GET", "/me/mailFolders/inbox/messages", params=unread)["value"]) == 4
    inefficient = {**params, "$filter": "isRead eq false"}
    response = me.call("GET", "/me/mailFolders/inbox/messages", params=inefficient)
    assert error_of(response)[:2] == (400, "InefficientFilter")


def test_messages_list_their_size_as_an_expanded_extended_property(me: Client, bed: GraphEmulator) -> None:
    raws = [mail(number) + b"x" * number * 1000 for number in range(3)]
    for number, raw in enumerate(raws):
        bed.add_message(USER, "Inbox", raw, received=T0 + dt.timedelta(minutes=number))
    expand = "singleValueExtendedProperties($filter=id eq 'Integer 0x0E08')"
    params = {"$select": "id", "$orderby": "receivedDateTime asc", "$expand": expand}
    page = me.ok("GET", "/me/mailFolders/inbox/messages", params=params)
    sizes = [m["singleValueExtendedProperties"] for m in page["value"]]
    assert sizes == [[{"id": "Integer 0xe08", "value": str(len(raw))}] for raw in raws]
    assert "singleValueExtendedProperties" not in me.ok("GET", "/me/mailFolders/inbox/messages")["value"][0]
    response = me.call("GET", "/me/mailFolders/inbox/messages", params={"$expand": "attachments"})
    assert error_of(response)[0] == 400


def test_value_is_the_stored_bytes_and_move_changes_the_id_unless_immutable(
    me: Client, bed: GraphEmulator
) -> None:
    raw = mail(1) + b"\xff\x00 binair\n\r\n"
    immutable_id = bed.add_message(USER, "Inbox", raw)
    rest_id = me.ok("GET", "/me/mailFolders/inbox/messages")["value"][0]["id"]
    assert rest_id != immutable_id
    assert me.call("GET", f"/me/messages/{immutable_id}/$value").content == raw
    archive = me.ok("GET", "/me/mailFolders/archive")["id"]
    moved = me.ok("POST", f"/me/messages/{rest_id}/move", json={"destinationId": archive})
    assert moved["id"] not in (rest_id, immutable_id)
    assert me.call("GET", f"/me/messages/{rest_id}").status_code == 404
    inbox = me.ok("GET", "/me/mailFolders/inbox")["id"]
    kept = me.ok(
        "POST", f"/me/messages/{immutable_id}/move", json={"destinationId": inbox}, headers=IMMUTABLE
    )
    assert kept["id"] == immutable_id
    assert me.ok("PATCH", f"/me/messages/{immutable_id}", json={"isRead": True})["isRead"] is True
    assert bed.messages(USER, "Inbox")[0].is_read


def test_delete_goes_to_deleted_items_then_out(me: Client, bed: GraphEmulator) -> None:
    message_id = bed.add_message(USER, "Inbox", mail(1))
    assert me.call("DELETE", f"/me/messages/{message_id}").status_code == 204
    assert [m.immutable_id for m in bed.deleted(USER)] == [message_id]
    assert me.call("DELETE", f"/me/messages/{message_id}").status_code == 204
    assert bed.deleted(USER) == []
    assert error_of(me.call("GET", f"/me/messages/{message_id}"))[:2] == (404, "ErrorItemNotFound")


# ---------------------------------------------------------------------------------- $batch


def test_batch_dependson_base64_values_and_mailbox_concurrency(me: Client, bed: GraphEmulator) -> None:
    ids = [bed.add_message(USER, "Inbox", mail(n)) for n in range(6)]
    chained = [
        {"id": str(n + 1), "method": "GET", "url": f"/me/messages/{ids[n]}/$value"}
        | ({"dependsOn": [str(n - 3)]} if n >= 4 else {})
        for n in range(6)
    ]
    chained[1]["url"] = "/me/messages/AAMkGone=/$value"
    answer = me.ok("POST", "/$batch", json={"requests": chained})
    by_id = {r["id"]: r for r in answer["responses"]}
    assert base64.b64decode(by_id["1"]["body"]) == mail(0)
    assert by_id["2"]["status"] == 404
    assert by_id["6"]["status"] == 424  # depends on request 2, which failed
    assert by_id["5"]["status"] == 200
    parallel = [{"id": str(n + 1), "method": "GET", "url": f"/me/messages/{ids[n]}"} for n in range(6)]
    statuses = sorted(r["status"] for r in me.ok("POST", "/$batch", json={"requests": parallel})["responses"])
    assert statuses == [200] * 4 + [429] * 2
    assert bed.peak_concurrency(USER) == 6
    too_many = [{"id": str(n), "method": "GET", "url": "/me/mailFolders"} for n in range(21)]
    assert error_of(me.call("POST", "/$batch", json={"requests": too_many}))[0] == 400


# ---------------------------------------------------------------------------------- tokens and access

TOKEN_CASES = [
    ("expired", {"lifetime_s": -10}, 401, "InvalidAuthenticationToken", "expired"),
    (
        "exchange audience",
        {"audience": "https://outlook.office.com"},
        401,
        "InvalidAuthenticationToken",
        "audience",
    ),
    ("graph app id audience", {"audience": "00000003-0000-0000-c000-000000000000"}, 200, None, None),
    ("no Mail.ReadWrite", {"scopes": ("Mail.Send",)}, 403, "ErrorAccessDenied", "Access is denied"),
]


@pytest.mark.parametrize(
    ("case", "options", "status", "code", "words"), TOKEN_CASES, ids=[c[0] for c in TOKEN_CASES]
)
def test_delegated_token_rules(
    bed: GraphEmulator,
    loopback_pki: LoopbackPki,
    case: str,
    options: dict[str, Any],
    status: int,
    code: str | None,
    words: str | None,
) -> None:
    claims = delegated_claims(USER, **{"scopes": ("Mail.ReadWrite",), "audience": GRAPH_AUD, **options})
    response = Client(bed, loopback_pki, token(loopback_pki, claims)).call("GET", "/me/mailFolders/inbox")
    assert response.status_code == status, case
    if code:
        assert error_of(response)[1] == code
        assert str(words) in error_of(response)[2]


def test_mailbox_rules_for_delegated_and_application_tokens(
    me: Client, app: Client, bed: GraphEmulator, loopback_pki: LoopbackPki
) -> None:
    assert me.call("GET", f"/users/{USER}/mailFolders/inbox").status_code == 200
    assert error_of(me.call("GET", f"/users/{OTHER}/mailFolders/inbox"))[:2] == (403, "ErrorAccessDenied")
    assert app.call("GET", f"/users/{OTHER}/mailFolders/inbox").status_code == 200
    assert error_of(app.call("GET", "/me/mailFolders/inbox"))[0] == 400
    assert error_of(app.call("GET", "/users/niemand@klant.example/mailFolders"))[:2] == (
        404,
        "ErrorInvalidUser",
    )
    bed.add_application_access_policy(APP_ID, [USER])
    assert app.call("GET", f"/users/{USER}/mailFolders/inbox").status_code == 200
    status, code, message = error_of(app.call("GET", f"/users/{OTHER}/mailFolders/inbox"))
    assert (status, code) == (403, "ErrorAccessDenied") and "[RAOP]" in message
    no_role = application_claims("sp", ("Mail.Send",), audience=GRAPH_AUD)
    refused = Client(bed, loopback_pki, token(loopback_pki, no_role)).call(
        "GET", f"/users/{USER}/mailFolders"
    )
    assert error_of(refused)[:2] == (403, "ErrorAccessDenied")
    nobody = Client(
        bed,
        loopback_pki,
        token(loopback_pki, delegated_claims("x@klant.example", ("Mail.ReadWrite",), audience=GRAPH_AUD)),
    )
    assert error_of(nobody.call("GET", "/me/mailFolders"))[:2] == (404, "MailboxNotEnabledForRESTAPI")
    assert error_of(me.call("GET", "/me/mailFolders", headers={"Authorization": ""}))[0] == 401


# ---------------------------------------------------------------------------------- faults and log


def test_injected_faults_and_the_request_log(me: Client, bed: GraphEmulator) -> None:
    bed.throttle(1, retry_after=3)
    throttled = me.call("GET", "/me/mailFolders")
    assert throttled.status_code == 429 and throttled.headers["Retry-After"] == "3"
    bed.fail(1)
    assert me.call("GET", "/me/mailFolders").status_code == 503
    bed.drop(1)
    with pytest.raises(requests.ConnectionError):
        me.call("GET", "/me/mailFolders")
    assert me.call("GET", "/me/mailFolders", headers=IMMUTABLE).status_code == 200
    log = bed.request_log.entries(path="/v1.0/me/mailFolders")
    assert [(r.status, r.fault) for r in log] == [
        (429, "throttle"),
        (503, "unavailable"),
        (0, "drop"),
        (200, None),
    ]
    assert log[-1].mailbox == USER and log[-1].immutable_ids
    assert all(r.started <= r.ended for r in log)


def test_wait_until_idle_waits_for_the_connections_since_a_mark(me: Client, bed: GraphEmulator) -> None:
    mark = bed.connections_so_far()
    assert bed.wait_until_idle(timeout_s=1.0, since=mark)
    me.ok("GET", "/me/mailFolders")  # requests keeps the connection open for the next request
    assert bed.connections_so_far() == mark + 1
    assert not bed.wait_until_idle(timeout_s=0.2, since=mark), "a client is still connected"
    assert bed.wait_until_idle(timeout_s=0.2, since=mark + 1)
    me.session.close()  # gone, as a killed sender
    assert bed.wait_until_idle(timeout_s=5.0, since=mark)
