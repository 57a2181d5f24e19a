"""Which projects have a mailbox of their own, for account modes MULTIPLE and MIX."""

from __future__ import annotations

import pytest

from wicbox_bridge.secret import Secret
from wicbox_bridge.store import DbApiStore
from wicbox_bridge.store.projects import (
    Project,
    find_project,
    list_projects,
    projects_for_mix,
    projects_for_multiple,
)

# (id, code, active, mailbox, username, password, account mode) -> in MULTIPLE?, in MIX?
PROJECT_TABLE = [
    ((1, "GLOBAL", 1, None, None, None, None), False, False),
    ((2, "ALPHA", 1, "alpha@klant.example", None, None, None), True, True),
    ((3, "BETA", 1, None, "beta@klant.example", "pw-beta", "MULTIPLE"), True, True),
    ((4, "GAMMA", 1, "gamma@klant.example", "gamma@klant.example", "pw-gamma", "single"), True, False),
    ((5, "DELTA", 0, "delta@klant.example", None, None, None), False, False),
    ((6, "EPSILON", 1, "   ", "", None, "MIX"), False, False),
    ((7, "ZETA", 1, "zeta@klant.example", None, None, " SINGLE "), True, False),
    ((8, "ETA", 1, "eta@klant.example", None, None, "mix"), True, True),
    ((9, "THETA", 1, None, None, None, "MULTIPLE"), False, False),
]


@pytest.fixture
def projects_store(wic_store: DbApiStore) -> DbApiStore:
    for row, _, _ in PROJECT_TABLE:
        project_id, code, active, mailbox, username, password, mode = row
        wic_store.execute(
            "INSERT INTO WIC_PROJECT (PROJECT_ID, CODE, NAME, ACTIVE, WICBOX_MAILBOX, WICBOX_USERNAME, "
            "WICBOX_PASSWORD, WICBOX_ACCOUNTMODE) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (project_id, code, f"Project {code.title()}", active, mailbox, username, password, mode),
        )
    return wic_store


def _codes(projects: list[Project]) -> list[str]:
    return [project.code for project in projects]


def test_projects_for_multiple(projects_store: DbApiStore) -> None:
    expected = [row[1] for row, in_multiple, _ in PROJECT_TABLE if in_multiple]
    assert _codes(projects_for_multiple(projects_store)) == expected


def test_projects_for_mix_leave_out_single(projects_store: DbApiStore) -> None:
    expected = [row[1] for row, _, in_mix in PROJECT_TABLE if in_mix]
    assert _codes(projects_for_mix(projects_store)) == expected


def test_list_projects_returns_every_project_in_id_order(projects_store: DbApiStore) -> None:
    projects = list_projects(projects_store)
    assert _codes(projects) == [row[1] for row, _, _ in PROJECT_TABLE]
    assert [project.active for project in projects] == [bool(row[2]) for row, _, _ in PROJECT_TABLE]


def test_find_project_maps_every_column(projects_store: DbApiStore) -> None:
    assert find_project(projects_store, "gamma") == Project(
        project_id=4,
        code="GAMMA",
        name="Project Gamma",
        active=True,
        mailbox="gamma@klant.example",
        username="gamma@klant.example",
        password=Secret("pw-gamma"),
        account_mode="single",
    )
    blank = find_project(projects_store, "EPSILON")
    assert blank is not None
    assert (blank.mailbox, blank.username, blank.password) == (None, None, None)
    assert find_project(projects_store, "NOPE") is None
    assert find_project(projects_store, "%") is None


def test_project_passwords_never_show(projects_store: DbApiStore) -> None:
    shown = repr(list_projects(projects_store)) + str(list_projects(projects_store))
    assert "pw-beta" not in shown
    assert "pw-gamma" not in shown
