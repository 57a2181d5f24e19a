"""The three dialects build the same schema: the one `wicbox_bridge/store/tables.py` describes.

SQLite and PostgreSQL are built by their own scripts and read back from the database (PRAGMA,
information_schema); SQL Server's scripts cannot run here, so their T-SQL is parsed with sqlglot and
the tables assembled from its CREATE TABLE and ALTER TABLE ... ADD statements. Each must match the
description: the same tables and columns, types (mapped per dialect), nullability, primary keys,
generated keys and unique constraints.
"""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

import pyodbc
import pytest
import sqlglot
import sqlglot.expressions as exp

from tests.plugins.postgres import PgDatabase
from wicbox_bridge.config.dbtarget import SqliteTarget
from wicbox_bridge.store import init_schema, open_store
from wicbox_bridge.store.scripts import schema_scripts
from wicbox_bridge.store.sqlscript import split_statements
from wicbox_bridge.store.tables import TABLES, Kind, Table, create_table_sql

# (kind, size, nullable) per column; the keys; the generated key; the unique column sets.
Shape = tuple[
    dict[str, tuple[Kind, int | None, bool]], tuple[str, ...], str | None, frozenset[tuple[str, ...]]
]


def described() -> dict[str, Shape]:
    return {
        table.name: (
            {column.name: (column.kind, column.size, column.nullable) for column in table.columns},
            table.primary_key,
            table.identity,
            frozenset(table.unique),
        )
        for table in TABLES
    }


def _kind(type_name: str, dialect: str) -> tuple[Kind, int | None]:
    name = type_name.strip().upper()
    size_match = re.search(r"\((\d+|MAX)\)", name)
    size = int(size_match.group(1)) if size_match and size_match.group(1).isdigit() else None
    base = re.sub(r"\(.*\)", "", name).strip()
    kinds = {
        "INTEGER": Kind.INTEGER, "INT": Kind.INTEGER, "BIGINT": Kind.BIGINT,
        "VARCHAR": Kind.VARCHAR, "NVARCHAR": Kind.VARCHAR, "CHARACTER VARYING": Kind.VARCHAR,
        "CHAR": Kind.CHAR, "NCHAR": Kind.CHAR, "CHARACTER": Kind.CHAR, "TEXT": Kind.TEXT,
        "BLOB": Kind.BYTES, "BYTEA": Kind.BYTES, "VARBINARY": Kind.BYTES,
        "TIMESTAMP": Kind.TIMESTAMP, "TIMESTAMP WITHOUT TIME ZONE": Kind.TIMESTAMP,
        "DATETIME2": Kind.TIMESTAMP,
    }  # fmt: skip
    kind = kinds[base]
    if kind is Kind.VARCHAR and dialect == "mssql" and size is None:  # NVARCHAR(MAX)
        return Kind.TEXT, None
    if kind is Kind.BYTES:
        return Kind.BYTES, None
    return kind, size if kind in (Kind.VARCHAR, Kind.CHAR) else None


# --------------------------------------------------------------------------- SQLite


def sqlite_shape(path: Path) -> dict[str, Shape]:
    connection = sqlite3.connect(path)
    try:
        tables = [row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        shapes: dict[str, Shape] = {}
        for table in tables:
            if table.startswith("sqlite_"):
                continue
            columns, keys = {}, []
            for _cid, name, type_name, not_null, _default, key in connection.execute(
                f"PRAGMA table_info({table})"
            ):
                kind, size = _kind(type_name, "sqlite")
                columns[name] = (kind, size, not (not_null or key))
                if key:
                    keys.append(name)
            sql = connection.execute("SELECT sql FROM sqlite_master WHERE name = ?", (table,)).fetchone()[0]
            identity = keys[0] if "AUTOINCREMENT" in sql.upper() else None
            unique = frozenset(
                tuple(info[2] for info in connection.execute(f"PRAGMA index_info({index[1]})"))
                for index in connection.execute(f"PRAGMA index_list({table})")
                if index[2] and index[3] == "u"
            )
            shapes[table] = (columns, tuple(keys), identity, unique)
        return shapes
    finally:
        connection.close()


def test_sqlite_builds_the_described_schema(tmp_path: Path) -> None:
    path = tmp_path / "wic.db"
    with open_store(SqliteTarget(path)) as store:
        init_schema(store)
    assert sqlite_shape(path) == described()


# --------------------------------------------------------------------------- PostgreSQL

_PG_COLUMNS = """
SELECT c.table_name, c.column_name, c.data_type, c.character_maximum_length, c.is_nullable, c.is_identity,
       c.column_default
FROM information_schema.columns c WHERE c.table_schema = current_schema()
"""
_PG_CONSTRAINTS = """
SELECT tc.table_name, tc.constraint_type, tc.constraint_name, k.column_name, k.ordinal_position
FROM information_schema.table_constraints tc
JOIN information_schema.key_column_usage k
  ON k.constraint_name = tc.constraint_name AND k.table_schema = tc.table_schema
WHERE tc.table_schema = current_schema() AND tc.constraint_type IN ('PRIMARY KEY', 'UNIQUE')
ORDER BY tc.constraint_name, k.ordinal_position
"""


def postgresql_shape(connection_string: str) -> dict[str, Shape]:
    connection = pyodbc.connect(connection_string, autocommit=True)
    try:
        columns: dict[str, dict[str, tuple[Kind, int | None, bool]]] = {}
        identities: dict[str, str] = {}
        for owner, column, data_type, length, nullable, is_identity, default in connection.execute(
            _PG_COLUMNS
        ):
            table, name = str(owner).upper(), str(column).upper()
            kind, _ = _kind(str(data_type), "postgresql")
            size = int(length) if length is not None and kind in (Kind.VARCHAR, Kind.CHAR) else None
            columns.setdefault(table, {})[name] = (kind, size, nullable == "YES")
            if is_identity == "YES" or (default and "nextval" in str(default)):
                identities[table] = name
        keys: dict[str, list[str]] = {}
        uniques: dict[tuple[str, str], list[str]] = {}
        for table, constraint_type, constraint, column, _position in connection.execute(_PG_CONSTRAINTS):
            if constraint_type == "PRIMARY KEY":
                keys.setdefault(str(table).upper(), []).append(str(column).upper())
            else:
                uniques.setdefault((str(table).upper(), str(constraint)), []).append(str(column).upper())
    finally:
        connection.close()
    return {
        table: (
            table_columns,
            tuple(keys.get(table, ())),
            identities.get(table),
            frozenset(tuple(cols) for (owner, _), cols in uniques.items() if owner == table),
        )
        for table, table_columns in columns.items()
    }


@pytest.mark.postgres
def test_postgresql_builds_the_described_schema(pg_database: PgDatabase) -> None:
    with open_store(pg_database.target) as store:
        init_schema(store)
    assert postgresql_shape(pg_database.connection_string) == described()


# --------------------------------------------------------------------------- SQL Server, parsed


def _column_from(definition: exp.ColumnDef, shapes: dict[str, Shape], table: str) -> None:
    columns, keys, identity, unique = shapes[table]
    name = definition.name.upper()
    kind, size = _kind(definition.args["kind"].sql("tsql"), "mssql")
    constraints = [constraint.args.get("kind") for constraint in definition.args.get("constraints") or []]
    not_null = any(
        isinstance(c, exp.NotNullColumnConstraint) and not c.args.get("allow_null") for c in constraints
    )
    is_key = any(isinstance(c, exp.PrimaryKeyColumnConstraint) for c in constraints)
    columns[name] = (kind, size, not (not_null or is_key))
    if is_key:
        keys = (*keys, name)
    if any(isinstance(c, exp.GeneratedAsIdentityColumnConstraint) for c in constraints):
        identity = name
    if any(isinstance(c, exp.UniqueColumnConstraint) for c in constraints):
        unique = unique | {(name,)}
    shapes[table] = (columns, keys, identity, unique)


def sqlserver_shape() -> dict[str, Shape]:
    shapes: dict[str, Shape] = {}
    for script in schema_scripts("mssql"):
        for statement in split_statements(script.text, "mssql"):
            for tree in sqlglot.parse(statement, read="tsql"):
                assert tree is not None
                for node in tree.walk():
                    if (
                        isinstance(node, exp.Create)
                        and node.kind == "TABLE"
                        and isinstance(node.this, exp.Schema)
                    ):
                        table = node.this.this.name.upper()
                        shapes[table] = ({}, (), None, frozenset())
                        for part in node.this.expressions:
                            if isinstance(part, exp.ColumnDef):
                                _column_from(part, shapes, table)
                            elif isinstance(part, (exp.Constraint, exp.UniqueColumnConstraint)):
                                _table_constraint(part, shapes, table)
                    elif isinstance(node, exp.Alter):
                        table = node.this.name.upper()
                        for action in node.args.get("actions") or []:
                            if isinstance(action, exp.ColumnDef):
                                _column_from(action, shapes, table)
    return shapes


def _table_constraint(part: exp.Expression, shapes: dict[str, Shape], table: str) -> None:
    columns, keys, identity, unique = shapes[table]
    for node in part.walk():
        if isinstance(node, exp.UniqueColumnConstraint) and node.this is not None:
            unique = unique | {_constraint_columns(node.this)}
        if isinstance(node, exp.PrimaryKey):
            keys = tuple(identifier.name.upper() for identifier in node.expressions)
    shapes[table] = (columns, keys, identity, unique)


def _constraint_columns(target: exp.Expression) -> tuple[str, ...]:
    """The columns of ``UNIQUE (A, B)`` or ``UNIQUE NONCLUSTERED (A, B)`` as sqlglot reads them."""
    if isinstance(target, exp.Schema):
        return tuple(identifier.name.upper() for identifier in target.expressions)
    found = target.this if isinstance(target.this, list) else target.expressions
    return tuple(
        item.this.name.upper() if isinstance(item, exp.Ordered) else item.name.upper() for item in found
    )


def test_sql_server_scripts_build_the_described_schema() -> None:
    assert sqlserver_shape() == described()


# --------------------------------------------------------------------------- the description


@pytest.mark.parametrize("dialect", ["sqlite", "postgresql", "mssql"])
@pytest.mark.parametrize("table", TABLES, ids=[table.name for table in TABLES])
def test_the_description_writes_valid_ddl(dialect: str, table: Table) -> None:
    read = {"sqlite": "sqlite", "postgresql": "postgres", "mssql": "tsql"}[dialect]
    statement = sqlglot.parse_one(create_table_sql(dialect, table), read=read)  # type: ignore[arg-type]
    assert isinstance(statement, exp.Create) and statement.kind == "TABLE"
