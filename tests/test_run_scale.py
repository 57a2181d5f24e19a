"""MULTIPLE at scale: 100 project mailboxes with 5 mails each in one run, application permissions
(one app token, an Exchange mailbox permission per mailbox), cap 1000 in WicGlobal.config."""

from __future__ import annotations

from collections import Counter

import pytest

from tests.clihelp import write_config
from tests.plugins.wic import Mailroom, loopback_hosts
from tests.test_run_fairness import (
    add_project_mailboxes,
    assert_filed_once_under_each_project,
    project_mailbox,
    run_json,
)
from tools.testbed.idp import IdentityPlatformEmulator
from tools.testbed.pki import LoopbackPki

pytestmark = [pytest.mark.testbed, pytest.mark.slow]

MAILBOXES = 100
MAILS_EACH = 5


def test_one_multiple_run_reads_100_project_mailboxes(
    mailroom: Mailroom, idp_clean: IdentityPlatformEmulator, testbed_ip: str, loopback_pki: LoopbackPki
) -> None:
    room = mailroom
    assert room.wic.database is not None
    write_config(
        room.wic.config,
        f"sqlite:///{room.wic.database}",
        max_mails="1000",
        allowed_hosts=loopback_hosts(testbed_ip),
        ca_bundle=loopback_pki.ca_cert,
    )
    delivered = add_project_mailboxes(room, [MAILS_EACH] * MAILBOXES)
    idp_clean.request_log.clear()

    report = run_json(room)

    assert report["max_mails"] == 1000
    assert report["counts"] == {
        "mailboxes": MAILBOXES,
        "failed_mailboxes": 0,
        "fetched": MAILBOXES * MAILS_EACH,
        "filed": MAILBOXES * MAILS_EACH,
        "duplicates": 0,
        "unassigned": 0,
        "quarantined": 0,
    }
    assert_filed_once_under_each_project(room, delivered)
    token_requests = idp_clean.request_log.token_requests()
    assert [record.grant_type for record in token_requests] == ["client_credentials"], "one app token"
    sign_ins = Counter(entry.user for entry in room.dovecot.sign_ins())
    assert sign_ins == Counter({project_mailbox(n): 1 for n in range(1, MAILBOXES + 1)})
