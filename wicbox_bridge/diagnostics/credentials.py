"""The credential lines of ``wicbox check``: the certificate (readable, valid, not shared) or the
client secret's expiry, before any token is asked for."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

from wicbox_bridge.auth.certificate import (
    EXPIRY_WARNING_DAYS,
    NEW_CERTIFICATE_STEPS,
    Validity,
    load_certificate,
)
from wicbox_bridge.auth.keyfile import private_file_problem
from wicbox_bridge.config.params import (
    CLIENT_SECRET,
    CLIENT_SECRET_EXPIRES,
    SECRETS_PAGE,
    AuthMethod,
    Parameters,
)
from wicbox_bridge.diagnostics.results import CheckResult, CheckStatus, failed
from wicbox_bridge.errors import BridgeError, ExitCode, split_fix
from wicbox_bridge.status.report import CredentialStatus, Permission, SecretState, secret_state

NAME = "credential"


def credential_checks(params: Parameters, now: dt.datetime) -> Iterator[CheckResult]:
    """OK/WARN/FAIL for the configured certificate or client secret (nothing for passwords)."""
    if params.certificate is not None:
        yield from _certificate_checks(params, now)
    elif params.client_secret:
        yield _secret_check(params.client_secret_expires, now.date())
    elif params.method is AuthMethod.OAUTH2 and params.password:
        yield _password_grant_check()
    elif params.method is AuthMethod.OAUTH2:
        yield CheckResult(
            NAME,
            CheckStatus.OK,
            "delegated permissions without a stored password: runs use the sign-in `wicbox signin` "
            "saved for this account (the token lines below show whether it is still valid)",
        )


def _password_grant_check() -> CheckResult:
    return CheckResult(
        NAME,
        CheckStatus.WARN,
        "delegated permissions sign in with a stored password (the username/password grant, ROPC): "
        "Microsoft has deprecated it, and multi-factor authentication, Security Defaults or a "
        "Conditional Access policy make it fail (AADSTS50076, 50079, 53003)",
        "move to application permissions with a certificate (`wicbox cert new`, admin guide 3.4a)",
    )


def _certificate_checks(params: Parameters, now: dt.datetime) -> Iterator[CheckResult]:
    assert params.certificate is not None
    try:
        credential = load_certificate(params.certificate, params.certificate_password)
    except BridgeError as error:
        yield failed(NAME, error)
        return
    days = credential.days_left(now)
    validity = credential.validity(now)
    what = f"certificate {credential.path}, thumbprint {credential.sha1_thumbprint}"
    until = f"{credential.not_after:%Y-%m-%d} UTC"
    if validity is Validity.EXPIRED:
        yield CheckResult(
            NAME,
            CheckStatus.FAIL,
            f"{what} expired on {until}",
            f"{NEW_CERTIFICATE_STEPS}; then delete the expired certificate from the app registration",
            ExitCode.AUTHENTICATION,
        )
    elif validity is Validity.NOT_YET_VALID:
        yield CheckResult(
            NAME,
            CheckStatus.FAIL,
            f"{what} is not valid before {credential.not_before:%Y-%m-%d %H:%M} UTC",
            "check this server's clock, or make a new certificate with `wicbox cert new`",
            ExitCode.AUTHENTICATION,
        )
    elif validity is Validity.EXPIRING:
        yield CheckResult(
            NAME,
            CheckStatus.WARN,
            f"{what} expires on {until} ({days:.0f} days left)",
            f"{NEW_CERTIFICATE_STEPS} before then (both certificates can stay uploaded during the change)",
        )
    else:
        yield CheckResult(NAME, CheckStatus.OK, f"{what}, valid until {until} ({days:.0f} days)")
    problem = private_file_problem(credential.path)
    if problem is not None:
        text, fix = split_fix(problem)
        yield CheckResult(NAME, CheckStatus.WARN, text, fix)


def _secret_check(expires: dt.date | None, today: dt.date) -> CheckResult:
    if expires is None:
        return CheckResult(
            NAME,
            CheckStatus.OK,
            f"client secret in {CLIENT_SECRET}; enter its Expires date with `wicbox params set "
            f"{CLIENT_SECRET_EXPIRES} YYYY-MM-DD` so that `wicbox check` and `wicbox status` warn before it "
            "runs out",
            None,
        )
    days = (expires - today).days
    renew = (
        f"create a new client secret in {SECRETS_PAGE}, put its Value in {CLIENT_SECRET} and its "
        f"Expires date in {CLIENT_SECRET_EXPIRES}, run `wicbox check`, then delete the old secret; "
        "or move to a certificate (`wicbox cert new`)"
    )
    # the same judgement as `wicbox status`, with its default warning window
    state = secret_state(
        CredentialStatus(Permission.APPLICATION, expires, None), today, dt.timedelta(days=EXPIRY_WARNING_DAYS)
    )
    if state is SecretState.EXPIRED:
        return CheckResult(
            NAME, CheckStatus.FAIL, f"the client secret expired on {expires}", renew, ExitCode.AUTHENTICATION
        )
    if state is SecretState.EXPIRING:
        return CheckResult(
            NAME, CheckStatus.WARN, f"the client secret expires on {expires} ({days} days)", renew
        )
    return CheckResult(NAME, CheckStatus.OK, f"client secret valid until {expires} ({days} days)")
