"""WIC's projects (table WIC_PROJECT) and which of them have a mailbox of their own.

Account mode MULTIPLE reads every active project that has its own mailbox (WICBOX_MAILBOX or
WICBOX_USERNAME filled in); MIX reads the global mailbox first and then the same projects, minus
those whose WICBOX_ACCOUNTMODE is SINGLE (they are served by the global mailbox).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from wicbox_bridge.secret import Secret
from wicbox_bridge.store.base import Row, Store


@dataclass(frozen=True)
class Project:
    project_id: int
    code: str
    name: str | None
    active: bool
    mailbox: str | None
    username: str | None
    password: Secret | None
    account_mode: str | None


_SELECT: Final = (
    "SELECT PROJECT_ID, CODE, NAME, ACTIVE, WICBOX_MAILBOX, WICBOX_USERNAME, WICBOX_PASSWORD, "
    "WICBOX_ACCOUNTMODE FROM WIC_PROJECT"
)
_HAS_OWN_MAILBOX: Final = (
    "ACTIVE <> 0 AND (LTRIM(RTRIM(COALESCE(WICBOX_MAILBOX, ''))) <> '' "
    "OR LTRIM(RTRIM(COALESCE(WICBOX_USERNAME, ''))) <> '')"
)
_NOT_SINGLE: Final = "UPPER(LTRIM(RTRIM(COALESCE(WICBOX_ACCOUNTMODE, '')))) <> 'SINGLE'"
_ORDER: Final = " ORDER BY PROJECT_ID"

_ALL: Final = _SELECT + _ORDER
_MULTIPLE: Final = f"{_SELECT} WHERE {_HAS_OWN_MAILBOX}{_ORDER}"
_MIX: Final = f"{_SELECT} WHERE {_HAS_OWN_MAILBOX} AND {_NOT_SINGLE}{_ORDER}"
_BY_CODE: Final = f"{_SELECT} WHERE UPPER(CODE) = UPPER(?){_ORDER}"


def _text(value: object) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def _project(row: Row) -> Project:
    project_id, code, name, active, mailbox, username, password, account_mode = row
    plain_password = None if password is None or password == "" else str(password)
    return Project(
        project_id=int(project_id),
        code=str(code),
        name=None if name is None else str(name),
        active=bool(int(active)),
        mailbox=_text(mailbox),
        username=_text(username),
        password=None if plain_password is None else Secret(plain_password),
        account_mode=_text(account_mode),
    )


def list_projects(store: Store) -> list[Project]:
    return [_project(row) for row in store.query(_ALL)]


def projects_for_multiple(store: Store) -> list[Project]:
    """Active projects with a mailbox of their own (WICBOX_MAILBOX or WICBOX_USERNAME set)."""
    return [_project(row) for row in store.query(_MULTIPLE)]


def projects_for_mix(store: Store) -> list[Project]:
    """As :func:`projects_for_multiple`, without the projects whose WICBOX_ACCOUNTMODE is SINGLE."""
    return [_project(row) for row in store.query(_MIX)]


def find_project(store: Store, code: str) -> Project | None:
    """The project with this code (compared case-insensitively)."""
    row = store.query_one(_BY_CODE, (code,))
    return None if row is None else _project(row)
