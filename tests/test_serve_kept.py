"""The pass session serve keeps for the next wake-up (Dovecot through the fault proxy, an injected
clock): kept after a pass that fetched mail and lent again without signing in anew, replaced on
the pass's first request when the server closed it meanwhile (the pass neither fails nor misses
mail), dropped after a pass without mail, a failed pass, or when unused for too long."""

from __future__ import annotations

import pytest

from tests.adapter_bed import RecordedWaits
from tests.test_imap_watch import MAILBOX, Clock, adapter, mail, proxy
from tools.testbed.dovecot import DovecotServer
from tools.testbed.imap_faults import ImapFaultProxy
from tools.testbed.pki import LoopbackPki
from wicbox_bridge.auth.aadsts import CredentialNames
from wicbox_bridge.auth.accounts import MailboxAccount
from wicbox_bridge.serve.kept import KeptSession

pytestmark = pytest.mark.testbed
__all__ = ["proxy"]  # the fixture
ACCOUNT = MailboxAccount(MAILBOX, MAILBOX, None, None, None, CredentialNames())
KEEP_S = 300.0


def _kept(proxy: ImapFaultProxy, pki: LoopbackPki, clock: Clock) -> KeptSession:
    bridge = adapter(proxy, pki, RecordedWaits(), clock)
    return KeptSession(lambda account: bridge.open(account.mailbox, None), keep_s=KEEP_S, clock=clock)


def test_a_kept_session_is_lent_again_and_replaced_when_the_server_closed_it(
    proxy: ImapFaultProxy, dovecot_clean: DovecotServer, loopback_pki: LoopbackPki
) -> None:
    clock = Clock()
    kept = _kept(proxy, loopback_pki, clock)
    try:
        dovecot_clean.append(MAILBOX, "INBOX", mail(1))
        assert len(kept.open(ACCOUNT).list_pending(10)) == 1
        kept.pass_ended(fetched=1, failed=False)
        assert len(kept.open(ACCOUNT).list_pending(10)) == 1  # the same session: no new sign-in
        kept.pass_ended(fetched=1, failed=False)
        assert kept.opened == 1
        proxy.cut_connections()  # the server (or the network) closed it since the last pass
        dovecot_clean.append(MAILBOX, "INBOX", mail(2))
        assert len(kept.open(ACCOUNT).list_pending(10)) == 2  # replaced on the spot, nothing missed
        assert kept.opened == 2
        kept.pass_ended(fetched=2, failed=False)
        clock.now += KEEP_S + 1  # unused for too long: a new session
        assert len(kept.open(ACCOUNT).list_pending(10)) == 2
        assert kept.opened == 3
        kept.pass_ended(fetched=0, failed=False)  # a pass without mail keeps nothing
        kept.open(ACCOUNT).list_pending(10)
        assert kept.opened == 4
        kept.pass_ended(fetched=2, failed=True)  # nor does a failed one
        kept.open(ACCOUNT).list_pending(10)
        assert kept.opened == 5
    finally:
        kept.drop()
