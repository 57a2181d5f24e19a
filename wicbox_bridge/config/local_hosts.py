"""The embedded default's own allow-list: ``allowed-hosts.txt`` in its owner-only data folder.

Without WicGlobal.config the bridge runs on the embedded SQLite database in the account's data
folder (``%LOCALAPPDATA%\\wicbox-bridge``, or ``WICBOX_HOME``). There the servers beyond
Microsoft's may be named in the file ``allowed-hosts.txt`` next to that database, in the syntax of
``WicBoxAllowedHosts`` (host names or IP addresses, ``;`` or one per line, ``#`` starts a comment).

Why this keeps the promise of :mod:`wicbox_bridge.config.endpoints`: the file is read only for the
embedded default, never when a WicGlobal.config is in use (a shared database, or any SQLite file it
names); it is accepted only when it and its folder pass the same owner-only rules as the token
cache (:func:`~wicbox_bridge.config.footprint.footprint_findings`: no link, this account's, no access
for others). Whoever can write it can already write the embedded database and read the token cache
beside it, so it gives nobody a power they did not have. A row in a database would not: it travels
with the database (a copy, a migration to the shared server), so the list is never stored there.
"""

from __future__ import annotations

from pathlib import Path

from wicbox_bridge.config.endpoints import ALLOWED_HOSTS_KEY, EndpointPolicy, parse_allowed_hosts
from wicbox_bridge.config.footprint import FootprintItem, default_windows_security, footprint_findings
from wicbox_bridge.config.winacl import WindowsSecurity
from wicbox_bridge.errors import ConfigurationError

ALLOWED_HOSTS_FILE = "allowed-hosts.txt"


def embedded_allowed_hosts(
    data_dir: Path, *, windows: WindowsSecurity | None = None, uid: int | None = None
) -> frozenset[str]:
    """The hosts ``data_dir/allowed-hosts.txt`` allows; none when there is no such file.

    A file that others could change (or a link, or another account's), or an entry that is not a
    plain host, is a configuration error: a list that cannot be trusted is never half-used.
    """
    path = data_dir / ALLOWED_HOSTS_FILE
    if not path.exists() and not path.is_symlink():
        return frozenset()
    items = (FootprintItem("data folder", data_dir, True), FootprintItem("allow-list", path, False))
    findings = footprint_findings(items, windows=windows or default_windows_security(), uid=uid)
    if findings:
        raise ConfigurationError(
            f"the embedded default's allow-list is not used: the {findings[0].line()}.",
            fix=f"{findings[0].fix}; only this account may change {path}",
        )
    lines = (line.split("#", 1)[0] for line in path.read_text(encoding="utf-8").splitlines())
    hosts, bad = parse_allowed_hosts(";".join(lines))
    if bad:
        raise ConfigurationError(
            f"{path}: these entries are not a plain host name or IP address: {', '.join(bad)}.",
            fix=f"write exact host names or addresses as in {ALLOWED_HOSTS_KEY}: no scheme, port, path "
            "or wildcard",
        )
    return hosts


def embedded_policy(data_dir: Path) -> EndpointPolicy:
    """The embedded default's endpoint policy: its allow-list, and where to name a server in it."""
    where = f"in the embedded default's allow-list {data_dir / ALLOWED_HOSTS_FILE} (one host a line)"
    return EndpointPolicy(embedded_allowed_hosts(data_dir), allow_where=where)
