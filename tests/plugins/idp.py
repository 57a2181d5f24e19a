"""Test-bed fixtures: the identity-platform emulator on https://{testbed_ip}:443, seeded.

- ``idp``: the running :class:`IdentityPlatformEmulator` (session-wide).
- ``idp_directory``: the :class:`SeededDirectory` with its ids, secrets and passwords.
- ``idp_clean``: ``idp`` with an empty request log, no faults and the default token lifetime.

msal must trust the test CA: give it ``http_client=idp_http_session`` (``verify`` = the CA,
``trust_env=False`` so that REQUESTS_CA_BUNDLE/CURL_CA_BUNDLE cannot override it) and build it
with ``instance_discovery=False``.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests

from tools.testbed.idp import (
    DEFAULT_TOKEN_LIFETIME,
    IdentityPlatformEmulator,
    SeededDirectory,
    seed_test_directory,
)
from tools.testbed.pki import LoopbackPki


@pytest.fixture(scope="session")
def _idp_testbed(
    loopback_pki: LoopbackPki, testbed_ip: str
) -> Iterator[tuple[IdentityPlatformEmulator, SeededDirectory]]:
    with IdentityPlatformEmulator(loopback_pki, testbed_ip) as emulator:
        yield emulator, seed_test_directory(emulator)


@pytest.fixture(scope="session")
def idp(_idp_testbed: tuple[IdentityPlatformEmulator, SeededDirectory]) -> IdentityPlatformEmulator:
    return _idp_testbed[0]


@pytest.fixture(scope="session")
def idp_directory(_idp_testbed: tuple[IdentityPlatformEmulator, SeededDirectory]) -> SeededDirectory:
    return _idp_testbed[1]


@pytest.fixture
def idp_clean(idp: IdentityPlatformEmulator) -> Iterator[IdentityPlatformEmulator]:
    """The emulator with an empty request log, no pending faults and the default token lifetime."""
    idp.request_log.clear()
    idp.clear_faults()
    idp.token_lifetime = DEFAULT_TOKEN_LIFETIME
    yield idp
    idp.clear_faults()
    idp.token_lifetime = DEFAULT_TOKEN_LIFETIME


@pytest.fixture
def idp_http_session(loopback_pki: LoopbackPki) -> Iterator[requests.Session]:
    """A requests session trusting only the test CA, for msal's ``http_client``."""
    session = requests.Session()
    session.verify = str(loopback_pki.ca_cert)
    session.trust_env = False
    yield session
    session.close()
