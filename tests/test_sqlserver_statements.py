"""Every statement the SQL Server dialect can send, parsed with sqlglot's T-SQL grammar.

No SQL Server runs in the test bed. What can be checked here: each statement of the shipped T-SQL
scripts (DDL, upgrades, WICMan parameter scripts), and every SQL text in the store's modules that
the SQL Server dialect uses (found in the source, so a new statement is checked without being
listed here; the other dialects' entries of per-dialect tables are left out). Dynamic parts (the
``?`` lists of IN, column lists) are filled with samples. Two batches use syntax sqlglot's grammar
does not know (``SAVE TRANSACTION``, ``EXEC @var = procedure``): they are listed with the reason and
exercised on a real server by tools/sqlserver-smoke. A parse that only succeeds by falling back to
sqlglot's catch-all ``Command`` counts as a failure.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
import sqlglot
import sqlglot.expressions as exp

from wicbox_bridge.store.mail_insert import (
    insert_attachments_sql,
    insert_chunk_sql,
    insert_mails_sql,
    mail_chunks,
    row_chunks,
)
from wicbox_bridge.store.mails import MAIL_ROW
from wicbox_bridge.store.scripts import parameter_scripts, schema_scripts
from wicbox_bridge.store.sqlscript import split_statements

STORE = Path(__file__).resolve().parent.parent / "wicbox_bridge" / "store"
SQL_START = re.compile(
    r"^\s*(SELECT|INSERT|UPDATE|DELETE|CREATE|ALTER|IF|EXEC|DECLARE|SET|BEGIN|SAVE|WITH|MERGE)\b"
)
OTHER_DIALECTS = {"sqlite", "postgresql"}
SQLITE_ONLY = {"sqlite.py"}  # the embedded database's own connection code
TEMPLATE_SAMPLES = {
    "{columns}": "RUN_ID, MODE",
    "{table}": "WICBOX_RUN",
    "{where}": "MODE = ?",
    "{order}": "RUN_ID",
}
BEYOND_SQLGLOT = {
    "IF @@TRANCOUNT = 0 BEGIN TRANSACTION; SAVE TRANSACTION": "sqlglot's T-SQL has no SAVE TRANSACTION",
    "IF @@TRANCOUNT = 0 BEGIN TRANSACTION; DECLARE @granted int; EXEC @granted = sp_getapplock": (
        "sqlglot's T-SQL grammar has no EXEC with a return variable"
    ),
}


def parsed_as_tsql(statement: str) -> list[exp.Expression]:
    expressions = [
        expression for expression in sqlglot.parse(statement, read="tsql") if expression is not None
    ]
    assert expressions, statement
    fallbacks = [expression for expression in expressions if isinstance(expression, exp.Command)]
    assert not fallbacks, f"only parsed as a catch-all Command: {statement[:120]}"
    return expressions


def _module_constants(tree: ast.Module) -> dict[str, ast.expr]:
    found: dict[str, ast.expr] = {}
    for node in tree.body:
        if isinstance(node, ast.Assign):
            found.update({target.id: node.value for target in node.targets if isinstance(target, ast.Name)})
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.value is not None:
            found[node.target.id] = node.value
    return found


def _text(node: ast.AST, constants: dict[str, ast.expr], depth: int = 0) -> str | None:
    """The SQL text of an expression, module constants filled in, other dynamic parts as a sample."""
    if depth > 6:
        return None
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.Name) and node.id in constants:
        return _text(constants[node.id], constants, depth + 1)
    if isinstance(node, ast.JoinedStr):
        parts = []
        for value in node.values:
            if isinstance(value, ast.FormattedValue):
                filled = _text(value.value, constants, depth + 1)
                parts.append(filled if filled is not None else "?")  # a ? list, a column list
            else:
                parts.append(_text(value, constants, depth + 1) or "")
        return "".join(parts)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        left, right = _text(node.left, constants, depth + 1), _text(node.right, constants, depth + 1)
        return left + right if left is not None and right is not None else None
    return None


def store_statements() -> list[tuple[str, str]]:
    """(where, SQL) of every SQL text in the store's modules that SQL Server may receive."""
    found = []
    for path in sorted(path for path in STORE.glob("*.py") if path.name not in SQLITE_ONLY):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        constants = _module_constants(tree)
        skipped: set[int] = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Dict):  # per-dialect tables: only SQL Server's entries
                for key, value in zip(node.keys, node.values, strict=True):
                    if isinstance(key, ast.Constant) and key.value in OTHER_DIALECTS:
                        skipped.update(id(child) for child in ast.walk(value))
            if isinstance(node, (ast.JoinedStr, ast.BinOp)):  # parts of a larger text
                skipped.update(id(child) for child in ast.iter_child_nodes(node))
                skipped.update(
                    id(child) for value in getattr(node, "values", ()) for child in ast.walk(value)
                )
        for node in ast.walk(tree):
            if id(node) in skipped:
                continue
            text = _text(node, constants)
            if text and SQL_START.match(text) and len(text) > 12 and text.upper() != text.lower():
                for placeholder, sample in TEMPLATE_SAMPLES.items():
                    text = text.replace(placeholder, sample)
                found.append((f"{path.name}:{getattr(node, 'lineno', 0)}", text.replace("{0}", "wicbox_sp1")))
    return found


STATEMENTS = store_statements()


def test_the_store_has_sql_to_check() -> None:
    assert len(STATEMENTS) > 60, len(STATEMENTS)  # a broken collector must not pass with nothing
    texts = " ".join(text for _, text in STATEMENTS)
    for needed in ("SELECT TOP (?)", "INSERT INTO WICBOX_MAIL", "UPDATE WICBOX_OUTBOX", "sp_getapplock"):
        assert needed in texts, needed


@pytest.mark.parametrize(("where", "statement"), STATEMENTS, ids=[where for where, _ in STATEMENTS])
def test_every_store_statement_is_t_sql(where: str, statement: str) -> None:
    beyond = next((reason for prefix, reason in BEYOND_SQLGLOT.items() if statement.startswith(prefix)), None)
    if beyond is not None:
        with pytest.raises((sqlglot.errors.ParseError, AssertionError)):  # still beyond it: keep the entry
            parsed_as_tsql(statement)
        return
    parsed_as_tsql(statement)


SCRIPT_STATEMENTS = [
    (f"{script.number}:{number}", statement)
    for script in [*schema_scripts("mssql"), *parameter_scripts("mssql")]
    for number, statement in enumerate(split_statements(script.text, "mssql"))
]


@pytest.mark.parametrize(
    ("where", "statement"), SCRIPT_STATEMENTS, ids=[where for where, _ in SCRIPT_STATEMENTS]
)
def test_every_statement_of_the_t_sql_scripts_parses(where: str, statement: str) -> None:
    parsed_as_tsql(statement)


def _mail_rows(count: int) -> list[tuple[object, ...]]:
    return [(f"row {number}", *([None] * (MAIL_ROW.count("?") - 1))) for number in range(count)]


@pytest.mark.parametrize("rows", [1, 2, 80])
def test_the_batch_insert_of_mails_is_one_t_sql_batch(rows: int) -> None:
    """SQL Server files a batch like the other dialects: many rows in one INSERT whose keys come back
    through OUTPUT ... INTO a table variable (allowed on a table with triggers), read in the same
    batch; NOCOUNT keeps the row counts from coming back as results before the SELECT."""
    statement = insert_mails_sql("mssql", rows)
    setting, declare, insert, select = parsed_as_tsql(statement)

    assert isinstance(setting, exp.Set) and "NOCOUNT ON" in setting.sql("tsql").upper()
    assert isinstance(declare, exp.Declare) and "@keys" in declare.sql("tsql")
    assert isinstance(insert, exp.Insert)
    assert len(insert.expression.expressions) == rows  # VALUES rows
    output = insert.find(exp.Returning)
    assert output is not None and output.args.get("into") is not None, insert.sql("tsql")
    assert output.sql("tsql").upper().startswith("OUTPUT INSERTED.MAIL_ID, INSERTED.SHA256 INTO @KEYS")
    assert isinstance(select, exp.Select) and select.sql("tsql") == "SELECT MAIL_ID, SHA256 FROM @keys"
    assert statement.count("?") == rows * MAIL_ROW.count("?")


def test_sql_server_batches_stay_within_its_parameter_and_row_limits() -> None:
    """2100 parameters per request and 1000 rows per VALUES list; many small rows come in several
    statements, every row exactly once."""
    for marks, sql_of in (
        (MAIL_ROW, lambda n: insert_mails_sql("mssql", n)),
        ("(?, ?, ?, ?, ?, ?)", insert_attachments_sql),
    ):
        width = marks.count("?")
        rows = [(number, *([b"x"] * (width - 1))) for number in range(3000)]
        chunks = list(row_chunks(rows, marks, "mssql"))
        assert [row for chunk in chunks for row in chunk] == rows
        for chunk in chunks:
            assert sql_of(len(chunk)).count("?") <= 2100
            assert len(chunk) <= 1000
        parsed_as_tsql(sql_of(len(chunks[0])))
    assert len(list(row_chunks(_mail_rows(50), MAIL_ROW, "mssql"))) == 1  # a batch of 50: one statement


@pytest.mark.parametrize(("mails", "attachments"), [(1, 0), (1, 1), (2, 5), (40, 60)])
def test_mails_and_their_attachments_are_one_t_sql_batch(mails: int, attachments: int) -> None:
    """A chunk of mails and their attachments in one T-SQL batch: the mails' keys through OUTPUT ...
    INTO @keys, the attachments inserted from a VALUES list joined to @keys by SHA256, the number of
    attachment rows made kept in @attached, and one SELECT of the keys at the end."""
    statement = insert_chunk_sql("mssql", mails, attachments)
    parsed = parsed_as_tsql(statement)
    kinds = [type(expression).__name__ for expression in parsed]

    attach = ["Insert", "Set"] if attachments else []
    assert kinds == ["Set", "Declare", "Declare", "Insert", "Set", *attach, "Select"], kinds
    insert = parsed[3]
    assert isinstance(insert, exp.Insert) and len(insert.expression.expressions) == mails
    output = insert.find(exp.Returning)
    assert output is not None and output.sql("tsql").upper().startswith(
        "OUTPUT INSERTED.MAIL_ID, INSERTED.SHA256 INTO @KEYS"
    )
    if attachments:
        attach_insert = parsed[5]
        assert isinstance(attach_insert, exp.Insert)
        assert attach_insert.this.sql("tsql").startswith("WICBOX_ATTACHMENT")
        values = attach_insert.find(exp.Values)
        assert values is not None and len(values.expressions) == attachments
        join = attach_insert.find(exp.Join)
        assert join is not None and join.sql("tsql") == "JOIN @keys AS k ON k.SHA256 = v.SHA256"
        assert parsed[6].sql("tsql") == "SET @attached = @@ROWCOUNT"
    assert parsed[-1].sql("tsql") == "SELECT MAIL_ID, SHA256, @attached FROM @keys"
    assert statement.count("?") == mails * MAIL_ROW.count("?") + attachments * 6


def test_chunks_of_mails_with_attachments_stay_within_2100_parameters() -> None:
    """Whole mails with all their attachments per chunk, each chunk's batch within SQL Server's 2100
    parameters; a mail whose parameters alone are over the limit is left for one-by-one filing."""
    width = MAIL_ROW.count("?")
    rows = [
        (
            (f"mail {number}", *([b"x"] * (width - 1))),
            [(f"mail {number}", n, "a", "b", 1, b"y") for n in range(number % 7)],
        )
        for number in range(400)
    ]
    too_many = (
        ("mail 400", *([None] * (width - 1))),
        [("mail 400", n, "a", "b", 1, b"y") for n in range(400)],
    )
    chunks = list(mail_chunks([*rows, too_many], "mssql"))

    assert [row for chunk in chunks for row in chunk] == rows
    assert len(chunks) > 1
    for chunk in chunks:
        statement = insert_chunk_sql("mssql", len(chunk), sum(len(attached) for _, attached in chunk))
        assert statement.count("?") <= 2100
    parsed_as_tsql(insert_chunk_sql("mssql", len(chunks[0]), sum(len(a) for _, a in chunks[0])))


def test_the_fence_folded_into_the_batch_locks_the_lease_row_first() -> None:
    """With the fence folded in, the batch first reads the lease row under UPDLOCK, HOLDLOCK (as
    check_fence does) into @fence, and inserts the mails (and so their attachments) only WHERE
    @fence = 1: a lost lease files nothing and hands back no key."""
    held = "MAILBOX = ? AND OWNER_KEY = ? AND TOKEN = ? AND EXPIRES_AT > SYSUTCDATETIME()"
    statement = insert_chunk_sql("mssql", 3, 2, held)
    parsed = parsed_as_tsql(statement)
    kinds = [type(expression).__name__ for expression in parsed]

    assert kinds == [
        "Set",
        "Declare",
        "Declare",
        "Declare",
        "Select",
        "Insert",
        "Set",
        "Insert",
        "Set",
        "Select",
    ]
    lock = parsed[4].sql("tsql")
    assert lock.startswith(
        "SELECT @fence = COUNT(*) FROM WICBOX_LEASE WITH (UPDLOCK, HOLDLOCK) WHERE MAILBOX = ?"
    )
    insert = parsed[5]
    assert isinstance(insert, exp.Insert)
    rows = insert.find(exp.Select)
    assert rows is not None and rows.args["where"].sql("tsql") == "WHERE @fence = 1"
    values = insert.find(exp.Values)
    assert values is not None and len(values.expressions) == 3
    assert statement.count("?") == 3 + 3 * MAIL_ROW.count("?") + 2 * 6
