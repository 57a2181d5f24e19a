"""The lean FETCH reader gives what imapclient's parser gives, or declines (None).

The inputs are imaplib's FETCH data as it hands it over: ``(text, literal)`` pairs for a
response's literals, then the text after the last literal. The end-to-end path (Dovecot) is
covered by the IMAP adapter tests, which fetch through :func:`uid_fetch`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest
from imapclient.response_parser import parse_fetch_response

from wicbox_bridge.adapters.imap_fetch import parse_simple

BODY = b'Subject: x\r\n\r\nhello ) { } "quoted" {12}\r\n'

SIMPLE = [
    [(b'1 (UID 7 INTERNALDATE "06-Dec-2026 10:11:12 +0100" BODY[] {%d}' % len(BODY), BODY), b")"],
    [(b"2 (UID 9 BODY[] {%d}" % len(BODY), BODY), b' INTERNALDATE "01-Jan-2026 00:00:00 -0500")'],
    [b"3 (UID 11 RFC822.SIZE 1234)", b"4 (RFC822.SIZE 99 UID 12)"],
    [(b"5 (UID 13 BODY[]<0> {%d}" % len(BODY), BODY), b")"],
    [b"6 (UID 14 BODY[] NIL)"],
    [b'7 (UID 15 BODY[] "")'],
    [b"8 (uid 16 rfc822.size 5)"],
    [b'9 (UID 17 INTERNALDATE NIL BODY[] "abc")'],
    [None],
    [],
]

DECLINED = [
    [b"1 (UID 7 FLAGS (\\Seen))"],
    [b"1 (UID 7 MODSEQ (12))"],
    [b'1 (UID 7 BODY[] "a\\"b")'],
    [b"1 (UID 7 BODY[] abc)"],
    [b"1 (UID 7 ENVELOPE NIL)"],
    [b"1 (UID 7"],
    [b"(UID 7)"],
    [b"1 UID 7"],
    [(b"1 (UID 7 BODY[] {3}", b"abc")],
    [(b"1 (UID 7 BODY[]", b"abc"), b")"],
]


def _plain(parsed: dict[int, dict[bytes, Any]]) -> dict[int, dict[bytes, Any]]:
    return {key: dict(value) for key, value in parsed.items()}


@pytest.mark.parametrize("data", SIMPLE)
@pytest.mark.parametrize("normalise", [False, True])
def test_simple_answers_read_as_imapclient_reads_them(data: list[Any], normalise: bool) -> None:
    ours = parse_simple(data, normalise)
    assert ours is not None
    assert ours == _plain(parse_fetch_response(data, normalise, True))
    for values in ours.values():  # plain bytes as imapclient gives them, not the reader's subclasses
        assert all(type(value) in (bytes, int, datetime, type(None)) for value in values.values())


@pytest.mark.parametrize("data", DECLINED)
def test_anything_else_is_left_to_imapclient(data: list[Any]) -> None:
    assert parse_simple(data, False) is None


def test_a_literal_is_handed_on_without_a_copy() -> None:
    literal = b"x" * 100_000
    ours = parse_simple([(b"1 (UID 3 BODY[] {100000}", literal), b")"], False)
    assert ours is not None
    assert ours[3][b"BODY[]"] is literal
