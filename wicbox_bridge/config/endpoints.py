"""Which servers the bridge may hand a credential to (pure: no I/O).

The host parameters (``WICBOX_MAILCLIENT_AUTHORITYHOST``, ``IMAPHOST``, ``SMTPHOST``, ``GRAPHURL``) live
in the WIC database, and whoever can write ``WICMAN_PARAMETER`` could point the bridge at a server of
their own and collect the password, the client secret or the tokens. So a host from the database is
accepted only when it is one of Microsoft's public or national-cloud endpoints (on its usual ports), or
when the machine's own WicGlobal.config names it in the appSettings key ``WicBoxAllowedHosts``: host
names or IP addresses separated by ``;``, compared exactly (names case-insensitively), no wildcards.
A host given in WicGlobal.config may be reached on any port.

The CA bundle is machine-local for the same reason: only ``WicBoxCaBundle`` in WicGlobal.config is
used; a bundle named in the database would let its writer vouch for their own server.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

ALLOWED_HOSTS_KEY = "WicBoxAllowedHosts"
CA_BUNDLE_KEY = "WicBoxCaBundle"

# Microsoft's documented endpoints: Microsoft Entra ID (global, US Government, 21Vianet), Exchange
# Online (worldwide, GCC High, DoD, 21Vianet) and Microsoft Graph (global, US Government L4 and L5,
# 21Vianet).
AUTHORITY_HOSTS = frozenset(
    {"login.microsoftonline.com", "login.microsoftonline.us", "login.chinacloudapi.cn"}
)
IMAP_HOSTS = frozenset(
    {"outlook.office365.com", "outlook.office365.us", "outlook-dod.office365.us", "partner.outlook.cn"}
)
SMTP_HOSTS = frozenset(
    {"smtp.office365.com", "smtp.office365.us", "smtp-dod.office365.us", "smtp.partner.outlook.cn"}
)
GRAPH_HOSTS = frozenset(
    {"graph.microsoft.com", "graph.microsoft.us", "dod-graph.microsoft.us", "microsoftgraph.chinacloudapi.cn"}
)
HTTPS_PORTS = frozenset({443})
IMAP_PORTS = frozenset({993, 143})
SMTP_PORTS = frozenset({587, 25})

_NAME = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*$")


@dataclass(frozen=True)
class Service:
    """One kind of server: the parameter that names it, Microsoft's hosts and their ports."""

    parameter: str
    hosts: frozenset[str]
    ports: frozenset[int]


@dataclass(frozen=True)
class EndpointPolicy:
    """What this machine's WicGlobal.config allows beyond Microsoft's hosts, and its CA bundle."""

    allowed_hosts: frozenset[str] = frozenset()
    ca_bundle: Path | None = None
    allow_where: str = (
        f'in WicGlobal.config: <add key="{ALLOWED_HOSTS_KEY}" value="host1;host2"/> under <appSettings>'
    )
    """Where this machine names a server of its own (the embedded default: its allowed-hosts.txt)."""

    def refusal(self, service: Service, host: str, port: int | None) -> str | None:
        """Why ``host`` (as written, without brackets) on ``port`` is refused; ``None``: allowed."""
        name = canonical_host(host)
        if name is None:
            return "is not a plain host name or IP address"
        if name in self.allowed_hosts:
            return None
        if name not in service.hosts:
            return f"names a server that is not one of Microsoft's ({', '.join(sorted(service.hosts))})"
        if port is not None and port not in service.ports:
            ports = ", ".join(str(p) for p in sorted(service.ports))
            return f"uses port {port}; Microsoft's server is reached on {ports}"
        return None


def canonical_host(host: str) -> str | None:
    """The host as compared: a lower-case ASCII name without trailing dot, or a normalised IP address.

    ``None`` for anything else: userinfo (``@``), a trailing dot, a port, a non-ASCII name (an IDN
    homograph), percent-escapes, spaces or control characters.
    """
    text = host.strip("[]") if host.startswith("[") and host.endswith("]") else host
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        pass
    if not text.isascii():
        return None
    lowered = text.lower()
    return lowered if _NAME.match(lowered) and len(lowered) <= 253 else None


def parse_allowed_hosts(value: str) -> tuple[frozenset[str], tuple[str, ...]]:
    """``WicBoxAllowedHosts``: the hosts it names and the entries that are not a host (to report)."""
    hosts: set[str] = set()
    bad: list[str] = []
    for entry in (part.strip() for part in value.split(";")):
        if not entry:
            continue
        name = canonical_host(entry)
        if name is None:
            bad.append(entry)
        else:
            hosts.add(name)
    return frozenset(hosts), tuple(bad)


def policy_from(hosts: Iterable[str], ca_bundle: Path | None = None) -> EndpointPolicy:
    """A policy from host names (tests and tools); each must be a plain host."""
    names = {canonical_host(host) for host in hosts}
    if None in names:
        raise ValueError("every allowed host must be a plain host name or IP address")
    return EndpointPolicy(frozenset(name for name in names if name), ca_bundle)


def microsoft_hosts() -> Mapping[str, frozenset[str]]:
    """Microsoft's hosts by kind, for the documentation."""
    return {"identity": AUTHORITY_HOSTS, "imap": IMAP_HOSTS, "smtp": SMTP_HOSTS, "graph": GRAPH_HOSTS}
