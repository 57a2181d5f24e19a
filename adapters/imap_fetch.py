"""UID FETCH with a lean reader of the answers this bridge asks for, imapclient's parser as fallback.

imapclient's ``fetch`` parses every answer with a lexer written in Python that walks the text
around the literals byte by byte: a large part of the CPU of fetching 1000 mails (measured in
docs/performance.md, "CPU per mail"). The answers to our own FETCH commands are simple (``UID``,
``RFC822.SIZE``, ``INTERNALDATE``, ``BODY[]`` or ``BODY[]<offset>``), so :func:`parse_simple`
reads them with one regular expression per token. Anything it does not know (another item, a
nested list, a quoted string with escapes, ``FLAGS`` a server adds unasked, a malformed answer)
makes it return None, and imapclient's own parser reads the same data: the result is the same
dictionary either way (``tests/test_imap_fetch.py`` checks both on the same answers).

The command goes through imapclient's connection exactly as its ``fetch`` sends it, so errors are
the same ``IMAPClientError`` (``fetch failed: ...``) the session's throttling rules read.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from imapclient import IMAPClient
from imapclient.datetime_util import parse_to_datetime
from imapclient.response_parser import parse_fetch_response

_TOKEN = re.compile(rb'\s*(?:(\()|(\))|"([^"\\]*)"|\{(\d+)\}\Z|([^\s()"{}]+))')
_KNOWN = re.compile(rb"(?:UID|RFC822\.SIZE|INTERNALDATE|BODY\[\](?:<\d+>)?)\Z")
_OPEN, _CLOSE = object(), object()


class _Quoted(bytes):
    """A quoted string's content (a literal's bytes stay plain ``bytes``)."""


class _Atom(bytes):
    """A bare atom: NIL, a number, a name."""


class Unsupported(Exception):
    """An answer :func:`parse_simple` leaves to imapclient's parser."""


def uid_fetch(client: IMAPClient, uids: Sequence[int], items: Sequence[str]) -> dict[int, dict[bytes, Any]]:
    """``client.fetch(uids, items)`` with the lean reader: keyed by UID, values typed as imapclient
    types them (INTERNALDATE a datetime, sizes ints, bodies bytes, ``SEQ`` added)."""
    if not uids:
        return {}
    imap = client._imap  # imapclient's imaplib connection, as its own fetch uses it
    message_set = ",".join(str(uid) for uid in uids)
    tag = imap._command("UID", "FETCH", message_set, "(" + " ".join(items).upper() + ")")
    typ, data = imap._command_complete("FETCH", tag)
    client._checkok("fetch", typ, data)
    typ, data = imap._untagged_response(typ, data, "FETCH")
    parsed = parse_simple(data, client.normalise_times)
    if parsed is None:
        parsed = parse_fetch_response(data, client.normalise_times, True)
    return {uid: parsed[uid] for uid in uids if uid in parsed}


def parse_simple(data: list[Any], normalise_times: bool) -> dict[int, dict[bytes, Any]] | None:
    """imaplib's FETCH data read as imapclient reads it, or None for anything not plainly simple."""
    if data == [None]:
        return {}
    try:
        result: dict[int, dict[bytes, Any]] = {}
        for tokens in _responses(data):
            key, values = _message(tokens, normalise_times)
            result.setdefault(key, {}).update(values)
        return result
    except (Unsupported, ValueError, TypeError, IndexError):
        return None


def _responses(data: list[Any]) -> list[list[Any]]:
    """The tokens of each response: imaplib gives ``(text, literal)`` pairs for a response's
    literals, then the text after the last literal as plain bytes."""
    responses: list[list[Any]] = []
    current: list[Any] = []
    for item in data:
        if isinstance(item, tuple):
            text, literal = item
            if not _tokens(text, current) or not isinstance(literal, bytes):
                raise Unsupported("a literal without its {size}")
            current.append(literal)
            continue
        if not isinstance(item, bytes) or _tokens(item, current):
            raise Unsupported("a response ending in a literal marker")
        responses.append(current)
        current = []
    if current:
        raise Unsupported("a response without its end")
    return responses


def _tokens(text: bytes, into: list[Any]) -> bool:
    """Append the tokens of ``text`` to ``into``; whether it ended in a literal marker ``{n}``."""
    position, end = 0, len(text.rstrip())
    while position < end:
        match = _TOKEN.match(text, position)
        if match is None or match.end() == position:
            raise Unsupported(f"unexpected text at {position}")
        position = match.end()
        opened, closed, quoted, literal, atom = match.groups()
        if literal is not None:
            return True
        if opened or closed:
            into.append(_OPEN if opened else _CLOSE)
        else:
            into.append(_Quoted(quoted) if quoted is not None else _Atom(atom))
    return False


def _message(tokens: list[Any], normalise_times: bool) -> tuple[int, dict[bytes, Any]]:
    seq = int(tokens[0])
    if tokens[1] is not _OPEN or tokens[-1] is not _CLOSE:
        raise Unsupported("not a parenthesised list")
    values: dict[bytes, Any] = {b"SEQ": seq}
    key = seq
    items = tokens[2:-1]
    if len(items) % 2:
        raise Unsupported("an uneven list")
    for name, value in zip(items[::2], items[1::2], strict=True):
        if not isinstance(name, _Atom) or not _KNOWN.match(word := name.upper()):
            raise Unsupported("an item this reader does not know")
        if value is _OPEN or value is _CLOSE:
            raise Unsupported("a nested list")
        if word == b"UID":
            key = int(value)
        elif word == b"INTERNALDATE":
            values[word] = _internaldate(value, normalise_times)
        elif word == b"RFC822.SIZE":
            values[word] = int(value)
        else:
            values[word] = _body(value)
    return key, values


def _body(value: bytes) -> bytes | None:
    """A literal or quoted string as bytes, NIL as None; a bare atom is left to imapclient."""
    if isinstance(value, _Quoted):
        return bytes(value)
    if not isinstance(value, _Atom):
        return value  # a literal, as imaplib read it (no copy)
    if value == b"NIL":
        return None
    raise Unsupported("a body that is a bare atom")


def _internaldate(value: bytes, normalise_times: bool) -> Any:
    if isinstance(value, _Atom) and value == b"NIL":
        return None
    try:
        return parse_to_datetime(bytes(value), normalise=normalise_times)
    except ValueError:
        return None
