"""The SMTP relay as a service beside the run task: its options, their checks and its name (pure).

``wicbox relay`` (for WIC versions before 4.9.9, which still send with Basic authentication) runs in
the foreground until it is stopped; the scheduler keeps it running: a Windows task started at boot,
or a systemd service. The checks mirror the relay's own, so that a service that could never start
is refused at install time instead of failing at every boot.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from wicbox_bridge.config.listen import DEFAULT_LISTEN, is_loopback, parse_listen
from wicbox_bridge.errors import ConfigurationError
from wicbox_bridge.schedule.spec import check_path_text

DEFAULT_RELAY_LISTEN = DEFAULT_LISTEN
RELAY_SUFFIX = "-Relay"


def relay_task_name(name: str) -> str:
    """The relay's task name beside the run task's (systemd: ``wicbox-relay.service`` for WICBOX)."""
    return name + RELAY_SUFFIX


@dataclass(frozen=True)
class RelaySpec:
    """What the relay service starts: ``wicbox --config <file> relay`` with these options."""

    listen: str = DEFAULT_RELAY_LISTEN
    tls_cert: str | None = None
    tls_key: str | None = None
    allow_remote: bool = False

    def __post_init__(self) -> None:
        check_relay(self)

    @property
    def arguments(self) -> tuple[str, ...]:
        """The relay's part of the command line, after ``--config <file>``."""
        tls = (
            ("--tls-cert", self.tls_cert, "--tls-key", self.tls_key) if self.tls_cert and self.tls_key else ()
        )
        return ("relay", "--listen", self.listen, *tls, *(("--allow-remote",) if self.allow_remote else ()))


def check_relay(relay: RelaySpec) -> None:
    """The relay's own rules: a non-loopback address needs --allow-remote and both TLS files."""
    host, _ = parse_listen(relay.listen, "--relay-listen")
    if (relay.tls_cert is None) != (relay.tls_key is None):
        raise ConfigurationError(
            "--relay-tls-cert and --relay-tls-key go together: the relay needs the certificate and its key",
            fix="give both files, or neither (the relay then speaks without TLS, on a loopback address only)",
        )
    for path, what in ((relay.tls_cert, "--relay-tls-cert"), (relay.tls_key, "--relay-tls-key")):
        if path is not None:
            check_path_text(path, what)
    if is_loopback(host):
        if relay.allow_remote:
            raise ConfigurationError(
                f"--relay-allow-remote has no effect on the loopback address {host}",
                fix="leave --relay-allow-remote out, or give --relay-listen the address other "
                "computers reach",
            )
        return
    if not relay.allow_remote or relay.tls_cert is None:
        missing = [
            *([] if relay.allow_remote else ["--relay-allow-remote"]),
            *([] if relay.tls_cert else ["--relay-tls-cert FILE --relay-tls-key FILE"]),
        ]
        raise ConfigurationError(
            f"--relay-listen {relay.listen}: {host} is not a loopback address, and a relay that other "
            "computers reach passes their mail on with this server's credentials",
            fix=f"add {' and '.join(missing)} to let other computers in over TLS, or listen on "
            f"{DEFAULT_RELAY_LISTEN} (the default) when WIC runs on this server",
        )


def check_relay_files(relay: RelaySpec) -> None:
    """The TLS files exist here (install time; ``show`` may describe another computer's files)."""
    for path, what in ((relay.tls_cert, "--relay-tls-cert"), (relay.tls_key, "--relay-tls-key")):
        if path is not None and not Path(path).is_file():
            raise ConfigurationError(
                f"{what} {path}: no such file",
                fix="give the path of the PEM file on this server (the service reads it at every start)",
            )
