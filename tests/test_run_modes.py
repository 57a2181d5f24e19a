"""`wicbox run` in every account mode with both permission types, end to end over IMAPS.

One WIC with five projects, each kind the vendor's guide distinguishes (own mailbox with or without
WICBOX_ACCOUNTMODE, own mailbox through WICBOX_USERNAME only, own mailbox but marked SINGLE, no own
mailbox, inactive), and mail in every mailbox. For SINGLE, MULTIPLE and MIX, with delegated and with
application permissions, the tests check which mailboxes were opened (Dovecot's sign-in log), which
credentials were used (the identity-platform emulator's request log) and where every mail was filed.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pytest

from tests.helpers.mailgen import make_mail
from tests.plugins.wic import Mailroom
from tests.test_run_fairness import RecordedConnection, imap_recorder, use_application_permissions
from tools.testbed.idp import IdentityPlatformEmulator

pytestmark = pytest.mark.testbed

MODES = ("SINGLE", "MULTIPLE", "MIX")
PERMISSIONS = ("delegated", "application")
GLOBAL = "wicbox@klant.example"
ALPHA, BRAVO, CHARLIE, DELTA, ECHO = (
    f"project-{name}@klant.example" for name in ("alpha", "bravo", "charlie", "delta", "echo")
)


@dataclass(frozen=True)
class ProjectRow:
    """One WIC_PROJECT row of the scenario."""

    project_id: int
    code: str
    mailbox: str | None
    username: str | None
    account_mode: str | None = None
    active: bool = True


# ALPHA: own mailbox; BRAVO: own mailbox given only as WICBOX_USERNAME (the fallback), MULTIPLE;
# CHARLIE: own mailbox but marked SINGLE (MIX serves it through the global mailbox only);
# DELTA: no mailbox of its own (routed from the global mailbox); ECHO: own mailbox, inactive.
PROJECTS = (
    ProjectRow(1, "ALPHA", ALPHA, ALPHA),
    ProjectRow(2, "BRAVO", None, BRAVO, "MULTIPLE"),
    ProjectRow(3, "CHARLIE", CHARLIE, CHARLIE, "SINGLE"),
    ProjectRow(4, "DELTA", None, None),
    ProjectRow(5, "ECHO", ECHO, ECHO, active=False),
)
OWN_MAILBOXES = {1: ALPHA, 2: BRAVO, 3: CHARLIE, 5: ECHO}

# The mailboxes each mode opens, in the order of its passes.
OPENED = {
    "SINGLE": (GLOBAL,),
    "MULTIPLE": (ALPHA, BRAVO, CHARLIE),
    "MIX": (GLOBAL, ALPHA, BRAVO),
}


@dataclass(frozen=True)
class Scenario:
    """The mails delivered per mailbox and the project each one must be filed under."""

    delivered: Mapping[str, tuple[bytes, ...]]
    project_of: Mapping[bytes, int | None]

    def expected(self, opened: Sequence[str]) -> dict[bytes, int | None]:
        return {raw: self.project_of[raw] for mailbox in opened for raw in self.delivered[mailbox]}


def _global_mails() -> dict[bytes, int | None]:
    """Routed by recipient (CHARLIE's address), by subject code ([DELTA]) or not at all."""
    return {
        make_mail(1, to=f"Dossier Charlie <{CHARLIE}>"): 3,
        make_mail(2, subject="RE: [delta] bouwaanvraag"): 4,
        make_mail(3, subject="geen project"): None,
    }


def _own_mails(project_id: int) -> dict[bytes, int | None]:
    """Mail in a project's own mailbox belongs to that project, even when it names another one."""
    base = 100 * project_id
    return {
        make_mail(base, to=OWN_MAILBOXES[project_id]): project_id,
        make_mail(base + 1, to=GLOBAL, subject="[DELTA] doorgestuurd"): project_id,
    }


def set_up_projects(room: Mailroom, permission: str) -> Scenario:
    """The five projects, their Dovecot mailboxes (all granted to the app) and their mail."""
    directory = room.wic.directory
    if permission == "application":
        use_application_permissions(room)
    delivered: dict[str, tuple[bytes, ...]] = {}
    project_of: dict[bytes, int | None] = {}
    for row in PROJECTS:
        password = directory.user(row.username).password if row.username else None
        room.wic.add_project(
            row.project_id,
            row.code,
            mailbox=row.mailbox,
            username=row.username,
            password=password,
            account_mode=row.account_mode,
            active=row.active,
        )
    for project_id, mailbox in OWN_MAILBOXES.items():
        room.dovecot.add_mailbox(mailbox)
        room.dovecot.grant_app_access(directory.confidential_client_sp_id, mailbox)
        mails = _own_mails(project_id)
        room.deliver(list(mails), user=mailbox)
        delivered[mailbox] = tuple(mails)
        project_of.update(mails)
    global_mails = _global_mails()
    room.deliver(list(global_mails))
    delivered[GLOBAL] = tuple(global_mails)
    project_of.update(global_mails)
    return Scenario(delivered, project_of)


def _run_json(room: Mailroom) -> dict[str, Any]:
    result = room.wic.cli("run", "--json")
    assert result.exit_code == 0, result.output
    report: dict[str, Any] = json.loads(result.stdout)
    return report


def _filed(room: Mailroom) -> dict[bytes, tuple[int | None, str]]:
    rows = room.filed()
    assert all(row.status == "FILED" for row in rows)
    assert len({row.sha256 for row in rows}) == len(rows), "a mail was filed twice"
    return {row.raw: (row.project_id, row.mailbox.lower()) for row in rows if row.raw is not None}


def _password_grants(idp: IdentityPlatformEmulator) -> dict[str, int]:
    """Password grants (delegated sign-ins) by user name."""
    records = idp.request_log.token_requests(grant_type="password")
    return dict(Counter(str(record.username).lower() for record in records))


@pytest.mark.parametrize("permission", PERMISSIONS)
@pytest.mark.parametrize("mode", MODES)
def test_each_mode_opens_the_right_mailboxes_and_files_into_the_right_project(
    mailroom: Mailroom, idp_clean: IdentityPlatformEmulator, mode: str, permission: str
) -> None:
    room = mailroom
    scenario = set_up_projects(room, permission)
    room.wic.set_params({"WICBOXACCOUNTMODE": mode})
    report = _run_json(room)
    opened = OPENED[mode]

    filed = _filed(room)
    expected = scenario.expected(opened)
    assert {raw: project for raw, (project, _box) in filed.items()} == expected
    for raw, (_project, mailbox) in filed.items():
        assert raw in scenario.delivered[mailbox], "filed with the mailbox it was read from"
    for mailbox, mails in scenario.delivered.items():
        left = [message.raw for message in room.messages(user=mailbox)]
        assert left == ([] if mailbox in opened else list(mails)), mailbox

    sign_ins = room.dovecot.sign_ins()
    assert sorted(entry.user for entry in sign_ins) == sorted(opened), "each selected mailbox once"
    assert all(entry.verdict.accepted and entry.mechanism == "XOAUTH2" for entry in sign_ins)
    labels = [mailbox["label"] for mailbox in report["mailboxes"]]
    assert labels == [_label(mailbox) for mailbox in opened], "the SINGLE pass comes first"

    directory = room.wic.directory
    token_requests = idp_clean.request_log.token_requests()
    if permission == "delegated":
        assert _password_grants(idp_clean) == dict.fromkeys(opened, 1)
        assert {record.client_id for record in token_requests} == {directory.public_client_id}
        assert idp_clean.request_log.count(grant_type="client_credentials") == 0
    else:
        assert [record.grant_type for record in token_requests] == ["client_credentials"]
        assert token_requests[0].client_id == directory.confidential_client_id


def _label(mailbox: str) -> str:
    codes = {ALPHA: "ALPHA", BRAVO: "BRAVO", CHARLIE: "CHARLIE"}
    return "global mailbox" if mailbox == GLOBAL else f"project {codes[mailbox]}"


def test_delegated_multiple_keeps_one_cached_token_per_project_account(
    mailroom: Mailroom, idp_clean: IdentityPlatformEmulator
) -> None:
    room = mailroom
    set_up_projects(room, "delegated")
    room.wic.set_params({"WICBOXACCOUNTMODE": "MULTIPLE"})
    _run_json(room)
    assert _password_grants(idp_clean) == {ALPHA: 1, BRAVO: 1, CHARLIE: 1}
    idp_clean.request_log.clear()
    room.deliver([make_mail(900, to=ALPHA)], user=ALPHA)
    room.deliver([make_mail(901, to=CHARLIE)], user=CHARLIE)
    report = _run_json(room)
    assert report["counts"]["filed"] == 2
    assert idp_clean.request_log.token_requests() == (), "each project account's token came from the cache"
    assert sorted(entry.user for entry in room.dovecot.sign_ins()[-3:]) == [ALPHA, BRAVO, CHARLIE]


def test_application_multiple_opens_wicbox_mailbox_before_wicbox_username(
    mailroom: Mailroom, idp_clean: IdentityPlatformEmulator
) -> None:
    """WICBOX_MAILBOX is the mailbox to open; WICBOX_USERNAME only stands in when it is empty."""
    room = mailroom
    use_application_permissions(room)
    sp_id = room.wic.directory.confidential_client_sp_id
    shared = "gedeeld-dossier@klant.example"
    for mailbox in (shared, ALPHA, BRAVO):
        room.dovecot.add_mailbox(mailbox)
        room.dovecot.grant_app_access(sp_id, mailbox)
    room.wic.add_project(1, "ALPHA", mailbox=shared, username=ALPHA, password="niet-gebruikt-1")
    room.wic.add_project(2, "BRAVO", mailbox="  ", username=BRAVO)
    room.wic.set_params({"WICBOXACCOUNTMODE": "MULTIPLE"})
    room.deliver([make_mail(1)], user=shared)
    room.deliver([make_mail(2)], user=ALPHA)
    room.deliver([make_mail(3)], user=BRAVO)
    _run_json(room)
    assert sorted(entry.user for entry in room.dovecot.sign_ins()) == sorted([shared, BRAVO])
    assert {raw: project for raw, (project, _box) in _filed(room).items()} == {
        make_mail(1): 1,
        make_mail(3): 2,
    }
    assert len(room.messages(user=ALPHA)) == 1
    assert idp_clean.request_log.count(grant_type="password") == 0


@pytest.mark.parametrize("permission", PERMISSIONS)
def test_mix_finishes_the_single_pass_before_the_multiple_pass(mailroom: Mailroom, permission: str) -> None:
    room = mailroom
    set_up_projects(room, permission)
    room.wic.set_params({"WICBOXACCOUNTMODE": "MIX"})
    with imap_recorder(room) as recorder:
        _run_json(room)
        connections = recorder.connections()
    global_sessions = [c for c in connections if c.user == GLOBAL]
    project_sessions = [c for c in connections if c.user != GLOBAL]
    assert len(global_sessions) == 1
    assert sorted(str(c.user) for c in project_sessions) == [ALPHA, BRAVO]
    early = [str(c.user) for c in project_sessions if not _before(global_sessions[0], c)]
    assert early == [], f"opened while the global mailbox (the SINGLE pass) was still being read: {early}"


def _before(first: RecordedConnection, later: RecordedConnection) -> bool:
    return first.closed <= later.opened
