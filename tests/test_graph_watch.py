"""Graph delta queries: the emulator's delta function as Microsoft documents it (pages with
$skiptoken, a delta link with $deltatoken, Prefer: odata.maxpagesize, @removed, 410 Gone for a token
it no longer knows) and the adapter's delta polling watch on it (injected clock and sleep)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from tests import adapter_bed
from tests.adapter_bed import IdentityParts, RecordingTokens
from tools.testbed.graph import GraphEmulator
from wicbox_bridge.adapters.graph import GraphAdapter, GraphSettings
from wicbox_bridge.adapters.graph_errors import GraphRequestFailed
from wicbox_bridge.adapters.graph_http import GraphHttp
from wicbox_bridge.adapters.graph_watch import DEFAULT_POLL_INTERVAL_S, GraphDeltaWatch
from wicbox_bridge.adapters.identity import IdentityPlatform, TokenService
from wicbox_bridge.auth.scopes import GRAPH_DELEGATED
from wicbox_bridge.errors import MailboxError
from wicbox_bridge.secret import Secret

pytestmark = pytest.mark.testbed

MAILBOX = "wicbox@klant.example"
T0 = dt.datetime(2026, 11, 2, 9, 0, tzinfo=dt.timezone.utc)

identity_parts = adapter_bed.identity_parts


def mail(number: int) -> bytes:
    return (
        f"From: klant{number}@extern.example\r\nTo: {MAILBOX}\r\nSubject: Dossier {number}\r\n"
        f"Message-ID: <d{number}@extern.example>\r\n\r\nInhoud {number}\r\n"
    ).encode()


class FakeTime:
    """The watch's clock and sleep: sleeping moves the clock, nothing really waits."""

    def __init__(self) -> None:
        self.now = 0.0
        self.waits: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.waits.append(seconds)
        self.now += seconds


@pytest.fixture
def graph(graph_clean: GraphEmulator) -> GraphEmulator:
    graph_clean.add_mailbox(MAILBOX)
    return graph_clean


@pytest.fixture
def tokens(identity_parts: IdentityParts) -> RecordingTokens:
    platform = IdentityPlatform(
        identity_parts.idp.base_url,
        identity_parts.directory.tenant_id,
        identity_parts.directory.public_client_id,
        ca_bundle=identity_parts.pki.ca_cert,
    )
    service = TokenService(platform, identity_parts.cache_dir / "delegated.bin", encrypt_cache=False)
    password = Secret(identity_parts.directory.user(MAILBOX).password)
    return RecordingTokens(service.delegated((GRAPH_DELEGATED,), MAILBOX, password))


def settings(graph: GraphEmulator, identity_parts: IdentityParts) -> GraphSettings:
    return GraphSettings(base_url=graph.base_url, ca_bundle=identity_parts.pki.ca_cert)


def deliver(graph: GraphEmulator, *numbers: int) -> list[str]:
    return [
        graph.add_message(MAILBOX, "Inbox", mail(n), received=T0 + dt.timedelta(seconds=n)) for n in numbers
    ]


@pytest.fixture
def http(graph: GraphEmulator, identity_parts: IdentityParts, tokens: RecordingTokens) -> Iterator[GraphHttp]:
    with GraphHttp(settings(graph, identity_parts), tokens, MAILBOX) as client:
        yield client


def get(http: GraphHttp, url: str, *, page_size: int = 2, **params: str) -> dict[str, Any]:
    response = http.request(
        "GET", url, "a delta test", params=params or None, prefer=f"odata.maxpagesize={page_size}"
    )
    assert response.headers.get("Preference-Applied", "").startswith(f"odata.maxpagesize={page_size}")
    document = response.json()
    assert isinstance(document, dict)
    return document


def whole_round(http: GraphHttp, url: str, **params: str) -> tuple[list[dict[str, Any]], str, int]:
    items: list[dict[str, Any]] = []
    pages = 0
    document = get(http, url, **params)
    while True:
        pages += 1
        items.extend(document["value"])
        if "@odata.nextLink" not in document:
            break
        assert "$skiptoken" in parse_qs(urlsplit(document["@odata.nextLink"]).query)
        assert "@odata.deltaLink" not in document
        document = get(http, document["@odata.nextLink"])
    link = document["@odata.deltaLink"]
    assert "$deltatoken" in parse_qs(urlsplit(link).query)
    return items, link, pages


def test_the_emulator_answers_delta_rounds_as_graph_does(graph: GraphEmulator, http: GraphHttp) -> None:
    first = deliver(graph, 1, 2, 3, 4, 5)
    start = "/me/mailFolders/Inbox/messages/delta"
    items, link, pages = whole_round(http, start, **{"$select": "id,subject"})
    assert pages == 3
    assert [item["id"] for item in items] == first
    assert set(items[0]) >= {"id", "subject"} and "body" not in items[0]

    unchanged, link, _pages = whole_round(http, link)
    assert unchanged == []

    new = deliver(graph, 6)
    graph.remove_message(MAILBOX, first[0])
    changes, link, _pages = whole_round(http, link)
    assert [item["id"] for item in changes if "@removed" not in item] == new
    assert [item for item in changes if "@removed" in item] == [
        {"@odata.type": "#microsoft.graph.message", "id": first[0], "@removed": {"reason": "deleted"}}
    ]
    assert "body" not in changes[0]  # the round's $select travels in the tokens

    graph.expire_delta_tokens()
    with pytest.raises(GraphRequestFailed) as gone:
        get(http, link)
    assert (gone.value.reply.status, gone.value.reply.code) == (410, "SyncStateNotFound")


def test_the_watch_reports_new_mail_not_filed_mail(
    graph: GraphEmulator, identity_parts: IdentityParts, tokens: RecordingTokens
) -> None:
    time = FakeTime()
    old = deliver(graph, 1)
    adapter = GraphAdapter(settings(graph, identity_parts), sleep=time.sleep, clock=time.clock)
    watch = adapter.watch(MAILBOX, tokens)
    try:
        assert isinstance(watch, GraphDeltaWatch) and watch.how == "delta polling"
        before = len(graph.request_log.entries())
        assert watch.wait(1.0) is False  # not due yet: waited, asked nothing
        assert len(graph.request_log.entries()) == before and time.waits == [1.0]
        assert watch.wait(60.0) is False  # due: one poll, nothing new
        assert time.waits[-1] == pytest.approx(DEFAULT_POLL_INTERVAL_S - 1.0)
        assert len(graph.request_log.entries()) == before + 1
        deliver(graph, 2)
        assert watch.wait(60.0) is True
        graph.remove_message(MAILBOX, old[0])  # filed and moved away by a pass
        assert watch.wait(60.0) is False
    finally:
        watch.close()


def test_a_gone_delta_token_resyncs_from_a_full_listing(
    graph: GraphEmulator, identity_parts: IdentityParts, tokens: RecordingTokens
) -> None:
    time = FakeTime()
    deliver(graph, *range(1, 260))  # more than one page of the watch's listing
    watch = GraphAdapter(settings(graph, identity_parts), sleep=time.sleep, clock=time.clock).watch(
        MAILBOX, tokens
    )
    try:
        graph.expire_delta_tokens()
        assert watch.wait(60.0) is True  # the caller searches the folder itself
        assert watch.resyncs == 1
        assert watch.wait(60.0) is False  # the new delta link works
        deliver(graph, 300)
        assert watch.wait(60.0) is True
    finally:
        watch.close()


def test_throttling_is_waited_out_through_the_sleep_seam(
    graph: GraphEmulator, identity_parts: IdentityParts, tokens: RecordingTokens
) -> None:
    time = FakeTime()
    watch = GraphAdapter(settings(graph, identity_parts), sleep=time.sleep, clock=time.clock).watch(
        MAILBOX, tokens
    )
    try:
        graph.throttle(1, retry_after=7)
        deliver(graph, 1)
        assert watch.wait(60.0) is True
        assert 7.0 in time.waits
    finally:
        watch.close()


def test_a_broken_connection_is_reported_as_a_catch_up_once_back(
    graph: GraphEmulator, identity_parts: IdentityParts, tokens: RecordingTokens
) -> None:
    time = FakeTime()
    watch = GraphAdapter(settings(graph, identity_parts), sleep=time.sleep, clock=time.clock).watch(
        MAILBOX, tokens
    )
    try:
        graph.drop(2)  # a GET is repeated once after a broken connection: both break
        assert watch.wait(60.0) is False
        assert watch.wait(60.0) is True  # back: mail may have come meanwhile
        assert watch.wait(60.0) is False
    finally:
        watch.close()


def test_a_missing_folder_fails_the_start(
    graph: GraphEmulator, identity_parts: IdentityParts, tokens: RecordingTokens
) -> None:
    missing = GraphSettings(
        base_url=graph.base_url, ca_bundle=identity_parts.pki.ca_cert, source_folder="Inbox/Nergens"
    )
    with pytest.raises(MailboxError, match="does not exist"):
        GraphAdapter(missing).watch(MAILBOX, tokens)
