"""Network and TLS failures as :class:`ConnectionFailure`, worded the same for every service.

One network outage must read the same whichever command met it first: ``wicbox check`` asks the
identity platform for a token before it opens a mailbox, ``wicbox run`` connects to the IMAP server
first. So every adapter (identity platform, IMAP, Graph, SMTP) classifies what the network raised
here, by the same rules, into one :class:`NetFailure` kind, and the message names the kind, the
service, its host and port; the fix is one per kind:

- DNS: the name cannot be resolved: this computer's DNS, or the proxy it must go through;
- refused / no answer in time / no route: the firewall (or nothing listens on that port);
- TLS certificate not trusted: the CA bundle (WicBoxCaBundle) or a TLS-intercepting proxy.
"""

from __future__ import annotations

import errno
import socket
import ssl
from collections.abc import Iterator

from wicbox_bridge.config.endpoints import CA_BUNDLE_KEY
from wicbox_bridge.config.netcause import NetFailure, Target, unreached
from wicbox_bridge.config.params import Endpoint
from wicbox_bridge.errors import ConnectionFailure

__all__ = [
    "GRAPH",
    "IDENTITY_PLATFORM",
    "IMAP_SERVER",
    "SMTP_SERVER",
    "NetFailure",
    "Target",
    "ca_bundle_fix",
    "certificate_failure",
    "classify",
    "endpoint_target",
    "network_failure",
]

IDENTITY_PLATFORM = "the identity platform"
IMAP_SERVER = "the IMAP server"
GRAPH = "Microsoft Graph"
SMTP_SERVER = "the SMTP server"

_TIMEOUT_NAMES = frozenset(
    {"Timeout", "ConnectTimeout", "ReadTimeout", "ConnectTimeoutError", "ReadTimeoutError"}
)
_UNREACHABLE = frozenset({errno.ENETUNREACH, errno.EHOSTUNREACH, errno.ENETDOWN, errno.EHOSTDOWN})


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and every exception behind it: causes, contexts, and what requests/urllib3 wrap
    (``args``, ``reason``), each once."""
    seen: set[int] = set()
    waiting: list[BaseException] = [exc]
    while waiting:
        current = waiting.pop(0)
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        inner = [current.__cause__, current.__context__, getattr(current, "reason", None), *current.args]
        waiting.extend(item for item in inner if isinstance(item, BaseException))


def classify(exc: BaseException) -> tuple[NetFailure, BaseException]:
    """The kind of failure behind ``exc`` and the exception that tells it (TLS first: a handshake
    that timed out is still a TLS failure, and a name that does not resolve beats a timeout)."""
    chain = list(_chain(exc))
    for kind, matches in _RULES:
        for item in chain:
            if matches(item):
                return kind, item
    return NetFailure.OTHER, exc


def _is_timeout(item: BaseException) -> bool:
    return isinstance(item, TimeoutError) or any(cls.__name__ in _TIMEOUT_NAMES for cls in type(item).__mro__)


def _is_unreachable(item: BaseException) -> bool:
    return isinstance(item, OSError) and item.errno in _UNREACHABLE


_RULES = (
    (NetFailure.CERTIFICATE, lambda item: isinstance(item, ssl.SSLCertVerificationError)),
    (NetFailure.TLS, lambda item: isinstance(item, ssl.SSLError)),
    (NetFailure.DNS, lambda item: isinstance(item, socket.gaierror)),
    (NetFailure.REFUSED, lambda item: isinstance(item, ConnectionRefusedError)),
    (NetFailure.UNREACHABLE, _is_unreachable),
    (NetFailure.TIMEOUT, _is_timeout),
)


def ca_bundle_fix(ca_bundle: object, name_check: str) -> str:
    """How to trust a TLS-inspecting proxy's CA, with the current setting, then ``name_check``.

    Without the key, the environment's bundles apply (the only way for the embedded default, which
    has no WicGlobal.config): OpenSSL reads SSL_CERT_FILE (IMAP, SMTP), requests
    REQUESTS_CA_BUNDLE (sign-in, Graph). With the key set, it wins over both."""
    if ca_bundle:
        return (
            f"if a proxy or firewall inspects TLS, put its CA certificate (PEM) in the file that "
            f"{CA_BUNDLE_KEY} names in WicGlobal.config ({CA_BUNDLE_KEY} is {ca_bundle}); {name_check}"
        )
    return (
        f"if a proxy or firewall inspects TLS, put its CA certificate (PEM) in a file and name it with "
        f"{CA_BUNDLE_KEY} under <appSettings> in WicGlobal.config ({CA_BUNDLE_KEY} is not set), or, "
        f"without a WicGlobal.config (the embedded default), with the environment variables "
        f"SSL_CERT_FILE and REQUESTS_CA_BUNDLE of the account that runs wicbox; {name_check}"
    )


def network_failure(
    exc: BaseException, target: Target, ca_bundle: object, *, tls_fix: str, port_note: str = ""
) -> ConnectionFailure:
    """``exc`` (raised on the way to ``target``) as the one message and fix of its kind.

    ``tls_fix`` is the fix for a handshake that failed for another reason than the certificate
    (usually the TLS mode for that port); ``port_note`` adds to the firewall fix.
    """
    kind, cause = classify(exc)
    if kind is NetFailure.CERTIFICATE:
        return certificate_failure(target, _certificate_reason(cause), ca_bundle)
    if kind is NetFailure.TLS:
        reason = cause.reason if isinstance(cause, ssl.SSLError) and cause.reason else "handshake failed"
        return ConnectionFailure(f"TLS with {target} failed ({reason}).", fix=tls_fix)
    return unreached(kind, target, _os_reason(cause), port_note=port_note)


def certificate_failure(target: Target, reason: str, ca_bundle: object) -> ConnectionFailure:
    """The server's certificate is not trusted: a TLS-inspecting proxy, or the wrong server."""
    return ConnectionFailure(
        f"TLS with {target} failed: the server's certificate could not be verified ({reason}).",
        fix=ca_bundle_fix(ca_bundle, f"check that {target.host_parameter} is the name on the certificate"),
    )


def _certificate_reason(cause: BaseException) -> str:
    if isinstance(cause, ssl.SSLCertVerificationError) and cause.verify_message:
        return str(cause.verify_message)
    return "certificate not trusted"


def _os_reason(cause: BaseException) -> str:
    if isinstance(cause, OSError) and cause.strerror:
        return str(cause.strerror)
    return cause.__class__.__name__


def endpoint_target(service: str, endpoint: Endpoint, host_parameter: str) -> Target:
    return Target(service, endpoint.host, endpoint.port, host_parameter)
