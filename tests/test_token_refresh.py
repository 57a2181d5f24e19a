"""Tokens renewed ahead of their expiry (`wicbox serve`), against the identity-platform emulator
driven by the real msal, with the refresher's clock injected; and the sign-in key that decides when
serve builds its token layer again."""

from __future__ import annotations

from pathlib import Path

from tests import adapter_bed
from tests.adapter_bed import IdentityParts
from tools.testbed.idp import IdentityPlatformEmulator
from wicbox_bridge.adapters.base import TokenProvider
from wicbox_bridge.adapters.identity import IdentityPlatform, TokenService
from wicbox_bridge.auth.refresh import REFRESH_AHEAD_S, TokenRefresher, auth_key
from wicbox_bridge.auth.scopes import GRAPH_DELEGATED
from wicbox_bridge.config.params import CERTIFICATE, CLIENT_SECRET, Parameters, parse_parameters
from wicbox_bridge.secret import Secret

identity_parts = adapter_bed.identity_parts
MAILBOX = "wicbox@klant.example"


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def delegated(parts: IdentityParts) -> TokenProvider:
    platform = IdentityPlatform(
        parts.idp.base_url,
        parts.directory.tenant_id,
        parts.directory.public_client_id,
        ca_bundle=parts.pki.ca_cert,
    )
    service = TokenService(platform, parts.cache_dir / "delegated.bin", encrypt_cache=False)
    return service.delegated((GRAPH_DELEGATED,), MAILBOX, Secret(parts.directory.user(MAILBOX).password))


def token_requests(idp: IdentityPlatformEmulator) -> int:
    return len(idp.request_log.token_requests())


def test_a_token_is_renewed_only_when_less_than_five_minutes_remain(identity_parts: IdentityParts) -> None:
    clock = Clock()
    refresher = TokenRefresher(clock)
    provider = refresher.track(("global", MAILBOX, "graph"), delegated(identity_parts))
    first = provider()
    idp = identity_parts.idp
    asked = token_requests(idp)

    clock.now = first.expires_at - REFRESH_AHEAD_S - 60  # six minutes left: nothing to do
    assert refresher.due() == []
    assert refresher.refresh_due() == 0
    assert token_requests(idp) == asked

    clock.now = first.expires_at - REFRESH_AHEAD_S + 60  # four minutes left: renewed now
    assert refresher.refresh_due() == 1
    assert token_requests(idp) == asked + 1
    renewed = provider()
    assert renewed.from_cache
    assert renewed.value != first.value  # the pass gets the renewed token from the cache


def test_a_failed_renewal_is_tried_again_at_the_next_call(identity_parts: IdentityParts) -> None:
    clock = Clock()
    refresher = TokenRefresher(clock)
    first = refresher.track("global", delegated(identity_parts))()
    clock.now = first.expires_at - 10
    identity_parts.idp.drop_token_requests(10)
    assert refresher.refresh_due() == 0
    assert refresher.due() == ["global"]  # still owed
    identity_parts.idp.clear_faults()
    asked = token_requests(identity_parts.idp)
    assert refresher.refresh_due() == 1
    assert token_requests(identity_parts.idp) == asked + 1


BASE = {
    "WICBOX_MAILCLIENT_CLIENTID": "0b6e3f4c-1a2d-4e5f-8a9b-0c1d2e3f4a5b",
    "WICBOX_MAILCLIENT_TENANTID": "5f1c7d2e-8b4a-4c3e-9a6f-2d7e1b0c9a41",
    "WICBOX_MAILCLIENT_USERNAME": "wicbox@klant.example",
    "WICBOXACCOUNTMODE": "SINGLE",
    CLIENT_SECRET: "Sx~first-secret-value",
}


def parameters(**changes: str) -> Parameters:
    return parse_parameters({**BASE, **changes}).parameters


def test_the_sign_in_key_changes_with_the_secret_the_client_id_and_the_certificate(tmp_path: Path) -> None:
    current = auth_key(parameters())
    assert auth_key(parameters()) == current
    assert auth_key(parameters(WICBOX_MAILCLIENT_FOLDER="Other")) == current  # not sign-in
    assert auth_key(parameters(**{CLIENT_SECRET: "Sx~second-secret-value"})) != current
    assert auth_key(parameters(WICBOX_MAILCLIENT_CLIENTID="6b6e3f4c-1a2d-4e5f-8a9b-0c1d2e3f4a5b")) != current
    certificate = tmp_path / "wicbox.pem"
    certificate.write_bytes(b"one")
    with_file = auth_key(parameters(**{CERTIFICATE: str(certificate)}))
    assert with_file != current
    certificate.write_bytes(b"two, replaced under the same name")
    assert auth_key(parameters(**{CERTIFICATE: str(certificate)})) != with_file
    assert "first-secret" not in repr(current)
