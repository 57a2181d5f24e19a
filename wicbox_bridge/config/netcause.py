"""What a server that could not be reached is told to the admin: one message and one fix per kind of
failure (DNS, refused, no answer, no route), the same for every service — the identity platform,
IMAP, Microsoft Graph, SMTP (``adapters/net_errors.py`` classifies the exceptions) and the database
(``store/odbc.py`` classifies the driver's message). Pure: no I/O."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from wicbox_bridge.errors import ConnectionFailure

DATABASE_SERVER = "the database server"


class NetFailure(str, Enum):
    """What went wrong on the way to a server, in the words of the message."""

    DNS = "DNS"
    REFUSED = "refused"
    TIMEOUT = "timeout"
    UNREACHABLE = "unreachable"
    CERTIFICATE = "certificate"
    TLS = "TLS"
    OTHER = "other"


@dataclass(frozen=True)
class Target:
    """The server a connection was for: which service, its host and port, and where it is set."""

    service: str
    host: str
    port: int
    host_parameter: str

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.service} {host}:{self.port}"


def unreached(kind: NetFailure, target: Target, detail: str, *, port_note: str = "") -> ConnectionFailure:
    """``target`` was not reached for ``kind`` (not a TLS failure); ``detail`` for the other kinds."""
    if kind is NetFailure.DNS:
        return ConnectionFailure(
            f"Cannot reach {target}: DNS cannot resolve the name {target.host}.",
            fix=f"check this computer's DNS (`nslookup {target.host}` must answer) or the proxy it must "
            f"go through; check {target.host_parameter} for a typo",
        )
    firewall = (
        f"open outgoing TCP port {target.port} to {target.host} in the firewall (this computer's and the "
        f"network's){port_note}; check {target.host_parameter}"
    )
    reason, why = _UNREACHED.get(kind, _FAILED)
    return ConnectionFailure(f"Cannot reach {target}: {reason.format(detail)}.", fix=f"{why}; {firewall}")


_UNREACHED = {
    NetFailure.REFUSED: ("the connection was refused", "a firewall refuses it or nothing listens there"),
    NetFailure.TIMEOUT: ("no answer in time", "a firewall drops it or the network is down"),
    NetFailure.UNREACHABLE: ("no route to it ({})", "check this computer's network connection and gateway"),
}
"""The message and the first half of the fix when the server was not reached; the firewall follows."""
_FAILED = ("the connection failed ({})", "check this computer's network and proxy")
