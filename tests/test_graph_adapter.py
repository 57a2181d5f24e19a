"""The Graph adapter against the Graph emulator, with real msal tokens from the identity-platform
emulator (delegated and application permissions), and its pure helpers (tables)."""

from __future__ import annotations

import datetime as dt
import http.server
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests import adapter_bed
from tests.adapter_bed import IdentityParts, RecordedWaits, RecordingTokens
from tests.corpus import require_corpus
from tools.testbed.graph import GraphEmulator
from tools.testbed.idp import IdentityPlatformEmulator, SeededDirectory
from tools.testbed.pki import LoopbackPki, create_loopback_pki
from wicbox_bridge.adapters.base import MailRef, TokenProvider
from wicbox_bridge.adapters.graph import GraphAdapter, GraphSession, GraphSettings
from wicbox_bridge.adapters.graph_errors import GraphReply, access_denied, parse_reply, token_rejected
from wicbox_bridge.adapters.graph_folders import folder_levels
from wicbox_bridge.adapters.graph_http import DEFAULT_RETRY_AFTER_S, GraphHttp, retry_after_seconds
from wicbox_bridge.adapters.graph_session import mailbox_root
from wicbox_bridge.adapters.identity import IdentityPlatform, TokenService
from wicbox_bridge.auth.scopes import GRAPH_APPLICATION, GRAPH_DELEGATED, IMAP_DELEGATED
from wicbox_bridge.config import params as names
from wicbox_bridge.config.params import AfterProcess
from wicbox_bridge.errors import (
    AuthenticationError,
    BridgeError,
    ConfigurationError,
    ConnectionFailure,
    MailboxError,
)
from wicbox_bridge.secret import Secret

MAILBOX = "wicbox@klant.example"
OTHER_MAILBOX = "project-alpha@klant.example"
T0 = dt.datetime(2026, 11, 2, 9, 0, tzinfo=dt.timezone.utc)

pytestmark = pytest.mark.testbed


def mail(number: int) -> bytes:
    return (
        f"From: klant{number}@extern.example\r\nTo: {MAILBOX}\r\nSubject: Dossier {number}\r\n"
        f"Message-ID: <g{number}@extern.example>\r\n\r\nInhoud {number}\r\n"
    ).encode()


@dataclass
class Bed:
    graph: GraphEmulator
    pki: LoopbackPki
    idp: IdentityPlatformEmulator
    directory: SeededDirectory
    cache_dir: Path
    delivered: int = 0

    def settings(self, **options: Any) -> GraphSettings:
        values: dict[str, Any] = {"base_url": self.graph.base_url, "ca_bundle": self.pki.ca_cert}
        return GraphSettings(**{**values, **options})

    def _service(self, client_id: str, name: str) -> TokenService:
        platform = IdentityPlatform(
            self.idp.base_url, self.directory.tenant_id, client_id, ca_bundle=self.pki.ca_cert
        )
        return TokenService(platform, self.cache_dir / f"{name}.bin", encrypt_cache=False)

    def delegated(self, user: str = MAILBOX, scope: str = GRAPH_DELEGATED) -> RecordingTokens:
        service = self._service(self.directory.public_client_id, f"delegated-{scope.rsplit('/', 1)[-1]}")
        password = Secret(self.directory.user(user).password)
        return RecordingTokens(service.delegated((scope,), user, password))

    def application(self, client_id: str | None = None, secret: str | None = None) -> RecordingTokens:
        service = self._service(client_id or self.directory.confidential_client_id, f"app-{client_id}")
        value = Secret(secret or self.directory.confidential_client_secret)
        return RecordingTokens(service.application((GRAPH_APPLICATION,), value))

    def deliver(self, *raws: bytes, folder: str = "Inbox", is_read: bool = False) -> list[str]:
        ids = []
        for raw in raws:
            received = T0 + dt.timedelta(seconds=self.delivered)
            self.delivered += 1
            ids.append(self.graph.add_message(MAILBOX, folder, raw, received=received, is_read=is_read))
        return ids

    def open(
        self,
        tokens: TokenProvider | None,
        mailbox: str = MAILBOX,
        sleep: Callable[[float], None] = time.sleep,
        **options: Any,
    ) -> GraphSession:
        return GraphAdapter(self.settings(**options), sleep=sleep).open(mailbox, tokens)


identity_parts = adapter_bed.identity_parts


@pytest.fixture
def bed(graph_clean: GraphEmulator, identity_parts: IdentityParts) -> Bed:
    graph_clean.add_mailbox(MAILBOX)
    parts = identity_parts
    return Bed(graph_clean, parts.pki, parts.idp, parts.directory, parts.cache_dir)


@pytest.fixture
def tokens(bed: Bed) -> RecordingTokens:
    return bed.delegated()


@pytest.fixture
def session(bed: Bed, tokens: RecordingTokens) -> Iterator[GraphSession]:
    opened = bed.open(tokens)
    yield opened
    opened.close()


def paths(bed: Bed, **criteria: object) -> list[str]:
    return [record.path for record in bed.graph.request_log.entries(**criteria)]


# ---------------------------------------------------------------------------------- sign-in


def test_delegated_permissions_work_on_me_with_immutable_ids(bed: Bed, session: GraphSession) -> None:
    ids = bed.deliver(mail(1), mail(2))
    assert [ref.key for ref in session.list_pending(10)] == ids
    assert session.validity == ""
    records = bed.graph.request_log.entries()
    assert records and all(r.path.startswith("/v1.0/me/") for r in records)
    assert all(r.immutable_ids for r in records)


def test_application_permissions_work_on_users_mailbox(bed: Bed) -> None:
    ids = bed.deliver(mail(1))
    with_app = bed.open(bed.application())
    try:
        assert [ref.key for ref in with_app.list_pending(10)] == ids
    finally:
        with_app.close()
    assert all(p.startswith(f"/v1.0/users/{MAILBOX}/") for p in paths(bed))


def test_basic_authentication_is_refused_with_the_fix(bed: Bed) -> None:
    with pytest.raises(AuthenticationError) as caught:
        bed.open(None)
    assert names.METHOD in str(caught.value)


# ---------------------------------------------------------------------------------- listing and fetching


def test_lists_oldest_first_following_next_links_up_to_the_limit(bed: Bed, tokens: RecordingTokens) -> None:
    ids = bed.deliver(*(mail(n) for n in range(25)))
    bed.graph.add_message(MAILBOX, "Inbox", mail(99), received=T0 - dt.timedelta(days=1))  # the oldest
    session = bed.open(tokens, page_size=10)
    try:
        listed = session.list_pending(23)
    finally:
        session.close()
    oldest = bed.graph.messages(MAILBOX, "Inbox")[0].immutable_id
    assert [ref.key for ref in listed] == [oldest, *ids[:22]]
    # each with its size (PidTagMessageSize, expanded on every page), which the run batches by
    sizes = {message.immutable_id: len(message.raw) for message in bed.graph.messages(MAILBOX, "Inbox")}
    assert [ref.size for ref in listed] == [sizes[ref.key] for ref in listed]
    assert all(size > 0 for size in sizes.values())
    listings = bed.graph.request_log.entries(method="GET", status=200)
    pages = [r for r in listings if r.path.endswith("/messages")]
    assert len(pages) == 3
    assert "%24top=10" in pages[0].query and "receivedDateTime" in pages[0].query
    assert "skiptoken" in pages[1].query


def test_seen_mode_lists_only_unread_mail(bed: Bed, tokens: RecordingTokens) -> None:
    bed.deliver(mail(1), is_read=True)
    unread = bed.deliver(mail(2))
    session = bed.open(tokens, after_process=AfterProcess.SEEN)
    try:
        assert [ref.key for ref in session.list_pending(10)] == unread
    finally:
        session.close()


@pytest.mark.corpus
def test_fetch_returns_the_corpus_byte_for_byte_four_at_a_time(bed: Bed, session: GraphSession) -> None:
    raws = [path.read_bytes() for path in sorted(require_corpus().rglob("*.eml"))]
    bed.deliver(*raws)
    bed.graph.set_delay(0.01)
    refs = session.list_pending(1000)
    fetched = session.fetch(refs)
    assert [mail.raw for mail in fetched] == raws
    assert [mail.ref for mail in fetched] == refs
    assert fetched[0].received_at == T0.timestamp()
    assert 2 <= bed.graph.peak_concurrency(MAILBOX) <= 4
    assert bed.graph.request_log.count(status=429) == 0
    assert not any(message.is_read for message in bed.graph.messages(MAILBOX, "Inbox"))


def test_fetch_leaves_out_a_vanished_mail(bed: Bed, session: GraphSession) -> None:
    bed.deliver(mail(1), mail(2), mail(3))
    refs = session.list_pending(10)
    bed.graph.remove_message(MAILBOX, refs[1].key)
    assert [mail.ref for mail in session.fetch(refs)] == [refs[0], refs[2]]


# ---------------------------------------------------------------------------------- after-process actions


def test_move_creates_the_nested_folder_and_keeps_the_immutable_ids(bed: Bed, session: GraphSession) -> None:
    ids = bed.deliver(*(mail(n) for n in range(25)))
    refs = session.list_pending(100)
    bed.graph.set_delay(0.01)
    session.acknowledge(refs)
    assert bed.graph.messages(MAILBOX, "Inbox") == []
    moved = bed.graph.messages(MAILBOX, "WICBOX/Processed")
    assert [message.immutable_id for message in moved] == ids
    assert "WICBOX" in bed.graph.folders(MAILBOX)
    assert bed.graph.request_log.count(path="/v1.0/$batch") == 2  # 25 moves: 20 + 5
    assert bed.graph.request_log.count(in_batch=True, method="POST", status=201) == 25
    assert bed.graph.peak_concurrency(MAILBOX) <= 4
    again = bed.open(bed.delegated())  # a repeated MOVE (a stopped run's) addresses the same mails
    try:
        again.acknowledge(refs[:3])
    finally:
        again.close()
    assert len(bed.graph.messages(MAILBOX, "WICBOX/Processed")) == 25


def test_existing_folders_are_found_whatever_their_case(bed: Bed, tokens: RecordingTokens) -> None:
    bed.graph.add_folder(MAILBOX, "Wicbox/VERWERKT")
    bed.deliver(mail(1))
    session = bed.open(tokens, processed_folder="WICBOX/Verwerkt")
    try:
        session.acknowledge(session.list_pending(10))
    finally:
        session.close()
    assert bed.graph.folders(MAILBOX).count("Wicbox/VERWERKT") == 1
    assert len(bed.graph.messages(MAILBOX, "Wicbox/VERWERKT")) == 1
    assert bed.graph.request_log.count(method="POST", path="/v1.0/me/mailFolders") == 0


def test_inbox_subfolders_as_source_and_target(bed: Bed, tokens: RecordingTokens) -> None:
    bed.graph.add_folder(MAILBOX, "Inbox/Aanvragen")
    ids = bed.deliver(mail(1), folder="Inbox/Aanvragen")
    session = bed.open(tokens, source_folder="INBOX/aanvragen", processed_folder="INBOX/Verwerkt")
    try:
        session.acknowledge(session.list_pending(10))
    finally:
        session.close()
    assert [m.immutable_id for m in bed.graph.messages(MAILBOX, "Inbox/Verwerkt")] == ids


def test_delete_moves_to_deleted_items(bed: Bed, tokens: RecordingTokens) -> None:
    keep = bed.deliver(mail(1))
    ids = bed.deliver(mail(2), mail(3))
    session = bed.open(tokens, after_process=AfterProcess.DELETE)
    try:
        session.acknowledge(session.list_pending(10)[1:])
    finally:
        session.close()
    assert [m.immutable_id for m in bed.graph.messages(MAILBOX, "Inbox")] == keep
    assert [m.immutable_id for m in bed.graph.deleted(MAILBOX)] == ids


def test_seen_marks_read_and_keeps_the_mail(bed: Bed, tokens: RecordingTokens) -> None:
    bed.deliver(mail(1), mail(2))
    session = bed.open(tokens, after_process=AfterProcess.SEEN)
    try:
        session.acknowledge(session.list_pending(10))
        assert session.list_pending(10) == []
    finally:
        session.close()
    assert [m.is_read for m in bed.graph.messages(MAILBOX, "Inbox")] == [True, True]


def test_quarantine_moves_to_the_failed_folder_and_skips_vanished_mail(
    bed: Bed, session: GraphSession
) -> None:
    ids = bed.deliver(mail(1))
    refs = session.list_pending(10)
    ghost = MailRef(MAILBOX, "INBOX", "", "AAkALgDoesNotExist=", 0)
    session.quarantine([*refs, ghost])
    assert [m.immutable_id for m in bed.graph.messages(MAILBOX, "WICBOX/Failed")] == ids


def test_missing_source_folder_names_the_parameter(bed: Bed, tokens: RecordingTokens) -> None:
    with pytest.raises(MailboxError) as caught:
        bed.open(tokens, source_folder="Bestaat/Niet")
    assert names.FOLDER in str(caught.value)


# ---------------------------------------------------------------------------------- throttling and faults


def test_throttling_is_waited_out_per_retry_after(bed: Bed, tokens: RecordingTokens) -> None:
    bed.deliver(mail(1))
    waits = RecordedWaits()
    session = bed.open(tokens, sleep=waits)
    bed.graph.request_log.clear()
    bed.graph.throttle(2, retry_after=1)
    try:
        assert len(session.list_pending(10)) == 1
    finally:
        session.close()
    assert [r.status for r in bed.graph.request_log.entries()] == [429, 429, 200]
    assert waits == [1.0, 1.0]  # Retry-After, each time


def test_throttling_is_waited_out_only_so_long(bed: Bed, tokens: RecordingTokens) -> None:
    waits = RecordedWaits()
    session = bed.open(tokens, sleep=waits, max_throttle_wait_s=1.5)
    bed.graph.throttle(10, retry_after=1)
    try:
        with pytest.raises(MailboxError) as caught:
            session.list_pending(10)
    finally:
        session.close()
    assert waits == [1.0]  # a second wait would pass the budget of 1.5 s
    assert "after 1.0 s of waiting" in str(caught.value)
    assert names.WORKERS in str(caught.value)


def test_requests_of_a_batch_refused_for_concurrency_are_sent_again(bed: Bed, session: GraphSession) -> None:
    ids = bed.deliver(*(mail(n) for n in range(6)))
    refs = session.list_pending(10)
    bed.graph.set_mailbox_concurrency(2)
    session.acknowledge(refs)
    assert [m.immutable_id for m in bed.graph.messages(MAILBOX, "WICBOX/Processed")] == ids
    batches = bed.graph.request_log.entries(path="/v1.0/$batch")
    assert len(batches) == 2
    assert batches[1].started - batches[0].ended >= 1.0  # the Retry-After of the refused requests
    refused = bed.graph.request_log.entries(in_batch=True, status=429)
    assert len(refused) == 2


def test_unavailable_is_retried_and_a_dropped_read_is_repeated_once(bed: Bed, session: GraphSession) -> None:
    bed.deliver(mail(1))
    bed.graph.fail(1, retry_after=0)
    bed.graph.drop(1)
    assert len(session.list_pending(10)) == 1
    bed.graph.drop(2)
    with pytest.raises(ConnectionFailure) as caught:
        session.list_pending(10)
    assert bed.graph.host in str(caught.value)
    assert names.GRAPH_URL in str(caught.value)


# ---------------------------------------------------------------------------------- refusals


def test_an_imap_token_is_refused_with_the_audience_and_the_fix(bed: Bed) -> None:
    tokens = bed.delegated(scope=IMAP_DELEGATED)
    with pytest.raises(AuthenticationError) as caught:
        bed.open(tokens)
    message = str(caught.value)
    assert "https://outlook.office.com" in message and "https://graph.microsoft.com" in message
    assert names.SCOPE in message and "Mail.ReadWrite" in message
    assert tokens.refreshes == [False, True]  # one fresh token, then the error
    assert all(token.value.reveal() not in message for token in tokens.issued)


def test_an_application_access_policy_is_named_with_the_fix(bed: Bed) -> None:
    bed.graph.add_mailbox(OTHER_MAILBOX)
    bed.graph.add_application_access_policy(bed.directory.confidential_client_id, [OTHER_MAILBOX])
    with pytest.raises(AuthenticationError) as caught:
        bed.open(bed.application())
    message = str(caught.value)
    assert "application access policy" in message
    assert (
        f"Test-ApplicationAccessPolicy -Identity {MAILBOX} -AppId {bed.directory.confidential_client_id}"
        in message
    )


def test_a_missing_permission_is_named_with_the_fix(bed: Bed) -> None:
    client_id = str(uuid.uuid4())
    secret = f"s-{uuid.uuid4().hex}"
    bed.idp.add_application(
        client_id,
        bed.directory.tenant_id,
        "Zonder Graph",
        secrets={secret: T0 + dt.timedelta(days=3650)},
        app_roles={"https://outlook.office365.com": ("IMAP.AccessAsApp",)},
    )
    with pytest.raises(AuthenticationError) as caught:
        bed.open(bed.application(client_id, secret))
    message = str(caught.value)
    assert "lacks Mail.ReadWrite" in message and "Grant admin consent" in message


@pytest.mark.parametrize("permission", ["delegated", "application"])
def test_a_missing_mailbox_is_explained(bed: Bed, permission: str) -> None:
    tokens = bed.delegated(OTHER_MAILBOX) if permission == "delegated" else bed.application()
    with pytest.raises(MailboxError) as caught:
        bed.open(tokens, mailbox=OTHER_MAILBOX)
    message = str(caught.value)
    assert f"cannot find mailbox {OTHER_MAILBOX}" in message
    code = "MailboxNotEnabledForRESTAPI" if permission == "delegated" else "ErrorInvalidUser"
    assert code in message


def test_an_untrusted_certificate_names_the_ca_parameter(
    bed: Bed, tokens: RecordingTokens, tmp_path: Path
) -> None:
    other_ca = create_loopback_pki(tmp_path / "other").ca_cert
    with pytest.raises(ConnectionFailure) as caught:
        bed.open(tokens, ca_bundle=other_ca)
    assert f"WicBoxCaBundle is {other_ca}" in str(caught.value)


def test_the_proxy_setting_is_honoured(bed: Bed, tokens: RecordingTokens) -> None:
    proxied = GraphAdapter(bed.settings(), env={"HTTPS_PROXY": "http://127.0.0.1:9"})
    with pytest.raises(ConnectionFailure) as caught:
        proxied.open(MAILBOX, tokens)
    assert "proxy" in str(caught.value)
    bypass = GraphAdapter(
        bed.settings(), env={"HTTPS_PROXY": "http://127.0.0.1:9", "NO_PROXY": bed.graph.host}
    )
    bypass.open(MAILBOX, tokens).close()


def test_an_unreachable_graph_names_the_host_and_parameter(bed: Bed, tokens: RecordingTokens) -> None:
    with pytest.raises(ConnectionFailure) as caught:
        bed.open(tokens, base_url="https://127.0.0.1:9", connect_timeout_s=2)
    assert "127.0.0.1:9" in str(caught.value) and names.GRAPH_URL in str(caught.value)


# ---------------------------------------------------------------------------------- pure helpers

GRAPH_TOKEN = {"aud": "https://graph.microsoft.com", "exp": time.time() + 3600}
ACCESS_CASES = [
    (
        "delegated without permission",
        {**GRAPH_TOKEN, "scp": "Mail.Send", "upn": MAILBOX},
        "Access is denied.",
        "the delegated permission Mail.ReadWrite is not consented",
    ),
    (
        "application without role",
        {**GRAPH_TOKEN, "roles": ["Mail.Send"]},
        "Access is denied.",
        "the application permission Mail.ReadWrite is not consented",
    ),
    (
        "access policy",
        {**GRAPH_TOKEN, "roles": ["Mail.ReadWrite"], "appid": "app-1"},
        "Access to OData is disabled: [RAOP] : Blocked by tenant configured AppOnly AccessPolicy settings.",
        "Test-ApplicationAccessPolicy -Identity wicbox@klant.example -AppId app-1",
    ),
    (
        "other user",
        {**GRAPH_TOKEN, "scp": "Mail.ReadWrite", "upn": OTHER_MAILBOX},
        "Access is denied.",
        f"the token is for user {OTHER_MAILBOX}",
    ),
]


@pytest.mark.parametrize(
    ("case", "claims", "server", "expected"), ACCESS_CASES, ids=[c[0] for c in ACCESS_CASES]
)
def test_access_denied_says_which_cause(
    case: str, claims: dict[str, object], server: str, expected: str
) -> None:
    error = access_denied(
        GraphReply(403, "ErrorAccessDenied", server), "graph.microsoft.com", MAILBOX, claims
    )
    assert expected in str(error), case


TOKEN_CASES = [
    ("wrong audience", {"aud": "https://outlook.office365.com", "exp": time.time() + 3600}, "is a token for"),
    ("expired", {"aud": "https://graph.microsoft.com", "exp": time.time() - 5}, "clock"),
    ("other", {"aud": "https://graph.microsoft.com", "exp": time.time() + 3600}, names.TENANT_ID),
]


@pytest.mark.parametrize(("case", "claims", "expected"), TOKEN_CASES, ids=[c[0] for c in TOKEN_CASES])
def test_a_rejected_token_says_why(case: str, claims: dict[str, object], expected: str) -> None:
    reply = GraphReply(401, "InvalidAuthenticationToken", "Access token validation failure.")
    assert expected in str(token_rejected(reply, "graph.microsoft.com", MAILBOX, claims)), case


@pytest.mark.parametrize(
    ("claims", "root"),
    [
        ({"scp": "Mail.ReadWrite", "upn": "WICBOX@klant.example"}, "/me"),
        ({"scp": "Mail.ReadWrite", "upn": OTHER_MAILBOX}, f"/users/{MAILBOX}"),
        ({"roles": ["Mail.ReadWrite"]}, f"/users/{MAILBOX}"),
    ],
)
def test_mailbox_root(claims: dict[str, object], root: str) -> None:
    assert mailbox_root(MAILBOX, claims) == root


@pytest.mark.parametrize(
    ("document", "reply"),
    [
        (
            {"error": {"code": "ErrorItemNotFound", "message": "gone", "innerError": {}}},
            GraphReply(404, "ErrorItemNotFound", "gone"),
        ),
        ("<html>proxy page</html>", GraphReply(404, "", "")),
        (None, GraphReply(404, "", "")),
    ],
)
def test_parse_reply(document: object, reply: GraphReply) -> None:
    assert parse_reply(404, document) == reply


def test_folder_levels() -> None:
    assert folder_levels(" WICBOX / Processed/") == ["WICBOX", "Processed"]


@pytest.mark.parametrize(
    "options",
    [
        {"page_size": 0},
        {"page_size": 1001},
        {"concurrency": 5},
        {"batch_size": 21},
        {"read_timeout_s": 0},
        {"processed_folder": "inbox"},
        {"failed_folder": "WICBOX/Processed"},
        {"source_folder": "A//B"},
    ],
)
def test_settings_refuse_what_graph_cannot_do(options: dict[str, Any]) -> None:
    with pytest.raises(ConfigurationError):
        GraphSettings(**options)


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("7", 7.0),
        ("0.5", 0.5),
        ("-3", 0.0),
        ("Wed, 21 Oct 2026 07:28:10 GMT", 10.0),  # an HTTP date, 10 s after "now"
        ("Wed, 21 Oct 2026 07:27:00 GMT", 0.0),  # in the past: at once
        ("soon", DEFAULT_RETRY_AFTER_S),  # unreadable: the default pause
    ],
)
def test_retry_after_in_seconds_or_as_an_http_date(value: str, seconds: float) -> None:
    now = dt.datetime(2026, 10, 21, 7, 28, 0, tzinfo=dt.timezone.utc).timestamp()
    assert retry_after_seconds(value, now) == pytest.approx(seconds)


# ---------------------------------------------------------------------------------- attacks and faults


def test_a_rejected_token_is_renewed_once_and_the_request_goes_through(
    bed: Bed, tokens: RecordingTokens
) -> None:
    bed.deliver(mail(1))
    session = bed.open(tokens)
    try:
        bed.graph.request_log.clear()
        bed.graph.reject_tokens(1)
        assert len(session.list_pending(10)) == 1
    finally:
        session.close()
    assert [entry.status for entry in bed.graph.request_log.entries()] == [401, 200]
    assert tokens.refreshes[-1] is True  # a fresh token, not the cached one, for the second try
    assert tokens.issued[-1].value != tokens.issued[0].value


def test_a_token_rejected_twice_is_an_authentication_error(bed: Bed, tokens: RecordingTokens) -> None:
    session = bed.open(tokens)
    try:
        bed.graph.reject_tokens(2)
        with pytest.raises(AuthenticationError):
            session.list_pending(10)
    finally:
        session.close()
    assert tokens.refreshes.count(True) == 1  # one renewal, not a loop


def test_a_batch_whose_every_request_fails_moves_nothing_and_says_so(
    bed: Bed, tokens: RecordingTokens
) -> None:
    bed.deliver(mail(1), mail(2), mail(3))
    session = bed.open(tokens)
    try:
        refs = session.list_pending(10)
        bed.graph.fail_in_batches(3, status=500)
        with pytest.raises((MailboxError, ConnectionFailure)) as caught:
            session.acknowledge(refs)
    finally:
        session.close()
    assert "moving mails" in str(caught.value)
    assert len(bed.graph.messages(MAILBOX, "Inbox")) == 3  # nothing moved, nothing lost


class _CountingServer(http.server.ThreadingHTTPServer):
    requests_seen = 0


class _CountingHandler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        assert isinstance(self.server, _CountingServer)
        self.server.requests_seen += 1
        self.send_response(200)
        self.end_headers()

    def log_message(self, *_: object) -> None:
        return


def test_a_next_link_to_another_host_is_refused_before_the_token_leaves(
    bed: Bed, tokens: RecordingTokens
) -> None:
    """A next-page link names its own host; one that is not Graph's (a tampered reply, a proxy) must
    not receive the mailbox's token."""
    foreign = _CountingServer(("127.0.0.1", 0), _CountingHandler)
    worker = threading.Thread(target=foreign.serve_forever, daemon=True)
    worker.start()
    http_client = GraphHttp(bed.settings(), tokens, MAILBOX)
    try:
        link = f"https://127.0.0.1:{foreign.server_address[1]}/v1.0/users/{MAILBOX}/messages?$skip=10"
        with pytest.raises(BridgeError) as caught:
            http_client.get_json(link, "listing the source folder")
    finally:
        http_client.close()
        foreign.shutdown()
        worker.join()
    assert foreign.requests_seen == 0
    assert "127.0.0.1" in str(caught.value)
