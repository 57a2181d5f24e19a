"""Microsoft identity platform error codes (AADSTS...) and the fix for each (pure catalogue).

msal returns the identity platform's OAuth error replies as dicts. :func:`error_from_reply` turns
one into an :class:`IdentityPlatformError`: the AADSTS code, the first line of Microsoft's
description (trace and correlation ids go to ``support`` for the vendor's support desk) and the
specific fix, naming the WICMan parameters to change, never their values.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from wicbox_bridge.config import params
from wicbox_bridge.errors import AuthenticationError

USERNAME_PARAMETER = params.USERNAME
PASSWORD_PARAMETER = params.PASSWORD
CLIENT_ID_PARAMETER = params.CLIENT_ID
CLIENT_SECRET_PARAMETER = params.CLIENT_SECRET
TENANT_ID_PARAMETER = params.TENANT_ID
SCOPE_PARAMETER = params.SCOPE
CERTIFICATE_PARAMETER = params.CERTIFICATE

APP_REGISTRATION = "Azure > App registrations > (the WICBox app)"


def _enter(parameter: str, what: str) -> str:
    """How to put ``what`` into ``parameter``: the command for a WICMan parameter, else the column."""
    if params.find_spec(parameter) is not None:
        return f"run {params.set_command(parameter)} with {what}"
    return f"put {what} in {parameter}"


def _empty(parameter: str) -> str:
    return (
        params.clear_command(parameter) if params.find_spec(parameter) is not None else f"clear {parameter}"
    )


ERROR_LOOKUP_URL = "https://login.microsoftonline.com/error?code="

_CODE = re.compile(r"\bAADSTS(\d+)\b")
_SUPPORT_KEYS = ("trace_id", "correlation_id", "timestamp")
_SUPPORT_LINE = re.compile(r"\s*(Trace ID|Correlation ID|Timestamp):.*$", re.DOTALL)


@dataclass(frozen=True)
class CredentialNames:
    """Which account and which parameters a sign-in used, for messages (names, never values).

    In MULTIPLE mode the delegated credentials are a project's own mailbox columns, so the labels
    are not always the WICBOX_MAILCLIENT_* parameters.
    """

    account: str | None = None
    username_parameter: str = USERNAME_PARAMETER
    password_parameter: str = PASSWORD_PARAMETER
    scopes: tuple[str, ...] = ()
    project: str | None = None  # a project's own mailbox (MULTIPLE/MIX): its code

    @property
    def signin_command(self) -> str:
        """The command that saves a sign-in for this account."""
        return "wicbox signin" + (f" --project {self.project}" if self.project else "")


@dataclass(frozen=True)
class Advice:
    """What an error code means and what to change; ``reacquire``: sign in with the password again."""

    problem: str
    fix: str
    reacquire: bool = False


def _wrong_password(names: CredentialNames) -> Advice:
    who = names.account or f"the account in {names.username_parameter}"
    return Advice(
        f"the password for {who} is wrong",
        f"{_enter(names.password_parameter, f'the current password of {who}')} "
        "(if it was changed recently, enter the new one)",
    )


def _public_client_flows(names: CredentialNames) -> Advice:
    return Advice(
        "the app registration does not allow signing in with a username and password",
        f'turn on "Allow public client flows" in {APP_REGISTRATION} > Authentication, or set '
        f"{CLIENT_SECRET_PARAMETER} to use application permissions "
        f"({params.set_command(CLIENT_SECRET_PARAMETER)})",
    )


def _bad_secret(names: CredentialNames) -> Advice:
    return Advice(
        "the client secret is wrong",
        f"make a new client secret in {APP_REGISTRATION} > Certificates & secrets, copy its Value "
        f"(not its Secret ID) and run {params.set_command(CLIENT_SECRET_PARAMETER)}",
    )


def _unknown_client(names: CredentialNames) -> Advice:
    return Advice(
        "the client id is not an app registration in this tenant",
        f"check {CLIENT_ID_PARAMETER} (Application (client) ID) and {TENANT_ID_PARAMETER} (Directory "
        "(tenant) ID) on the app registration's Overview page in Azure",
    )


def _unknown_tenant(names: CredentialNames) -> Advice:
    return Advice(
        "the tenant id is wrong",
        f"copy the Directory (tenant) ID from the app registration's Overview page in Azure and run "
        f"{params.set_command(TENANT_ID_PARAMETER, '<directory-id>')}",
    )


def _consent_missing(names: CredentialNames) -> Advice:
    wanted = " ".join(names.scopes) or f"the permission in {SCOPE_PARAMETER}"
    return Advice(
        f"an administrator has not consented to {wanted}",
        f"in {APP_REGISTRATION} > API permissions add the permission and click "
        '"Grant admin consent for <your organisation>"',
    )


def _mfa_blocks_password(names: CredentialNames) -> Advice:
    who = names.account or f"the account in {names.username_parameter}"
    return Advice(
        f"multi-factor authentication, Security Defaults or Conditional Access blocks password sign-in "
        f"for {who}",
        f"sign in once with `{names.signin_command}` (multi-factor authentication works there) and "
        f"{_empty(names.password_parameter)}; or use application permissions with a certificate "
        f"(`wicbox cert new`, then {CERTIFICATE_PARAMETER}; admin guide 3.4a)",
    )


def _unknown_user(names: CredentialNames) -> Advice:
    who = names.account or "the account"
    return Advice(
        f"{who} is not a user in this tenant",
        f"check {names.username_parameter}: it must be the mailbox user's sign-in name (UPN) in "
        f"the tenant of {TENANT_ID_PARAMETER}",
    )


def _refresh_token_invalid(names: CredentialNames) -> Advice:
    return Advice(
        "the saved sign-in is no longer valid (password changed, session revoked or expired)",
        f"wicbox-bridge signs in again with {names.password_parameter}; if that fails, fix what that "
        f"error names; without a password, run `{names.signin_command}` again",
        reacquire=True,
    )


def _mfa_needed_again(names: CredentialNames) -> Advice:
    return Advice(
        "the saved sign-in needs multi-factor authentication again (a policy or a risk asks for it)",
        f"run `{names.signin_command}` and complete the multi-factor authentication",
        reacquire=True,
    )


def _consent_or_secret_expired(names: CredentialNames) -> Advice:
    return Advice(
        "the client secret has expired",
        f"make a new client secret in {APP_REGISTRATION} > Certificates & secrets; enter its Value with "
        f"{params.set_command(CLIENT_SECRET_PARAMETER)} and its Expires date with "
        f"{params.set_command(params.CLIENT_SECRET_EXPIRES, 'YYYY-MM-DD')}; "
        "better: move to a certificate (`wicbox cert new`, admin guide 3.4a), which no one has to copy",
    )


def _bad_scope(names: CredentialNames) -> Advice:
    return Advice(
        "the requested scope is not valid for this app",
        f"check {SCOPE_PARAMETER}: use Mail.ReadWrite (Microsoft Graph), IMAP.AccessAsUser.All / "
        "SMTP.Send (delegated) or https://outlook.office365.com/.default (application permissions)",
    )


def _password_expired(names: CredentialNames) -> Advice:
    who = names.account or "the account"
    return Advice(
        f"the password of {who} has expired",
        f"set a new password for {who} and put it in {names.password_parameter}",
    )


def _account_locked(names: CredentialNames) -> Advice:
    who = names.account or "the account"
    return Advice(
        f"{who} is locked or disabled",
        f"unlock or enable {who} in Microsoft Entra ID (too many wrong passwords lock it: check "
        f"{names.password_parameter})",
    )


def _resource_missing(names: CredentialNames) -> Advice:
    return Advice(
        "the API of the requested scope does not exist in this tenant",
        f"check {SCOPE_PARAMETER} and that the tenant has Exchange Online / Microsoft Graph",
    )


CERTIFICATES = f"{APP_REGISTRATION} > Certificates & secrets > Certificates"


def _certificate_not_registered(names: CredentialNames) -> Advice:
    return Advice(
        "the certificate is not uploaded to the app registration, or its signature does not match",
        f"compare the thumbprint `wicbox cert show` prints with the ones in {CERTIFICATES}; upload the "
        f".cer of the certificate in {CERTIFICATE_PARAMETER} there (Upload certificate), or point "
        f"{CERTIFICATE_PARAMETER} at the certificate that is uploaded",
    )


def _assertion_time(names: CredentialNames) -> Advice:
    return Advice(
        "the signed sign-in request is outside its valid time: this server's clock is off",
        "set this server's clock right (synchronise it with time.windows.com or the domain controller: "
        "`w32tm /resync`); the identity platform allows about five minutes of difference",
    )


def _assertion_claims(names: CredentialNames) -> Advice:
    return Advice(
        "the signed sign-in request names another app or another token endpoint",
        f"check {CLIENT_ID_PARAMETER} and {TENANT_ID_PARAMETER} against the app registration's Overview page",
    )


def _app_disabled(names: CredentialNames) -> Advice:
    return Advice(
        "the app registration is disabled",
        "enable the WICBox app in Azure > Enterprise applications > Properties",
    )


_CATALOGUE = {
    "AADSTS50126": _wrong_password,
    "AADSTS7000218": _public_client_flows,
    "AADSTS7000215": _bad_secret,
    "AADSTS7000222": _consent_or_secret_expired,
    "AADSTS700016": _unknown_client,
    "AADSTS90002": _unknown_tenant,
    "AADSTS900023": _unknown_tenant,
    "AADSTS65001": _consent_missing,
    "AADSTS50076": _mfa_blocks_password,
    "AADSTS50079": _mfa_blocks_password,
    "AADSTS53003": _mfa_blocks_password,
    "AADSTS50158": _mfa_blocks_password,
    "AADSTS50034": _unknown_user,
    "AADSTS50173": _refresh_token_invalid,
    "AADSTS70000": _refresh_token_invalid,
    "AADSTS70008": _refresh_token_invalid,
    "AADSTS700082": _refresh_token_invalid,
    "AADSTS70043": _refresh_token_invalid,
    "AADSTS50078": _mfa_needed_again,
    "AADSTS50133": _refresh_token_invalid,
    "AADSTS1002012": _bad_scope,
    "AADSTS70011": _bad_scope,
    "AADSTS28000": _bad_scope,
    "AADSTS50055": _password_expired,
    "AADSTS50053": _account_locked,
    "AADSTS50057": _account_locked,
    "AADSTS500011": _resource_missing,
    "AADSTS7000112": _app_disabled,
    "AADSTS700027": _certificate_not_registered,
    "AADSTS700024": _assertion_time,
    "AADSTS700021": _assertion_claims,
    "AADSTS700023": _assertion_claims,
}


def advice_for(code: str | None, names: CredentialNames) -> Advice:
    """The meaning and fix of an AADSTS code; a generic one (naming the code) when it is unknown."""
    known = _CATALOGUE.get(code or "")
    if known is not None:
        return known(names)
    if code is None:
        return Advice(
            "the identity platform refused the request without an error code",
            f"check {CLIENT_ID_PARAMETER}, {TENANT_ID_PARAMETER} and the credentials",
        )
    digits = code.removeprefix("AADSTS")
    return Advice(
        f"the identity platform refused the request with {code}",
        f"look {code} up at {ERROR_LOOKUP_URL}{digits} and correct the app registration or parameters",
    )


def needs_reacquire(code: str | None) -> bool:
    """True when a refresh token is no longer valid and a password sign-in may still work."""
    return advice_for(code, CredentialNames()).reacquire


def error_code(reply: Mapping[str, object]) -> str | None:
    """``AADSTS<n>`` from a reply's ``error_codes`` or its description; None when there is none."""
    codes = reply.get("error_codes")
    if isinstance(codes, list) and codes and isinstance(codes[0], int):
        return f"AADSTS{codes[0]}"
    match = _CODE.search(str(reply.get("error_description") or ""))
    return f"AADSTS{match.group(1)}" if match else None


def first_line(description: str) -> str:
    """Microsoft's description without its trace, correlation id and timestamp lines."""
    line = description.strip().splitlines()[0] if description.strip() else ""
    return _SUPPORT_LINE.sub("", line).strip()


def support_details(reply: Mapping[str, object]) -> dict[str, str]:
    """Trace id, correlation id and timestamp of a reply, for a support request."""
    details = {key: str(reply[key]) for key in _SUPPORT_KEYS if reply.get(key)}
    for line in str(reply.get("error_description") or "").splitlines()[1:]:
        label, _, value = line.partition(":")
        key = label.strip().lower().replace(" ", "_")
        if key in _SUPPORT_KEYS and value.strip():
            details.setdefault(key, value.strip())
    return details


class IdentityPlatformError(AuthenticationError):
    """An error reply of the identity platform; ``support`` holds its trace and correlation ids."""

    def __init__(
        self,
        message: str,
        *,
        code: str | None,
        description: str | None,
        fix: str,
        support: Mapping[str, str],
        reacquire: bool = False,
    ) -> None:
        super().__init__(message, code=code, description=description, fix=fix)
        self.support = dict(support)
        self.reacquire = reacquire


def error_from_reply(reply: Mapping[str, object], names: CredentialNames) -> IdentityPlatformError:
    """The project's error for an OAuth error reply (msal's result dict) of the identity platform."""
    code = error_code(reply)
    description = first_line(str(reply.get("error_description") or reply.get("error") or ""))
    advice = advice_for(code, names)
    subject = f" for {names.account}" if names.account else ""
    message = f"The identity platform refused the sign-in{subject}: {advice.problem}."
    if description:
        message += f" Microsoft says: {description}"
    return IdentityPlatformError(
        message,
        code=code,
        description=description or None,
        fix=advice.fix,
        support=support_details(reply),
        reacquire=advice.reacquire,
    )
