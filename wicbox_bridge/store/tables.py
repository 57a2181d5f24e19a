"""The schema at the latest version, described once: every table, column, type, nullability and
key that the SQLite, PostgreSQL and SQL Server scripts must produce.

The numbered scripts under sql/ stay hand-written per dialect (an applied script is never changed,
and each dialect has its own guards and idioms); this description is what all three are checked
against (tests/test_schema_dialects.py: SQLite and PostgreSQL as built by their scripts, SQL
Server as its T-SQL parses), and :func:`create_table_sql` writes a table's DDL for any dialect
from it: the starting point of the next script.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Final

from wicbox_bridge.store.base import Dialect


class Kind(str, Enum):
    INTEGER = "INTEGER"
    BIGINT = "BIGINT"
    VARCHAR = "VARCHAR"  # bounded text (size in characters)
    CHAR = "CHAR"  # fixed-length text
    TEXT = "TEXT"  # unbounded text
    BYTES = "BYTES"
    TIMESTAMP = "TIMESTAMP"  # UTC, without a zone


@dataclass(frozen=True)
class Column:
    name: str
    kind: Kind
    size: int | None = None
    nullable: bool = True


@dataclass(frozen=True)
class Table:
    name: str
    columns: tuple[Column, ...]
    primary_key: tuple[str, ...]
    identity: str | None  # the key the database generates
    unique: tuple[tuple[str, ...], ...] = ()

    def column(self, name: str) -> Column:
        return next(column for column in self.columns if column.name == name)


TABLES: Final[tuple[Table, ...]] = (
    Table(
        "WICBOX_ATTACHMENT",
        (
            Column("ATTACHMENT_ID", Kind.INTEGER, nullable=False),
            Column("MAIL_ID", Kind.INTEGER, nullable=False),
            Column("POSITION", Kind.INTEGER, nullable=False),
            Column("FILENAME", Kind.VARCHAR, size=255, nullable=False),
            Column("CONTENT_TYPE", Kind.VARCHAR, size=255, nullable=False),
            Column("SIZE_BYTES", Kind.BIGINT, nullable=False),
            Column("CONTENT", Kind.BYTES, nullable=False),
        ),
        primary_key=("ATTACHMENT_ID",),
        identity="ATTACHMENT_ID",
        unique=(),
    ),
    Table(
        "WICBOX_MAIL",
        (
            Column("MAIL_ID", Kind.INTEGER, nullable=False),
            Column("RUN_ID", Kind.INTEGER),
            Column("PROJECT_ID", Kind.INTEGER),
            Column("MAILBOX", Kind.VARCHAR, size=320, nullable=False),
            Column("FOLDER", Kind.VARCHAR, size=400, nullable=False),
            Column("PROTOCOL", Kind.VARCHAR, size=10, nullable=False),
            Column("UIDVALIDITY", Kind.BIGINT),
            Column("UID", Kind.BIGINT),
            Column("SOURCE_ID", Kind.VARCHAR, size=512, nullable=False),
            Column("MESSAGE_ID", Kind.VARCHAR, size=998),
            Column("SHA256", Kind.CHAR, size=64, nullable=False),
            Column("SUBJECT", Kind.TEXT),
            Column("FROM_ADDR", Kind.TEXT),
            Column("TO_ADDRS", Kind.TEXT),
            Column("CC_ADDRS", Kind.TEXT),
            Column("SENT_AT", Kind.TIMESTAMP),
            Column("RECEIVED_AT", Kind.TIMESTAMP),
            Column("SIZE_BYTES", Kind.BIGINT, nullable=False),
            Column("BODY_TEXT", Kind.TEXT),
            Column("BODY_HTML", Kind.TEXT),
            Column("RAW_MIME", Kind.BYTES),
            Column("STATUS", Kind.VARCHAR, size=20, nullable=False),
            Column("ROUTING", Kind.VARCHAR, size=400),
            Column("PROBLEMS", Kind.TEXT),
            Column("ERROR", Kind.TEXT),
            Column("FILED_AT", Kind.TIMESTAMP, nullable=False),
            Column("ACKED_AT", Kind.TIMESTAMP),
        ),
        primary_key=("MAIL_ID",),
        identity="MAIL_ID",
        unique=(("MAILBOX", "SHA256"),),
    ),
    Table(
        "WICBOX_LEASE",
        (
            Column("MAILBOX", Kind.VARCHAR, size=320, nullable=False),
            Column("OWNER_KEY", Kind.VARCHAR, size=36),
            Column("OWNER_HOST", Kind.VARCHAR, size=255),
            Column("OWNER_PID", Kind.INTEGER),
            Column("TOKEN", Kind.BIGINT, nullable=False),
            Column("ACQUIRED_AT", Kind.TIMESTAMP),
            Column("EXPIRES_AT", Kind.TIMESTAMP, nullable=False),
        ),
        primary_key=("MAILBOX",),
        identity=None,
        unique=(),
    ),
    Table(
        "WICBOX_MAILBOX_STATE",
        (
            Column("STATE_ID", Kind.INTEGER, nullable=False),
            Column("MAILBOX", Kind.VARCHAR, size=320, nullable=False),
            Column("FOLDER", Kind.VARCHAR, size=400, nullable=False),
            Column("LABEL", Kind.VARCHAR, size=200, nullable=False),
            Column("PROJECT_CODE", Kind.VARCHAR, size=50),
            Column("PROTOCOL", Kind.VARCHAR, size=10, nullable=False),
            Column("LAST_RUN_ID", Kind.INTEGER),
            Column("LAST_ATTEMPT_AT", Kind.TIMESTAMP, nullable=False),
            Column("LAST_SUCCESS_AT", Kind.TIMESTAMP),
            Column("LAST_ERROR_AT", Kind.TIMESTAMP),
            Column("ERROR_KIND", Kind.VARCHAR, size=20),
            Column("ERROR_CODE", Kind.VARCHAR, size=20),
            Column("ERROR_MESSAGE", Kind.VARCHAR, size=4000),
            Column("ERROR_FIX", Kind.VARCHAR, size=4000),
            Column("BACKLOG", Kind.INTEGER),
            Column("OLDEST_PENDING_AT", Kind.TIMESTAMP),
            Column("BACKLOG_MEASURED_AT", Kind.TIMESTAMP),
        ),
        primary_key=("STATE_ID",),
        identity="STATE_ID",
        unique=(("MAILBOX", "FOLDER"),),
    ),
    Table(
        "WICBOX_OUTBOX",
        (
            Column("OUTBOX_ID", Kind.INTEGER, nullable=False),
            Column("FROM_ADDR", Kind.VARCHAR, size=320),
            Column("TO_ADDRS", Kind.TEXT),
            Column("CC_ADDRS", Kind.TEXT),
            Column("BCC_ADDRS", Kind.TEXT),
            Column("SUBJECT", Kind.TEXT),
            Column("BODY_TEXT", Kind.TEXT),
            Column("BODY_HTML", Kind.TEXT),
            Column("RAW_MIME", Kind.BYTES),
            Column("STATUS", Kind.VARCHAR, size=20, nullable=False),
            Column("ATTEMPTS", Kind.INTEGER, nullable=False),
            Column("LAST_ERROR", Kind.TEXT),
            Column("MESSAGE_ID", Kind.VARCHAR, size=998),
            Column("NEXT_ATTEMPT_AT", Kind.TIMESTAMP),
            Column("CREATED_AT", Kind.TIMESTAMP, nullable=False),
            Column("SENT_AT", Kind.TIMESTAMP),
            Column("RECIPIENT_COUNT", Kind.INTEGER),
            Column("SOURCE", Kind.VARCHAR, size=100),
        ),
        primary_key=("OUTBOX_ID",),
        identity="OUTBOX_ID",
        unique=(),
    ),
    Table(
        "WICBOX_OUTBOX_ATTACHMENT",
        (
            Column("ATTACHMENT_ID", Kind.INTEGER, nullable=False),
            Column("OUTBOX_ID", Kind.INTEGER, nullable=False),
            Column("POSITION", Kind.INTEGER, nullable=False),
            Column("FILENAME", Kind.VARCHAR, size=255, nullable=False),
            Column("CONTENT_TYPE", Kind.VARCHAR, size=255, nullable=False),
            Column("CONTENT", Kind.BYTES, nullable=False),
        ),
        primary_key=("ATTACHMENT_ID",),
        identity="ATTACHMENT_ID",
        unique=(),
    ),
    Table(
        "WICBOX_RUN",
        (
            Column("RUN_ID", Kind.INTEGER, nullable=False),
            Column("RUN_KEY", Kind.VARCHAR, size=36, nullable=False),
            Column("MODE", Kind.VARCHAR, size=10, nullable=False),
            Column("HOST_NAME", Kind.VARCHAR, size=255),
            Column("PROCESS_ID", Kind.INTEGER),
            Column("STARTED_AT", Kind.TIMESTAMP, nullable=False),
            Column("FINISHED_AT", Kind.TIMESTAMP),
            Column("MAX_MAILS", Kind.INTEGER, nullable=False),
            Column("MAILBOXES", Kind.INTEGER, nullable=False),
            Column("FAILED_MAILBOXES", Kind.INTEGER, nullable=False),
            Column("FETCHED", Kind.INTEGER, nullable=False),
            Column("FILED", Kind.INTEGER, nullable=False),
            Column("DUPLICATES", Kind.INTEGER, nullable=False),
            Column("UNASSIGNED", Kind.INTEGER, nullable=False),
            Column("QUARANTINED", Kind.INTEGER, nullable=False),
            Column("OUTCOME", Kind.VARCHAR, size=20, nullable=False),
            Column("EXIT_CODE", Kind.INTEGER),
            Column("MESSAGE", Kind.VARCHAR, size=4000),
        ),
        primary_key=("RUN_ID",),
        identity="RUN_ID",
        unique=(("RUN_KEY",),),
    ),
    Table(
        "WICBOX_SCHEMA_VERSION",
        (
            Column("VERSION", Kind.INTEGER, nullable=False),
            Column("DESCRIPTION", Kind.VARCHAR, size=200),
            Column("APPLIED_AT", Kind.TIMESTAMP, nullable=False),
        ),
        primary_key=("VERSION",),
        identity=None,
        unique=(),
    ),
    Table(
        "WICMAN_PARAMETER",
        (
            Column("NAME", Kind.VARCHAR, size=128, nullable=False),
            Column("VALUE", Kind.VARCHAR, size=4000),
        ),
        primary_key=("NAME",),
        identity=None,
        unique=(),
    ),
    Table(
        "WIC_PROJECT",
        (
            Column("PROJECT_ID", Kind.INTEGER, nullable=False),
            Column("CODE", Kind.VARCHAR, size=50, nullable=False),
            Column("NAME", Kind.VARCHAR, size=200),
            Column("ACTIVE", Kind.INTEGER, nullable=False),
            Column("WICBOX_MAILBOX", Kind.VARCHAR, size=320),
            Column("WICBOX_USERNAME", Kind.VARCHAR, size=320),
            Column("WICBOX_PASSWORD", Kind.VARCHAR, size=400),
            Column("WICBOX_ACCOUNTMODE", Kind.VARCHAR, size=10),
        ),
        primary_key=("PROJECT_ID",),
        identity=None,
        unique=(("CODE",),),
    ),
)

_TYPES: Final[dict[Dialect, dict[Kind, str]]] = {
    "sqlite": {
        Kind.INTEGER: "INTEGER", Kind.BIGINT: "BIGINT", Kind.VARCHAR: "VARCHAR({size})",
        Kind.CHAR: "CHAR({size})", Kind.TEXT: "TEXT", Kind.BYTES: "BLOB", Kind.TIMESTAMP: "TIMESTAMP",
    },
    "postgresql": {
        Kind.INTEGER: "INTEGER", Kind.BIGINT: "BIGINT", Kind.VARCHAR: "VARCHAR({size})",
        Kind.CHAR: "CHAR({size})", Kind.TEXT: "TEXT", Kind.BYTES: "BYTEA", Kind.TIMESTAMP: "TIMESTAMP",
    },
    "mssql": {
        Kind.INTEGER: "INT", Kind.BIGINT: "BIGINT", Kind.VARCHAR: "NVARCHAR({size})",
        Kind.CHAR: "NCHAR({size})", Kind.TEXT: "NVARCHAR(MAX)", Kind.BYTES: "VARBINARY(MAX)",
        Kind.TIMESTAMP: "DATETIME2",
    },
}  # fmt: skip
_IDENTITY: Final[dict[Dialect, str]] = {
    "sqlite": "INTEGER PRIMARY KEY AUTOINCREMENT",
    "postgresql": "INTEGER GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY",
    "mssql": "INT IDENTITY(1,1) NOT NULL PRIMARY KEY",
}


def column_type(dialect: Dialect, column: Column) -> str:
    return _TYPES[dialect][column.kind].format(size=column.size)


def create_table_sql(dialect: Dialect, table: Table) -> str:
    """``CREATE TABLE`` for ``table`` in ``dialect`` (columns, keys, unique constraints)."""
    lines = []
    for column in table.columns:
        if column.name == table.identity:
            lines.append(f"    {column.name} {_IDENTITY[dialect]}")
            continue
        null = "NULL" if column.nullable else "NOT NULL"
        lines.append(f"    {column.name} {column_type(dialect, column)} {null}")
    if table.identity is None:
        lines.append(f"    PRIMARY KEY ({', '.join(table.primary_key)})")
    lines += [f"    UNIQUE ({', '.join(columns)})" for columns in table.unique]
    body = ",\n".join(lines)
    return f"CREATE TABLE {table.name} (\n{body}\n)"


def table_named(name: str) -> Table:
    return next(table for table in TABLES if table.name == name)
