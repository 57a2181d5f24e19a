"""Splitting scripts into statements, and structural checks of the shipped scripts.

No SQL Server runs in the test bed, so the T-SQL scripts are checked for structure here: GO-split
batches, a guard on every change, nothing from other dialects' syntax, and the same tables and
columns as the SQLite schema that the other tests exercise.
"""

from __future__ import annotations

import re

import pytest

from wicbox_bridge.config.dbtarget import SqliteTarget
from wicbox_bridge.store import LATEST_VERSION, init_schema, open_store
from wicbox_bridge.store.base import DIALECTS, Dialect
from wicbox_bridge.store.catalog import table_columns
from wicbox_bridge.store.scripts import SqlScript, parameter_scripts, schema_scripts
from wicbox_bridge.store.sqlscript import has_code, split_statements

SCHEMA_TABLES = ("WICMAN_PARAMETER", "WIC_PROJECT", "WICBOX_SCHEMA_VERSION")

SPLIT_CASES = {
    "pg-two": ("postgresql", "SELECT 1; SELECT 2;", ["SELECT 1", "SELECT 2"]),
    "pg-quoted": ("postgresql", "SELECT 'a;b'; SELECT 2", ["SELECT 'a;b'", "SELECT 2"]),
    "pg-doubled-quote": ("postgresql", "SELECT 'it''s;'; SELECT 2", ["SELECT 'it''s;'", "SELECT 2"]),
    "pg-identifier": ("postgresql", 'SELECT 1 AS "x;y"; SELECT 2', ['SELECT 1 AS "x;y"', "SELECT 2"]),
    "pg-line-comment": ("postgresql", "-- a; b\nSELECT 1;", ["-- a; b\nSELECT 1"]),
    "pg-nested-block": ("postgresql", "/* a; /* b; */ c; */ SELECT 1;", ["/* a; /* b; */ c; */ SELECT 1"]),
    "pg-dollar-body": (
        "postgresql",
        "DO $$ BEGIN PERFORM 1; END $$; SELECT 2;",
        ["DO $$ BEGIN PERFORM 1; END $$", "SELECT 2"],
    ),
    "pg-tagged-dollar": (
        "postgresql",
        "DO $x$ BEGIN RAISE NOTICE '$$;'; END $x$;",
        ["DO $x$ BEGIN RAISE NOTICE '$$;'; END $x$"],
    ),
    "pg-trailing-comment": ("postgresql", "SELECT 1;\n-- trailing comment\n", ["SELECT 1"]),
    "pg-nothing": ("postgresql", "  \n-- only a comment;\n", []),
    "mssql-go": ("mssql", "SELECT 1;\nGO\nSELECT 2\ngo\n", ["SELECT 1;", "SELECT 2"]),
    "mssql-go-comment": ("mssql", "SELECT 1\n  GO  -- end\nSELECT 2", ["SELECT 1", "SELECT 2"]),
    "mssql-go-inside": ("mssql", "SELECT 'GO'\nSELECT 1 AS GOAL\n", ["SELECT 'GO'\nSELECT 1 AS GOAL"]),
    "mssql-empty-batch": ("mssql", "-- header\nGO\nSELECT 1\nGO\n", ["SELECT 1"]),
    "sqlite-two": ("sqlite", "SELECT 1; SELECT ';';", ["SELECT 1;", "SELECT ';';"]),
    "sqlite-trigger": (
        "sqlite",
        "CREATE TRIGGER t AFTER INSERT ON x BEGIN UPDATE x SET a = 1; DELETE FROM y; END;\nSELECT 1;",
        ["CREATE TRIGGER t AFTER INSERT ON x BEGIN UPDATE x SET a = 1; DELETE FROM y; END;", "SELECT 1;"],
    ),
    "sqlite-comments": ("sqlite", "-- x;\nSELECT 1;\n-- end\n", ["-- x;\nSELECT 1;"]),
}


@pytest.mark.parametrize(("dialect", "text", "expected"), SPLIT_CASES.values(), ids=SPLIT_CASES.keys())
def test_split_statements(dialect: Dialect, text: str, expected: list[str]) -> None:
    assert split_statements(text, dialect) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", False),
        ("  \n\t", False),
        ("-- x\n  /* y */ ", False),
        ("/* a /* nested */ still comment */", False),
        ("-- x\nSELECT 1", True),
        ("/* a */ ;", True),
    ],
)
def test_has_code(text: str, expected: bool) -> None:
    assert has_code(text) is expected


def test_every_dialect_ships_the_same_versions_and_parameter_scripts() -> None:
    for dialect in DIALECTS:
        assert [script.number for script in schema_scripts(dialect)] == list(range(1, LATEST_VERSION + 1))
        assert [script.number for script in parameter_scripts(dialect)] == [40201575, 40201577, 40201578]


def _batches(script: SqlScript) -> list[str]:
    return split_statements(script.text, "mssql")


def _without_comments(batch: str) -> str:
    return re.sub(r"--[^\n]*", "", batch)


def _code_only(batch: str) -> str:
    """The batch without comments and with string literals emptied."""
    return re.sub(r"'(?:[^']|'')*'", "''", _without_comments(batch))


MSSQL_SCRIPTS = [
    pytest.param(script, id=str(script.number))
    for script in schema_scripts("mssql") + parameter_scripts("mssql")
]

FOREIGN_SYNTAX = [
    (r"\bCREATE\s+TABLE\s+IF\s+NOT\s+EXISTS\b", "CREATE TABLE IF NOT EXISTS is not T-SQL"),
    (r"\bADD\s+COLUMN\b", "T-SQL adds columns with ADD, not ADD COLUMN"),
    (r"\|\|", "T-SQL concatenates with +"),
    (r"\bAUTOINCREMENT\b|\bSERIAL\b|\bBOOLEAN\b", "not a SQL Server type"),
    (r"\bTRIM\s*\(", "TRIM needs SQL Server 2017; use LTRIM(RTRIM())"),
    (r"\bSTRING_AGG\b|\bCONCAT_WS\b", "needs SQL Server 2017"),
    (r"\b(?:BEGIN|COMMIT|ROLLBACK)\s+TRAN", "wicbox-bridge runs each script in its own transaction"),
    (r"\$\$", "dollar quoting is PostgreSQL"),
    (r"^\s*GO\s+\d+", "GO <count> repeats a batch"),
]


@pytest.mark.parametrize("script", MSSQL_SCRIPTS)
def test_mssql_script_structure(script: SqlScript) -> None:
    batches = _batches(script)
    assert batches, "no batch"
    assert re.search(r"^\s*GO\s*$", script.text.rstrip().splitlines()[-1], re.IGNORECASE), "must end in GO"
    for batch in batches:
        code = _code_only(batch)
        assert code.count("(") == code.count(")"), f"unbalanced parentheses in:\n{batch}"
        assert _without_comments(batch).count("'") % 2 == 0, f"unbalanced quotes in:\n{batch}"
        for pattern, why in FOREIGN_SYNTAX:
            assert not re.search(pattern, code, re.IGNORECASE | re.MULTILINE), f"{why}:\n{batch}"


@pytest.mark.parametrize("script", [pytest.param(s, id=str(s.number)) for s in schema_scripts("mssql")])
def test_mssql_schema_batches_are_guarded(script: SqlScript) -> None:
    for batch in _batches(script):
        code = _without_comments(batch).strip()
        index_guard = re.match(
            r"IF\s+NOT\s+EXISTS\s*\(SELECT\s+1\s+FROM\s+sys\.indexes\s+WHERE\s+name\s*=\s*N'(\w+)'"
            r"\s+AND\s+object_id\s*=\s*OBJECT_ID\(N'(\w+)'\)\)\s+",
            code,
        )
        if index_guard:
            index, table = index_guard.groups()
            assert re.match(rf"CREATE\s+INDEX\s+{index}\s+ON\s+{table}\s*\(", code[index_guard.end() :]), (
                batch
            )
            continue
        guard = re.match(r"IF\s+(OBJECT_ID|COL_LENGTH)\s*\(N'(\w+)'(?:,\s*N'(\w+)')?\)\s+IS\s+NULL\s+", code)
        assert guard, f"unguarded batch:\n{batch}"
        if guard.group(1) == "OBJECT_ID":
            assert re.match(rf"CREATE\s+TABLE\s+{guard.group(2)}\s*\(", code[guard.end() :]), batch
        else:
            table, column = guard.group(2), guard.group(3)
            assert re.match(rf"ALTER\s+TABLE\s+{table}\s+ADD\s+{column}\s", code[guard.end() :]), batch


@pytest.mark.parametrize("script", [pytest.param(s, id=str(s.number)) for s in parameter_scripts("mssql")])
def test_mssql_parameter_changes_are_guarded(script: SqlScript) -> None:
    text = script.text
    inserts = re.findall(r"INSERT\s+INTO\s+WICMAN_PARAMETER\s*\(NAME,\s*VALUE\)\s*VALUES\s*\(N'(\w+)'", text)
    guarded = re.findall(
        r"IF\s+NOT\s+EXISTS\s*\(SELECT\s+1\s+FROM\s+WICMAN_PARAMETER\s+WHERE\s+UPPER\(NAME\)\s*=\s*N'(\w+)'\)\s*"
        r"INSERT\s+INTO\s+WICMAN_PARAMETER\s*\(NAME,\s*VALUE\)\s*VALUES\s*\(N'(\w+)'",
        text,
    )
    assert len(guarded) == len(inserts)
    assert all(checked == inserted for checked, inserted in guarded)
    for update in re.findall(r"UPDATE\s+WICMAN_PARAMETER\b.*?;", text, re.DOTALL):
        assert re.search(r"AND\s+NOT\s+EXISTS\s*\(SELECT\s+1\s+FROM\s+WICMAN_PARAMETER", update), update
    assert not re.search(r"\bDELETE\b|\bDROP\b|\bTRUNCATE\b", _code_only(text), re.IGNORECASE)
    assert re.search(r"UPPER\(NAME\)", text), "names must be compared case-insensitively"


@pytest.mark.parametrize("dialect", DIALECTS)
def test_parameter_scripts_name_the_same_parameters(dialect: Dialect) -> None:
    names = {
        script.number: set(re.findall(r"N?'(WICBOX\w*|ACCOUNTMODE)'", script.text))
        for script in parameter_scripts(dialect)
    }
    assert names[40201575] == {
        f"WICBOX_MAILCLIENT_{suffix}"
        for suffix in ("SCOPE", "CLIENTID", "CLIENTSECRET", "TENANTID", "USERNAME", "PASSWORD")
    }
    assert names[40201577] == {"ACCOUNTMODE", "WICBOXACCOUNTMODE"}
    assert names[40201578] == {"WICBOXMETHOD"}


def test_every_dialect_creates_the_columns_the_sqlite_schema_has(sqlite_target: SqliteTarget) -> None:
    """The SQLite schema is exercised by the other tests; the others must name the same columns."""
    with open_store(sqlite_target) as store:
        init_schema(store)
        columns = {table: table_columns(store, table) for table in SCHEMA_TABLES}
    for dialect in ("mssql", "postgresql"):
        text = "\n".join(script.text for script in schema_scripts(dialect))
        for table, names in columns.items():
            creates = rf"\bCREATE\s+TABLE\s+(?:IF\s+NOT\s+EXISTS\s+)?{table}\b"
            assert re.search(creates, text), (dialect, table)
            for name in names:
                assert re.search(rf"\b{name}\b", text), (dialect, table, name)
