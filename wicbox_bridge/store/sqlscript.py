"""Splitting the shipped SQL scripts into the statements (or batches) a store executes one by one.

Each dialect is split the way its own tools split it, so the scripts also run unchanged in
sqlcmd/SSMS, psql and the sqlite3 shell:

- ``mssql``: T-SQL batches separated by lines holding only ``GO``;
- ``postgresql``: statements ending in ``;`` outside quotes, comments and ``$tag$`` bodies;
- ``sqlite``: statements as :func:`sqlite3.complete_statement` sees them (triggers included).

Pieces holding nothing but comments and blanks are dropped.
"""

from __future__ import annotations

import re
import sqlite3

from wicbox_bridge.store.base import Dialect

_GO_LINE = re.compile(r"^[ \t]*GO[ \t]*(?:--.*)?$", re.IGNORECASE | re.MULTILINE)
_DOLLAR_TAG = re.compile(r"\$(?:[A-Za-z_][A-Za-z0-9_]*)?\$")


def split_statements(text: str, dialect: Dialect) -> list[str]:
    if dialect == "mssql":
        pieces = _GO_LINE.split(text)
    elif dialect == "postgresql":
        pieces = _split_on_semicolons(text)
    else:
        pieces = _split_sqlite(text)
    return [piece.strip() for piece in pieces if has_code(piece)]


def has_code(text: str) -> bool:
    """Whether a piece of SQL holds anything but blanks and comments."""
    position = 0
    while position < len(text):
        skipped = _skip_comment(text, position)
        if skipped != position:
            position = skipped
            continue
        if not text[position].isspace():
            return True
        position += 1
    return False


def _skip_comment(text: str, position: int) -> int:
    """The position after a comment starting at ``position`` (``position`` itself if none does)."""
    if text.startswith("--", position):
        end = text.find("\n", position)
        return len(text) if end < 0 else end + 1
    if text.startswith("/*", position):
        depth, position = 1, position + 2
        while position < len(text) and depth:
            if text.startswith("/*", position):
                depth, position = depth + 1, position + 2
            elif text.startswith("*/", position):
                depth, position = depth - 1, position + 2
            else:
                position += 1
        return position
    return position


def _skip_quoted(text: str, position: int) -> int:
    """The position after a quoted string, identifier or dollar-quoted body starting here."""
    char = text[position]
    if char in "'\"":
        position += 1
        while position < len(text):
            if text[position] == char:
                if text[position + 1 : position + 2] == char:
                    position += 2
                    continue
                return position + 1
            position += 1
        return position
    tag = _DOLLAR_TAG.match(text, position)
    if char == "$" and tag:
        end = text.find(tag.group(0), tag.end())
        return len(text) if end < 0 else end + len(tag.group(0))
    return position


def _split_on_semicolons(text: str) -> list[str]:
    pieces: list[str] = []
    start = position = 0
    while position < len(text):
        skipped = _skip_comment(text, position)
        if skipped == position:
            skipped = _skip_quoted(text, position)
        if skipped != position:
            position = skipped
            continue
        if text[position] == ";":
            pieces.append(text[start:position])
            start = position + 1
        position += 1
    pieces.append(text[start:])
    return pieces


def _split_sqlite(text: str) -> list[str]:
    """Semicolon pieces, re-joined until sqlite3 sees a complete statement (a trigger's body)."""
    pieces: list[str] = []
    current = ""
    for piece in _split_on_semicolons(text):
        if not current and not has_code(piece):
            continue
        current += piece + ";"
        if sqlite3.complete_statement(current):
            pieces.append(current)
            current = ""
    pieces.append(current)  # an unfinished statement: executing it reports the error
    return pieces
