"""Delegated sign-in without a stored password: the device-code flow against the emulator with the
real msal (approve, slow_down, decline, expiry, the wrong account), `wicbox signin`, runs that use
the saved sign-in, and a dead refresh token that stops one mailbox of MULTIPLE and no other.

Time is the emulator's clock: the flow's ``wait`` moves it forward instead of sleeping, and the
token service reads the same clock, so every poll happens exactly when the test says.
"""

from __future__ import annotations

import json
import os
import re
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.helpers.mailgen import make_mail
from tests.plugins.wic import Mailroom
from tools.testbed.idp import IdentityPlatformEmulator, SeededDirectory
from tools.testbed.pki import LoopbackPki
from wicbox_bridge.adapters.base import AccessToken
from wicbox_bridge.adapters.identity import DeviceCodePrompt, IdentityPlatform, TokenService
from wicbox_bridge.adapters.token_cache import CACHE_FILE_NAME
from wicbox_bridge.auth.aadsts import CredentialNames
from wicbox_bridge.auth.keyfile import foreign_owner_problem
from wicbox_bridge.auth.scopes import IMAP_DELEGATED
from wicbox_bridge.errors import AuthenticationError, ExitCode

pytestmark = pytest.mark.testbed

SCOPES = (IMAP_DELEGATED,)


@dataclass
class User:
    """Plays the person at the browser: what they do at each of the client's waits."""

    idp: IdentityPlatformEmulator
    steps: list[Callable[[str], None]]
    advance: list[float] = field(default_factory=list)  # how far the clock moves at each wait
    prompts: list[DeviceCodePrompt] = field(default_factory=list)
    waits: list[float] = field(default_factory=list)

    def show(self, prompt: DeviceCodePrompt) -> None:
        self.prompts.append(prompt)

    def wait(self, seconds: float) -> None:
        index = len(self.waits)
        self.waits.append(seconds)
        self.idp.clock_offset += self.advance[index] if index < len(self.advance) else seconds
        if index < len(self.steps):
            self.steps[index](self.prompts[-1].user_code)


@pytest.fixture
def own_user(idp: IdentityPlatformEmulator, idp_directory: SeededDirectory) -> str:
    upn = f"sign-{uuid.uuid4().hex[:10]}@klant.example"
    idp.add_user(upn, f"Pw-{uuid.uuid4().hex}", idp_directory.tenant_id)
    return upn


@pytest.fixture
def service(
    idp_clean: IdentityPlatformEmulator,
    idp_directory: SeededDirectory,
    loopback_pki: LoopbackPki,
    tmp_path: Path,
) -> TokenService:
    platform = IdentityPlatform(
        idp_clean.base_url,
        idp_directory.tenant_id,
        idp_directory.public_client_id,
        ca_bundle=loopback_pki.ca_cert,
    )
    return TokenService(
        platform,
        tmp_path / "state" / CACHE_FILE_NAME,
        encrypt_cache=False,
        clock=lambda: idp_clean.now().timestamp(),
    )


@pytest.fixture(autouse=True)
def _real_time_again(idp: IdentityPlatformEmulator) -> Iterator[None]:
    yield
    idp.clock_offset = 0.0


def nothing(_code: str) -> None:
    """The user has not typed the code yet."""


def sign_in(service: TokenService, upn: str, user: User) -> AccessToken:
    return service.sign_in_with_device_code(
        SCOPES, upn, CredentialNames(account=upn), show=user.show, wait=user.wait
    )


def grants(idp: IdentityPlatformEmulator) -> list[tuple[str | None, int, str | None]]:
    return [(r.grant_type, r.status, r.error) for r in idp.request_log.token_requests()]


DEVICE = "urn:ietf:params:oauth:grant-type:device_code"


def test_the_user_signs_in_while_the_client_polls_then_runs_need_no_password(
    service: TokenService, idp_clean: IdentityPlatformEmulator, own_user: str
) -> None:
    user = User(idp_clean, [nothing, lambda code: idp_clean.device_codes.approve(code, own_user)])

    token = sign_in(service, own_user, user)

    assert user.prompts[0].verification_uri == "https://microsoft.com/devicelogin"
    assert len(user.prompts[0].user_code) == 9 and user.prompts[0].expires_in == 900
    assert user.waits == [5.0, 5.0]
    assert grants(idp_clean) == [
        (DEVICE, 400, "authorization_pending"),
        (DEVICE, 400, "authorization_pending"),
        (DEVICE, 200, None),
    ]
    assert token.claims["upn"] == own_user
    idp_clean.request_log.clear()
    runs = service.delegated(SCOPES, own_user, None)
    assert runs().claims["upn"] == own_user
    assert all(grant != "password" for grant, _status, _error in grants(idp_clean))


def test_polling_too_fast_is_answered_slow_down_and_the_client_waits_five_seconds_more(
    service: TokenService, idp_clean: IdentityPlatformEmulator, own_user: str
) -> None:
    approve = lambda code: idp_clean.device_codes.approve(code, own_user)  # noqa: E731
    # the first wait passes no time on the directory's clock: the second poll comes too soon
    user = User(idp_clean, [nothing, approve], advance=[0.0])

    sign_in(service, own_user, user)

    assert user.waits == [5.0, 10.0]
    assert [error for _g, _s, error in grants(idp_clean)] == ["authorization_pending", "slow_down", None]


def test_a_declined_sign_in_is_an_authentication_error(
    service: TokenService, idp_clean: IdentityPlatformEmulator, own_user: str
) -> None:
    user = User(idp_clean, [idp_clean.device_codes.decline])
    with pytest.raises(AuthenticationError, match="declined") as refused:
        sign_in(service, own_user, user)
    assert refused.value.exit_code is ExitCode.AUTHENTICATION
    assert "wicbox signin" in (refused.value.fix or "")


def test_a_code_nobody_uses_expires(
    service: TokenService, idp_clean: IdentityPlatformEmulator, own_user: str
) -> None:
    user = User(idp_clean, [], advance=[5.0, 1000.0])
    with pytest.raises(AuthenticationError, match="expired") as expired:
        sign_in(service, own_user, user)
    assert "wicbox signin" in (expired.value.fix or "")
    assert grants(idp_clean)[-1][2] == "expired_token"


def test_the_client_gives_up_at_the_codes_expiry_even_if_the_server_keeps_pending(
    service: TokenService, idp_clean: IdentityPlatformEmulator, own_user: str
) -> None:
    user = User(idp_clean, [], advance=[0.0] * 400)  # the directory's clock stands still: never expired
    service.clock = lambda: 1_800_000_000.0 + sum(user.waits)  # this server's clock moves with each wait
    with pytest.raises(AuthenticationError, match="expired"):
        sign_in(service, own_user, user)
    assert 800 < sum(user.waits) <= 900
    assert grants(idp_clean)[-1][2] == "slow_down"


def test_another_account_signing_in_is_refused_and_not_kept(
    service: TokenService, idp_clean: IdentityPlatformEmulator, idp_directory: SeededDirectory, own_user: str
) -> None:
    stranger = idp_directory.project_users[0].upn
    user = User(idp_clean, [lambda code: idp_clean.device_codes.approve(code, stranger)])
    with pytest.raises(AuthenticationError) as refused:
        sign_in(service, own_user, user)
    assert stranger in refused.value.message and own_user in refused.value.message
    with pytest.raises(AuthenticationError, match="sign-in needed"):
        service.delegated(SCOPES, stranger, None)()
    with pytest.raises(AuthenticationError, match="sign-in needed") as needed:
        service.delegated(SCOPES, own_user, None)()
    assert "wicbox signin" in (needed.value.fix or "")


# -- the command and the runs ---------------------------------------------------------------------


def test_signin_then_a_run_without_password_files_mail(
    mailroom: Mailroom, idp_clean: IdentityPlatformEmulator
) -> None:
    wic = mailroom.wic
    wic.set_params({"WICBOX_MAILCLIENT_PASSWORD": None})
    mailroom.deliver([make_mail(1), make_mail(2)])
    before = wic.cli("run")
    assert before.exit_code == ExitCode.AUTHENTICATION, before.output
    assert "sign-in needed" in before.output and "wicbox signin" in before.output
    assert len(mailroom.messages("INBOX")) == 2

    idp_clean.device_codes.approve_next(mailroom.mailbox)
    signed = wic.cli("signin", "--json")

    assert signed.exit_code == 0, signed.output
    first, last = (json.loads(line) for line in signed.output.strip().splitlines())
    assert set(first) == {"verification_uri", "user_code", "expires_in"}
    assert last["signed_in"] == mailroom.mailbox
    idp_clean.request_log.clear()
    ran = wic.cli("run")
    assert ran.exit_code == 0, ran.output
    assert len(mailroom.filed()) == 2
    assert idp_clean.request_log.count(grant_type="password") == 0
    assert "deprecated" not in ran.output
    checked = wic.cli("check")
    assert checked.exit_code == 0, checked.output


def test_signin_is_refused_for_application_permissions(
    mailroom: Mailroom, idp_clean: IdentityPlatformEmulator, loopback_pki: LoopbackPki
) -> None:
    wic = mailroom.wic
    wic.set_params(
        {
            "WICBOX_MAILCLIENT_CLIENTSECRET": wic.directory.confidential_client_secret,
            "WICBOX_MAILCLIENT_PASSWORD": None,
        }
    )
    result = wic.cli("signin")
    assert result.exit_code == ExitCode.CONFIGURATION
    assert "application permissions" in result.output


def test_a_dead_sign_in_stops_only_its_own_mailbox_in_multiple(
    mailroom: Mailroom, idp_clean: IdentityPlatformEmulator
) -> None:
    wic = mailroom.wic
    directory = wic.directory
    alpha, bravo = directory.project_users[0].upn, directory.project_users[1].upn
    idp_clean.token_lifetime = 300  # msal refreshes a token with 5 minutes left: every run refreshes
    for project_id, (code, upn) in enumerate((("ALPHA", alpha), ("BRAVO", bravo)), start=1):
        wic.add_project(project_id, code, mailbox=upn, username=upn)  # no password column
        mailroom.dovecot.add_mailbox(upn)
        idp_clean.device_codes.approve_next(upn)
        signed = wic.cli("signin", "--project", code)
        assert signed.exit_code == 0, signed.output
    wic.set_params({"WICBOXACCOUNTMODE": "MULTIPLE", "WICBOX_MAILCLIENT_PASSWORD": None})
    mailroom.deliver([make_mail(10, to=alpha)], user=alpha)
    mailroom.deliver([make_mail(20, to=bravo)], user=bravo)
    idp_clean.revoke_user_sessions(bravo)  # like Revoke-MgUserSignInSession: BRAVO's refresh token dies
    wic.set_params({"WICBOX_MAILCLIENT_PASSWORD": None})

    ran = wic.cli("run")

    # 1, partial failure: ALPHA was read; a run whose every mailbox needs a sign-in exits 3
    assert ran.exit_code == ExitCode.PARTIAL, ran.output
    assert "sign-in needed" in ran.output and "wicbox signin --project BRAVO" in ran.output
    assert [row.mailbox.lower() for row in mailroom.filed()] == [alpha]
    assert len(mailroom.messages("INBOX", user=bravo)) == 1
    status = wic.cli("status")
    assert "wicbox signin --project BRAVO" in status.output


def test_a_token_cache_of_another_account_is_named_by_check(mailroom: Mailroom, tmp_path: Path) -> None:
    wic = mailroom.wic
    assert wic.cli("check").exit_code == 0  # writes this account's token cache
    cache = next((wic.cli_runner.home).rglob(CACHE_FILE_NAME))
    assert foreign_owner_problem(cache) is None
    problem = foreign_owner_problem(cache, uid=os.getuid() + 1)
    assert problem is not None and "belongs to another account" in problem
    os.chown(cache, 65534, 65534)  # as if another account (nobody) had written it
    checked = wic.cli("check")
    assert re.search(r"\[WARN\] credential: the token cache .* belongs to another account", checked.output)
    assert "as the account the scheduled task runs as" in checked.output


def test_no_device_code_or_refresh_token_reaches_any_output_at_maximum_verbosity(
    mailroom: Mailroom, idp_clean: IdentityPlatformEmulator
) -> None:
    wic = mailroom.wic
    wic.set_params({"WICBOX_MAILCLIENT_PASSWORD": None})
    mailroom.deliver([make_mail(1)])
    idp_clean.device_codes.approve_next(mailroom.mailbox)
    outputs = [
        wic.cli("-vvv", "signin").output,
        wic.cli("-vvv", "run").output,
        wic.cli("-vvv", "check").output,
    ]
    issued = idp_clean.device_codes.latest()
    assert issued is not None
    cache = next(wic.cli_runner.home.rglob(CACHE_FILE_NAME))
    refresh_tokens = [entry["secret"] for entry in json.loads(cache.read_text())["RefreshToken"].values()]
    assert refresh_tokens
    log_text = next(wic.cli_runner.home.rglob("wicbox.log")).read_text(encoding="utf-8")
    for text in (*outputs, log_text):
        assert issued.device_code not in text
        assert all(token not in text for token in refresh_tokens)
        assert not re.search(r"eyJ[A-Za-z0-9_-]{10,}\.", text), "an access or id token reached the output"
    assert issued.user_code in outputs[0]  # the code for the person is shown, of course
