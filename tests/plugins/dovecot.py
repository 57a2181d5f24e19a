"""Test-bed fixtures: a private Dovecot emulating Exchange Online's IMAP.

- ``dovecot``: the running :class:`DovecotServer` (session-wide; IMAPS, IMAP with STARTTLS and LMTP
  on the session's loopback address).
- ``dovecot_clean``: ``dovecot`` running again if a test stopped it, with no mailboxes, passwords,
  grants, sign-ins or mail left from earlier tests. Use it in every test that touches Dovecot.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tools.testbed.dovecot import DovecotServer
from tools.testbed.pki import LoopbackPki


@pytest.fixture(scope="session")
def dovecot(testbed_ip: str, loopback_pki: LoopbackPki) -> Iterator[DovecotServer]:
    server = DovecotServer(testbed_ip, loopback_pki)
    try:
        server.start()
        yield server
    finally:
        server.close()


@pytest.fixture
def dovecot_clean(dovecot: DovecotServer) -> DovecotServer:
    dovecot.start()
    dovecot.reset()
    return dovecot
