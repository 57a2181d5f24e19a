"""WicGlobal.config as KPD deploys it, for the test bed's WIC installations (tests and tools)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from xml.sax.saxutils import quoteattr


def write_config(
    path: Path,
    connection_string: str | None,
    *,
    max_mails: str | None = None,
    allowed_hosts: Sequence[str] = (),
    ca_bundle: Path | None = None,
) -> Path:
    """A WicGlobal.config as KPD deploys it, with the WIC connection string and the mail cap.

    ``allowed_hosts`` (WicBoxAllowedHosts) names the test bed's loopback servers, which the host
    parameters in the database may then point at; ``ca_bundle`` (WicBoxCaBundle) is its CA.
    """
    connection = (
        f'<connectionStrings><add name="WIC" connectionString={quoteattr(connection_string)} '
        'providerName="System.Data.SqlClient"/></connectionStrings>'
        if connection_string is not None
        else ""
    )
    keys = []
    if max_mails:
        keys.append(("WicBoxMaxMailsPerRun", max_mails))
    if allowed_hosts:
        keys.append(("WicBoxAllowedHosts", ";".join(allowed_hosts)))
    if ca_bundle is not None:
        keys.append(("WicBoxCaBundle", str(ca_bundle)))
    added = "".join(f"<add key={quoteattr(key)} value={quoteattr(value)}/>" for key, value in keys)
    settings = f"<appSettings>{added}</appSettings>" if added else ""
    path.write_text(
        '<?xml version="1.0" encoding="utf-8"?>\n'
        f"<configuration>\n{connection}\n{settings}\n</configuration>\n",
        encoding="utf-8",
    )
    return path
