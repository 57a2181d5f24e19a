"""WICMan parameters: names, typed values, and validation (pure: no I/O).

The raw values come from the ``WICMAN_PARAMETER`` table (names matched case-insensitively);
:func:`parse_parameters` turns them into one frozen :class:`Parameters` object, validated once,
or raises :class:`~wicbox_bridge.errors.ParameterError` naming the parameter and the fix.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from pathlib import Path

from wicbox_bridge.secret import Secret


class AccountMode(str, Enum):
    SINGLE = "SINGLE"
    MULTIPLE = "MULTIPLE"
    MIX = "MIX"


class AuthMethod(str, Enum):
    OAUTH2 = "OAuth2"
    BASIC = "Basic"


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

    @property
    def permission_type(self) -> PermissionType:
        """A client secret means application permissions; none means delegated."""
        return PermissionType.APPLICATION if self.client_secret else PermissionType.DELEGATED
