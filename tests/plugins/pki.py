"""The test bed's CA, server certificate and token-signing key (one set per test session)."""

from __future__ import annotations

import pytest

from tools.testbed.pki import LoopbackPki, create_loopback_pki


@pytest.fixture(scope="session")
def loopback_pki(tmp_path_factory: pytest.TempPathFactory) -> LoopbackPki:
    return create_loopback_pki(tmp_path_factory.mktemp("pki"))
