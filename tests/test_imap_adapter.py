"""The IMAP adapter against the test bed's Dovecot (tokens from the identity-platform emulator through
the real msal), Exchange Online's faults through the fault proxy, and its pure helpers (tables)."""

from __future__ import annotations

import base64
import datetime as dt
import imaplib
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests import adapter_bed
from tests.adapter_bed import IdentityParts, RecordedWaits, RecordingTokens
from tests.corpus import require_corpus
from tests.helpers.mailgen import to_crlf
from tools.testbed.dovecot import DovecotServer
from tools.testbed.idp import IdentityPlatformEmulator, SeededDirectory
from tools.testbed.imap_faults import ImapFaultProxy, running_fault_proxy
from tools.testbed.pki import LoopbackPki, create_loopback_pki
from wicbox_bridge.adapters.base import MailboxSession, MailRef, TokenProvider
from wicbox_bridge.adapters.identity import IdentityPlatform, TokenService
from wicbox_bridge.adapters.imap import ImapAdapter, ImapSession, ImapSettings
from wicbox_bridge.adapters.imap_errors import is_token_expired, server_text, throttle_backoff_s
from wicbox_bridge.adapters.imap_session import fetch_batches, server_folder, uid_set
from wicbox_bridge.auth.scopes import EXCHANGE_APPLICATION, IMAP_DELEGATED
from wicbox_bridge.config import params as names
from wicbox_bridge.config.endpoints import policy_from
from wicbox_bridge.config.params import AfterProcess, Endpoint, TlsMode, parse_parameters
from wicbox_bridge.errors import (
    AuthenticationError,
    BridgeError,
    ConfigurationError,
    ConnectionFailure,
    MailboxError,
    ParameterError,
)
from wicbox_bridge.secret import Secret

MAILBOX = "wicbox@klant.example"
OTHER_MAILBOX = "project-alpha@klant.example"
PASSWORD = "Zomer 2026!"
WHEN = dt.datetime(2026, 3, 14, 9, 26, 53, tzinfo=dt.timezone.utc)

pytestmark = pytest.mark.testbed


# ---------------------------------------------------------------------------------- helpers


def mail(number: int, body: bytes = b"") -> bytes:
    return (
        f"From: klant{number}@extern.example\r\nTo: {MAILBOX}\r\nSubject: Dossier {number}\r\n"
        f"Message-ID: <m{number}@extern.example>\r\n\r\nInhoud {number}\r\n"
    ).encode() + body


def corpus_mails(limit: int) -> list[bytes]:
    files = sorted(require_corpus().rglob("*.eml"))[:limit]
    # IMAP hands out CRLF line ends, so the test bed stores CRLF mail.
    return [to_crlf(path.read_bytes()) for path in files]


@dataclass
class Bed:
    dovecot: DovecotServer
    pki: LoopbackPki
    idp: IdentityPlatformEmulator
    directory: SeededDirectory
    cache_dir: Path

    def settings(
        self, port: int | None = None, tls: TlsMode = TlsMode.IMPLICIT, **options: Any
    ) -> ImapSettings:
        if port is None:
            port = self.dovecot.imaps_port if tls is TlsMode.IMPLICIT else self.dovecot.imap_starttls_port
        return ImapSettings(
            endpoint=Endpoint(self.dovecot.host, port, tls),
            ca_bundle=self.pki.ca_cert,
            timeout_s=10,
            **options,
        )

    def delegated(self, user: str = MAILBOX) -> RecordingTokens:
        platform = IdentityPlatform(
            self.idp.base_url,
            self.directory.tenant_id,
            self.directory.public_client_id,
            ca_bundle=self.pki.ca_cert,
        )
        service = TokenService(platform, self.cache_dir / "delegated.bin", encrypt_cache=False)
        password = Secret(self.directory.user(user).password)
        return RecordingTokens(service.delegated((IMAP_DELEGATED,), user, password))

    def application(self) -> RecordingTokens:
        platform = IdentityPlatform(
            self.idp.base_url,
            self.directory.tenant_id,
            self.directory.confidential_client_id,
            ca_bundle=self.pki.ca_cert,
        )
        service = TokenService(platform, self.cache_dir / "application.bin", encrypt_cache=False)
        secret = Secret(self.directory.confidential_client_secret)
        return RecordingTokens(service.application((EXCHANGE_APPLICATION,), secret))

    def append(self, *raws: bytes, folder: str = "INBOX", flags: tuple[str, ...] = ()) -> list[int]:
        return [self.dovecot.append(MAILBOX, folder, raw, flags, WHEN) for raw in raws]

    def uids(self, folder: str = "INBOX") -> list[int]:
        return [message.uid for message in self.dovecot.messages(MAILBOX, folder)]


identity_parts = adapter_bed.identity_parts


def imap_bed(dovecot: DovecotServer, parts: IdentityParts) -> Bed:
    return Bed(dovecot, parts.pki, parts.idp, parts.directory, parts.cache_dir)


@pytest.fixture
def bed(dovecot_clean: DovecotServer, identity_parts: IdentityParts) -> Bed:
    dovecot_clean.add_mailbox(MAILBOX, PASSWORD)
    dovecot_clean.add_mailbox(OTHER_MAILBOX)
    dovecot_clean.grant_app_access(identity_parts.directory.confidential_client_sp_id, MAILBOX)
    return imap_bed(dovecot_clean, identity_parts)


@pytest.fixture
def imap_faults(bed: Bed) -> Iterator[ImapFaultProxy]:
    with running_fault_proxy(bed.dovecot.host, bed.dovecot.imaps_port, bed.pki) as proxy:
        yield proxy


@pytest.fixture
def tokens(bed: Bed) -> RecordingTokens:
    return bed.delegated()


def open_session(
    bed: Bed,
    tokens: TokenProvider | None,
    settings: ImapSettings | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> ImapSession:
    return ImapAdapter(settings or bed.settings(), password=Secret(PASSWORD), sleep=sleep).open(
        MAILBOX, tokens
    )


@pytest.fixture
def session(bed: Bed, tokens: RecordingTokens) -> Iterator[ImapSession]:
    opened = open_session(bed, tokens)
    yield opened
    opened.close()


def through_proxy(
    bed: Bed,
    proxy: ImapFaultProxy,
    tokens: TokenProvider,
    sleep: Callable[[float], None] = time.sleep,
    **options: Any,
) -> ImapSession:
    return open_session(bed, tokens, bed.settings(port=proxy.port, **options), sleep)


# ---------------------------------------------------------------------------------- sign-in and TLS


def test_xoauth2_delegated(bed: Bed, tokens: RecordingTokens) -> None:
    bed.append(mail(1))
    session: MailboxSession = open_session(bed, tokens)
    try:
        assert [ref.key for ref in session.list_pending(10)] == [str(uid) for uid in bed.uids()]
    finally:
        session.close()
    sign_in = bed.dovecot.sign_ins()[-1]
    assert (sign_in.mechanism, sign_in.user, sign_in.verdict.reason) == ("XOAUTH2", MAILBOX, "accepted")
    assert tokens.issued[0].claims["scp"] == "IMAP.AccessAsUser.All"


def test_xoauth2_application_on_a_granted_mailbox(bed: Bed) -> None:
    tokens = bed.application()
    session = open_session(bed, tokens)
    session.close()
    assert bed.dovecot.sign_ins()[-1].verdict.reason == "accepted"
    assert tokens.issued[0].claims["roles"] == ["IMAP.AccessAsApp", "SMTP.SendAsApp"]


def test_application_without_mailbox_permission_is_refused_with_the_fix(bed: Bed) -> None:
    adapter = ImapAdapter(bed.settings())
    with pytest.raises(AuthenticationError) as caught:
        adapter.open(OTHER_MAILBOX, bed.application())
    text = str(caught.value)
    assert "IMAP.AccessAsApp" in text
    assert (
        f"Add-MailboxPermission -Identity {OTHER_MAILBOX} -User {bed.directory.confidential_client_sp_id}"
        in text
    )
    assert "Set-CASMailbox" in text
    assert bed.dovecot.sign_ins()[-1].verdict.reason == "app has no permission on the mailbox"


def test_delegated_token_of_another_user_is_refused_with_the_fix(bed: Bed, tokens: RecordingTokens) -> None:
    with pytest.raises(AuthenticationError) as caught:
        ImapAdapter(bed.settings()).open(OTHER_MAILBOX, tokens)
    text = str(caught.value)
    assert f"the token is for {MAILBOX}, not for the mailbox {OTHER_MAILBOX}" in text
    assert (
        "the delegated permission IMAP.AccessAsUser.All (Azure > App registrations > (the WICBox app) > API "
        "permissions > Add a permission > Microsoft Graph > Delegated permissions, then grant admin consent)"
    ) in text
    assert f"Set-CASMailbox -Identity {OTHER_MAILBOX} -ImapEnabled $true" in text
    assert tokens.issued[0].value.reveal() not in text


def test_basic_login(bed: Bed) -> None:
    session = open_session(bed, None)
    session.close()
    assert bed.dovecot.sign_ins()[-1].verdict.reason == "accepted"
    assert bed.dovecot.sign_ins()[-1].mechanism != "XOAUTH2"


def test_basic_passwords_per_mailbox(bed: Bed) -> None:
    bed.dovecot.set_password(OTHER_MAILBOX, "Herfst 2026!")
    adapter = ImapAdapter(bed.settings(), password={"Project-Alpha@Klant.Example": Secret("Herfst 2026!")})
    adapter.open(OTHER_MAILBOX, None).close()
    with pytest.raises(ParameterError, match=names.PASSWORD):
        adapter.open(MAILBOX, None)


def test_wrong_password_names_the_parameter_not_the_password(bed: Bed) -> None:
    adapter = ImapAdapter(bed.settings(), password=Secret("Winter 2025!"))
    with pytest.raises(AuthenticationError) as caught:
        adapter.open(MAILBOX, None)
    assert names.PASSWORD in str(caught.value)
    assert "Winter 2025!" not in str(caught.value)
    assert "Winter 2025!" not in repr(adapter)


@pytest.mark.parametrize("tls", [TlsMode.IMPLICIT, TlsMode.STARTTLS])
def test_implicit_tls_and_starttls(bed: Bed, tokens: RecordingTokens, tls: TlsMode) -> None:
    session = open_session(bed, tokens, bed.settings(tls=tls))
    session.close()
    assert bed.dovecot.sign_ins()[-1].verdict.reason == "accepted"


@pytest.mark.parametrize("tls", [TlsMode.IMPLICIT, TlsMode.STARTTLS])
def test_later_sessions_resume_the_servers_tls_session(bed: Bed, tls: TlsMode) -> None:
    """MULTIPLE: one adapter, many mailboxes; every connection after the first resumes the TLS
    session (ssl's ``session_reused``), also when several are open at once."""
    tokens = bed.application()
    adapter = ImapAdapter(bed.settings(tls=tls))
    first = adapter.open(MAILBOX, tokens)
    assert (adapter.tls.full, adapter.tls.resumed) == (1, 0)
    sessions = [adapter.open(MAILBOX, tokens) for _ in range(3)]
    for opened in [first, *sessions]:
        opened.close()
    assert (adapter.tls.full, adapter.tls.resumed) == (1, 3)
    assert all(sign_in.verdict.reason == "accepted" for sign_in in bed.dovecot.sign_ins()[-4:])
    another = ImapAdapter(bed.settings(tls=tls))  # a new adapter has no session to offer
    another.open(MAILBOX, tokens).close()
    assert (another.tls.full, another.tls.resumed) == (1, 0)


def test_the_hierarchy_delimiter_is_asked_once_per_adapter(bed: Bed, imap_faults: ImapFaultProxy) -> None:
    tokens = bed.application()
    adapter = ImapAdapter(bed.settings(port=imap_faults.port))
    sessions = [adapter.open(MAILBOX, tokens) for _ in range(3)]
    for opened in sessions:
        opened.close()
    assert imap_faults.commands()["LIST"] == 1
    assert {opened.validity for opened in sessions} == {sessions[0].validity}


def test_no_login_without_tls(bed: Bed, tokens: RecordingTokens) -> None:
    """A STARTTLS endpoint whose STARTTLS is stripped (a downgrade): no token goes over plain text."""
    with running_fault_proxy(bed.dovecot.host, bed.dovecot.imaps_port, bed.pki, client_tls=False) as plain:
        plain.hide_capabilities("STARTTLS")
        settings = bed.settings(port=plain.port, tls=TlsMode.STARTTLS)
        with pytest.raises(
            ConnectionFailure, match="does not offer STARTTLS; refusing to sign in without TLS"
        ):
            open_session(bed, tokens, settings)
        assert plain.commands()["AUTHENTICATE"] == 0
        assert tokens.refreshes == []
        insecure = bed.settings(port=plain.port, tls=TlsMode.STARTTLS, allow_insecure_login=True)
        open_session(bed, tokens, insecure).close()
        assert plain.commands()["AUTHENTICATE"] == 1


@pytest.mark.parametrize("trust", ["foreign-ca", "system-store"])
def test_untrusted_certificate_names_the_ca_parameter(
    bed: Bed, tokens: RecordingTokens, trust: str, tmp_path: Path
) -> None:
    ca = create_loopback_pki(tmp_path / "other").ca_cert if trust == "foreign-ca" else None
    settings = ImapSettings(
        Endpoint(bed.dovecot.host, bed.dovecot.imaps_port, TlsMode.IMPLICIT), ca_bundle=ca
    )
    with pytest.raises(ConnectionFailure, match="WicBoxCaBundle") as caught:
        open_session(bed, tokens, settings)
    assert "certificate could not be verified" in str(caught.value)
    assert isinstance(caught.value.__cause__, OSError)
    assert tokens.refreshes == []


def test_unreachable_server_names_host_and_port(bed: Bed, tokens: RecordingTokens) -> None:
    closed_port = ImapFaultProxy(bed.dovecot.host, bed.dovecot.imaps_port, bed.pki)
    port = closed_port.port
    closed_port.stop()  # never started: the port is now closed
    with pytest.raises(ConnectionFailure, match=rf"{bed.dovecot.host}:{port}.*connection was refused"):
        open_session(bed, tokens, bed.settings(port=port))


def test_missing_source_folder(bed: Bed, tokens: RecordingTokens) -> None:
    with pytest.raises(MailboxError, match=names.FOLDER):
        open_session(bed, tokens, bed.settings(source_folder="Postvak IN/WICBOX"))


# ---------------------------------------------------------------------------------- listing and fetching


def test_lists_oldest_first_with_a_limit(bed: Bed, session: ImapSession) -> None:
    raws = [mail(n, b"x" * n) for n in range(1, 6)]
    uids = bed.append(*raws[:2])
    bed.append(mail(99), flags=("\\Deleted",))  # another client's deleted mail: not pending
    uids += bed.append(*raws[2:])
    refs = session.list_pending(4)
    assert [int(ref.key) for ref in refs] == uids[:4]
    assert [ref.size for ref in refs] == [len(raw) for raw in raws[:4]]
    assert {(ref.mailbox, ref.folder, ref.validity) for ref in refs} == {(MAILBOX, "INBOX", session.validity)}
    assert session.list_pending(0) == []


def test_seen_mode_lists_only_unseen_mail(bed: Bed, tokens: RecordingTokens) -> None:
    unseen = bed.append(mail(1))
    bed.append(mail(2), flags=("\\Seen",))
    session = open_session(bed, tokens, bed.settings(after_process=AfterProcess.SEEN))
    try:
        assert [int(ref.key) for ref in session.list_pending(10)] == unseen
    finally:
        session.close()


@pytest.mark.corpus
def test_fetch_returns_exact_bytes_in_batches_without_marking_read(bed: Bed, tokens: RecordingTokens) -> None:
    raws = corpus_mails(limit=40)
    bed.append(*raws)
    settings = bed.settings(fetch_batch=7, fetch_batch_bytes=20_000)
    session = open_session(bed, tokens, settings)
    try:
        refs = session.list_pending(100)
        fetched = session.fetch(refs)
    finally:
        session.close()
    assert [mail.raw for mail in fetched] == raws
    assert [mail.ref for mail in fetched] == refs
    assert {mail.received_at for mail in fetched} == {WHEN.timestamp()}
    assert all("\\Seen" not in message.flags for message in bed.dovecot.messages(MAILBOX))
    assert len(list(fetch_batches(refs, 7, 20_000))) > len(refs) / 7


def test_fetch_leaves_out_vanished_mail(bed: Bed, session: ImapSession) -> None:
    bed.append(mail(1), mail(2), mail(3))
    refs = session.list_pending(10)
    with bed.dovecot.admin_session(MAILBOX) as admin:
        admin.select_folder("INBOX")
        admin.delete_messages([int(refs[1].key)])
        admin.expunge()
    assert [mail.ref for mail in session.fetch(refs)] == [refs[0], refs[2]]


# ---------------------------------------------------------------------------------- after-process actions


def subscribed(bed: Bed) -> set[str]:
    with bed.dovecot.admin_session(MAILBOX) as admin:
        return {str(name) for _flags, _delimiter, name in admin.list_sub_folders()}


def test_move_to_nested_processed_folder_created_on_demand(bed: Bed, tokens: RecordingTokens) -> None:
    raws = [mail(1), mail(2), mail(3)]
    bed.append(*raws)
    settings = bed.settings(
        processed_folder="Archief/WICBOX/Verwerkt", failed_folder="Archief/WICBOX/Mislukt"
    )
    session = open_session(bed, tokens, settings)
    try:
        refs = session.list_pending(10)
        session.acknowledge(refs[:2])
        session.quarantine(refs[2:])
        assert session.list_pending(10) == []
    finally:
        session.close()
    assert bed.uids() == []
    assert [m.raw for m in bed.dovecot.messages(MAILBOX, "Archief/WICBOX/Verwerkt")] == raws[:2]
    assert [m.raw for m in bed.dovecot.messages(MAILBOX, "Archief/WICBOX/Mislukt")] == raws[2:]
    assert {"Archief", "Archief/WICBOX", "Archief/WICBOX/Verwerkt", "Archief/WICBOX/Mislukt"} <= subscribed(
        bed
    )


def test_delete_expunges_only_our_mails(bed: Bed, tokens: RecordingTokens) -> None:
    ours = bed.append(mail(1), mail(2))
    foreign = bed.append(mail(3), flags=("\\Deleted",))
    session = open_session(bed, tokens, bed.settings(after_process=AfterProcess.DELETE))
    try:
        session.acknowledge(session.list_pending(10))
    finally:
        session.close()
    assert bed.uids() == foreign
    assert not set(ours) & set(bed.uids())
    assert not any(name.startswith("WICBOX") for name in bed.dovecot.folders(MAILBOX))


def test_seen_marks_read_and_keeps_the_mail(bed: Bed, tokens: RecordingTokens) -> None:
    uids = bed.append(mail(1), mail(2))
    session = open_session(bed, tokens, bed.settings(after_process=AfterProcess.SEEN))
    try:
        session.acknowledge(session.list_pending(1))
        assert [int(ref.key) for ref in session.list_pending(10)] == uids[1:]
    finally:
        session.close()
    assert [("\\Seen" in m.flags) for m in bed.dovecot.messages(MAILBOX)] == [True, False]


def create_folders(bed: Bed, *names: str) -> None:
    with bed.dovecot.admin_session(MAILBOX) as admin:
        for name in names:
            admin.create_folder(name)


def test_existing_folders_cost_no_look_up(
    bed: Bed, tokens: RecordingTokens, imap_faults: ImapFaultProxy
) -> None:
    create_folders(bed, "WICBOX", "WICBOX/Processed")
    bed.append(mail(1), mail(2), mail(3))
    session = through_proxy(bed, imap_faults, tokens)
    try:
        refs = session.list_pending(10)
        before = imap_faults.commands()  # sign-in asked for the hierarchy delimiter (one LIST)
        session.acknowledge(refs[:1])
        session.acknowledge(refs[1:])
    finally:
        session.close()
    counts = imap_faults.commands() - before
    assert (counts["UID MOVE"], counts["LIST"], counts["CREATE"]) == (2, 0, 0)
    assert [m.raw for m in bed.dovecot.messages(MAILBOX, "WICBOX/Processed")] == [mail(1), mail(2), mail(3)]


def test_a_missing_folder_is_created_when_the_move_is_refused(
    bed: Bed, tokens: RecordingTokens, imap_faults: ImapFaultProxy
) -> None:
    bed.append(mail(1), mail(2), mail(3))
    session = through_proxy(bed, imap_faults, tokens)
    try:
        refs = session.list_pending(10)
        before = imap_faults.commands()
        session.acknowledge(refs[:1])  # refused (TRYCREATE), folders created, moved again
        session.acknowledge(refs[1:])  # the folder is known now
    finally:
        session.close()
    counts = imap_faults.commands() - before
    # one look-up after the refusal, then one per level before creating it
    assert (counts["UID MOVE"], counts["LIST"], counts["CREATE"], counts["SUBSCRIBE"]) == (3, 3, 2, 2)
    assert [m.raw for m in bed.dovecot.messages(MAILBOX, "WICBOX/Processed")] == [mail(1), mail(2), mail(3)]
    assert bed.uids() == []


def test_copy_and_uid_expunge_without_move(
    bed: Bed, tokens: RecordingTokens, imap_faults: ImapFaultProxy
) -> None:
    imap_faults.hide_capabilities("MOVE")
    create_folders(bed, "WICBOX", "WICBOX/Processed")
    bed.append(mail(1), mail(2))
    foreign = bed.append(mail(3), flags=("\\Deleted",))
    session = through_proxy(bed, imap_faults, tokens)
    try:
        session.acknowledge(session.list_pending(10))
    finally:
        session.close()
    counts = imap_faults.commands()
    assert (counts["UID MOVE"], counts["UID COPY"], counts["UID EXPUNGE"], counts["EXPUNGE"]) == (0, 1, 1, 0)
    assert bed.uids() == foreign  # the other client's \Deleted mail was not expunged
    assert [m.raw for m in bed.dovecot.messages(MAILBOX, "WICBOX/Processed")] == [mail(1), mail(2)]


def test_without_move_and_uidplus_mails_stay_flagged_deleted(
    bed: Bed, tokens: RecordingTokens, imap_faults: ImapFaultProxy
) -> None:
    imap_faults.hide_capabilities("MOVE", "UIDPLUS")
    ours = bed.append(mail(1))
    foreign = bed.append(mail(2), flags=("\\Deleted",))
    session = through_proxy(bed, imap_faults, tokens)
    try:
        session.acknowledge(session.list_pending(10))
        assert session.list_pending(10) == []
    finally:
        session.close()
    counts = imap_faults.commands()
    assert (counts["UID EXPUNGE"], counts["EXPUNGE"]) == (0, 0)
    assert bed.uids() == ours + foreign
    assert len(bed.dovecot.messages(MAILBOX, "WICBOX/Processed")) == 1


# ---------------------------------------------------------------------------------- Exchange's faults


def test_token_expired_mid_fetch_reconnects_once_with_a_fresh_token(
    bed: Bed, tokens: RecordingTokens, imap_faults: ImapFaultProxy
) -> None:
    raws = [mail(n) for n in range(1, 8)]
    bed.append(*raws)
    session = through_proxy(bed, imap_faults, tokens, fetch_batch=3)
    try:
        refs = session.list_pending(10)
        issued_before = len(bed.idp.request_log.token_requests())
        imap_faults.expire_token(at_fetch=1)
        fetched = session.fetch(refs)
        session.acknowledge(refs)
    finally:
        session.close()
    assert [mail.raw for mail in fetched] == raws
    assert tokens.refreshes == [False, True]
    assert len(bed.idp.request_log.token_requests()) == issued_before + 1
    assert imap_faults.connections_accepted == 2
    assert len(bed.dovecot.messages(MAILBOX, "WICBOX/Processed")) == 7


def test_token_expired_after_any_command_resumes_it(
    bed: Bed, tokens: RecordingTokens, imap_faults: ImapFaultProxy
) -> None:
    bed.append(mail(1), mail(2))
    session = through_proxy(bed, imap_faults, tokens)
    try:
        imap_faults.expire_token(after_commands=0)
        refs = session.list_pending(10)
        session.acknowledge(refs)
    finally:
        session.close()
    assert len(refs) == 2
    assert tokens.refreshes == [False, True]
    assert bed.uids() == []


def test_token_expired_twice_is_an_error(
    bed: Bed, tokens: RecordingTokens, imap_faults: ImapFaultProxy
) -> None:
    bed.append(mail(1))
    session = through_proxy(bed, imap_faults, tokens)
    try:
        refs = session.list_pending(10)
        imap_faults.expire_token(at_fetch=2)
        with pytest.raises(AuthenticationError, match="twice with AccessTokenExpired"):
            session.fetch(refs)
    finally:
        session.close()
    assert tokens.refreshes == [False, True]


def test_throttling_is_waited_out(bed: Bed, tokens: RecordingTokens, imap_faults: ImapFaultProxy) -> None:
    bed.append(mail(1), mail(2))
    waits = RecordedWaits()
    session = through_proxy(bed, imap_faults, tokens, waits, max_throttle_wait_s=2.0)
    try:
        refs = session.list_pending(10)
        imap_faults.throttle(2, backoff_ms=300)
        fetched = session.fetch(refs)
    finally:
        session.close()
    assert len(fetched) == 2
    assert waits == [0.3, 0.3]  # the server's suggested backoff, each time
    assert imap_faults.commands()["UID FETCH"] == 1 + 3  # listing sizes, then 2 throttled + 1 answered


def test_throttling_beyond_the_budget_is_an_error(
    bed: Bed, tokens: RecordingTokens, imap_faults: ImapFaultProxy
) -> None:
    bed.append(mail(1))
    waits = RecordedWaits()
    session = through_proxy(bed, imap_faults, tokens, waits, max_throttle_wait_s=0.5)
    try:
        refs = session.list_pending(10)
        imap_faults.throttle(5, backoff_ms=200)
        with pytest.raises(MailboxError, match="kept throttling") as caught:
            session.fetch(refs)
    finally:
        session.close()
    assert waits == [0.2, 0.2]  # a third wait would pass the budget of 0.5 s: it gives up instead
    assert names.WORKERS in str(caught.value)


def test_connection_drop_mid_fetch(bed: Bed, tokens: RecordingTokens, imap_faults: ImapFaultProxy) -> None:
    bed.append(mail(1, b"z" * 40_000))
    session = through_proxy(bed, imap_faults, tokens)
    try:
        refs = session.list_pending(10)
        imap_faults.drop_during_fetch()
        with pytest.raises(ConnectionFailure, match="lost while fetching mails"):
            session.fetch(refs)
    finally:
        session.close()
    assert tokens.refreshes == [False]


def test_stale_refs_after_the_folder_was_recreated(bed: Bed, tokens: RecordingTokens) -> None:
    bed.append(mail(1), folder="Intake")
    settings = bed.settings(source_folder="Intake")
    first = open_session(bed, tokens, settings)
    refs = first.list_pending(10)
    first.close()
    recreate_folder(bed, "Intake")
    second = open_session(bed, tokens, settings)
    try:
        assert second.validity != refs[0].validity
        with pytest.raises(MailboxError, match="UIDVALIDITY"):
            second.fetch(refs)
        with pytest.raises(MailboxError, match="UIDVALIDITY"):
            second.acknowledge(refs)
    finally:
        second.close()
    assert bed.uids("Intake") != []


def test_uidvalidity_change_detected_on_reconnect(
    bed: Bed, tokens: RecordingTokens, imap_faults: ImapFaultProxy
) -> None:
    bed.append(mail(1), folder="Intake")
    session = through_proxy(bed, imap_faults, tokens, source_folder="Intake")
    try:
        refs = session.list_pending(10)
        recreate_folder(bed, "Intake")
        imap_faults.expire_token(at_fetch=1)
        with pytest.raises(MailboxError, match=r"was recreated on the server \(UIDVALIDITY"):
            session.fetch(refs)
    finally:
        session.close()


def recreate_folder(bed: Bed, folder: str) -> None:
    with bed.dovecot.admin_session(MAILBOX) as admin:
        admin.delete_folder(folder)
        admin.create_folder(folder)
    bed.append(mail(2), folder=folder)


def test_no_token_or_password_in_debug_logs(
    bed: Bed, tokens: RecordingTokens, imap_faults: ImapFaultProxy, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="wicbox")  # an earlier in-process CLI run may have raised it
    bed.append(mail(1))
    session = through_proxy(bed, imap_faults, tokens)
    try:
        refs = session.list_pending(10)
        imap_faults.expire_token(at_fetch=1)
        assert len(session.fetch(refs)) == 1
        session.acknowledge(refs)
    finally:
        session.close()
    open_session(bed, None).close()
    assert len(tokens.issued) == 2
    assert "AUTHENTICATE" in caplog.text  # imapclient did log the commands...
    for token in tokens.issued:
        value = token.value.reveal()
        sasl = base64.b64encode(f"user={MAILBOX}\1auth=Bearer {value}\1\1".encode()).decode()
        for secret in (value, value[-40:], sasl, sasl[:60]):
            assert secret not in caplog.text  # ...but never the token
    assert PASSWORD not in caplog.text
    assert "Signed in to" in caplog.text
    assert "Fetched 1 of 1 mail(s)" in caplog.text


# ---------------------------------------------------------------------------------- settings


def test_settings_from_parameters() -> None:
    parsed = parse_parameters(
        {
            names.CLIENT_ID: "0b6e3f4c-1a2d-4e5f-8a9b-0c1d2e3f4a5b",
            names.TENANT_ID: "5f1c7d2e-8b4a-4c3e-9a6f-2d7e1b0c9a41",
            names.USERNAME: MAILBOX,
            names.PASSWORD: PASSWORD,
            names.IMAP_HOST: "imap.klant.example:143",
            names.AFTER_PROCESS: "SEEN",
            names.PROCESSED_FOLDER: "Verwerkt",
        },
        policy_from(["imap.klant.example"], Path("C:\\Certs\\proxy-ca.pem")),
    )
    settings = ImapSettings.from_parameters(parsed.parameters, fetch_batch=150)
    assert settings.endpoint == Endpoint("imap.klant.example", 143, TlsMode.STARTTLS)
    assert settings.ca_bundle == Path("C:\\Certs\\proxy-ca.pem")
    assert (settings.source_folder, settings.processed_folder, settings.failed_folder) == (
        "INBOX",
        "Verwerkt",
        "WICBOX/Failed",
    )
    assert (settings.after_process, settings.fetch_batch, settings.allow_insecure_login) == (
        AfterProcess.SEEN,
        150,
        False,
    )


ENDPOINT = Endpoint("outlook.office365.com", 993, TlsMode.IMPLICIT)


@pytest.mark.parametrize(
    ("options", "error", "named"),
    [
        ({"processed_folder": "inbox"}, ParameterError, names.PROCESSED_FOLDER),
        (
            {"source_folder": "Te verwerken", "processed_folder": "te verwerken/"},
            ParameterError,
            names.PROCESSED_FOLDER,
        ),
        ({"failed_folder": "INBOX"}, ParameterError, names.FAILED_FOLDER),
        ({"failed_folder": "WICBOX/Processed"}, ParameterError, names.FAILED_FOLDER),
        ({"processed_folder": "WICBOX//Processed"}, ParameterError, names.PROCESSED_FOLDER),
        ({"source_folder": " "}, ParameterError, names.FOLDER),
        ({"fetch_batch": 0}, ConfigurationError, "fetch_batch"),
        ({"fetch_batch": 5000}, ConfigurationError, "fetch_batch"),
        ({"fetch_batch_bytes": 0}, ConfigurationError, "fetch_batch_bytes"),
        ({"timeout_s": 0}, ConfigurationError, "timeout_s"),
        ({"max_throttle_wait_s": -1}, ConfigurationError, "max_throttle_wait_s"),
    ],
)
def test_conflicting_settings_are_rejected(
    options: dict[str, Any], error: type[BridgeError], named: str
) -> None:
    with pytest.raises(error, match=named) as caught:
        ImapSettings(ENDPOINT, **options)
    assert caught.value.fix


@pytest.mark.parametrize(
    "options",
    [
        {"processed_folder": "INBOX", "after_process": AfterProcess.SEEN},
        {"processed_folder": "INBOX", "after_process": AfterProcess.DELETE},
        {"source_folder": "Inkomend", "processed_folder": "INBOX"},
    ],
)
def test_settings_that_do_not_conflict(options: dict[str, Any]) -> None:
    ImapSettings(ENDPOINT, **options)


# ---------------------------------------------------------------------------------- pure helpers


@pytest.mark.parametrize(
    ("uids", "expected"),
    [
        ([], ""),
        ([7], "7"),
        ([1, 2, 3], "1:3"),
        ([5, 1, 2, 9, 3, 10, 12], "1:3,5,9:10,12"),
        ([4, 4, 6], "4,6"),
    ],
)
def test_uid_set(uids: list[int], expected: str) -> None:
    assert uid_set(uids) == expected


def _refs(*sizes: int) -> list[MailRef]:
    return [MailRef(MAILBOX, "INBOX", "1", str(n), size) for n, size in enumerate(sizes, start=1)]


@pytest.mark.parametrize(
    ("sizes", "count", "budget", "expected"),
    [
        ((10, 10, 10, 10, 10), 2, 1000, [2, 2, 1]),
        ((10, 10, 10), 100, 25, [2, 1]),
        ((500, 10, 10), 100, 100, [1, 2]),  # a mail larger than the budget goes alone
        ((10, 500, 10), 100, 100, [1, 1, 1]),
        ((), 5, 100, []),
    ],
)
def test_fetch_batches(sizes: tuple[int, ...], count: int, budget: int, expected: list[int]) -> None:
    assert [len(batch) for batch in fetch_batches(_refs(*sizes), count, budget)] == expected


@pytest.mark.parametrize(
    ("exc", "backoff"),
    [
        (
            imaplib.IMAP4.error(
                "FETCH command error: BAD [b'Request is throttled. Suggested Backoff Time: 250 ms']"
            ),
            0.25,
        ),
        (imaplib.IMAP4.error("fetch failed: Request is throttled. Suggested Backoff Time: 1500 ms"), 1.5),
        (imaplib.IMAP4.error("select failed: NO Request is throttled."), 1.0),
        (imaplib.IMAP4.error("fetch failed: [SERVERBUG] Internal error"), None),
        (imaplib.IMAP4.abort("Request is throttled. Suggested Backoff Time: 10 ms"), None),
        (ValueError("throttled"), None),
    ],
)
def test_throttle_backoff(exc: BaseException, backoff: float | None) -> None:
    assert throttle_backoff_s(exc) == backoff


@pytest.mark.parametrize(
    ("exc", "bye", "expired"),
    [
        (imaplib.IMAP4.abort("command: FETCH => Session invalidated - AccessTokenExpired"), "", True),
        (imaplib.IMAP4.abort("socket error: EOF"), "Session invalidated - AccessTokenExpired", True),
        (imaplib.IMAP4.abort("socket error: EOF"), "", False),
        (imaplib.IMAP4.error("AccessTokenExpired"), "", False),
    ],
)
def test_token_expired_recognised(exc: BaseException, bye: str, expired: bool) -> None:
    assert is_token_expired(exc, bye) is expired


@pytest.mark.parametrize(
    ("folder", "delimiter", "expected"),
    [
        ("WICBOX/Processed", "/", "WICBOX/Processed"),
        ("WICBOX/Processed", ".", "WICBOX.Processed"),
        ("INBOX", None, "INBOX"),
    ],
)
def test_server_folder(folder: str, delimiter: str | None, expected: str) -> None:
    assert server_folder(folder, delimiter) == expected


def test_server_text_unwraps_python_bytes() -> None:
    assert server_text(Exception("b'[AUTHENTICATIONFAILED] AUTHENTICATE failed.'")) == (
        "[AUTHENTICATIONFAILED] AUTHENTICATE failed."
    )


# ------------------------------------------------------------------------- imaplib's protocol trace


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@pytest.mark.parametrize("trace_on", [False, True])
def test_imaplib_trace_is_formatted_only_when_its_logger_is_on(
    bed: Bed, tokens: RecordingTokens, trace_on: bool
) -> None:
    """imapclient sets imaplib's debug level 5: every fetched mail was formatted into a trace line
    that the logger then dropped. Off (the default) imaplib's level is 0 and no trace line is made;
    on (``-vvv``) the trace still carries the protocol, as before."""
    trace = logging.getLogger("imapclient.imaplib")
    collect, level = _Collect(), trace.level
    trace.addHandler(collect)
    trace.setLevel(logging.DEBUG if trace_on else logging.WARNING)
    try:
        bed.append(mail(1, b"trace-marker"))
        session = open_session(bed, tokens)
        try:
            fetched = session.fetch(session.list_pending(10))
            imaplib_level = session._live().client._imap.debug  # what imaplib checks before formatting
        finally:
            session.close()
    finally:
        trace.removeHandler(collect)
        trace.setLevel(level)
    assert [b"trace-marker" in item.raw for item in fetched] == [True]
    assert imaplib_level == (5 if trace_on else 0)
    marked = [message for message in collect.messages if "trace-marker" in message]
    assert bool(marked) is trace_on
    assert bool(collect.messages) is trace_on
