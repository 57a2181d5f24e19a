"""Large mails over IMAP: fetched one by one in parts (``BODY.PEEK[]<offset.length>``) against the
test bed's Dovecot, exact to the byte, resumed after Exchange's faults, and with one copy of the
mail in memory instead of the several that imaplib makes of one big literal."""

from __future__ import annotations

import base64
import dataclasses
import logging
import random
import re
import tracemalloc
from collections.abc import Iterator
from typing import Any

import pytest

from tests import adapter_bed
from tests.adapter_bed import IdentityParts, RecordingTokens
from tests.test_imap_adapter import MAILBOX, WHEN, Bed, imap_bed, mail, open_session, through_proxy
from tools.testbed.dovecot import DovecotServer
from tools.testbed.imap_faults import ImapFaultProxy, running_fault_proxy
from wicbox_bridge.adapters.imap import ImapSession, ImapSettings
from wicbox_bridge.adapters.imap_session import part_item, part_key, preallocated_buffer
from wicbox_bridge.adapters.imap_settings import DEFAULT_FETCH_PART_BYTES, DEFAULT_LARGE_MAIL_BYTES
from wicbox_bridge.config.params import Endpoint, TlsMode
from wicbox_bridge.errors import ConfigurationError, ConnectionFailure

pytestmark = pytest.mark.testbed

MB = 1024 * 1024
SMALL_THRESHOLD = 64 * 1024  # small settings for the fault tests: several parts, little data
SMALL_PART = 16 * 1024
LARGE_LOG = re.compile(r"Fetched a large mail, (\d+) bytes in (\d+) part\(s\)")


# ---------------------------------------------------------------------------------- helpers


def sized_mail(size: int, seed: int) -> bytes:
    """A mail of exactly ``size`` bytes: headers, then base64 lines of random bytes, CRLF at the end."""
    header = (
        f"From: klant{seed}@extern.example\r\nTo: {MAILBOX}\r\nSubject: Bouwplan {seed}\r\n"
        f"Message-ID: <groot{seed}@extern.example>\r\nMIME-Version: 1.0\r\n"
        "Content-Type: application/pdf\r\nContent-Transfer-Encoding: base64\r\n\r\n"
    ).encode()
    room = size - len(header) - 2
    encoded = base64.encodebytes(random.Random(seed).randbytes(room * 3 // 4 + 3))
    return header + encoded.replace(b"\n", b"\r\n")[:room] + b"\r\n"


def large_parts(caplog: pytest.LogCaptureFixture) -> list[tuple[int, int]]:
    """(bytes, parts) of every mail the session fetched in parts, from its log."""
    return [(int(size), int(parts)) for size, parts in LARGE_LOG.findall(caplog.text)]


def seen_flags(bed: Bed) -> list[bool]:
    with bed.dovecot.admin_session(MAILBOX) as admin:
        admin.select_folder("INBOX", readonly=True)
        answer = admin.fetch(admin.search("ALL"), ["FLAGS"])
    return [b"\\Seen" in answer[uid][b"FLAGS"] for uid in sorted(answer)]


def small_settings(bed: Bed, port: int | None = None, **options: Any) -> ImapSettings:
    return bed.settings(port=port, large_mail_bytes=SMALL_THRESHOLD, fetch_part_bytes=SMALL_PART, **options)


@pytest.fixture(scope="module")
def mail_30mb() -> bytes:
    return sized_mail(30 * MB, seed=30)


identity_parts = adapter_bed.identity_parts


@pytest.fixture
def bed(dovecot_clean: DovecotServer, identity_parts: IdentityParts) -> Bed:
    dovecot_clean.add_mailbox(MAILBOX)
    return imap_bed(dovecot_clean, identity_parts)


@pytest.fixture
def tokens(bed: Bed) -> RecordingTokens:
    return bed.delegated()


@pytest.fixture
def imap_faults(bed: Bed) -> Iterator[ImapFaultProxy]:
    with running_fault_proxy(bed.dovecot.host, bed.dovecot.imaps_port, bed.pki) as proxy:
        yield proxy


@pytest.fixture
def wicbox_log(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.INFO, logger="wicbox")
    return caplog


def fetch_all(session: ImapSession) -> tuple[list[bytes], list[float | None]]:
    try:
        fetched = session.fetch(session.list_pending(100))
    finally:
        session.close()
    return [item.raw for item in fetched], [item.received_at for item in fetched]


# ---------------------------------------------------------------------------------- pure helpers


@pytest.mark.parametrize(
    ("offset", "length", "item", "key"),
    [
        (0, 2 * MB, "BODY.PEEK[]<0.2097152>", b"BODY[]<0>"),
        (4 * MB, 2 * MB, "BODY.PEEK[]<4194304.2097152>", b"BODY[]<4194304>"),
        (17, 1024, "BODY.PEEK[]<17.1024>", b"BODY[]<17>"),
    ],
)
def test_part_item_and_answer_key(offset: int, length: int, item: str, key: bytes) -> None:
    assert (part_item(offset, length), part_key(offset)) == (item, key)


@pytest.mark.parametrize(
    ("listed", "actual"),
    [(1000, 1000), (1000, 700), (1000, 2500), (1, 5000), (4096, 0)],  # listed sizes need not be exact
)
def test_preallocated_buffer_holds_exactly_what_was_written(listed: int, actual: int) -> None:
    data = random.Random(listed + actual).randbytes(actual)
    buffer = preallocated_buffer(listed)
    for start in range(0, actual, 300):
        buffer.write(data[start : start + 300])
    buffer.truncate()
    assert buffer.getvalue() == data


def test_preallocated_buffer_hands_out_its_memory_without_a_copy() -> None:
    size = 8 * MB
    part = random.Random(8).randbytes(MB)
    tracemalloc.start()
    try:
        buffer = preallocated_buffer(size + 1000)  # listed a little larger than the mail
        for _ in range(size // MB):
            buffer.write(part)
        buffer.truncate()
        raw = buffer.getvalue()
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert raw == part * (size // MB)
    assert peak < size * 1.1


@pytest.mark.parametrize(
    ("options", "named"),
    [
        ({"large_mail_bytes": 0}, "large_mail_bytes"),
        ({"fetch_part_bytes": 1023}, "fetch_part_bytes"),
        ({"fetch_part_bytes": 0}, "fetch_part_bytes"),
    ],
)
def test_part_settings_are_checked(options: dict[str, int], named: str) -> None:
    with pytest.raises(ConfigurationError, match=named) as caught:
        ImapSettings(Endpoint("outlook.office365.com", 993, TlsMode.IMPLICIT), **options)
    assert caught.value.fix


# ---------------------------------------------------------------------------------- against Dovecot


def test_30mb_mail_exact_unread_and_with_one_copy_in_memory(
    bed: Bed, tokens: RecordingTokens, mail_30mb: bytes, wicbox_log: pytest.LogCaptureFixture
) -> None:
    bed.append(mail_30mb)
    session = open_session(bed, tokens)
    try:
        refs = session.list_pending(10)
        tracemalloc.start()
        try:
            fetched = session.fetch(refs)
            _current, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    finally:
        session.close()
    assert fetched[0].raw == mail_30mb
    assert fetched[0].received_at == WHEN.timestamp()
    parts = -(-len(mail_30mb) // DEFAULT_FETCH_PART_BYTES) + 1  # 30 MB is a whole number of parts
    assert large_parts(wicbox_log) == [(len(mail_30mb), parts)]
    assert seen_flags(bed) == [False]
    # the mail once, plus one part and imaplib's copies of it (1.3x measured); one literal: 3.3x
    assert peak < 1.5 * len(mail_30mb)


def test_mails_around_the_threshold_are_exact_and_in_order(
    bed: Bed, tokens: RecordingTokens, wicbox_log: pytest.LogCaptureFixture
) -> None:
    sizes = [
        DEFAULT_LARGE_MAIL_BYTES,  # at the threshold: batched with the small ones
        DEFAULT_LARGE_MAIL_BYTES + 1,  # just above: two full parts and one byte
        3 * DEFAULT_FETCH_PART_BYTES,  # a whole number of parts: the last part asked for is empty
        DEFAULT_LARGE_MAIL_BYTES - 1,
    ]
    raws = [mail(1), *(sized_mail(size, seed) for seed, size in enumerate(sizes)), mail(2)]
    bed.append(*raws)
    fetched, received = fetch_all(open_session(bed, tokens))
    assert fetched == raws
    assert set(received) == {WHEN.timestamp()}
    assert large_parts(wicbox_log) == [(sizes[1], 3), (sizes[2], 4)]
    assert seen_flags(bed) == [False] * len(raws)


def test_parts_decide_where_the_mail_ends_not_the_listed_size(bed: Bed, tokens: RecordingTokens) -> None:
    """Exchange's RFC822.SIZE is not always exact: a listed size off either way changes nothing."""
    raw = sized_mail(100_000, seed=3)
    bed.append(raw)
    session = open_session(bed, tokens, small_settings(bed))
    try:
        (ref,) = session.list_pending(10)
        wrong = [dataclasses.replace(ref, size=size) for size in (SMALL_THRESHOLD + 1, 3 * ref.size)]
        assert [item.raw for item in session.fetch(wrong)] == [raw, raw]
    finally:
        session.close()


def test_vanished_large_mail_is_left_out(bed: Bed, tokens: RecordingTokens) -> None:
    raws = [mail(1), sized_mail(90_000, seed=4), sized_mail(80_000, seed=5)]
    bed.append(*raws)
    session = open_session(bed, tokens, small_settings(bed))
    try:
        refs = session.list_pending(10)
        with bed.dovecot.admin_session(MAILBOX) as admin:
            admin.select_folder("INBOX")
            admin.delete_messages([int(refs[1].key)])
            admin.expunge()
        assert [item.ref for item in session.fetch(refs)] == [refs[0], refs[2]]
    finally:
        session.close()


# ---------------------------------------------------------------------------------- Exchange's faults


PARTS_OF_100K = -(-100_000 // SMALL_PART)  # 7: six full parts and a short one


@pytest.mark.parametrize("bye_at_part", [0, 2])
def test_token_expired_during_a_part_resumes_at_that_part(
    bed: Bed, tokens: RecordingTokens, imap_faults: ImapFaultProxy, bye_at_part: int
) -> None:
    raw = sized_mail(100_000, seed=6)
    bed.append(mail(1), raw)
    session = through_proxy(
        bed, imap_faults, tokens, large_mail_bytes=SMALL_THRESHOLD, fetch_part_bytes=SMALL_PART
    )
    try:
        refs = session.list_pending(10)
        imap_faults.expire_token(after_commands=1 + bye_at_part)  # the small mail's batch, then parts
        fetched = session.fetch(refs)
    finally:
        session.close()
    assert [item.raw for item in fetched] == [mail(1), raw]
    assert fetched[1].received_at == WHEN.timestamp()
    assert tokens.refreshes == [False, True]
    assert imap_faults.connections_accepted == 2
    # sizes, the small mail, every part once, and the part the BYE answered: nothing fetched twice
    assert imap_faults.commands()["UID FETCH"] == 1 + 1 + PARTS_OF_100K + 1
    assert seen_flags(bed) == [False, False]


def test_throttled_parts_are_waited_out(
    bed: Bed, tokens: RecordingTokens, imap_faults: ImapFaultProxy
) -> None:
    raw = sized_mail(100_000, seed=7)
    bed.append(raw)
    session = through_proxy(
        bed,
        imap_faults,
        tokens,
        large_mail_bytes=SMALL_THRESHOLD,
        fetch_part_bytes=SMALL_PART,
        max_throttle_wait_s=2,
    )
    try:
        refs = session.list_pending(10)
        imap_faults.throttle(2, backoff_ms=100)
        fetched = session.fetch(refs)
    finally:
        session.close()
    assert [item.raw for item in fetched] == [raw]
    assert imap_faults.commands()["UID FETCH"] == 1 + 2 + PARTS_OF_100K


def test_connection_drop_during_a_part(
    bed: Bed, tokens: RecordingTokens, imap_faults: ImapFaultProxy
) -> None:
    bed.append(sized_mail(100_000, seed=8))
    session = through_proxy(
        bed, imap_faults, tokens, large_mail_bytes=SMALL_THRESHOLD, fetch_part_bytes=SMALL_PART
    )
    try:
        refs = session.list_pending(10)
        imap_faults.drop_during_fetch()
        with pytest.raises(ConnectionFailure, match="lost while fetching a large mail"):
            session.fetch(refs)
    finally:
        session.close()
    assert tokens.refreshes == [False]
