"""What the adapter tests' beds share: a token provider that records its calls, and the parts of
the test bed every adapter signs in with (the PKI, the identity-platform emulator with its seeded
directory, a directory for token caches).

A test module uses the fixture by binding it: ``identity_parts = adapter_bed.identity_parts``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tools.testbed.idp import IdentityPlatformEmulator, SeededDirectory
from tools.testbed.pki import LoopbackPki
from wicbox_bridge.adapters.base import AccessToken, TokenProvider


@dataclass
class RecordingTokens:
    """A real token provider, with a record of the calls (to see forced refreshes and the tokens)."""

    provider: TokenProvider
    refreshes: list[bool] = field(default_factory=list)
    issued: list[AccessToken] = field(default_factory=list)

    def __call__(self, *, force_refresh: bool = False) -> AccessToken:
        self.refreshes.append(force_refresh)
        token = self.provider(force_refresh=force_refresh)
        self.issued.append(token)
        return token


@dataclass(frozen=True)
class IdentityParts:
    pki: LoopbackPki
    idp: IdentityPlatformEmulator
    directory: SeededDirectory
    cache_dir: Path


@pytest.fixture
def identity_parts(
    loopback_pki: LoopbackPki,
    idp_clean: IdentityPlatformEmulator,
    idp_directory: SeededDirectory,
    tmp_path: Path,
) -> IdentityParts:
    return IdentityParts(loopback_pki, idp_clean, idp_directory, tmp_path)


class RecordedWaits(list[float]):
    """The waits an adapter asked for, instead of sleeping them (the adapters' time seam)."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)
