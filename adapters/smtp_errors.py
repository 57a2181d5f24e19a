"""Exchange Online's SMTP answers and network failures as the project's errors, each with its fix.

aiosmtplib reports a refusal as an exception with the reply code and text; this module turns it
into :class:`AuthenticationError`, :class:`SendError` (``permanent`` says whether retrying can help)
or :class:`ConnectionFailure`. The server's own words are kept in the message: Exchange never
echoes a password or a token.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path

from wicbox_bridge.adapters import net_errors
from wicbox_bridge.adapters.token_claims import claim_list
from wicbox_bridge.auth.scopes import Resource, where_to_add
from wicbox_bridge.config import params as names
from wicbox_bridge.config.params import Endpoint, PermissionType
from wicbox_bridge.errors import AuthenticationError, BridgeError, ConnectionFailure, SendError

HOST_PARAMETER = names.SMTP_HOST
TLS_PARAMETER = names.SMTP_TLS
METHOD_PARAMETER = names.METHOD
PASSWORD_PARAMETER = names.PASSWORD

_ENHANCED = re.compile(r"^\s*([245]\.\d{1,3}\.\d{1,3})\b")
QUOTA_MARK = "SubmissionQuotaExceeded"


class Stage(str, Enum):
    """The steps of one submission, in order, as `wicbox send-test` prints them."""

    TOKEN = "token"  # noqa: S105 - the name of a step
    CONNECT = "connect"
    TLS = "TLS"
    AUTH = "AUTH"
    MAIL = "MAIL"
    RCPT = "RCPT"
    DATA = "DATA"


class Login(str, Enum):
    DELEGATED = "delegated"
    APPLICATION = "application"
    BASIC = "basic"


@dataclass(frozen=True)
class AnswerContext:
    """What an error message needs: which server, who signed in, how, and as whom it sends."""

    endpoint: Endpoint
    login_user: str
    login: Login
    sender: str = ""
    claims: Mapping[str, object] = field(default_factory=dict)


@dataclass(frozen=True)
class Answer:
    """One reply of the server: ``421``, ``4.7.0`` and the text."""

    code: int
    text: str

    @property
    def enhanced(self) -> str:
        match = _ENHANCED.match(self.text)
        return match.group(1) if match else ""

    @property
    def transient(self) -> bool:
        return 400 <= self.code < 500

    def __str__(self) -> str:
        return f"{self.code} {self.text}".strip()


def _where(endpoint: Endpoint) -> str:
    return f"the SMTP server {endpoint.host}:{endpoint.port}"


def _server(endpoint: Endpoint) -> str:
    return f"The SMTP server {endpoint.host}:{endpoint.port}"


# --------------------------------------------------------------------------- answers


def answer_error(answer: Answer, stage: Stage, context: AnswerContext, recipient: str = "") -> BridgeError:
    """The error for a refusal at ``stage`` (Exchange's known answers first, then by reply class)."""
    for matches, translate in _KNOWN_ANSWERS:
        if matches(answer):
            return translate(answer, context)
    if stage is Stage.AUTH:
        return auth_refused(answer, context)
    if answer.transient:
        return SendError(
            f"{_server(context.endpoint)} answered {stage.value} with a temporary refusal: {answer}",
            permanent=False,
            fix="nothing to change: the mail is sent again later; if it repeats for hours, check the "
            "service health in the Microsoft 365 admin center",
        )
    if stage is Stage.RCPT:
        return SendError(
            f"{_server(context.endpoint)} refused the recipient {recipient}: {answer}",
            permanent=True,
            fix="check the recipient's address; the mail is not sent to anyone until it is corrected",
        )
    return SendError(
        f"{_server(context.endpoint)} refused {stage.value}: {answer}",
        permanent=True,
        fix="see the server's answer; the mail is not retried",
    )


def _auth_disabled(answer: Answer, context: AnswerContext) -> BridgeError:
    return AuthenticationError(
        f"{_server(context.endpoint)} refused the sign-in of {context.login_user}: SMTP AUTH is "
        f"disabled for the tenant or the mailbox ({answer}).",
        code="5.7.139",
        description=answer.text,
        fix="enable authenticated SMTP for the mailbox in Exchange Online PowerShell: "
        f"Set-CASMailbox -Identity {context.login_user} -SmtpClientAuthenticationDisabled $false "
        "(or for the whole tenant: Set-TransportConfig -SmtpClientAuthenticationDisabled $false; a "
        "mailbox setting overrides the tenant's); allow up to an hour to take effect",
    )


def _basic_not_supported(answer: Answer, context: AnswerContext) -> BridgeError:
    return AuthenticationError(
        f"{_server(context.endpoint)} does not accept Basic authentication for {context.login_user} "
        f"({answer}).",
        code="5.7.30",
        description=answer.text,
        fix=f"run `wicbox params set {METHOD_PARAMETER} OAuth2` and follow the Azure steps (SMTP.Send "
        "delegated or SMTP.SendAsApp application permission); Exchange Online no longer accepts passwords "
        "over SMTP",
    )


def _not_authenticated(answer: Answer, context: AnswerContext) -> BridgeError:
    return AuthenticationError(
        f"{_server(context.endpoint)} says the client is not authenticated ({answer}).",
        code="5.7.57",
        description=answer.text,
        fix=f"run `wicbox params set {HOST_PARAMETER} smtp.office365.com:587` (the submission server, not "
        "a relay or MX host) and make sure SMTP AUTH is enabled for the mailbox (Set-CASMailbox -Identity "
        f"{context.login_user} -SmtpClientAuthenticationDisabled $false)",
    )


def _send_as_denied(answer: Answer, context: AnswerContext) -> BridgeError:
    sender = context.sender or "<from address>"
    return SendError(
        f"{_server(context.endpoint)} refused to send as {sender}: {context.login_user} has no SendAs "
        f"permission for it ({answer}).",
        permanent=True,
        fix=f"send from {context.login_user} itself, or grant SendAs in Exchange Online PowerShell: "
        f"Add-RecipientPermission {sender} -Trustee {context.login_user} -AccessRights SendAs",
    )


def _quota_exceeded(answer: Answer, context: AnswerContext) -> BridgeError:
    return SendError(
        f"{_server(context.endpoint)} refused the mail: the mailbox {context.login_user} reached Exchange "
        f"Online's submission limit of 30 messages a minute ({answer}).",
        permanent=False,
        fix="nothing to change: wait a minute and send again (`wicbox send` keeps to 30 a minute per "
        "mailbox and retries later); if another program sends from the same mailbox, spread the load",
    )


_KNOWN_ANSWERS = (
    (lambda answer: answer.enhanced == "5.7.139", _auth_disabled),
    (lambda answer: answer.enhanced == "5.7.30", _basic_not_supported),
    (lambda answer: answer.enhanced == "5.7.57" or answer.code == 530, _not_authenticated),
    (lambda answer: answer.enhanced == "5.7.60", _send_as_denied),
    (lambda answer: QUOTA_MARK.lower() in answer.text.lower(), _quota_exceeded),
)


def _delegated_refusal(context: AnswerContext) -> tuple[list[str], str]:
    hints = []
    if "SMTP.Send" not in claim_list(context.claims, "scp"):
        hints.append("the token lacks the delegated permission SMTP.Send")
    upn = context.claims.get("upn") or context.claims.get("unique_name")
    if isinstance(upn, str) and upn.casefold() != context.login_user.casefold():
        hints.append(f"the token is for {upn}, not for {context.login_user}")
    fix = (
        "give the app the delegated permission SMTP.Send "
        f"({where_to_add(Resource.EXCHANGE, PermissionType.DELEGATED)}, then grant admin consent), "
        "sign in as the sending mailbox itself, and enable SMTP AUTH for it (Set-CASMailbox -Identity "
        f"{context.login_user} -SmtpClientAuthenticationDisabled $false)"
    )
    return hints, fix


def _application_refusal(context: AnswerContext) -> tuple[list[str], str]:
    hints = []
    if "SMTP.SendAsApp" not in claim_list(context.claims, "roles"):
        hints.append("the token lacks the application permission SMTP.SendAsApp")
    principal = context.claims.get("oid") or "<service principal object id>"
    fix = (
        "give the app the application permission SMTP.SendAsApp (Office 365 Exchange Online, admin "
        "consent granted), register its service principal in Exchange (New-ServicePrincipal) and give "
        f"it the mailbox (Add-MailboxPermission -Identity {context.login_user} -User {principal} "
        "-AccessRights FullAccess); enable SMTP AUTH for the mailbox (Set-CASMailbox -Identity "
        f"{context.login_user} -SmtpClientAuthenticationDisabled $false)"
    )
    return hints, fix


def auth_refused(answer: Answer, context: AnswerContext) -> AuthenticationError:
    """``535 5.7.3 Authentication unsuccessful``: the fixes per sign-in type."""
    if context.login is Login.BASIC:
        return AuthenticationError(
            f"{_server(context.endpoint)} refused the password sign-in (Basic) of {context.login_user} "
            f"({answer}).",
            code=answer.enhanced or str(answer.code),
            description=answer.text,
            fix=f"check {PASSWORD_PARAMETER} for {context.login_user}; Exchange Online no longer accepts "
            f"Basic authentication: run `wicbox params set {METHOD_PARAMETER} OAuth2`",
        )
    hints, fix = (
        _delegated_refusal(context) if context.login is Login.DELEGATED else _application_refusal(context)
    )
    found = f" ({'; '.join(hints)})" if hints else ""
    return AuthenticationError(
        f"{_server(context.endpoint)} refused the OAuth2 (XOAUTH2) sign-in of {context.login_user}"
        f"{found}: {answer}",
        code=answer.enhanced or str(answer.code),
        description=answer.text,
        fix=fix,
    )


def mechanism_missing(endpoint: Endpoint, mechanism: str, offered: list[str]) -> AuthenticationError:
    shown = ", ".join(offered) or "none"
    return AuthenticationError(
        f"{_server(endpoint)} does not offer the sign-in method {mechanism} (it offers: {shown}).",
        fix=f"check {HOST_PARAMETER} (Exchange Online: smtp.office365.com:587) and {METHOD_PARAMETER}",
    )


# --------------------------------------------------------------------------- network and TLS


def no_tls_offered(endpoint: Endpoint) -> ConnectionFailure:
    return ConnectionFailure(
        f"{_server(endpoint)} does not offer STARTTLS; refusing to sign in without TLS.",
        fix=f"run `wicbox params set {HOST_PARAMETER} smtp.office365.com:587` (STARTTLS), or name a port "
        f"465 server and run `wicbox params set {TLS_PARAMETER} IMPLICIT`; if STARTTLS should be there, "
        "something on the network strips it",
    )


def _target(endpoint: Endpoint) -> net_errors.Target:
    return net_errors.endpoint_target(net_errors.SMTP_SERVER, endpoint, HOST_PARAMETER)


_TLS_FIX = f"check {TLS_PARAMETER}: port 465 uses implicit TLS, ports 587 and 25 STARTTLS"


def tls_failure(exc: BaseException, endpoint: Endpoint, ca_bundle: Path | None) -> ConnectionFailure | None:
    """A TLS failure anywhere in ``exc``'s chain, translated; None when TLS was not the problem."""
    kind, _cause = net_errors.classify(exc)
    if kind not in (net_errors.NetFailure.CERTIFICATE, net_errors.NetFailure.TLS):
        return None
    return net_errors.network_failure(exc, _target(endpoint), ca_bundle, tls_fix=_TLS_FIX)


def connect_failure(exc: BaseException, endpoint: Endpoint) -> ConnectionFailure:
    """The server could not be reached (DNS, refused, no answer, no route), or it did not greet."""
    return net_errors.network_failure(
        exc, _target(endpoint), None, tls_fix=_TLS_FIX, port_note="; some networks block SMTP ports"
    )


def connection_lost(endpoint: Endpoint, stage: Stage) -> ConnectionFailure:
    return ConnectionFailure(
        f"The connection to {_where(endpoint)} was lost during {stage.value}.",
        fix="nothing to change if it happens once: the mail is sent again later; if it repeats, check "
        "the network path (proxy, firewall idle timeouts)",
    )
