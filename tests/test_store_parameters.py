"""WICMan parameters: case-insensitive get/set, and the KPD parameter migration (Python and SQL)."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from wicbox_bridge.secret import Secret
from wicbox_bridge.store import DbApiStore
from wicbox_bridge.store.parameters import get_parameter, read_parameters, set_parameter
from wicbox_bridge.store.scripts import parameter_scripts, run_script
from wicbox_bridge.store.wicman_migration import (
    MAILCLIENT_PARAMETERS,
    ParameterMigrationReport,
    migrate_parameters,
)

SCOPE, CLIENTID, CLIENTSECRET, TENANTID, USERNAME, PASSWORD = MAILCLIENT_PARAMETERS


def _insert(store: DbApiStore, parameters: dict[str, str | None]) -> None:
    for name, value in parameters.items():
        store.execute("INSERT INTO WICMAN_PARAMETER (NAME, VALUE) VALUES (?, ?)", (name, value))


# -- get / set ---------------------------------------------------------------------------------------


def test_get_matches_names_case_insensitively_and_returns_the_stored_name(wic_store: DbApiStore) -> None:
    _insert(wic_store, {"WICBOXMethod": "OAuth2", "WICBOX_MAILCLIENT_TENANTID": "tenant"})

    assert get_parameter(wic_store, "wicboxmethod") == ("WICBOXMethod", "OAuth2")
    assert get_parameter(wic_store, "WICBOXMETHOD") == ("WICBOXMethod", "OAuth2")
    assert get_parameter(wic_store, "Wicbox_MailClient_TenantId") == ("WICBOX_MAILCLIENT_TENANTID", "tenant")
    assert get_parameter(wic_store, "WICBOXMETHO") is None
    assert get_parameter(wic_store, "WICBOX_MAILCLIENT_%") is None


def test_set_updates_the_matching_row_and_keeps_its_name(wic_store: DbApiStore) -> None:
    _insert(wic_store, {"WICBOXMethod": "Basic"})

    assert set_parameter(wic_store, "WICBOXMETHOD", "OAuth2") == "WICBOXMethod"

    assert read_parameters(wic_store) == {"WICBOXMethod": "OAuth2"}


def test_set_inserts_a_missing_parameter_under_the_given_name(wic_store: DbApiStore) -> None:
    assert set_parameter(wic_store, "WICBOX_MAILCLIENT_Scope", "https://outlook.office365.com/.default") == (
        "WICBOX_MAILCLIENT_Scope"
    )
    assert read_parameters(wic_store) == {"WICBOX_MAILCLIENT_Scope": "https://outlook.office365.com/.default"}


def test_set_clears_and_stores_secrets_as_their_value(wic_store: DbApiStore) -> None:
    _insert(wic_store, {CLIENTSECRET: "old", TENANTID: "tenant"})

    set_parameter(wic_store, "wicbox_mailclient_clientsecret", Secret("n3w~secret"))
    set_parameter(wic_store, TENANTID, None)

    assert read_parameters(wic_store) == {CLIENTSECRET: "n3w~secret", TENANTID: None}


def test_set_joins_the_callers_transaction(wic_store: DbApiStore) -> None:
    with pytest.raises(RuntimeError, match="abandon"), wic_store.transaction():
        set_parameter(wic_store, "WICBOXMETHOD", "OAuth2")
        raise RuntimeError("abandon")
    assert read_parameters(wic_store) == {}


# -- the KPD migration -------------------------------------------------------------------------------

ALL_ADDED: dict[str, str | None] = dict.fromkeys((*MAILCLIENT_PARAMETERS, "WICBOXMETHOD"))
MIGRATED: dict[str, str | None] = {
    **dict.fromkeys(MAILCLIENT_PARAMETERS, "x"),
    "WicboxAccountMode": "MIX",
    "WICBOXMETHOD": "OAuth2",
}


@dataclass(frozen=True)
class MigrationCase:
    before: dict[str, str | None]
    after: dict[str, str | None]
    added: tuple[str, ...] = ()
    renamed: tuple[tuple[str, str], ...] = ()
    conflicts: int = 0
    left_alone: tuple[str, ...] = ()


MIGRATION_CASES = {
    "fresh": MigrationCase(
        before={},
        after=ALL_ADDED,
        added=(*MAILCLIENT_PARAMETERS, "WICBOXMETHOD"),
    ),
    "legacy-accountmode": MigrationCase(
        before={"AccountMode": "MULTIPLE", CLIENTID: "app-id", PASSWORD: "Geheim-123",
                "WICBOXMethod": "OAuth2", "WICBOXMAILBOX": "wicbox@klant.example"},
        after={SCOPE: None, CLIENTID: "app-id", CLIENTSECRET: None, TENANTID: None, USERNAME: None,
               PASSWORD: "Geheim-123", "WICBOXACCOUNTMODE": "MULTIPLE", "WICBOXMethod": "OAuth2",
               "WICBOXMAILBOX": "wicbox@klant.example"},
        added=(SCOPE, CLIENTSECRET, TENANTID, USERNAME),
        renamed=(("AccountMode", "WICBOXACCOUNTMODE"),),
        left_alone=(CLIENTID, PASSWORD, "WICBOXMethod"),
    ),
    "both-account-modes": MigrationCase(
        before={"ACCOUNTMODE": "SINGLE", "WICBOXAccountMode": "MIX"},
        after={**ALL_ADDED, "ACCOUNTMODE": "SINGLE", "WICBOXAccountMode": "MIX"},
        added=(*MAILCLIENT_PARAMETERS, "WICBOXMETHOD"),
        conflicts=1,
        left_alone=("WICBOXAccountMode",),
    ),
    "empty-new-account-mode": MigrationCase(
        before={"ACCOUNTMODE": "MULTIPLE", "WICBOXACCOUNTMODE": None},
        after={**ALL_ADDED, "ACCOUNTMODE": "MULTIPLE", "WICBOXACCOUNTMODE": None},
        added=(*MAILCLIENT_PARAMETERS, "WICBOXMETHOD"),
        conflicts=1,
        left_alone=("WICBOXACCOUNTMODE",),
    ),
    "already-migrated": MigrationCase(
        before=MIGRATED,
        after=MIGRATED,
        left_alone=(*MAILCLIENT_PARAMETERS, "WicboxAccountMode", "WICBOXMETHOD"),
    ),
}  # fmt: skip


@pytest.mark.parametrize("case", MIGRATION_CASES.values(), ids=MIGRATION_CASES.keys())
def test_migrate_parameters_in_python(wic_store: DbApiStore, case: MigrationCase) -> None:
    _insert(wic_store, case.before)

    first = migrate_parameters(wic_store)
    second = migrate_parameters(wic_store)

    assert read_parameters(wic_store) == case.after
    assert first.added == case.added
    assert first.renamed == case.renamed
    assert len(first.conflicts) == case.conflicts
    assert set(case.left_alone) <= set(first.left_alone)
    assert first.changed is bool(case.added or case.renamed)
    assert not second.changed
    assert len(second.conflicts) == case.conflicts
    shown = "\n".join(first.lines()) + repr(first)
    assert "Geheim-123" not in shown
    assert "app-id" not in shown


@pytest.mark.parametrize("case", MIGRATION_CASES.values(), ids=MIGRATION_CASES.keys())
def test_shipped_parameter_scripts_do_the_same(wic_store: DbApiStore, case: MigrationCase) -> None:
    _insert(wic_store, case.before)

    for _ in range(2):
        for script in parameter_scripts(wic_store.dialect):
            run_script(wic_store, script)

    assert read_parameters(wic_store) == case.after


def test_migration_is_one_transaction(wic_store: DbApiStore) -> None:
    with pytest.raises(RuntimeError, match="abandon"), wic_store.transaction():
        assert migrate_parameters(wic_store).changed
        raise RuntimeError("abandon")
    assert read_parameters(wic_store) == {}


def test_migration_report_lines() -> None:
    report = ParameterMigrationReport(
        added=(SCOPE,), renamed=(("AccountMode", "WICBOXACCOUNTMODE"),), left_alone=("WICBOXMETHOD",)
    )
    assert report.lines() == [
        f"added {SCOPE} (empty)",
        "renamed AccountMode to WICBOXACCOUNTMODE (value kept)",
        "left alone WICBOXMETHOD (already present)",
    ]
    assert ParameterMigrationReport(left_alone=("WICBOXMETHOD",)).lines()[-1].startswith("nothing to change")


def test_an_empty_new_account_mode_gets_the_commands_that_move_the_legacy_value(
    wic_store: DbApiStore,
) -> None:
    _insert(wic_store, {"ACCOUNTMODE": "MULTIPLE", "WICBOXACCOUNTMODE": None})
    [conflict] = migrate_parameters(wic_store).conflicts
    assert conflict == (
        "WICBOXACCOUNTMODE exists but is empty while ACCOUNTMODE is 'MULTIPLE'; both are left unchanged: "
        "`wicbox params set WICBOXACCOUNTMODE MULTIPLE`, then `wicbox params set ACCOUNTMODE --clear`"
    )
