"""How IMAP failures become the project's errors, and how Exchange Online's special answers are read.

imapclient raises imaplib's exceptions (``IMAP4.error`` for NO/BAD, ``IMAP4.abort`` when the server
ended the session), and the network raises ``OSError``/``ssl.SSLError``. Everything here is pure:
it turns those into :mod:`wicbox_bridge.errors` with the cause and the fix, and recognises
Exchange's throttling reply and its ``BYE Session invalidated - AccessTokenExpired``. Messages name
parameters and hosts, never a token or a password.
"""

from __future__ import annotations

import imaplib
import re
from collections.abc import Mapping

from wicbox_bridge.adapters.net_errors import IMAP_SERVER, endpoint_target, network_failure
from wicbox_bridge.adapters.token_claims import claim_list
from wicbox_bridge.auth.scopes import Resource, where_to_add
from wicbox_bridge.config import params as names
from wicbox_bridge.config.params import Endpoint, PermissionType
from wicbox_bridge.errors import AuthenticationError, ConnectionFailure, MailboxError

HOST_PARAMETER = names.IMAP_HOST
TLS_PARAMETER = names.IMAP_TLS
PASSWORD_PARAMETER = names.PASSWORD
METHOD_PARAMETER = names.METHOD

DEFAULT_BACKOFF_S = 1.0
_BACKOFF = re.compile(r"Suggested\s+Backoff\s+Time:\s*(\d+)\s*ms", re.IGNORECASE)
_THROTTLED = re.compile(r"\bthrottled\b", re.IGNORECASE)
_TOKEN_EXPIRED = "AccessTokenExpired"  # noqa: S105 - the name of Exchange's reason
_SERVER_TEXT = re.compile(r"b'(.*)'$|b\"(.*)\"$")


def server_text(exc: BaseException) -> str:
    """The server's words from an imaplib/imapclient error, without Python's b'...' wrapping."""
    text = str(exc).strip()
    match = _SERVER_TEXT.search(text)
    if match:
        prefix = text[: match.start()]
        text = prefix + (match.group(1) if match.group(1) is not None else match.group(2))
    return text.replace("\\r\\n", " ").strip()


def throttle_backoff_s(exc: BaseException) -> float | None:
    """Seconds Exchange asks to wait (``BAD/NO Request is throttled. Suggested Backoff Time: N ms``).

    ``None`` when ``exc`` is not a throttling answer.
    """
    if isinstance(exc, imaplib.IMAP4.abort) or not isinstance(exc, imaplib.IMAP4.error):
        return None
    text = str(exc)
    if not _THROTTLED.search(text):
        return None
    match = _BACKOFF.search(text)
    return int(match.group(1)) / 1000.0 if match else DEFAULT_BACKOFF_S


def is_token_expired(exc: BaseException, bye: str = "") -> bool:
    """Exchange ended the session because the access token expired (``* BYE ... AccessTokenExpired``).

    ``bye`` is the text of a BYE the client received: some commands report only the closed
    connection ("socket error: EOF") although the server said why just before.
    """
    if not isinstance(exc, imaplib.IMAP4.abort):
        return False
    return _TOKEN_EXPIRED.lower() in f"{exc} {bye}".lower()


def _where(endpoint: Endpoint) -> str:
    return f"the IMAP server {endpoint.host}:{endpoint.port}"


def connect_failure(exc: OSError, endpoint: Endpoint, ca_bundle: object) -> ConnectionFailure:
    """A failure to reach the server or to agree on TLS with it."""
    target = endpoint_target(IMAP_SERVER, endpoint, HOST_PARAMETER)
    tls_fix = f"check {TLS_PARAMETER}: port 993 uses implicit TLS, port 143 STARTTLS"
    return network_failure(exc, target, ca_bundle, tls_fix=tls_fix)


def session_lost(exc: BaseException, endpoint: Endpoint, doing: str) -> ConnectionFailure:
    """The connection broke or the server ended the session during ``doing``."""
    detail = server_text(exc) if isinstance(exc, imaplib.IMAP4.abort) else exc.__class__.__name__
    return ConnectionFailure(
        f"The connection to {_where(endpoint)} was lost while {doing} ({detail}).",
        fix="nothing to change if it happens once: the next run continues where this one stopped; "
        "if it repeats, check the network path (proxy, firewall idle timeouts)",
    )


def token_expired_twice(endpoint: Endpoint, mailbox: str) -> AuthenticationError:
    return AuthenticationError(
        f"{_where(endpoint)} ended the session for {mailbox} twice with AccessTokenExpired, even "
        "with a freshly issued token.",
        code="AccessTokenExpired",
        fix="check that this computer's clock is right (tokens are time-limited) and that the "
        "account's sessions were not revoked",
    )


def command_refused(exc: BaseException, endpoint: Endpoint, mailbox: str, doing: str) -> MailboxError:
    return MailboxError(
        f"{_where(endpoint)} refused {doing} in mailbox {mailbox}: {server_text(exc)}",
        fix="check the mailbox's folders and permissions in Outlook on the web; the next run retries",
    )


def still_throttled(endpoint: Endpoint, mailbox: str, waited_s: float) -> MailboxError:
    return MailboxError(
        f"{_where(endpoint)} kept throttling mailbox {mailbox} after {waited_s:.1f} s of waiting.",
        fix=f"nothing to change if it happens once (the next run continues); if it repeats, lower "
        f"{names.WORKERS} or run less often",
    )


def folder_missing(folder: str, mailbox: str, parameter: str) -> MailboxError:
    return MailboxError(
        f"The folder {folder!r} does not exist in mailbox {mailbox}.",
        fix=f"run {names.set_command(parameter, '<folder>')} with an existing folder (folder levels "
        "separated by '/'), e.g. INBOX",
    )


def validity_changed(folder: str, mailbox: str, expected: str, actual: str) -> MailboxError:
    return MailboxError(
        f"The folder {folder!r} of mailbox {mailbox} was recreated on the server (UIDVALIDITY "
        f"{expected} became {actual}); the mails listed before can no longer be identified.",
        fix="nothing to change: the next run lists the folder again",
    )


def no_tls_offered(endpoint: Endpoint) -> ConnectionFailure:
    return ConnectionFailure(
        f"{_where(endpoint)} does not offer STARTTLS; refusing to sign in without TLS.",
        fix=f"run `wicbox params set {HOST_PARAMETER} outlook.office365.com:993` (the server's TLS port) "
        f"and `wicbox params set {TLS_PARAMETER} IMPLICIT`; if STARTTLS should be there, something on the "
        "network strips it",
    )


# --------------------------------------------------------------------------- sign-in refusals

_EXCHANGE_IMAP_ENABLE = "Set-CASMailbox -Identity {mailbox} -ImapEnabled $true"


def _delegated_hints(claims: Mapping[str, object], mailbox: str) -> list[str]:
    hints = []
    if "IMAP.AccessAsUser.All" not in claim_list(claims, "scp"):
        hints.append("the token lacks the delegated permission IMAP.AccessAsUser.All")
    upn = claims.get("upn") or claims.get("unique_name")
    if isinstance(upn, str) and upn.casefold() != mailbox.casefold():
        hints.append(f"the token is for {upn}, not for the mailbox {mailbox}")
    return hints


def oauth_refused(
    exc: BaseException, endpoint: Endpoint, mailbox: str, claims: Mapping[str, object]
) -> AuthenticationError:
    """``NO AUTHENTICATE failed.``: the fixes for delegated and application permissions."""
    if "scp" in claims or "upn" in claims:
        hints = _delegated_hints(claims, mailbox)
        fix = (
            "give the app the delegated permission IMAP.AccessAsUser.All "
            f"({where_to_add(Resource.EXCHANGE, PermissionType.DELEGATED)}, then grant admin consent), "
            "sign in as the mailbox itself, and enable IMAP for the mailbox (Exchange Online "
            f"PowerShell: {_EXCHANGE_IMAP_ENABLE.format(mailbox=mailbox)})"
        )
    else:
        sp = claims.get("oid") or "<service principal object id>"
        hints = []
        if "IMAP.AccessAsApp" not in claim_list(claims, "roles"):
            hints.append("the token lacks the application permission IMAP.AccessAsApp")
        fix = (
            "give the app the application permission IMAP.AccessAsApp (Office 365 Exchange Online, "
            "admin consent granted), register its service principal in Exchange (New-ServicePrincipal) "
            f"and give it the mailbox (Add-MailboxPermission -Identity {mailbox} -User {sp} "
            "-AccessRights FullAccess), and enable IMAP for the mailbox "
            f"({_EXCHANGE_IMAP_ENABLE.format(mailbox=mailbox)})"
        )
    found = f" ({'; '.join(hints)})" if hints else ""
    return AuthenticationError(
        f"{_where(endpoint)} refused the OAuth2 (XOAUTH2) sign-in to mailbox {mailbox}{found}.",
        description=server_text(exc),
        fix=fix,
    )


def password_refused(exc: BaseException, endpoint: Endpoint, mailbox: str) -> AuthenticationError:
    return AuthenticationError(
        f"{_where(endpoint)} refused the password sign-in (Basic) to mailbox {mailbox}.",
        description=server_text(exc),
        fix=f"check {PASSWORD_PARAMETER} for {mailbox}; Exchange Online no longer accepts Basic "
        f"authentication: run `wicbox params set {METHOD_PARAMETER} OAuth2` there",
    )


def mechanism_missing(endpoint: Endpoint, mechanism: str) -> AuthenticationError:
    return AuthenticationError(
        f"{_where(endpoint)} does not offer the sign-in method {mechanism}.",
        fix=f"check {HOST_PARAMETER} (Exchange Online: outlook.office365.com) and {METHOD_PARAMETER}",
    )
