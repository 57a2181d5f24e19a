"""The test bed's loopback address, CA, server certificate and token-signing key (one per session)."""

from __future__ import annotations

import pytest

from tools.testbed.mailbed import random_loopback_ip
from tools.testbed.pki import LoopbackPki, create_loopback_pki


@pytest.fixture(scope="session")
def testbed_ip() -> str:
    """A loopback address of this session's own, so the emulators can listen on port 443.

    msal sends the user-realm request to the authority's host name without its port, so the
    identity-platform emulator must answer on 443; a private 127.x.y.z keeps concurrent test beds
    (a test run and the demo) apart.
    """
    return random_loopback_ip()


@pytest.fixture(scope="session")
def loopback_pki(tmp_path_factory: pytest.TempPathFactory, testbed_ip: str) -> LoopbackPki:
    return create_loopback_pki(tmp_path_factory.mktemp("pki"), extra_ips=(testbed_ip,))
