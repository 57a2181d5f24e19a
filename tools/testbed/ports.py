"""Ports for the test bed's servers."""

from __future__ import annotations

import random
import socket
from contextlib import closing

# Listening ports come from below the kernel's ephemeral range (32768-60999 on Linux): a port taken
# from that range can be handed to an outgoing connection between the probe and the server's bind.
_LISTEN_PORTS = range(20000, 32000)
_taken: set[tuple[str, int]] = set()


def free_port(host: str) -> int:
    """A TCP port that is free on ``host`` right now, never handed out twice in this process."""
    rng = random.SystemRandom()
    for _ in range(200):
        port = rng.choice(_LISTEN_PORTS)
        if (host, port) in _taken:
            continue
        with closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as probe:
            try:
                probe.bind((host, port))
            except OSError:
                continue
        _taken.add((host, port))
        return port
    raise OSError(f"no free port on {host} in {_LISTEN_PORTS.start}-{_LISTEN_PORTS.stop - 1}")
