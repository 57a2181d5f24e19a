"""Network and TLS failures as :class:`ConnectionFailure`, worded the same for every protocol: the
server, the cause, and the parameters to check (the CA bundle, the host, the TLS mode)."""

from __future__ import annotations

import ssl

from wicbox_bridge.config.endpoints import CA_BUNDLE_KEY
from wicbox_bridge.config.params import Endpoint
from wicbox_bridge.errors import ConnectionFailure


def ca_bundle_fix(ca_bundle: object, name_check: str) -> str:
    """How to trust a TLS-inspecting proxy's CA, with the current setting, then ``name_check``."""
    setting = f"{CA_BUNDLE_KEY} is {ca_bundle}" if ca_bundle else f"{CA_BUNDLE_KEY} is not set"
    return (
        f"if a proxy or firewall inspects TLS, put its CA certificate (PEM) in a file and name it with "
        f"{CA_BUNDLE_KEY} under <appSettings> in WicGlobal.config ({setting}); {name_check}"
    )


def tls_failure(
    error: ssl.SSLError, where: str, ca_bundle: object, *, host_parameter: str, tls_fix: str
) -> ConnectionFailure:
    """TLS with ``where`` failed: an untrusted certificate, or a handshake that failed (``tls_fix``)."""
    if isinstance(error, ssl.SSLCertVerificationError):
        reason = error.verify_message or "certificate not trusted"
        return ConnectionFailure(
            f"TLS with {where} failed: the server's certificate could not be verified ({reason}).",
            fix=ca_bundle_fix(ca_bundle, f"check that {host_parameter} is the name on the certificate"),
        )
    return ConnectionFailure(f"TLS with {where} failed ({error.reason or 'handshake failed'}).", fix=tls_fix)


def cannot_connect(
    where: str,
    endpoint: Endpoint,
    reason: str,
    *,
    host_parameter: str,
    tls_parameter: str,
    port_note: str = "",
) -> ConnectionFailure:
    """``where`` could not be reached for ``reason``; ``port_note`` adds to the firewall hint."""
    return ConnectionFailure(
        f"Cannot connect to {where} ({endpoint.tls.value} TLS): {reason}.",
        fix=f"check {host_parameter} and {tls_parameter}, DNS and the firewall (outgoing TCP port "
        f"{endpoint.port}{port_note})",
    )
