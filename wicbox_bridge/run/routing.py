"""Which WIC project a parsed mail belongs to. Pure; a mail is never dropped, at worst unassigned.

Rules, in order (deterministic):

1. Recipient match: a recipient address equals a project's mailbox (case-insensitive addr-spec;
   display names ignored). Headers are consulted To, then Cc, then Delivered-To, then
   X-Original-To, each in the order its addresses are written; the first address that matches a
   project decides. A recipient match always wins over the subject.
2. Subject code: the subject carries a project's code in square brackets, ``[CODE]``, anywhere
   (case-insensitive, e.g. ``RE: [ALPHA] vraag``). The first bracketed code in the subject that
   is a known project code decides.
3. Otherwise the mail is unassigned (``project_id`` None).

If two projects share a mailbox or a code (a configuration error), the first in ``projects``
order wins and ``reason`` says so.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from wicbox_bridge.mail.headers import parse_addresses
from wicbox_bridge.mail.record import MailRecord

_BRACKETED = re.compile(r"\[\s*([^\[\]]+?)\s*\]")


@dataclass(frozen=True)
class RoutableProject:
    """A project as routing sees it: its id, its code, and its own mailbox address (if any)."""

    project_id: int
    code: str
    mailbox: str | None = None


@dataclass(frozen=True)
class RoutingDecision:
    """The project a mail is filed under (None: unassigned) and why, in words for the log."""

    project_id: int | None
    reason: str


def mailbox_address(mailbox: str | None) -> str | None:
    """A configured mailbox as a lower-case addr-spec (``Name <a@b>`` and ``a@b`` both accepted)."""
    if not mailbox or not mailbox.strip():
        return None
    pairs = parse_addresses(mailbox, "project mailbox", [])
    return pairs[0][1].lower() if pairs else mailbox.strip().lower()


def route_mail(record: MailRecord, projects: Sequence[RoutableProject]) -> RoutingDecision:
    """Decide the project of ``record`` (see the module docstring for the rules)."""
    by_recipient = _recipient_match(record, projects)
    if by_recipient is not None:
        return by_recipient
    by_code = _subject_match(record.subject, projects)
    if by_code is not None:
        return by_code
    return RoutingDecision(
        None, "unassigned: no recipient is a project mailbox and the subject has no [CODE]"
    )


def _recipient_match(record: MailRecord, projects: Sequence[RoutableProject]) -> RoutingDecision | None:
    mailboxes: dict[str, list[RoutableProject]] = {}
    for project in projects:
        address = mailbox_address(project.mailbox)
        if address is not None:
            mailboxes.setdefault(address, []).append(project)
    matched = [(header, address) for header, address in record.recipients if address in mailboxes]
    if not matched:
        return None
    header, address = matched[0]
    winner = mailboxes[address][0]
    reason = f"recipient {address} ({header.value}) is the mailbox of project {winner.code}"
    others = sorted({p.code for _, a in matched for p in mailboxes[a]} - {winner.code})
    if others:
        reason += f"; also addressed to project(s) {', '.join(others)}: first recipient (To, Cc, "
        reason += "Delivered-To, X-Original-To order) wins"
    if len(mailboxes[address]) > 1:
        reason += f"; mailbox shared by {len(mailboxes[address])} projects, the first configured wins"
    return RoutingDecision(winner.project_id, reason)


def _subject_match(subject: str | None, projects: Sequence[RoutableProject]) -> RoutingDecision | None:
    if not subject:
        return None
    codes: dict[str, list[RoutableProject]] = {}
    for project in projects:
        if project.code.strip():
            codes.setdefault(project.code.strip().casefold(), []).append(project)
    found = [code.casefold() for code in _BRACKETED.findall(subject) if code.casefold() in codes]
    if not found:
        return None
    winner = codes[found[0]][0]
    reason = f"subject carries [{winner.code}]"
    others = sorted({codes[code][0].code for code in found} - {winner.code})
    if others:
        reason += f"; also [{'], ['.join(others)}]: the first code in the subject wins"
    if len(codes[found[0]]) > 1:
        reason += f"; code shared by {len(codes[found[0]])} projects, the first configured wins"
    return RoutingDecision(winner.project_id, reason)
