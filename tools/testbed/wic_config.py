"""WicGlobal.config as KPD deploys it, for the test bed's WIC installations (tests and tools)."""

from __future__ import annotations

from pathlib import Path
from xml.sax.saxutils import quoteattr


def write_config(path: Path, connection_string: str | None, *, max_mails: str | None = None) -> Path:
    """A WicGlobal.config as KPD deploys it, with the WIC connection string and the mail cap."""
    connection = (
        f'<connectionStrings><add name="WIC" connectionString={quoteattr(connection_string)} '
        'providerName="System.Data.SqlClient"/></connectionStrings>'
        if connection_string is not None
        else ""
    )
    settings = (
        f'<appSettings><add key="WicBoxMaxMailsPerRun" value="{max_mails}"/></appSettings>'
        if max_mails
        else ""
    )
    path.write_text(
        '<?xml version="1.0" encoding="utf-8"?>\n'
        f"<configuration>\n{connection}\n{settings}\n</configuration>\n",
        encoding="utf-8",
    )
    return path
