"""WICMan parameters: names, typed values, and validation (pure: no I/O).

The raw values come from the ``WICMAN_PARAMETER`` table (names matched case-insensitively);
:func:`parse_parameters` turns them into one frozen :class:`Parameters` object, validated once,
or raises :class:`~wicbox_bridge.errors.ParameterError` naming the parameter and the fix.
"""

from __future__ import annotations

import datetime as dt
import difflib
import ipaddress
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import TypeVar
from urllib.parse import urlsplit

from wicbox_bridge.config.endpoints import (
    ALLOWED_HOSTS_KEY,
    AUTHORITY_HOSTS,
    CA_BUNDLE_KEY,
    GRAPH_HOSTS,
    HTTPS_PORTS,
    IMAP_HOSTS,
    IMAP_PORTS,
    SMTP_HOSTS,
    SMTP_PORTS,
    EndpointPolicy,
    Service,
)
from wicbox_bridge.config.wicglobal import LOG_DIRECTORY_KEY, MAX_MAILS_KEY
from wicbox_bridge.errors import ParameterError
from wicbox_bridge.secret import Secret


class AccountMode(str, Enum):
    SINGLE = "SINGLE"
    MULTIPLE = "MULTIPLE"
    MIX = "MIX"


class AuthMethod(str, Enum):
    OAUTH2 = "OAuth2"
    BASIC = "Basic"


_OAUTH2 = AuthMethod.OAUTH2.value


class MailProtocol(str, Enum):
    AUTO = "AUTO"
    IMAP = "IMAP"
    GRAPH = "GRAPH"


class AfterProcess(str, Enum):
    MOVE = "MOVE"
    DELETE = "DELETE"
    SEEN = "SEEN"


class PermissionType(str, Enum):
    DELEGATED = "delegated"
    APPLICATION = "application"


class SendProtocol(str, Enum):
    AUTO = "AUTO"  # SMTP; Microsoft Graph where the server answers 5.7.139 (SMTP AUTH disabled)
    SMTP = "SMTP"
    GRAPH = "GRAPH"


class TlsMode(str, Enum):
    IMPLICIT = "implicit"
    STARTTLS = "starttls"


@dataclass(frozen=True)
class Endpoint:
    """A mail server address with how TLS starts on it."""

    host: str
    port: int
    tls: TlsMode

    def __str__(self) -> str:
        return f"{self.host}:{self.port} ({self.tls.value} TLS)"


@dataclass(frozen=True)
class Parameters:
    """Every WICMan parameter wicbox-bridge reads, typed and validated."""

    scope: str
    client_id: str
    client_secret: Secret | None
    tenant_id: str
    username: str
    password: Secret | None
    account_mode: AccountMode
    method: AuthMethod
    protocol: MailProtocol
    authority_host: str
    imap: Endpoint
    smtp: Endpoint
    graph_url: str
    ca_bundle: Path | None
    source_folder: str
    after_process: AfterProcess
    processed_folder: str
    failed_folder: str
    workers: int
    client_secret_expires: dt.date | None = None  # when known (not a secret): `wicbox status` warns
    send_protocol: SendProtocol = SendProtocol.AUTO
    certificate: Path | None = None  # application permissions with a certificate (then no client secret)
    certificate_password: Secret | None = None

    @property
    def permission_type(self) -> PermissionType:
        """A certificate or a client secret means application permissions; neither means delegated."""
        if self.certificate or self.client_secret:
            return PermissionType.APPLICATION
        return PermissionType.DELEGATED


@dataclass(frozen=True)
class ParsedParameters:
    """The validated parameters and what an administrator should still look at (never secrets)."""

    parameters: Parameters
    warnings: tuple[str, ...] = ()


# --------------------------------------------------------------------------- names and registry

SCOPE = "WICBOX_MAILCLIENT_SCOPE"
CLIENT_ID = "WICBOX_MAILCLIENT_CLIENTID"
CLIENT_SECRET = "WICBOX_MAILCLIENT_CLIENTSECRET"  # noqa: S105 - a parameter name
CLIENT_SECRET_EXPIRES = "WICBOX_MAILCLIENT_CLIENTSECRET_EXPIRES"  # noqa: S105 - a date, not a secret
SEND_PROTOCOL = "WICBOX_MAILCLIENT_SENDPROTOCOL"
CERTIFICATE = "WICBOX_MAILCLIENT_CERTIFICATE"
CERTIFICATE_PASSWORD = "WICBOX_MAILCLIENT_CERTIFICATEPASSWORD"  # noqa: S105 - a parameter name
TENANT_ID = "WICBOX_MAILCLIENT_TENANTID"
USERNAME = "WICBOX_MAILCLIENT_USERNAME"
PASSWORD = "WICBOX_MAILCLIENT_PASSWORD"  # noqa: S105 - a parameter name
LEGACY_USERNAME = "WICBOXUsername"
LEGACY_PASSWORD = "WICBOXPassword"  # noqa: S105 - a parameter name
ACCOUNT_MODE = "WICBOXACCOUNTMODE"
LEGACY_ACCOUNT_MODE = "ACCOUNTMODE"
METHOD = "WICBOXMethod"
PROTOCOL = "WICBOX_MAILCLIENT_PROTOCOL"
AUTHORITY_HOST = "WICBOX_MAILCLIENT_AUTHORITYHOST"
IMAP_HOST = "WICBOX_MAILCLIENT_IMAPHOST"
IMAP_TLS = "WICBOX_MAILCLIENT_IMAPTLS"
SMTP_HOST = "WICBOX_MAILCLIENT_SMTPHOST"
SMTP_TLS = "WICBOX_MAILCLIENT_SMTPTLS"
GRAPH_URL = "WICBOX_MAILCLIENT_GRAPHURL"
CA_BUNDLE = "WICBOX_MAILCLIENT_CABUNDLE"
FOLDER = "WICBOX_MAILCLIENT_FOLDER"
AFTER_PROCESS = "WICBOX_MAILCLIENT_AFTERPROCESS"
PROCESSED_FOLDER = "WICBOX_MAILCLIENT_PROCESSEDFOLDER"
FAILED_FOLDER = "WICBOX_MAILCLIENT_FAILEDFOLDER"
WORKERS = "WICBOX_MAILCLIENT_WORKERS"

DEFAULT_AUTHORITY_HOST = "https://login.microsoftonline.com"
DEFAULT_IMAP_HOST = "outlook.office365.com:993"
DEFAULT_SMTP_HOST = "smtp.office365.com:587"
DEFAULT_GRAPH_URL = "https://graph.microsoft.com"
DEFAULT_FOLDER = "INBOX"
DEFAULT_PROCESSED_FOLDER = "WICBOX/Processed"
DEFAULT_FAILED_FOLDER = "WICBOX/Failed"
DEFAULT_WORKERS = 4
MAX_WORKERS = 16

AZURE_APP_PAGE = (
    "Azure portal > Microsoft Entra ID (Azure Active Directory) > App registrations > "
    "the WICBox app > Overview"
)
MIGRATE_HINT = "run `wicbox params migrate`"


@dataclass(frozen=True)
class ParameterSpec:
    """One WICMan parameter wicbox-bridge knows, for `wicbox params list/set` and the documentation."""

    name: str
    description: str
    default: str | None
    example: str
    secret: bool = False
    legacy: bool = False
    choices: tuple[str, ...] = ()


PARAMETER_SPECS: tuple[ParameterSpec, ...] = (
    ParameterSpec(
        SCOPE,
        "Permissions to request, e.g. the Graph permission from the vendor's guide",
        None,
        "Mail.ReadWrite",
    ),
    ParameterSpec(
        CLIENT_ID,
        "Application (client) ID of the WICBox app registration (a GUID)",
        None,
        "0b6e3f4c-1a2d-4e5f-8a9b-0c1d2e3f4a5b",
    ),
    ParameterSpec(
        CLIENT_SECRET,
        "Client secret value; set = application permissions, empty = delegated",
        None,
        "(the secret's Value column)",
        secret=True,
    ),
    ParameterSpec(
        CLIENT_SECRET_EXPIRES,
        "When the client secret expires, YYYY-MM-DD (the Expires column in Azure); "
        "`wicbox status` warns ahead",
        None,
        "2027-06-30",
    ),
    ParameterSpec(
        CERTIFICATE,
        "Certificate for application permissions: a .pem file with the private key and the certificate, "
        "or a .pfx file (`wicbox cert new` makes one); set = application permissions, the client secret "
        "is then ignored",
        None,
        r"C:\ProgramData\wicbox-bridge\wicbox-app.pem",
    ),
    ParameterSpec(
        CERTIFICATE_PASSWORD,
        "Password of the certificate file's private key, if it has one",
        None,
        "",
        secret=True,
    ),
    ParameterSpec(
        TENANT_ID,
        "Directory (tenant) ID (a GUID) or a verified domain of the tenant",
        None,
        "5f1c7d2e-8b4a-4c3e-9a6f-2d7e1b0c9a41",
    ),
    ParameterSpec(USERNAME, "The global WICBOX mailbox (e-mail address / UPN)", None, "wicbox@klant.example"),
    ParameterSpec(
        PASSWORD, "Password of the global mailbox (delegated permissions only)", None, "", secret=True
    ),
    ParameterSpec(
        ACCOUNT_MODE,
        "Which mailboxes are read: SINGLE, MULTIPLE or MIX",
        "SINGLE",
        "SINGLE",
        choices=("SINGLE", "MULTIPLE", "MIX"),
    ),
    ParameterSpec(
        METHOD,
        "How to log in to the mail server: OAuth2 or Basic",
        "OAuth2",
        "OAuth2",
        choices=("OAuth2", "Basic"),
    ),
    ParameterSpec(
        PROTOCOL, "How mail is read: AUTO, IMAP or GRAPH", "AUTO", "AUTO", choices=("AUTO", "IMAP", "GRAPH")
    ),
    ParameterSpec(
        SEND_PROTOCOL,
        "How WIC's mail is sent: AUTO (SMTP; Microsoft Graph sendMail where SMTP AUTH is disabled), SMTP "
        "or GRAPH (needs the Mail.Send permission)",
        "AUTO",
        "GRAPH",
        choices=("AUTO", "SMTP", "GRAPH"),
    ),
    ParameterSpec(
        AUTHORITY_HOST,
        "Identity platform address (https://, no path)",
        DEFAULT_AUTHORITY_HOST,
        DEFAULT_AUTHORITY_HOST,
    ),
    ParameterSpec(
        IMAP_HOST,
        "IMAP server as host[:port]; 993 implicit TLS, 143 STARTTLS",
        DEFAULT_IMAP_HOST,
        DEFAULT_IMAP_HOST,
    ),
    ParameterSpec(
        IMAP_TLS,
        "TLS mode for an IMAP port other than 993/143: IMPLICIT or STARTTLS",
        "IMPLICIT",
        "IMPLICIT",
        choices=("IMPLICIT", "STARTTLS"),
    ),
    ParameterSpec(
        SMTP_HOST,
        "SMTP submission server as host[:port]; 587/25 STARTTLS, 465 implicit TLS",
        DEFAULT_SMTP_HOST,
        DEFAULT_SMTP_HOST,
    ),
    ParameterSpec(
        SMTP_TLS,
        "TLS mode for an SMTP port other than 587/25/465: IMPLICIT or STARTTLS",
        "STARTTLS",
        "STARTTLS",
        choices=("IMPLICIT", "STARTTLS"),
    ),
    ParameterSpec(
        GRAPH_URL, "Microsoft Graph address (https://, no path)", DEFAULT_GRAPH_URL, DEFAULT_GRAPH_URL
    ),
    ParameterSpec(
        CA_BUNDLE,
        f"Ignored: a CA bundle is read only from WicGlobal.config (appSettings key {CA_BUNDLE_KEY})",
        None,
        "",
        legacy=True,
    ),
    ParameterSpec(FOLDER, "Folder mail is read from", DEFAULT_FOLDER, DEFAULT_FOLDER),
    ParameterSpec(
        AFTER_PROCESS,
        "What happens to a filed mail: MOVE, DELETE or SEEN",
        "MOVE",
        "MOVE",
        choices=("MOVE", "DELETE", "SEEN"),
    ),
    ParameterSpec(
        PROCESSED_FOLDER,
        "Folder filed mails are moved to (AFTERPROCESS=MOVE)",
        DEFAULT_PROCESSED_FOLDER,
        DEFAULT_PROCESSED_FOLDER,
    ),
    ParameterSpec(
        FAILED_FOLDER,
        "Folder mails that cannot be filed are moved to",
        DEFAULT_FAILED_FOLDER,
        DEFAULT_FAILED_FOLDER,
    ),
    ParameterSpec(WORKERS, f"Mailboxes read in parallel (1..{MAX_WORKERS})", str(DEFAULT_WORKERS), "4"),
    ParameterSpec(
        LEGACY_USERNAME,
        "Legacy global mailbox user; used when WICBOX_MAILCLIENT_USERNAME is empty",
        None,
        "wicbox@klant.example",
        legacy=True,
    ),
    ParameterSpec(
        LEGACY_PASSWORD,
        "Legacy global mailbox password; used when WICBOX_MAILCLIENT_PASSWORD is empty",
        None,
        "",
        secret=True,
        legacy=True,
    ),
    ParameterSpec(
        LEGACY_ACCOUNT_MODE,
        "Legacy account mode; replaced by WICBOXACCOUNTMODE",
        None,
        "SINGLE",
        legacy=True,
        choices=("SINGLE", "MULTIPLE", "MIX"),
    ),
)
_SPECS_BY_NAME = {spec.name.upper(): spec for spec in PARAMETER_SPECS}


def find_spec(name: str) -> ParameterSpec | None:
    """The registry entry of a parameter, matched case-insensitively."""
    return _SPECS_BY_NAME.get(name.strip().upper())


def is_secret_parameter(name: str) -> bool:
    """Whether a parameter's value must never be shown (passwords, client secrets)."""
    upper = name.strip().upper()
    spec = _SPECS_BY_NAME.get(upper)
    return (spec is not None and spec.secret) or upper.endswith(("PASSWORD", "SECRET"))


def canonical_name(name: str) -> str:
    """The registry's spelling of a known parameter, otherwise the name as given."""
    spec = find_spec(name)
    return spec.name if spec else name.strip()


def set_command(name: str, value: str = "<value>") -> str:
    """The command that sets a parameter, quoted for a fix line (a secret is always asked for)."""
    if is_secret_parameter(name):
        return f"`wicbox params set {name} --prompt`"
    return f"`wicbox params set {name} {value}`"


def clear_command(name: str) -> str:
    """The command that empties a parameter (its row stays, as WICMan keeps it)."""
    return f"`wicbox params set {name} --clear`"


def unset_command(name: str) -> str:
    """The command that removes a parameter's row."""
    return f"`wicbox params unset {name}`"


def closest(value: str, candidates: Iterable[str], cutoff: float = 0.6) -> str | None:
    """The candidate ``value`` most probably meant (case does not matter), or ``None``."""
    spelled = {candidate.upper(): candidate for candidate in candidates}
    found = difflib.get_close_matches(value.strip().upper(), list(spelled), n=1, cutoff=cutoff)
    return spelled[found[0]] if found else None


_NAME_PREFIXES = ("WICBOX_MAILCLIENT_", "WICBOX_", "WICBOX")


def _distinctive(name: str) -> str:
    """A parameter's name without the prefix most names share (``WICBOX_MAILCLIENT_FOLDER``: FOLDER)."""
    upper = name.strip().upper()
    return next((upper.removeprefix(prefix) for prefix in _NAME_PREFIXES if upper.startswith(prefix)), upper)


def closest_parameter(name: str) -> str | None:
    """The known parameter an unknown name was probably meant to be: by the part after the shared
    prefix first (``WICBOX_MAILCLIENT_ACCOUNTMODE`` means WICBOXACCOUNTMODE, not
    WICBOX_MAILCLIENT_CABUNDLE, which only shares the prefix), then by the whole name."""
    names = [spec.name for spec in sorted(PARAMETER_SPECS, key=lambda spec: spec.legacy)]
    by_part: dict[str, str] = {}
    for known in names:  # a current name before the legacy one with the same part
        by_part.setdefault(_distinctive(known), known)
    best_part = closest(_distinctive(name), by_part, cutoff=0.8)
    return by_part[best_part.upper()] if best_part else closest(name, names)


# --------------------------------------------------------------------------- raw values


def normalize_raw(raw: Mapping[str, str | None]) -> dict[str, str | None]:
    """Upper-cased names -> stripped values (``None`` when empty). Two rows that differ only in the
    case of their names must agree, otherwise it is not clear which one is meant."""
    values: dict[str, str | None] = {}
    spelled: dict[str, str] = {}
    for name, value in raw.items():
        key = name.strip().upper()
        stripped = value.strip() if value is not None else ""
        cleaned = stripped or None
        if key in values and values[key] != cleaned:
            raise ParameterError(
                canonical_name(name),
                f"exists twice with different values ({spelled[key]!r} and {name.strip()!r}); "
                "it is not clear which one is meant",
                fix="delete one of the two rows in WICMan (names are compared without regard to case)",
            )
        values[key] = cleaned
        spelled[key] = name.strip()
    return values


def _value(values: Mapping[str, str | None], name: str) -> str | None:
    return values.get(name.upper())


# --------------------------------------------------------------------------- single values

_GUID = re.compile(r"^\{?([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})\}?$", re.IGNORECASE)
_DOMAIN = re.compile(
    r"^(?=.{1,253}$)([a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z][a-z0-9-]{0,62}$", re.IGNORECASE
)
_HOSTNAME = re.compile(
    r"^(?=.{1,253}$)[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*\.?$",
    re.IGNORECASE,
)
_MAILBOX = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_EnumT = TypeVar("_EnumT", bound=Enum)


def shown(value: str) -> str:
    """A non-secret value quoted for a message; one that may carry credentials (``user:pw@``) is not shown."""
    return "the value" if "@" in value else repr(value)


def as_guid(value: str) -> str | None:
    """The lower-case GUID in ``value`` (braces allowed), or ``None``."""
    match = _GUID.match(value.strip())
    return match.group(1).lower() if match else None


_CHOICE_KINDS = {
    ACCOUNT_MODE: "an account mode",
    LEGACY_ACCOUNT_MODE: "an account mode",
    METHOD: "a sign-in method",
    PROTOCOL: "a protocol for reading mail",
    SEND_PROTOCOL: "a protocol for sending mail",
    AFTER_PROCESS: "an action after filing",
    IMAP_TLS: "a TLS mode",
    SMTP_TLS: "a TLS mode",
}


def parse_choice(name: str, value: str, aliases: Mapping[str, _EnumT]) -> _EnumT:
    """An enumerated value: case, spaces, dots, dashes and underscores do not matter."""
    found = aliases.get(re.sub(r"[\s._-]", "", value.lower()))
    if found is None:
        choices = list(dict.fromkeys(str(member.value) for member in aliases.values()))
        accepted = ", ".join(choices)
        kind = _CHOICE_KINDS.get(name, "a valid choice")
        best = closest(value, choices)
        hint = f"; did you mean {best}?" if best else f" (one of: {accepted})"
        raise ParameterError(
            name,
            f"{shown(value.strip())} is not {kind}{hint}",
            fix=f"run {set_command(name, best or choices[0])} (one of: {accepted})",
        )
    return found


_ACCOUNT_MODES = {mode.value.lower(): mode for mode in AccountMode}
_METHODS = {
    **dict.fromkeys(
        ("oauth2", "oauth", "oauth20", "modern", "modernauth", "modernauthentication"), AuthMethod.OAUTH2
    ),
    **dict.fromkeys(("basic", "basicauth", "basicauthentication"), AuthMethod.BASIC),
}
_PROTOCOLS = {protocol.value.lower(): protocol for protocol in MailProtocol}
_SEND_PROTOCOLS = {protocol.value.lower(): protocol for protocol in SendProtocol}
_AFTER_PROCESS = {action.value.lower(): action for action in AfterProcess}
_TLS_MODES = {
    "implicit": TlsMode.IMPLICIT,
    "ssl": TlsMode.IMPLICIT,
    "tls": TlsMode.IMPLICIT,
    "starttls": TlsMode.STARTTLS,
}


def parse_workers(value: str) -> int:
    if not value.isdigit() or not 1 <= int(value) <= MAX_WORKERS:
        raise ParameterError(
            WORKERS,
            f"{value!r} is not a whole number from 1 to {MAX_WORKERS}",
            fix=f"run {set_command(WORKERS, str(DEFAULT_WORKERS))} (a number from 1 to {MAX_WORKERS}; "
            f"{DEFAULT_WORKERS} is the default)",
        )
    return int(value)


def parse_https_base(name: str, value: str) -> str:
    """An ``https://host[:port]`` address without path, query or credentials; normalized."""
    fix = (
        f"run {set_command(name, _default_of(name))} (https:// and a host name only), or "
        f"{clear_command(name)}"
    )
    parts = urlsplit(value.strip())
    if parts.scheme.lower() != "https" or not parts.hostname:
        raise ParameterError(name, f"{shown(value)} is not an https:// address", fix=fix)
    if parts.username or parts.password or parts.query or parts.fragment or parts.path not in ("", "/"):
        raise ParameterError(
            name, f"{shown(value)} must be https:// and a host only (no path, query or user)", fix=fix
        )
    try:
        port = parts.port
    except ValueError:
        raise ParameterError(name, f"{shown(value)} has an invalid port", fix=fix) from None
    host = parts.hostname.lower()
    host = f"[{host}]" if ":" in host else host
    return f"https://{host}" + (f":{port}" if port else "")


def _default_of(name: str) -> str:
    spec = find_spec(name)
    return spec.default or spec.example if spec else ""


_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
SECRETS_PAGE = (
    "Azure portal > Microsoft Entra ID > App registrations > the WICBox app > Certificates & secrets"
)


def parse_secret_expiry(value: str) -> dt.date:
    """The client secret's expiry date as Azure shows it, written YYYY-MM-DD."""
    fix = (
        f"copy the secret's Expires date from {SECRETS_PAGE} and run "
        f"{set_command(CLIENT_SECRET_EXPIRES, 'YYYY-MM-DD')} (for example 2027-06-30), "
        f"or {clear_command(CLIENT_SECRET_EXPIRES)}"
    )
    text = value.strip()
    try:
        if _ISO_DATE.match(text):
            return dt.date.fromisoformat(text)
    except ValueError:
        pass
    raise ParameterError(CLIENT_SECRET_EXPIRES, f"{text!r} is not a date written YYYY-MM-DD", fix=fix)


def parse_host_port(name: str, value: str, default_port: int) -> tuple[str, int]:
    """``host``, ``host:port``, ``[IPv6]`` or ``[IPv6]:port``; the host without brackets."""
    fix = (
        f"run {set_command(name, _default_of(name))} (host[:port]; an IPv6 address in brackets, "
        f"[2001:db8::1]:993), or {clear_command(name)} for the default"
    )
    text = value.strip()
    bracketed = re.fullmatch(r"\[([^\]]+)\](?::(\d*))?", text)
    if "://" in text:
        raise ParameterError(
            name, f"{shown(value)} must be host[:port] without a scheme such as imaps://", fix=fix
        )
    if bracketed:
        host, port_text = bracketed.group(1), bracketed.group(2)
        _require_ipv6(name, host, fix)
    elif text.count(":") > 1:
        raise ParameterError(name, f"{shown(value)}: an IPv6 address must be written in brackets", fix=fix)
    else:
        host, _, port_text = text.partition(":")
        port_text = port_text if ":" in text else None
        if not (_HOSTNAME.match(host) or _is_ipv4(host)):
            raise ParameterError(name, f"{shown(value)} is not a valid host name or address", fix=fix)
    port = default_port if port_text is None else _port(name, value, port_text, fix)
    return host.lower(), port


def _require_ipv6(name: str, host: str, fix: str) -> None:
    try:
        ipaddress.IPv6Address(host)
    except ValueError:
        raise ParameterError(name, f"[{host}] is not a valid IPv6 address", fix=fix) from None


def _is_ipv4(host: str) -> bool:
    try:
        ipaddress.IPv4Address(host)
    except ValueError:
        return False
    return True


def _port(name: str, value: str, port_text: str, fix: str) -> int:
    if not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
        raise ParameterError(name, f"{shown(value)} has an invalid port (1-65535)", fix=fix)
    return int(port_text)


@dataclass(frozen=True)
class EndpointRule:
    """How a mail server parameter is read: its default, the ports whose TLS mode is fixed, and the rest."""

    host_parameter: str
    tls_parameter: str
    default: str
    default_port: int
    fixed_ports: Mapping[int, TlsMode]
    other_ports: TlsMode


IMAP_RULE = EndpointRule(
    IMAP_HOST,
    IMAP_TLS,
    DEFAULT_IMAP_HOST,
    993,
    {993: TlsMode.IMPLICIT, 143: TlsMode.STARTTLS},
    TlsMode.IMPLICIT,
)
SMTP_RULE = EndpointRule(
    SMTP_HOST,
    SMTP_TLS,
    DEFAULT_SMTP_HOST,
    587,
    {587: TlsMode.STARTTLS, 25: TlsMode.STARTTLS, 465: TlsMode.IMPLICIT},
    TlsMode.STARTTLS,
)


def parse_endpoint(rule: EndpointRule, host_value: str | None, tls_value: str | None) -> Endpoint:
    host, port = parse_host_port(rule.host_parameter, host_value or rule.default, rule.default_port)
    explicit = parse_choice(rule.tls_parameter, tls_value, _TLS_MODES) if tls_value else None
    fixed = rule.fixed_ports.get(port)
    if fixed is not None and explicit is not None and explicit is not fixed:
        raise ParameterError(
            rule.tls_parameter,
            f"is {explicit.value} but port {port} of {rule.host_parameter} always uses {fixed.value} TLS",
            fix=f"run {clear_command(rule.tls_parameter)}, or give {rule.host_parameter} the port your "
            f"server uses: {set_command(rule.host_parameter, '<host>:<port>')}",
        )
    return Endpoint(host, port, fixed or explicit or rule.other_ports)


AUTHORITY_SERVICE = Service(AUTHORITY_HOST, AUTHORITY_HOSTS, HTTPS_PORTS)
IMAP_SERVICE = Service(IMAP_HOST, IMAP_HOSTS, IMAP_PORTS)
SMTP_SERVICE = Service(SMTP_HOST, SMTP_HOSTS, SMTP_PORTS)
GRAPH_SERVICE = Service(GRAPH_URL, GRAPH_HOSTS, HTTPS_PORTS)


def _refuse_host(service: Service, value: str, host: str, port: int | None, policy: EndpointPolicy) -> None:
    """Raise before any credential leaves the machine when ``host`` is not a server it may go to."""
    reason = policy.refusal(service, host, port)
    if reason is None:
        return
    raise ParameterError(
        service.parameter,
        f"{shown(value)} {reason}; a credential is never sent there",
        fix=f"run {clear_command(service.parameter)} to use {_default_of(service.parameter)}, or "
        f"{set_command(service.parameter, '<server>')} with Microsoft's server of your cloud; a server of "
        f"your own must be named on this machine, {policy.allow_where}",
    )


def checked_https_base(service: Service, value: str, policy: EndpointPolicy) -> str:
    """An https base address (see :func:`parse_https_base`) on a host the policy allows."""
    address = parse_https_base(service.parameter, value)
    parts = urlsplit(address)
    _refuse_host(service, value, parts.hostname or "", parts.port or 443, policy)
    return address


def checked_endpoint(
    rule: EndpointRule,
    service: Service,
    host_value: str | None,
    tls_value: str | None,
    policy: EndpointPolicy,
) -> Endpoint:
    """A mail server endpoint (see :func:`parse_endpoint`) on a host the policy allows."""
    endpoint = parse_endpoint(rule, host_value, tls_value)
    _refuse_host(service, host_value or rule.default, endpoint.host, endpoint.port, policy)
    return endpoint


def folder_key(folder: str) -> str:
    """Exchange compares folder names without regard to case; a trailing separator does not count."""
    return folder.strip().rstrip("/").casefold()


# --------------------------------------------------------------------------- account mode and method


def resolve_method_and_mode(
    values: Mapping[str, str | None], warnings: list[str]
) -> tuple[AuthMethod, AccountMode]:
    """WICBOXMethod and the account mode, reading the guide's "WICBOXMETHOD op MULTIPLE" as a mode."""
    method_text = _value(values, METHOD)
    mode_in_method: AccountMode | None = None
    method = AuthMethod.OAUTH2
    if method_text and method_text.lower() in _ACCOUNT_MODES:
        mode_in_method = _ACCOUNT_MODES[method_text.lower()]
        warnings.append(
            f"{METHOD} is {mode_in_method.value}, an account mode: taken as "
            f"{ACCOUNT_MODE}={mode_in_method.value} "
            f"and the method as OAuth2. Fix: {set_command(ACCOUNT_MODE, mode_in_method.value)} and "
            f"{set_command(METHOD, _OAUTH2)}."
        )
    elif method_text:
        method = parse_choice(METHOD, method_text, _METHODS)
    return method, _resolve_mode(values, mode_in_method, warnings)


def _resolve_mode(
    values: Mapping[str, str | None], mode_in_method: AccountMode | None, warnings: list[str]
) -> AccountMode:
    mode_text = _value(values, ACCOUNT_MODE)
    legacy_text = _value(values, LEGACY_ACCOUNT_MODE)
    if mode_text:
        mode = parse_choice(ACCOUNT_MODE, mode_text, _ACCOUNT_MODES)
        if mode_in_method is not None and mode_in_method is not mode:
            raise ParameterError(
                METHOD,
                f"holds the account mode {mode_in_method.value}, but {ACCOUNT_MODE} is {mode.value}",
                fix=f"run {set_command(METHOD, _OAUTH2)} (the account mode is kept in {ACCOUNT_MODE} only)",
            )
        if legacy_text and legacy_text.upper() != mode.value:
            warnings.append(
                f"{LEGACY_ACCOUNT_MODE} (legacy) differs from {ACCOUNT_MODE}; {ACCOUNT_MODE}="
                f"{mode.value} is used. Once {ACCOUNT_MODE} is right, remove the legacy one: "
                f"{unset_command(LEGACY_ACCOUNT_MODE)}."
            )
        return mode
    if mode_in_method is not None:
        return mode_in_method
    if legacy_text:
        mode = parse_choice(LEGACY_ACCOUNT_MODE, legacy_text, _ACCOUNT_MODES)
        warnings.append(
            f"{ACCOUNT_MODE} is not set: the legacy {LEGACY_ACCOUNT_MODE}={mode.value} is used; "
            f"{MIGRATE_HINT} to move it to {ACCOUNT_MODE} (where {ACCOUNT_MODE} exists empty: "
            f"`wicbox params set {ACCOUNT_MODE} {mode.value}`, then `wicbox params set "
            f"{LEGACY_ACCOUNT_MODE} --clear`)."
        )
        return mode
    warnings.append(
        f"neither {ACCOUNT_MODE} nor {LEGACY_ACCOUNT_MODE} is set: SINGLE is used; "
        f"run {set_command(ACCOUNT_MODE, 'SINGLE')} (or MULTIPLE or MIX)."
    )
    return AccountMode.SINGLE


# --------------------------------------------------------------------------- credentials


@dataclass(frozen=True)
class Credentials:
    client_id: str
    client_secret: Secret | None
    tenant_id: str
    username: str
    password: Secret | None
    certificate: Path | None = None
    certificate_password: Secret | None = None


def _with_fallback(
    values: Mapping[str, str | None], name: str, legacy: str, warnings: list[str]
) -> str | None:
    value = _value(values, name)
    if value is None and _value(values, legacy) is not None:
        warnings.append(
            f"{name} is empty: the legacy {legacy} is used instead; {MIGRATE_HINT} or "
            f"{set_command(name, '<' + ('password' if is_secret_parameter(name) else 'mailbox') + '>')}."
        )
        return _value(values, legacy)
    return value


def parse_client_id(value: str | None) -> str:
    where = (
        f"copy the 'Application (client) ID' from {AZURE_APP_PAGE} and run "
        f"{set_command(CLIENT_ID, '<application-id>')}"
    )
    if value is None:
        raise ParameterError(CLIENT_ID, "is required for OAuth2", fix=where)
    guid = as_guid(value)
    if guid is None:
        raise ParameterError(CLIENT_ID, f"{_guid_shown(value)} is not a GUID{_guid_hint(value)}", fix=where)
    return guid


def parse_tenant_id(value: str | None, *, application: bool) -> str:
    where = (
        f"copy the 'Directory (tenant) ID' from {AZURE_APP_PAGE} and run "
        f"{set_command(TENANT_ID, '<directory-id>')}"
    )
    if value is None:
        raise ParameterError(TENANT_ID, "is required for OAuth2", fix=where)
    lowered = value.lower()
    if lowered in ("common", "consumers"):
        raise ParameterError(
            TENANT_ID, f"{lowered!r} is not allowed: the mailboxes are work accounts of one tenant", fix=where
        )
    if lowered == "organizations" and application:
        raise ParameterError(
            TENANT_ID,
            "'organizations' cannot be used with application permissions "
            f"({CLIENT_SECRET} or {CERTIFICATE} is set): an app token is issued by one tenant",
            fix=where,
        )
    if lowered == "organizations" or as_guid(value) or _DOMAIN.match(value):
        return as_guid(value) or lowered
    if _MAILBOX.match(value) and _DOMAIN.match(domain := value.rsplit("@", 1)[1]):
        raise ParameterError(
            TENANT_ID,
            f"{value!r} is an e-mail address, not a tenant; did you mean {domain}?",
            fix=f"run {set_command(TENANT_ID, domain)}, or {where}",
        )
    raise ParameterError(
        TENANT_ID,
        f"{shown(value)} is neither a GUID nor a domain name such as contoso.onmicrosoft.com",
        fix=where,
    )


def _guid_shown(value: str) -> str:
    """A would-be GUID quoted only when it holds nothing but GUID characters: anything else may be a
    secret pasted into the wrong parameter, and is not shown."""
    if re.fullmatch(r"[0-9a-fA-F{}\s-]+", value.strip()):
        return repr(value.strip())
    return "the value (not shown: it has characters a GUID does not have)"


def _guid_hint(value: str) -> str:
    """Why a value is not a GUID, where it is a common slip (a space, a missing or extra digit)."""
    if re.search(r"\s", value.strip()):
        return " (it has spaces in it; a GUID is 8-4-4-4-12 hexadecimal digits without spaces)"
    return " (8-4-4-4-12 hexadecimal digits)"


def parse_username(name: str, value: str | None) -> str:
    if value is None:
        return ""
    if not _MAILBOX.match(value):
        text = value.strip()
        if re.fullmatch(r"[^\\@\s]+\\[^\\@\s]+", text):
            user = text.split("\\")[1]
            problem = (
                f"{text!r} is a Windows logon name (DOMAIN\\user): give the mailbox's e-mail address, "
                f"such as {user}@contoso.com"
            )
            example = f"{user}@<domain>"
        elif "@" not in text and text and not re.search(r"\s", text):
            problem = (
                f"{text!r} has no domain: give the mailbox's full e-mail address, such as {text}@contoso.com"
            )
            example = f"{text}@<domain>"
        else:
            problem = f"{text!r} is not an e-mail address / user principal name"
            example = "<mailbox>"
        raise ParameterError(
            name, problem, fix=f"run {set_command(name, example)} (for example wicbox@contoso.com)"
        )
    return value


def _require(present: object, name: str, message: str, fix: str) -> None:
    if not present:
        raise ParameterError(name, message, fix=fix)


def _secret_warning(secret: str, warnings: list[str]) -> None:
    if as_guid(secret):
        warnings.append(
            f"{CLIENT_SECRET} looks like a secret ID (a GUID), not a secret value; Azure will refuse it. "
            "Fix: in Certificates & secrets, copy the secret's Value column, not the Secret ID "
            "(the value is shown only right after it is created; create a new secret if needed)."
        )


def _certificate(values: Mapping[str, str | None], warnings: list[str]) -> tuple[Path | None, Secret | None]:
    """The certificate's path (quotes from "Copy as path" removed) and its password; both when set."""
    path, password = _value(values, CERTIFICATE), _value(values, CERTIFICATE_PASSWORD)
    if path is None:
        if password is not None:
            warnings.append(
                f"{CERTIFICATE_PASSWORD} is set but {CERTIFICATE} is not: the password is ignored; "
                f"{set_command(CERTIFICATE, '<file>')}, or {clear_command(CERTIFICATE_PASSWORD)}."
            )
        return None, None
    if _value(values, CLIENT_SECRET) is not None:
        warnings.append(
            f"{CLIENT_SECRET} is set beside {CERTIFICATE}: the certificate is used and the client secret "
            f"is ignored; once `wicbox check` passes, clear it (`wicbox params set {CLIENT_SECRET} --clear`) "
            "and delete the secret in the app registration."
        )
    return parse_ca_bundle(path), Secret(password) if password is not None else None


def _oauth2_credentials(
    values: Mapping[str, str | None], mode: AccountMode, warnings: list[str]
) -> Credentials:
    certificate, certificate_password = _certificate(values, warnings)
    secret = None if certificate else _value(values, CLIENT_SECRET)
    client_id = parse_client_id(_value(values, CLIENT_ID))
    application = secret is not None or certificate is not None
    tenant_id = parse_tenant_id(_value(values, TENANT_ID), application=application)
    needs_mailbox = mode in (AccountMode.SINGLE, AccountMode.MIX)
    if application:
        credential = CERTIFICATE if certificate else CLIENT_SECRET
        if secret is not None:
            _secret_warning(secret, warnings)
        if _value(values, PASSWORD) is not None:
            raise ParameterError(
                PASSWORD,
                "application permissions do not use WICBOX_MAILCLIENT_PASSWORD",
                fix=f"run {clear_command(PASSWORD)}, or {clear_command(credential)} to use delegated "
                "permissions",
            )
        username = parse_username(USERNAME, _with_fallback(values, USERNAME, LEGACY_USERNAME, warnings))
        _require(
            username or not needs_mailbox,
            USERNAME,
            f"is required in {mode.value} mode: it names the mailbox to open with application permissions",
            fix=f"run {set_command(USERNAME, '<mailbox>')} with the global mailbox",
        )
        return Credentials(
            client_id,
            Secret(secret) if secret is not None else None,
            tenant_id,
            username,
            None,
            certificate,
            certificate_password,
        )
    username, password = _mailbox_login(
        values,
        mode,
        warnings,
        "delegated OAuth2 permissions",
        f"{set_command(CERTIFICATE, '<file>')} (or {set_command(CLIENT_SECRET)}) to use application "
        "permissions",
        password_required=False,  # without one, runs use the sign-in `wicbox signin` saved
    )
    return Credentials(client_id, None, tenant_id, username, password)


def _mailbox_login(
    values: Mapping[str, str | None],
    mode: AccountMode,
    warnings: list[str],
    what: str,
    alternative: str = "",
    *,
    password_required: bool = True,
) -> tuple[str, Secret | None]:
    username = parse_username(USERNAME, _with_fallback(values, USERNAME, LEGACY_USERNAME, warnings))
    password = _with_fallback(values, PASSWORD, LEGACY_PASSWORD, warnings)
    if mode in (AccountMode.SINGLE, AccountMode.MIX):
        fix_tail = f", or {alternative}" if alternative else ""
        _require(
            username,
            USERNAME,
            f"is required for {what} in {mode.value} mode",
            fix=f"run {set_command(USERNAME, '<mailbox>')} with the global mailbox{fix_tail}",
        )
        _require(
            password or not password_required,
            PASSWORD,
            f"is required for {what} in {mode.value} mode",
            fix=f"run {set_command(PASSWORD)} with the global mailbox's password{fix_tail}",
        )
    return username, Secret(password) if password is not None else None


def _basic_credentials(
    values: Mapping[str, str | None], mode: AccountMode, warnings: list[str]
) -> Credentials:
    if _value(values, CLIENT_SECRET) is not None:
        warnings.append(f"{CLIENT_SECRET} is set but {METHOD} is Basic: the client secret is ignored.")
    if _value(values, CERTIFICATE) is not None:
        warnings.append(f"{CERTIFICATE} is set but {METHOD} is Basic: the certificate is ignored.")
    username, password = _mailbox_login(values, mode, warnings, "Basic authentication")
    return Credentials(
        _value(values, CLIENT_ID) or "", None, _value(values, TENANT_ID) or "", username, password
    )


# --------------------------------------------------------------------------- folders and the rest


@dataclass(frozen=True)
class Folders:
    source: str
    after_process: AfterProcess
    processed: str
    failed: str


def parse_folders(values: Mapping[str, str | None]) -> Folders:
    after_text = _value(values, AFTER_PROCESS)
    folders = Folders(
        source=_value(values, FOLDER) or DEFAULT_FOLDER,
        after_process=parse_choice(AFTER_PROCESS, after_text, _AFTER_PROCESS)
        if after_text
        else AfterProcess.MOVE,
        processed=_value(values, PROCESSED_FOLDER) or DEFAULT_PROCESSED_FOLDER,
        failed=_value(values, FAILED_FOLDER) or DEFAULT_FAILED_FOLDER,
    )
    if folders.after_process is AfterProcess.MOVE and folder_key(folders.processed) == folder_key(
        folders.source
    ):
        raise ParameterError(
            PROCESSED_FOLDER,
            f"is the source folder ({FOLDER}); filed mails would be read again",
            fix=f"run {set_command(PROCESSED_FOLDER, DEFAULT_PROCESSED_FOLDER)} (or another folder)",
        )
    for other, label in ((folders.source, FOLDER), (folders.processed, PROCESSED_FOLDER)):
        if folder_key(folders.failed) == folder_key(other):
            raise ParameterError(
                FAILED_FOLDER,
                f"must differ from {label}",
                fix=f"run {set_command(FAILED_FOLDER, DEFAULT_FAILED_FOLDER)} (or another folder of its own)",
            )
    return folders


def _ca_bundle(values: Mapping[str, str | None], policy: EndpointPolicy, warnings: list[str]) -> Path | None:
    """The machine's CA bundle; one named in the database is ignored (its writer could vouch for anyone)."""
    if _value(values, CA_BUNDLE) is not None:
        warnings.append(
            f"{CA_BUNDLE} is set in the database and ignored: a CA bundle is trusted only from this "
            f'machine\'s WicGlobal.config. Fix: put <add key="{CA_BUNDLE_KEY}" value="PATH"/> under '
            f"<appSettings> in WicGlobal.config if it is needed, and clear {CA_BUNDLE} "
            f"(`wicbox params set {CA_BUNDLE} --clear`)."
        )
    return policy.ca_bundle


def parse_ca_bundle(value: str | None) -> Path | None:
    """A path as written; quotes pasted from Explorer ("Copy as path") are removed."""
    return Path(value.strip().strip('"')) if value else None


def _unknown_name_warnings(values: Mapping[str, str | None]) -> list[str]:
    """Names that look like a misspelt wicbox parameter (WICMan holds many parameters of WIC itself)."""
    known = list(_SPECS_BY_NAME)
    app_settings = _app_setting_keys()
    warnings = []
    for name in values:
        if name in app_settings:
            warnings.append(
                f"{name} is stored as a WICMan parameter but is read from WicGlobal.config only: it has no "
                f'effect. Fix: {unset_command(name)}; this goes in WicGlobal.config: <add key="'
                f'{app_settings[name]}" value="..." />.'
            )
        elif name.startswith("WICBOX") and name not in _SPECS_BY_NAME:
            close = difflib.get_close_matches(name, known, n=1, cutoff=0.85)
            if close:
                warnings.append(
                    f"{name} is not a parameter wicbox-bridge reads; did you mean "
                    f"{_SPECS_BY_NAME[close[0]].name}? Fix: {unset_command(name)}, then "
                    f"{set_command(_SPECS_BY_NAME[close[0]].name)}."
                )
    return warnings


def _secret_expiry(values: Mapping[str, str | None], warnings: list[str]) -> dt.date | None:
    """Only informational: a bad date is a warning, never a reason to stop reading mail."""
    text = _value(values, CLIENT_SECRET_EXPIRES)
    if text is None:
        return None
    try:
        return parse_secret_expiry(text)
    except ParameterError as error:
        warnings.append(f"{error.message}; it is ignored. Fix: {error.fix}")
        return None


def parse_parameters(raw: Mapping[str, str | None], policy: EndpointPolicy | None = None) -> ParsedParameters:
    """Validate the WICMan parameters (names case-insensitive, empty = not set) into :class:`Parameters`.

    ``policy``: the servers and the CA bundle this machine's WicGlobal.config allows; without one only
    Microsoft's servers and the system's CA certificates.
    """
    policy = policy or EndpointPolicy()
    values = normalize_raw(raw)
    warnings = _unknown_name_warnings(values)
    method, mode = resolve_method_and_mode(values, warnings)
    protocol_text = _value(values, PROTOCOL)
    protocol = parse_choice(PROTOCOL, protocol_text, _PROTOCOLS) if protocol_text else MailProtocol.AUTO
    if method is AuthMethod.BASIC:
        if protocol is MailProtocol.GRAPH:
            raise ParameterError(
                PROTOCOL,
                "GRAPH needs OAuth2; Microsoft Graph has no Basic authentication",
                fix=f"run {set_command(METHOD, _OAUTH2)}, or {set_command(PROTOCOL, 'IMAP')}",
            )
        credentials = _basic_credentials(values, mode, warnings)
    else:
        credentials = _oauth2_credentials(values, mode, warnings)
    folders = parse_folders(values)
    workers_text = _value(values, WORKERS)
    expires = _secret_expiry(values, warnings)
    if expires is not None and credentials.client_secret is None:
        if credentials.certificate is None:
            warnings.append(
                f"{CLIENT_SECRET_EXPIRES} is set but no client secret is used (password sign-in): "
                f"it is ignored; run {clear_command(CLIENT_SECRET_EXPIRES)}, or {set_command(CLIENT_SECRET)} "
                "for application permissions."
            )
        else:
            warnings.append(
                f"{CLIENT_SECRET_EXPIRES} is set but the certificate is used, not a client secret: it is "
                "ignored (the certificate's own expiry is watched); run "
                f"{clear_command(CLIENT_SECRET_EXPIRES)} with the client secret."
            )
        expires = None
    parameters = Parameters(
        scope=_value(values, SCOPE) or "",
        client_id=credentials.client_id,
        client_secret=credentials.client_secret,
        tenant_id=credentials.tenant_id,
        username=credentials.username,
        password=credentials.password,
        account_mode=mode,
        method=method,
        protocol=protocol,
        authority_host=checked_https_base(
            AUTHORITY_SERVICE, _value(values, AUTHORITY_HOST) or DEFAULT_AUTHORITY_HOST, policy
        ),
        imap=checked_endpoint(
            IMAP_RULE, IMAP_SERVICE, _value(values, IMAP_HOST), _value(values, IMAP_TLS), policy
        ),
        smtp=checked_endpoint(
            SMTP_RULE, SMTP_SERVICE, _value(values, SMTP_HOST), _value(values, SMTP_TLS), policy
        ),
        graph_url=checked_https_base(GRAPH_SERVICE, _value(values, GRAPH_URL) or DEFAULT_GRAPH_URL, policy),
        ca_bundle=_ca_bundle(values, policy, warnings),
        source_folder=folders.source,
        after_process=folders.after_process,
        processed_folder=folders.processed,
        failed_folder=folders.failed,
        workers=parse_workers(workers_text) if workers_text else DEFAULT_WORKERS,
        client_secret_expires=expires,
        send_protocol=_send_protocol(values, method),
        certificate=credentials.certificate,
        certificate_password=credentials.certificate_password,
    )
    return ParsedParameters(parameters, tuple(warnings))


def _send_protocol(values: Mapping[str, str | None], method: AuthMethod) -> SendProtocol:
    text = _value(values, SEND_PROTOCOL)
    chosen = parse_choice(SEND_PROTOCOL, text, _SEND_PROTOCOLS) if text else SendProtocol.AUTO
    if method is AuthMethod.BASIC and chosen is SendProtocol.GRAPH:
        raise ParameterError(
            SEND_PROTOCOL,
            "GRAPH needs OAuth2; Microsoft Graph has no Basic authentication",
            fix=f"run {set_command(METHOD, _OAUTH2)}, or {set_command(SEND_PROTOCOL, 'SMTP')}",
        )
    return chosen


# --------------------------------------------------------------------------- `wicbox params set`


def _validate_method(value: str) -> None:
    if value.lower() in _ACCOUNT_MODES:
        raise ParameterError(
            METHOD,
            f"{value.upper()} is an account mode, not a method",
            fix=f"run {set_command(ACCOUNT_MODE, value.upper())} and {set_command(METHOD, _OAUTH2)}",
        )
    parse_choice(METHOD, value, _METHODS)


def _validate_client_secret(value: str) -> None:
    """A secret's ID (a GUID) pasted instead of its value: Azure refuses it at every sign-in."""
    if as_guid(value):
        raise ParameterError(
            CLIENT_SECRET,
            "the value given is a GUID: that is the secret's ID, not the secret itself "
            "(Azure refuses it at every sign-in)",
            fix=f"in {SECRETS_PAGE}, copy the secret's Value column (not the Secret ID; the value is shown "
            f"only right after the secret is created, so create a new secret if needed) and run "
            f"{set_command(CLIENT_SECRET)}",
        )


def _folder_validator(name: str) -> Callable[[str], None]:
    """A folder name: levels separated by '/', none of them empty (as the mail servers require)."""

    def validate(value: str) -> None:
        if any(not part.strip() for part in value.split("/")):
            raise ParameterError(
                name,
                f"{value!r} is not a folder name (an empty level between '/')",
                fix=f"run {set_command(name, _default_of(name))} (levels separated by one '/', such as "
                "INBOX/WIC)",
            )

    return validate


def _validate_ca_bundle(value: str) -> None:
    raise ParameterError(
        CA_BUNDLE,
        "is ignored in the database: a CA bundle is trusted only from this machine's WicGlobal.config",
        fix=f'put <add key="{CA_BUNDLE_KEY}" value="PATH"/> under <appSettings> in WicGlobal.config',
    )


_VALUE_VALIDATORS: dict[str, Callable[[str], object]] = {
    ACCOUNT_MODE: lambda v: parse_choice(ACCOUNT_MODE, v, _ACCOUNT_MODES),
    LEGACY_ACCOUNT_MODE: lambda v: parse_choice(LEGACY_ACCOUNT_MODE, v, _ACCOUNT_MODES),
    METHOD: _validate_method,
    PROTOCOL: lambda v: parse_choice(PROTOCOL, v, _PROTOCOLS),
    SEND_PROTOCOL: lambda v: parse_choice(SEND_PROTOCOL, v, _SEND_PROTOCOLS),
    AFTER_PROCESS: lambda v: parse_choice(AFTER_PROCESS, v, _AFTER_PROCESS),
    IMAP_TLS: lambda v: parse_choice(IMAP_TLS, v, _TLS_MODES),
    SMTP_TLS: lambda v: parse_choice(SMTP_TLS, v, _TLS_MODES),
    WORKERS: parse_workers,
    CLIENT_SECRET_EXPIRES: parse_secret_expiry,
    CLIENT_ID: parse_client_id,
    TENANT_ID: lambda v: parse_tenant_id(v, application=False),
    USERNAME: lambda v: parse_username(USERNAME, v),
    LEGACY_USERNAME: lambda v: parse_username(LEGACY_USERNAME, v),
    CLIENT_SECRET: _validate_client_secret,
    CA_BUNDLE: _validate_ca_bundle,
    FOLDER: _folder_validator(FOLDER),
    PROCESSED_FOLDER: _folder_validator(PROCESSED_FOLDER),
    FAILED_FOLDER: _folder_validator(FAILED_FOLDER),
    AUTHORITY_HOST: lambda v: parse_https_base(AUTHORITY_HOST, v),
    GRAPH_URL: lambda v: parse_https_base(GRAPH_URL, v),
    IMAP_HOST: lambda v: parse_host_port(IMAP_HOST, v, IMAP_RULE.default_port),
    SMTP_HOST: lambda v: parse_host_port(SMTP_HOST, v, SMTP_RULE.default_port),
}


_POLICY_CHECKS: dict[str, Callable[[str, EndpointPolicy], object]] = {
    AUTHORITY_HOST: lambda v, policy: checked_https_base(AUTHORITY_SERVICE, v, policy),
    GRAPH_URL: lambda v, policy: checked_https_base(GRAPH_SERVICE, v, policy),
    IMAP_HOST: lambda v, policy: checked_endpoint(IMAP_RULE, IMAP_SERVICE, v, None, policy),
    SMTP_HOST: lambda v, policy: checked_endpoint(SMTP_RULE, SMTP_SERVICE, v, None, policy),
}


def validate_value(name: str, value: str | None, policy: EndpointPolicy | None = None) -> None:
    """Refuse a value `wicbox params set` must not store (a typo in an enumerated or numeric parameter,
    a malformed GUID, host or URL, a server this machine does not allow, a client secret's ID given as
    the secret). Empty values (clearing) and unknown names are not checked here."""
    spec = find_spec(name)
    if spec is None or value is None or not value.strip():
        return
    validator = _VALUE_VALIDATORS.get(spec.name)
    if validator is not None:
        validator(value.strip())
    policy_check = _POLICY_CHECKS.get(spec.name)
    if policy_check is not None and policy is not None:
        policy_check(value.strip(), policy)


def is_app_setting_key(name: str) -> bool:
    """Whether ``name`` is an appSettings key of WicGlobal.config (never a WICMan parameter)."""
    return name.strip().upper() in _app_setting_keys()


def _app_setting_keys() -> dict[str, str]:
    return {key.upper(): key for key in (MAX_MAILS_KEY, LOG_DIRECTORY_KEY, ALLOWED_HOSTS_KEY, CA_BUNDLE_KEY)}


def check_new_name(name: str, *, force: bool) -> str | None:
    """Refuse a name `wicbox params set` must not create: an appSettings key of WicGlobal.config
    (always), or a name wicbox-bridge does not read (unless ``force``). Returns a warning for a forced
    unknown name, otherwise ``None``."""
    key = _app_setting_keys().get(name.strip().upper())
    if key is not None:
        raise ParameterError(
            name.strip(),
            "is not a WICMan parameter: it is read from WicGlobal.config only (nothing was stored)",
            fix=f'this goes in WicGlobal.config: <add key="{key}" value="..." /> under <appSettings>',
        )
    if find_spec(name) is not None:
        return None
    best = closest_parameter(name)
    guess = f"; did you mean {best}?" if best else ""
    if not force:
        raise ParameterError(
            name.strip(),
            f"is not a parameter wicbox-bridge reads{guess} (nothing was stored)",
            fix=(f"run {set_command(best)}" if best else "check the name in `wicbox params list --all`")
            + "; to store a parameter of another program anyway, add --force",
        )
    return f"{name.strip()} is not a parameter wicbox-bridge reads{guess} (stored because of --force)"
