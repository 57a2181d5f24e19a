"""tools/sqlserver-smoke, the one command an admin runs against a real SQL Server, runs here against
PostgreSQL over ODBC: every step passes, the scratch databases are dropped, no password is
printed, and a step that fails is reported as FAIL with exit code 1."""

from __future__ import annotations

import contextlib
import subprocess
from pathlib import Path

import pyodbc
import pytest

from tests.helpers.secrets import assert_no_secrets
from tools.testbed.postgres import PostgresServer

pytestmark = [pytest.mark.testbed, pytest.mark.postgres]
ROOT = Path(__file__).resolve().parent.parent
STEPS = (
    "create a scratch database",
    "db init",
    "db upgrade",
    "parameters",
    "filing 20 mails",
    "filing a batch behind a trigger",
    "filing mails with attachments together",
    "outbox",
    "leases of several hosts",
    "schema lock: two processes",
    "drop the scratch database",
)


def smoke(connection_string: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(ROOT / "tools" / "sqlserver-smoke"), connection_string],
        capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip


def databases(postgres: PostgresServer) -> set[str]:
    with contextlib.closing(pyodbc.connect(postgres.connection_string("postgres"), autocommit=True)) as admin:
        return {str(row[0]) for row in admin.execute("SELECT datname FROM pg_database").fetchall()}


def test_every_step_passes_and_nothing_is_left_behind(postgres: PostgresServer) -> None:
    before = databases(postgres)
    result = smoke(postgres.connection_string("postgres"))
    assert result.returncode == 0, result.stdout + result.stderr
    for step in STEPS:
        assert f"[PASS] {step}" in result.stdout, step
    assert "all steps passed" in result.stdout
    assert databases(postgres) == before  # both scratch databases dropped
    assert_no_secrets(result.stdout, result.stderr, secrets=[postgres.password])


def test_a_login_that_may_not_create_databases_fails_the_first_step(postgres: PostgresServer) -> None:
    wrong = postgres.connection_string("postgres").replace(
        f"PWD={postgres.password}", "PWD=NietHetWachtwoord"
    )
    result = smoke(wrong)
    assert result.returncode == 1
    assert "[FAIL] create a scratch database" in result.stdout and "FAILED" in result.stdout
    assert_no_secrets(result.stdout, result.stderr, secrets=["NietHetWachtwoord"])
