"""The Windows access-control list of the bridge's folders, as SDDL text (pure; no Windows call).

A folder the bridge writes to (the state folder under ``%ProgramData%``, the logs, the token
cache's folder) must be closed to other local users: ``%ProgramData%`` lets every user create
files in a new folder there (``BUILTIN\\Users``), and anyone who can write ``paused.json`` stops
every run. The wanted list is:

- inheritance off (``P``: the parent's entries do not flow in),
- full control for SYSTEM and Administrators,
- the accounts that were granted on purpose (the scheduled task's account, ``schedule install``),
- nothing for Users, Everyone, Authenticated Users, Interactive, Guests, Anonymous, Network,
  CREATOR OWNER or Domain Users.

The reading and writing of a folder's list go through :class:`WindowsSecurity`, a small seam over
the Windows API (:mod:`wicbox_bridge.config.winsec` is the real one); everything here works on the
SDDL text of the list's DACL, e.g. ``D:PAI(A;OICI;FA;;;SY)(A;OICI;FA;;;BA)``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

SYSTEM_SID = "S-1-5-18"
ADMINISTRATORS_SID = "S-1-5-32-544"
FULL_CONTROL = "FA"
MODIFY = "0x1301bf"
CONTAINER_AND_OBJECT_INHERIT = "OICI"

# SDDL's two-letter names of the well-known accounts this module meets.
_ALIASES = {
    "SY": SYSTEM_SID,
    "BA": ADMINISTRATORS_SID,
    "BU": "S-1-5-32-545",
    "BG": "S-1-5-32-546",
    "WD": "S-1-1-0",
    "AU": "S-1-5-11",
    "IU": "S-1-5-4",
    "AN": "S-1-5-7",
    "NU": "S-1-5-2",
    "CO": "S-1-3-0",
    "LS": "S-1-5-19",
    "NS": "S-1-5-20",
}
# Groups that every local user (or anyone) is in: never on the bridge's folders.
BROAD_SIDS = {
    "S-1-1-0": "Everyone",
    "S-1-5-11": "Authenticated Users",
    "S-1-5-32-545": "BUILTIN\\Users",
    "S-1-5-32-546": "BUILTIN\\Guests",
    "S-1-5-4": "INTERACTIVE",
    "S-1-5-7": "ANONYMOUS LOGON",
    "S-1-5-2": "NETWORK",
    "S-1-3-0": "CREATOR OWNER",
}
_DOMAIN_USERS = re.compile(r"S-1-5-21-\d+-\d+-\d+-513")
_ACE = re.compile(r"\(([^()]*)\)")


class WindowsSecurity(Protocol):
    """The Windows calls behind the folders' protection (the real one: ``winsec.WindowsApi``)."""

    def read_dacl(self, path: Path) -> str:
        """The folder's DACL as SDDL (``D:...``)."""

    def write_dacl(self, path: Path, sddl: str) -> None:
        """Replaces the folder's DACL (a ``P`` in the flags turns inheritance off)."""

    def is_reparse_point(self, path: Path) -> bool:
        """Whether ``path`` is a reparse point (a symbolic link, a junction, a mount point)."""

    def account_sid(self, account: str) -> str:
        """The SID of ``DOMAIN\\name`` (or ``name``) as ``S-1-...``."""

    def current_sid(self) -> str:
        """The SID of the account running this process."""


@dataclass(frozen=True)
class Ace:
    """One entry: allow/deny (``A``/``D``), its flags (``OICI``, ``ID`` = inherited), rights, SID."""

    kind: str
    flags: str
    rights: str
    sid: str

    @property
    def inherited(self) -> bool:
        return "ID" in _flag_pairs(self.flags)

    def text(self) -> str:
        return f"({self.kind};{self.flags};{self.rights};;;{self.sid})"


@dataclass(frozen=True)
class Dacl:
    """A parsed DACL: whether it is protected (inheritance off) and its entries in order."""

    protected: bool
    aces: tuple[Ace, ...]

    def text(self) -> str:
        return "D:" + ("PAI" if self.protected else "AI") + "".join(ace.text() for ace in self.aces)


def _flag_pairs(flags: str) -> set[str]:
    return {flags[index : index + 2] for index in range(0, len(flags), 2)}


def sid_of(name: str) -> str:
    """``S-1-...`` for an SDDL alias (``BU``) or a SID already spelled out."""
    return _ALIASES.get(name.upper(), name.upper())


def parse_dacl(sddl: str) -> Dacl:
    """The DACL part of ``sddl`` (``D:`` up to ``S:`` or the end)."""
    start = sddl.find("D:")
    if start < 0:
        return Dacl(protected=False, aces=())
    body = sddl[start + 2 :]
    end = body.find("S:")
    body = body if end < 0 else body[:end]
    head = body.split("(", 1)[0]
    aces = []
    for match in _ACE.finditer(body):
        fields = match.group(1).split(";")
        if len(fields) >= 6:
            aces.append(Ace(fields[0].upper(), fields[1].upper(), fields[2], sid_of(fields[5])))
    return Dacl(protected="P" in head.replace("AI", "").replace("AR", ""), aces=tuple(aces))


def is_broad(sid: str) -> bool:
    """Whether ``sid`` stands for a group every local user (or anyone) belongs to."""
    return sid in BROAD_SIDS or bool(_DOMAIN_USERS.fullmatch(sid))


def account_label(sid: str) -> str:
    return BROAD_SIDS.get(sid, "Domain Users" if _DOMAIN_USERS.fullmatch(sid) else sid)


def dacl_problems(dacl: Dacl) -> list[str]:
    """What makes the list loose, in words; empty when it is as wanted."""
    problems = []
    if not dacl.protected:
        problems.append("inherits the parent folder's permissions (inheritance is on)")
    broad = sorted({account_label(ace.sid) for ace in dacl.aces if ace.kind == "A" and is_broad(ace.sid)})
    if broad:
        problems.append(f"grants access to {', '.join(broad)}")
    present = {ace.sid for ace in dacl.aces if ace.kind == "A"}
    missing = [
        name
        for sid, name in ((SYSTEM_SID, "SYSTEM"), (ADMINISTRATORS_SID, "Administrators"))
        if sid not in present
    ]
    if missing:
        problems.append(f"does not grant {' and '.join(missing)} full control")
    return problems


def tightened_dacl(dacl: Dacl, grant: tuple[str, ...] = ()) -> Dacl:
    """The wanted list derived from ``dacl``: protected, SYSTEM and Administrators with full
    control, every other allowed account kept (inherited entries become explicit), the broad
    groups gone, and ``grant`` (SIDs: the task's or the creating account) given Modify."""
    base = (
        Ace("A", CONTAINER_AND_OBJECT_INHERIT, FULL_CONTROL, SYSTEM_SID),
        Ace("A", CONTAINER_AND_OBJECT_INHERIT, FULL_CONTROL, ADMINISTRATORS_SID),
    )
    kept: list[Ace] = list(base)
    for ace in (*dacl.aces, *(Ace("A", CONTAINER_AND_OBJECT_INHERIT, MODIFY, sid) for sid in grant)):
        if is_broad(ace.sid) or ace.sid in (SYSTEM_SID, ADMINISTRATORS_SID):
            continue
        flags = "".join(sorted(_flag_pairs(ace.flags) - {"ID", ""}, key=ace.flags.find))
        explicit = Ace(ace.kind, flags, ace.rights, ace.sid)
        if explicit not in kept:
            kept.append(explicit)
    denies = [ace for ace in kept if ace.kind == "D"]  # Windows wants denials first
    return Dacl(protected=True, aces=(*denies, *(ace for ace in kept if ace.kind != "D")))


def private_folder_dacl(owner_sid: str) -> Dacl:
    """The list of a folder the bridge creates: SYSTEM, Administrators, and the creating account."""
    return tightened_dacl(Dacl(protected=True, aces=()), (owner_sid,))


def icacls_fix(path: Path, dacl: Dacl) -> str:
    """The one ``icacls`` command an administrator runs to close ``path`` as :func:`tightened_dacl`
    would: inheritance off (inherited entries copied), the broad groups removed, SYSTEM and
    Administrators granted full control; applied to what is inside (``/T``)."""
    broad = sorted(
        {ace.sid for ace in dacl.aces if is_broad(ace.sid)} | {"S-1-5-32-545", "S-1-1-0", "S-1-5-11"}
    )
    removals = " ".join(f"*{sid}" for sid in broad)
    return (
        f'icacls "{path}" /inheritance:d /remove:g {removals} '
        f"/grant:r *{SYSTEM_SID}:(OI)(CI)F *{ADMINISTRATORS_SID}:(OI)(CI)F /T /Q"
    )
