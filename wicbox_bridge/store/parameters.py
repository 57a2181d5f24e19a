"""The vendor's global WICMan parameters (table WICMAN_PARAMETER), names matched case-insensitively.

WICMan writes the same parameter in different cases (``WICBOXMethod``, ``WICBOXMETHOD``), so every
lookup compares ``UPPER(NAME)``; the name is kept as stored. Should a case-sensitive database hold
two spellings of one name, lookups use the first in name order and updates change both.
"""

from __future__ import annotations

from wicbox_bridge.secret import Secret
from wicbox_bridge.store.base import Store, atomic

_READ_ALL = "SELECT NAME, VALUE FROM WICMAN_PARAMETER ORDER BY NAME"
_READ_ONE = "SELECT NAME, VALUE FROM WICMAN_PARAMETER WHERE UPPER(NAME) = UPPER(?) ORDER BY NAME"
_UPDATE = "UPDATE WICMAN_PARAMETER SET VALUE = ? WHERE UPPER(NAME) = UPPER(?)"
_INSERT = "INSERT INTO WICMAN_PARAMETER (NAME, VALUE) VALUES (?, ?)"
_RENAME = "UPDATE WICMAN_PARAMETER SET NAME = ? WHERE NAME = ?"
_DELETE = "DELETE FROM WICMAN_PARAMETER WHERE UPPER(NAME) = UPPER(?)"


def _text(value: object) -> str | None:
    return None if value is None else str(value)


def read_parameters(store: Store) -> dict[str, str | None]:
    """Every parameter, by its name as stored."""
    return {str(name): _text(value) for name, value in store.query(_READ_ALL)}


def get_parameter(store: Store, name: str) -> tuple[str, str | None] | None:
    """(stored name, value) of the parameter called ``name`` in any case; ``None`` when missing."""
    row = store.query_one(_READ_ONE, (name,))
    return None if row is None else (str(row[0]), _text(row[1]))


def set_parameter(store: Store, name: str, value: str | Secret | None) -> str:
    """Set a parameter's value, inserting it under ``name`` when missing; returns the stored name."""
    plain = value.reveal() if isinstance(value, Secret) else value
    with atomic(store):
        if store.execute(_UPDATE, (plain, name)) == 0:
            store.execute(_INSERT, (name, plain))
            return name
        found = get_parameter(store, name)
    return found[0] if found else name


def rename_parameter(store: Store, stored_name: str, new_name: str) -> None:
    """Give the parameter stored as ``stored_name`` (exact) the name ``new_name``, keeping its value."""
    store.execute(_RENAME, (new_name, stored_name))


def delete_parameter(store: Store, name: str) -> list[str]:
    """Remove the parameter called ``name`` in any case (every spelling); returns the names removed."""
    with atomic(store):
        removed = [str(row[0]) for row in store.query(_READ_ONE, (name,))]
        if removed:
            store.execute(_DELETE, (name,))
    return removed
