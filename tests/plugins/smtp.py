"""Test-bed fixtures: an SMTP submission server emulating Exchange Online's (aiosmtpd).

- ``smtp``: the running :class:`SmtpServer` (session-wide; STARTTLS and implicit-TLS listeners on
  the session's loopback address). It shares mailboxes, passwords and app grants with ``dovecot``,
  delivers accepted mail into it over LMTP and keeps a copy in the sender's Sent Items there.
- ``smtp_clean``: ``smtp`` with no scripted replies, the submission quota off and no recorded
  mail, on top of ``dovecot_clean`` (so mailboxes are empty too).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tools.testbed.dovecot import DovecotServer
from tools.testbed.pki import LoopbackPki
from tools.testbed.smtp import SmtpServer, lmtp_deliverer


@pytest.fixture(scope="session")
def smtp(testbed_ip: str, loopback_pki: LoopbackPki, dovecot: DovecotServer) -> Iterator[SmtpServer]:
    server = SmtpServer(
        testbed_ip,
        loopback_pki,
        dovecot.accounts,
        lmtp_deliverer(dovecot.host, dovecot.lmtp_port),
        keep_sent=dovecot.keep_in_sent_items,
    )
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def smtp_clean(smtp: SmtpServer, dovecot_clean: DovecotServer) -> SmtpServer:
    smtp.reset()
    return smtp
