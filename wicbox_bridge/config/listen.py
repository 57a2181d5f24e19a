"""``HOST:PORT`` of the relay, and whether a host is this machine's loopback (pure).

One reading for `wicbox relay --listen` and `wicbox schedule install --relay-listen`, so the
service is refused at install time for exactly what the relay would refuse at start.
"""

from __future__ import annotations

import ipaddress
from typing import Final

from wicbox_bridge.errors import ConfigurationError

DEFAULT_LISTEN: Final = "127.0.0.1:2525"


def parse_listen(text: str, option: str = "--listen") -> tuple[str, int]:
    """``HOST:PORT`` (an IPv6 address in brackets: ``[::1]:2525``) as host and port."""
    host, colon, port = text.strip().rpartition(":")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if not colon or not host or not port.isdigit() or not 1 <= int(port) <= 65535:
        raise ConfigurationError(
            f"{option} {text}: not HOST:PORT with a port from 1 to 65535",
            fix=f"give an address and a port, such as {DEFAULT_LISTEN} (the default) or [::1]:2525",
        )
    return host, int(port)


def is_loopback(host: str) -> bool:
    """127.0.0.0/8, ::1 or ``localhost``; another host name may resolve to any address: not loopback."""
    if host.casefold() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
