"""Inserting filed mails into WICBOX_MAIL and WICBOX_ATTACHMENT (STATUS = PENDING_ACK).

Two ways, with the same rows as result:

* :func:`insert_mails` files a whole batch with a few statements: several rows per INSERT, the
  generated MAIL_IDs read back with RETURNING, or on SQL Server with ``OUTPUT INSERTED ... INTO``
  a table variable selected in the same T-SQL batch (:func:`files_many_rows`). Each statement is
  a round trip the database server works through while the client waits, so their number, not
  the bytes, decided the time of filing. On PostgreSQL and SQL Server a chunk of whole mails goes
  in ONE statement together with all their attachments (:func:`insert_chunk_sql`: a data-modifying
  CTE, or one T-SQL batch through the table variable), the attachments joined to their mail's new
  MAIL_ID by SHA-256 on the server; SQLite, in-process, sends the mails and the attachments as two
  statements.
* :func:`insert_mail` files one mail (SQLite before 3.35, a mail whose values go in parts, and a
  batch the database refused part of).

Large values (over 2 MiB) are sent in parts where the dialect can append to a value
(:data:`_APPEND`: PostgreSQL, SQL Server): the row is inserted with an empty value and the bytes
follow in at most four parts of at least 2 MiB. psqlODBC copies a parameter twice before sending
it (about 60 MB of native memory for a 30 MB mail, 10 MB for a 5 MB one); in parts, that copy is
never larger than one part. PostgreSQL rewrites the value for every part, hence at most four
(inserting the first part with the row instead of an empty value measured slower, see
docs/performance.md); SQL Server's ``.WRITE`` appends in place.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Final

from wicbox_bridge.errors import DataRejected
from wicbox_bridge.mail.record import Attachment, MailRecord
from wicbox_bridge.store.base import (
    Dialect,
    Store,
    atomic,
    insert_returning_identity,
    most_parameters,
    returning_sql,
    returns_many_keys,
)
from wicbox_bridge.store.leases import Fence, check_fence, held_condition, lease_lost
from wicbox_bridge.store.mails import (
    COLUMN_LIMITS,
    INSERT_MAIL_COLUMNS,
    MAIL_ROW,
    NAME_LIMIT,
    MailOrigin,
    MailStatus,
    bounded,
    normalized_mailbox,
)
from wicbox_bridge.store.times import naive_utc, utc_now

__all__ = [
    "NewMail",
    "files_many_rows",
    "insert_attachments_sql",
    "insert_chunk_sql",
    "insert_mail",
    "insert_mails",
    "insert_mails_sql",
    "mail_chunks",
    "row_chunks",
]


@dataclass(frozen=True)
class NewMail:
    """One mail to file: where it was read, its exact bytes, its parsed record and its project."""

    origin: MailOrigin
    raw: bytes
    record: MailRecord
    project_id: int | None
    routing: str


_ATTACHMENT_COLUMNS: Final = (
    "INSERT INTO WICBOX_ATTACHMENT (MAIL_ID, POSITION, FILENAME, CONTENT_TYPE, SIZE_BYTES, CONTENT)"
)
_ATTACHMENT_ROW: Final = "(?, ?, ?, ?, ?, ?)"
# An attachment of a chunk, keyed by its mail's SHA256 instead of the MAIL_ID the server makes in the
# same statement. PostgreSQL types the columns of a VALUES list that is not an INSERT's own from its
# parameters, which psqlODBC may send untyped (text): each is cast to its column's type; T-SQL
# converts the attachments' values implicitly.
_KEYED_ROW: Final[dict[Dialect, str]] = {
    "postgresql": "(CAST(? AS CHAR(64)), CAST(? AS INTEGER), CAST(? AS TEXT), CAST(? AS TEXT), "
    "CAST(? AS BIGINT), CAST(? AS BYTEA))",
    "mssql": _ATTACHMENT_ROW,
}
_KEYED_COLUMNS: Final = "v (SHA256, POSITION, FILENAME, CONTENT_TYPE, SIZE_BYTES, CONTENT)"
_KEYED_PICKED: Final = "k.MAIL_ID, v.POSITION, v.FILENAME, v.CONTENT_TYPE, v.SIZE_BYTES, v.CONTENT"
# With the fence folded in, the mails come from a VALUES list of their own, filtered by the fence:
# typed explicitly in both dialects (a column of NULLs would have no type of its own), in the order
# of INSERT_MAIL_COLUMNS.
_MAIL_TYPES: Final[dict[Dialect, tuple[str, ...]]] = {
    "postgresql": (
        "INTEGER", "INTEGER", "TEXT", "TEXT", "TEXT", "BIGINT", "BIGINT", "TEXT", "TEXT", "TEXT", "TEXT",
        "TEXT", "TEXT", "TEXT", "TIMESTAMP", "TIMESTAMP", "BIGINT", "TEXT", "TEXT", "BYTEA", "TEXT",
        "TEXT", "TEXT", "TEXT", "TIMESTAMP",
    ),
    "mssql": (
        "INT", "INT", "NVARCHAR(320)", "NVARCHAR(400)", "NVARCHAR(10)", "BIGINT", "BIGINT", "NVARCHAR(512)",
        "NVARCHAR(998)", "CHAR(64)", "NVARCHAR(MAX)", "NVARCHAR(MAX)", "NVARCHAR(MAX)", "NVARCHAR(MAX)",
        "DATETIME2", "DATETIME2", "BIGINT", "NVARCHAR(MAX)", "NVARCHAR(MAX)", "VARBINARY(MAX)",
        "NVARCHAR(20)", "NVARCHAR(400)", "NVARCHAR(MAX)", "NVARCHAR(MAX)", "DATETIME2",
    ),
}  # fmt: skip
_MAIL_NAMES: Final = INSERT_MAIL_COLUMNS.partition("(")[2].rstrip(")")
# Several rows per INSERT: at most store.base.most_parameters in one statement, and about this
# many bytes of mail and attachment content (the driver copies a statement's parameters before
# sending them).
_MOST_STATEMENT_BYTES: Final = 1024 * 1024
# What the INSERT of many mails hands back, to match each generated MAIL_ID with its mail (the
# T-SQL types of store/sql/mssql/0002_mail.sql, for SQL Server's table variable).
_MAIL_KEYS: Final = (("MAIL_ID", "INT"), ("SHA256", "CHAR(64)"))
# Values larger than this go in parts, where the dialect can append: at most _MOST_PARTS parts of
# at least _APPEND_PART_BYTES.
_LARGE_VALUE_BYTES: Final = 2 * 1024 * 1024
_APPEND_PART_BYTES: Final = 2 * 1024 * 1024
_MOST_PARTS: Final = 4
_APPEND: Final[dict[Dialect, tuple[str, str]]] = {
    "postgresql": (
        "UPDATE WICBOX_MAIL SET RAW_MIME = RAW_MIME || ? WHERE MAIL_ID = ?",
        "UPDATE WICBOX_ATTACHMENT SET CONTENT = CONTENT || ? WHERE ATTACHMENT_ID = ?",
    ),
    # .WRITE(value, NULL, NULL) appends to a VARBINARY(MAX) in place (minimally logged); it
    # cannot append to NULL, hence the empty (not NULL) value the row is inserted with.
    "mssql": (
        "UPDATE WICBOX_MAIL SET RAW_MIME.WRITE(?, NULL, NULL) WHERE MAIL_ID = ?",
        "UPDATE WICBOX_ATTACHMENT SET CONTENT.WRITE(?, NULL, NULL) WHERE ATTACHMENT_ID = ?",
    ),
}


def insert_mail(store: Store, *, run_id: int | None, mail: NewMail) -> int:
    """File one mail with its attachments in one transaction; its MAIL_ID."""
    with atomic(store):
        first = _first_part(store, mail.raw)
        mail_id = insert_returning_identity(
            store, f"{INSERT_MAIL_COLUMNS} VALUES {MAIL_ROW}", _mail_values(run_id, mail, first), "MAIL_ID"
        )
        if len(first) < len(mail.raw):
            _append(store, _APPEND[store.dialect][0], mail_id, mail.raw)
        for position, attachment in enumerate(mail.record.attachments, start=1):
            _insert_attachment(store, mail_id, position, attachment)
    return mail_id


def insert_mails(
    store: Store, *, run_id: int | None, mails: Sequence[NewMail], fence: Fence | None = None
) -> dict[str, int]:
    """File many mails with their attachments in one transaction; MAIL_ID by SHA-256.

    The mails must differ by SHA-256. A row the database refuses fails its whole statement (and so
    the transaction): the caller then files the mails one by one to find it. ``fence``: checked
    first in the transaction, on PostgreSQL and SQL Server folded into its first statement
    (:func:`~wicbox_bridge.store.leases.held_condition`); LeaseLost when the lease is lost.
    """
    if not files_many_rows(store):
        raise ValueError(f"the {store.dialect} store files one mail at a time (insert_mail)")
    if store.dialect != "sqlite":
        return _insert_chunks(store, run_id, mails, fence)
    if fence is not None:
        with atomic(store):
            check_fence(store, fence)
            return insert_mails(store, run_id=run_id, mails=mails)
    mail_ids: dict[str, int] = {}
    with atomic(store):
        small = [mail for mail in mails if not _in_parts(store, mail.raw)]
        rows = [_mail_values(run_id, mail, mail.raw) for mail in small]
        for chunk in row_chunks(rows, MAIL_ROW, store.dialect):
            sql = insert_mails_sql(store.dialect, len(chunk))
            for mail_id, sha256 in store.query(sql, [value for row in chunk for value in row]):
                mail_ids[str(sha256).strip()] = int(mail_id)
        for mail in mails:
            if mail.record.sha256 not in mail_ids:
                mail_ids[mail.record.sha256] = insert_mail(store, run_id=run_id, mail=mail)
        attachments = [
            _attachment_values(mail_ids[mail.record.sha256], position, attachment)
            for mail in small
            for position, attachment in enumerate(mail.record.attachments, start=1)
        ]
        for rows in row_chunks(attachments, _ATTACHMENT_ROW, store.dialect):
            store.execute(insert_attachments_sql(len(rows)), [value for row in rows for value in row])
    return mail_ids


def insert_mails_sql(dialect: Dialect, rows: int) -> str:
    """The one statement (on SQL Server one T-SQL batch) that inserts ``rows`` mails and hands back
    (MAIL_ID, SHA256) of each."""
    insert = f"{INSERT_MAIL_COLUMNS} VALUES {', '.join([MAIL_ROW] * rows)}"
    return returning_sql(dialect, insert, _MAIL_KEYS)


def _insert_chunks(
    store: Store, run_id: int | None, mails: Sequence[NewMail], fence: Fence | None
) -> dict[str, int]:
    """PostgreSQL and SQL Server: each chunk of whole mails with their attachments in one statement,
    the first with the fence folded in; a mail that fits no statement (values in parts, too many
    attachments) as :func:`insert_mail`."""
    mail_ids: dict[str, int] = {}
    rows = [_chunk_rows(run_id, mail) for mail in mails if not _in_parts(store, mail.raw)]
    with atomic(store):
        for chunk in mail_chunks(rows, store.dialect):
            held, params = held_condition(store, fence) if fence is not None else (None, ())
            attachments = sum(len(attached) for _, attached in chunk)
            sql = insert_chunk_sql(store.dialect, len(chunk), attachments, held)
            params += tuple(value for row, _ in chunk for value in row)
            params += tuple(value for _, attached in chunk for row in attached for value in row)
            answered = store.query(sql, params)
            if fence is not None and not answered:  # the lease row was not this lease's: nothing filed
                raise lease_lost(fence.lease)
            fence = None  # the lease row is locked until the transaction ends
            _check_chunk(chunk, answered)
            for mail_id, sha256, _ in answered:
                mail_ids[str(sha256).strip()] = int(mail_id)
        if fence is not None:  # no chunk: every mail goes alone
            check_fence(store, fence)
        for mail in mails:
            if mail.record.sha256 not in mail_ids:
                mail_ids[mail.record.sha256] = insert_mail(store, run_id=run_id, mail=mail)
    return mail_ids


_ChunkRow = tuple[tuple[object, ...], list[tuple[object, ...]]]


def _chunk_rows(run_id: int | None, mail: NewMail) -> _ChunkRow:
    """The mail's row and its attachments' rows keyed by the mail's SHA-256."""
    sha256 = mail.record.sha256
    attached = [
        (sha256, *_attachment_values(0, position, attachment)[1:])
        for position, attachment in enumerate(mail.record.attachments, start=1)
    ]
    return _mail_values(run_id, mail, mail.raw), attached


def _check_chunk(chunk: Sequence[_ChunkRow], answered: Sequence[tuple[object, ...]]) -> None:
    """Every mail of the chunk got its key and every attachment its row: a statement of a T-SQL
    batch that failed without its error reaching the client must not pass as filed. Refused as
    data, so the batch is rolled back and filed again one mail at a time, where the mail the
    database refuses is quarantined alone (:mod:`wicbox_bridge.store.filing`)."""
    mails = len(chunk)
    attachments = sum(len(attached) for _, attached in chunk)
    counted = {int(str(row[2])) for row in answered}
    if len(answered) != mails or counted != {attachments}:
        raise DataRejected(
            f"a chunk of {mails} mails and {attachments} attachments came back as {len(answered)} "
            f"keys and {sorted(counted)} attachment rows"
        )


def mail_chunks(rows: Sequence[_ChunkRow], dialect: Dialect) -> Iterable[list[_ChunkRow]]:
    """Whole mails with all their attachments in groups small enough for one statement (the
    parameters and bytes of :func:`row_chunks`). A mail over the byte budget is a chunk of its own;
    one whose parameters alone are over the limit is left out (filed by :func:`insert_mail`)."""
    most = most_parameters(dialect)
    mail_marks, keyed_marks = MAIL_ROW.count("?"), _ATTACHMENT_ROW.count("?")
    chunk: list[_ChunkRow] = []
    marks = size = 0
    for row in rows:
        row_marks = mail_marks + keyed_marks * len(row[1])
        if row_marks > most:
            continue
        row_size = sum(_bytes_of(values) for values in (row[0], *row[1]))
        if chunk and (marks + row_marks > most or size + row_size > _MOST_STATEMENT_BYTES):
            yield chunk
            chunk, marks, size = [], 0, 0
        chunk.append(row)
        marks += row_marks
        size += row_size
    if chunk:
        yield chunk


def _bytes_of(row: tuple[object, ...]) -> int:
    return sum(len(value) for value in row if isinstance(value, (bytes, str)))


def insert_chunk_sql(dialect: Dialect, mails: int, attachments: int, held: str | None = None) -> str:
    """The one statement (on SQL Server one T-SQL batch) that inserts ``mails`` mails and
    ``attachments`` attachments of theirs, and hands back (MAIL_ID, SHA256, attachment rows made)
    of each mail. The attachments' parameters follow the mails', each row keyed by its mail's
    SHA256 (:data:`_KEYED_ROW`).

    ``held`` (:func:`~wicbox_bridge.store.leases.held_condition`) folds the fence in: the statement
    first locks the mailbox's lease row as :func:`~wicbox_bridge.store.leases.check_fence` does, and
    inserts nothing, handing back no row, unless the lease still holds it. Its parameters come first.
    """
    if dialect == "sqlite":
        raise ValueError("SQLite has no data-modifying CTE: mails and attachments go separately")
    keyed = ", ".join([_KEYED_ROW[dialect]] * attachments)
    if held is None:
        rows = f"VALUES {', '.join([MAIL_ROW] * mails)}"
    else:
        typed = "(" + ", ".join(f"CAST(? AS {kind})" for kind in _MAIL_TYPES[dialect]) + ")"
        rows = ", ".join([typed] * mails)
    if dialect == "postgresql":
        return _postgresql_chunk(rows, keyed, held)
    return _mssql_chunk(rows, keyed, held)


def _keyed_insert(keyed: str) -> str:
    """The attachments' INSERT from their VALUES list ``v`` (to be joined to the mails' keys ``k``)."""
    return f"{_ATTACHMENT_COLUMNS} SELECT {_KEYED_PICKED} FROM (VALUES {keyed}) AS {_KEYED_COLUMNS}"  # noqa: S608 - code's names and ? marks


# PostgreSQL: a data-modifying CTE, its INSERTs one statement (all or nothing), the attachments'
# foreign key checked at its end, when the mails are there. With the fence, each mail row is joined
# to the lease row, locked (FOR UPDATE) and only while the lease holds it: the lock is taken before
# the first mail row is inserted, in the order of check_fence (the lease row first, then the mails'
# keys), and a lost lease inserts nothing. The fence's parameters come first, as on SQL Server.
_POSTGRESQL_CHUNK: Final[dict[Dialect, dict[str, str]]] = {
    "postgresql": {
        "fenced": "SELECT r.* FROM (SELECT 1 AS HELD FROM WICBOX_LEASE WHERE {held} FOR UPDATE) AS f "
        "CROSS JOIN (VALUES {rows}) AS r",
        "mails": "WITH k AS ({insert} {rows} RETURNING MAIL_ID, SHA256) SELECT MAIL_ID, SHA256, 0 FROM k",
        "both": "WITH k AS ({insert} {rows} RETURNING MAIL_ID, SHA256), "
        "a AS ({attachments} JOIN k ON k.SHA256 = v.SHA256 RETURNING 1) "
        "SELECT MAIL_ID, SHA256, (SELECT COUNT(*) FROM a) FROM k",
    }
}


def _postgresql_chunk(rows: str, keyed: str, held: str | None) -> str:
    parts = _POSTGRESQL_CHUNK["postgresql"]
    if held is not None:
        rows = parts["fenced"].format(rows=rows, held=held)
    if not keyed:
        return parts["mails"].format(insert=INSERT_MAIL_COLUMNS, rows=rows)
    return parts["both"].format(insert=INSERT_MAIL_COLUMNS, rows=rows, attachments=_keyed_insert(keyed))


def _mssql_chunk(rows: str, keyed: str, held: str | None) -> str:
    """One T-SQL batch: the fence's lock first (UPDLOCK, HOLDLOCK as check_fence), the mails with
    their keys through OUTPUT ... INTO @keys (a bare OUTPUT is refused on a table with triggers),
    the attachments joined to @keys, the keys selected."""
    head = "SET NOCOUNT ON; DECLARE @keys TABLE (MAIL_ID INT, SHA256 CHAR(64)); DECLARE @attached INT; "
    if held is not None:
        lock = f"SELECT @fence = COUNT(*) FROM WICBOX_LEASE WITH (UPDLOCK, HOLDLOCK) WHERE {held}"  # noqa: S608 - code's names and ? marks
        head += f"DECLARE @fence INT; {lock}; "
        rows = f"SELECT * FROM (VALUES {rows}) AS r ({_MAIL_NAMES}) WHERE @fence = 1"  # noqa: S608 - code's names
    output = "OUTPUT INSERTED.MAIL_ID, INSERTED.SHA256 INTO @keys"
    mails = f"{INSERT_MAIL_COLUMNS} {output} {rows}; SET @attached = 0; "
    attach = (
        f"{_keyed_insert(keyed)} JOIN @keys AS k ON k.SHA256 = v.SHA256; SET @attached = @@ROWCOUNT; "
        if keyed
        else ""
    )
    return f"{head}{mails}{attach}SELECT MAIL_ID, SHA256, @attached FROM @keys"  # noqa: S608 - code's names and ? marks


def insert_attachments_sql(rows: int) -> str:
    """The one statement that inserts ``rows`` attachments (the same text in every dialect)."""
    return f"{_ATTACHMENT_COLUMNS} VALUES {', '.join([_ATTACHMENT_ROW] * rows)}"


def files_many_rows(store: Store) -> bool:
    """Whether :func:`insert_mails` works on this store (the keys of many rows handed back)."""
    return returns_many_keys(store)


def _in_parts(store: Store, value: bytes) -> bool:
    return store.dialect in _APPEND and len(value) > _LARGE_VALUE_BYTES


def _part_bytes(value: bytes) -> int:
    return max(_APPEND_PART_BYTES, -(-len(value) // _MOST_PARTS))


def _first_part(store: Store, value: bytes) -> bytes:
    """What the INSERT carries of ``value``: all of it, or nothing when it goes in parts."""
    return b"" if _in_parts(store, value) else value


def _append(store: Store, sql: str, key: int, value: bytes) -> None:
    """``value`` appended part after part to the empty value the row was inserted with."""
    part = _part_bytes(value)
    with memoryview(value) as view:
        for start in range(0, len(value), part):
            store.execute(sql, (view[start : start + part].tobytes(), key))


def _insert_attachment(store: Store, mail_id: int, position: int, attachment: Attachment) -> None:
    first = _first_part(store, attachment.content)
    values = _attachment_values(mail_id, position, attachment, first)
    if len(first) == len(attachment.content):
        store.execute(f"{_ATTACHMENT_COLUMNS} VALUES {_ATTACHMENT_ROW}", values)
        return
    insert = f"{_ATTACHMENT_COLUMNS} VALUES {_ATTACHMENT_ROW}"
    attachment_id = insert_returning_identity(store, insert, values, "ATTACHMENT_ID")
    _append(store, _APPEND[store.dialect][1], attachment_id, attachment.content)


def row_chunks(
    rows: Sequence[tuple[object, ...]], row_marks: str, dialect: Dialect
) -> Iterable[list[tuple[object, ...]]]:
    """``rows`` in groups small enough for one statement (parameters and bytes; see above).

    A row larger than the byte budget is a statement of its own.
    """
    most_rows = max(1, most_parameters(dialect) // row_marks.count("?"))
    chunk: list[tuple[object, ...]] = []
    size = 0
    for row in rows:
        row_size = sum(len(value) for value in row if isinstance(value, (bytes, str)))
        if chunk and (len(chunk) >= most_rows or size + row_size > _MOST_STATEMENT_BYTES):
            yield chunk
            chunk, size = [], 0
        chunk.append(row)
        size += row_size
    if chunk:
        yield chunk


def _attachment_values(
    mail_id: int, position: int, attachment: Attachment, content: bytes | None = None
) -> tuple[object, ...]:
    return (
        mail_id,
        position,
        attachment.filename[:NAME_LIMIT],
        attachment.content_type[:NAME_LIMIT],
        attachment.size,
        attachment.content if content is None else content,
    )


def _mail_values(run_id: int | None, mail: NewMail, raw_mime: bytes) -> tuple[object, ...]:
    """The row of ``mail``; ``raw_mime`` is its bytes, or empty when they go in parts."""
    origin, record, raw = mail.origin, mail.record, mail.raw
    problems = list(record.problems)
    if record.message_id and len(record.message_id) > COLUMN_LIMITS["MESSAGE_ID"]:
        problems.append("Message-ID longer than 998 characters: stored truncated")
    return (
        run_id,
        mail.project_id,
        bounded("MAILBOX", normalized_mailbox(origin.mailbox)),
        bounded("FOLDER", origin.folder),
        origin.protocol,
        origin.uidvalidity,
        origin.uid,
        bounded("SOURCE_ID", origin.source_id),
        bounded("MESSAGE_ID", record.message_id),
        record.sha256,
        record.subject,
        record.from_addr,
        ", ".join(record.to_addrs) or None,
        ", ".join(record.cc_addrs) or None,
        naive_utc(record.sent_at),
        naive_utc(origin.received_at),
        len(raw),
        record.body_text,
        record.body_html,
        raw_mime,
        MailStatus.PENDING_ACK.value,
        bounded("ROUTING", mail.routing),
        "\n".join(problems) or None,
        None,
        utc_now(),
    )
