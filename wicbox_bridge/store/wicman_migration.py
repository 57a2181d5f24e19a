"""``wicbox params migrate``: the vendor's KPD parameter scripts 40201575/40201577/40201578 in Python.

The same change as the shipped scripts ``sql/parameters-<dialect>/*.sql``, made in one
transaction and reported: the six WICBOX_MAILCLIENT_* parameters and WICBOXMETHOD are added
(empty) when missing, ACCOUNTMODE is renamed to WICBOXACCOUNTMODE keeping its value. Names are
compared case-insensitively; no value is changed and nothing is deleted.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from wicbox_bridge.store.base import Store, atomic
from wicbox_bridge.store.parameters import get_parameter, rename_parameter, set_parameter

MAILCLIENT_PARAMETERS: Final = tuple(
    f"WICBOX_MAILCLIENT_{suffix}"
    for suffix in ("SCOPE", "CLIENTID", "CLIENTSECRET", "TENANTID", "USERNAME", "PASSWORD")
)
LEGACY_ACCOUNT_MODE: Final = "ACCOUNTMODE"
ACCOUNT_MODE: Final = "WICBOXACCOUNTMODE"
METHOD: Final = "WICBOXMETHOD"


@dataclass(frozen=True)
class ParameterMigrationReport:
    """What ``migrate_parameters`` did. Names are as stored; values are never reported."""

    added: tuple[str, ...] = ()
    renamed: tuple[tuple[str, str], ...] = ()
    left_alone: tuple[str, ...] = ()
    conflicts: tuple[str, ...] = ()

    @property
    def changed(self) -> bool:
        return bool(self.added or self.renamed)

    def lines(self) -> list[str]:
        """The report for people, one line per fact."""
        lines = [f"added {name} (empty)" for name in self.added]
        lines += [f"renamed {old} to {new} (value kept)" for old, new in self.renamed]
        lines += [f"left alone {name} (already present)" for name in self.left_alone]
        lines += [f"conflict: {text}" for text in self.conflicts]
        if not self.changed:
            lines.append("nothing to change: the parameters are already migrated")
        return lines


@dataclass
class _Changes:
    added: list[str]
    renamed: list[tuple[str, str]]
    left_alone: list[str]
    conflicts: list[str]


def migrate_parameters(store: Store) -> ParameterMigrationReport:
    """Bring WICMAN_PARAMETER to what the OAuth2 WICBOX needs, in one transaction."""
    changes = _Changes([], [], [], [])
    with atomic(store):
        for name in MAILCLIENT_PARAMETERS:
            _add_if_missing(store, name, changes)
        _rename_account_mode(store, changes)
        _add_if_missing(store, METHOD, changes)
    return ParameterMigrationReport(
        tuple(changes.added), tuple(changes.renamed), tuple(changes.left_alone), tuple(changes.conflicts)
    )


def _add_if_missing(store: Store, name: str, changes: _Changes) -> None:
    found = get_parameter(store, name)
    if found is None:
        set_parameter(store, name, None)
        changes.added.append(name)
    else:
        changes.left_alone.append(found[0])


def _rename_account_mode(store: Store, changes: _Changes) -> None:
    legacy = get_parameter(store, LEGACY_ACCOUNT_MODE)
    current = get_parameter(store, ACCOUNT_MODE)
    if current is not None:
        changes.left_alone.append(current[0])
    if legacy is None:
        return
    if current is None:
        rename_parameter(store, legacy[0], ACCOUNT_MODE)
        changes.renamed.append((legacy[0], ACCOUNT_MODE))
        return
    if not (current[1] or "").strip() and (legacy[1] or "").strip():
        changes.conflicts.append(
            f"{current[0]} exists but is empty while {legacy[0]} is {legacy[1]!r}; both are left unchanged: "
            f"`wicbox params set {current[0]} {legacy[1]}`, then `wicbox params set {legacy[0]} --clear`"
        )
        return
    changes.conflicts.append(
        f"{legacy[0]} and {current[0]} both exist; {current[0]} is kept and {legacy[0]} is left unchanged: "
        f"check {current[0]} in WICMan, then delete {legacy[0]}"
    )
