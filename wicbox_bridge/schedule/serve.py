"""`wicbox serve` as the scheduled entry (``install --serve``): a service instead of a timer (pure).

The entry keeps its name (the task "WICBOX", ``wicbox.service``) but starts ``wicbox serve`` at boot
and again when it fails, instead of ``wicbox run`` every few minutes: serve files mail within seconds
and works the mailboxes whose leases it holds, so a scheduled run of the same configuration beside
it would only share the same mailboxes. ``install --serve`` therefore replaces the run entry (with
``--force`` when one is installed), and ``install`` without ``--serve`` replaces serve the same way.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

from wicbox_bridge.schedule.relay import RelaySpec

SERVE_MARKER: Final = (
    "# wicbox serve: started at boot, restarted when it fails (wicbox schedule install --serve)"
)


@dataclass(frozen=True)
class ServeSpec:
    """What the entry starts: ``wicbox --config <file> serve`` with these options."""

    poll_seconds: float | None = None  # Graph: seconds between delta queries (None: serve's default)
    relay: RelaySpec | None = None  # the relay in the same process (`wicbox serve --relay`)

    @property
    def arguments(self) -> tuple[str, ...]:
        """Serve's part of the command line, after ``--config <file>``."""
        poll = ("--poll-seconds", f"{self.poll_seconds:g}") if self.poll_seconds is not None else ()
        return ("serve", *poll, *(relay_arguments(self.relay) if self.relay else ()))

    def about(self, what: str) -> str:
        return f"watches the mailboxes of {what} and files new mail within seconds (wicbox serve)"


def relay_arguments(relay: RelaySpec) -> tuple[str, ...]:
    """The relay's options as `wicbox serve --relay` takes them (``--relay-listen`` ...)."""
    tls = (
        ("--relay-tls-cert", relay.tls_cert, "--relay-tls-key", relay.tls_key)
        if relay.tls_cert and relay.tls_key
        else ()
    )
    remote = ("--relay-allow-remote",) if relay.allow_remote else ()
    return ("--relay", "--relay-listen", relay.listen, *tls, *remote)


def is_serve_command(command: str | None) -> bool:
    """Whether an installed entry's command line starts ``wicbox serve`` (quoted paths left out)."""
    if command is None:
        return False
    return "serve" in re.sub(r'"[^"]*"', " ", command).split()
