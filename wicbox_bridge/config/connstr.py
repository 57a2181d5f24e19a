"""WicGlobal.config's connection string -> where the WIC database is (pure: no I/O).

Three forms are accepted:

* ``sqlite:///PATH`` -- a SQLite file; a relative PATH is relative to ``base_dir`` (the directory of
  the configuration file), ``sqlite:////abs/path`` and ``sqlite:///C:\\path`` are absolute;
* an ODBC connection string (it has ``Driver=`` or ``DSN=``), used as given;
* a .NET SqlClient connection string (``Data Source=...;Initial Catalog=...``), what WIC itself
  uses, translated into an ODBC string for the best SQL Server ODBC driver installed.

The installed ODBC driver names are passed in (``pyodbc.drivers()``), so this module stays pure.
Nothing here ever puts the value of a keyword into an exception message, a ``repr`` or a
description: a password that contains ``;`` splits into parts that look like keywords or values of
their own, and a misspelt ``Pasword=`` is not known to be a password. Errors name the keyword only;
:func:`secret_values` gives the parts to register for redaction before the string is parsed.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from wicbox_bridge.config.dbtarget import DatabaseTarget, OdbcDialect, OdbcTarget, SqliteTarget
from wicbox_bridge.errors import ConfigurationError
from wicbox_bridge.secret import MASK, Secret

ACCEPTED_FORMS = (
    "accepted forms: a .NET SqlClient string (Data Source=SERVER;Initial Catalog=DATABASE;"
    "Integrated Security=true or User ID=...;Password=...), an ODBC string with Driver={...} or DSN=..., "
    "or sqlite:///PATH"
)
INSTALL_DRIVER_FIX = (
    "install Microsoft's 'ODBC Driver 18 for SQL Server' (Microsoft Learn: 'Download ODBC Driver for "
    "SQL Server'; on Debian/Ubuntu the msodbcsql18 package from Microsoft's repository), "
    "or put an ODBC connection string with the Driver= of an installed driver into WicGlobal.config"
)

_SQLITE_PREFIX = re.compile(r"^sqlite:///", re.IGNORECASE)
_WINDOWS_ABSOLUTE = re.compile(r"^(?:[A-Za-z]:[\\/]|\\\\)")
_ODBC_DRIVER_VERSION = re.compile(r"^ODBC Driver (\d+(?:\.\d+)?) for SQL Server$", re.IGNORECASE)
_CLOSERS = {'"': '"', "'": "'", "{": "}"}
DOTNET_QUOTES = "\"'"
ODBC_QUOTES = "{"
_SECRET_KEY = re.compile(r"(?:pwd|password|secret)$", re.IGNORECASE)


# --------------------------------------------------------------------------- tokenizing


@dataclass(frozen=True)
class Pair:
    """One ``key=value`` of a connection string; ``key`` as written (trimmed), ``value`` unquoted."""

    key: str
    value: str

    @property
    def normalized_key(self) -> str:
        return normalize_keyword(self.key)

    @property
    def is_secret(self) -> bool:
        return bool(_SECRET_KEY.search(self.normalized_key))


def normalize_keyword(key: str) -> str:
    """Keywords compare case-insensitively and ignoring spaces and underscores (``User ID`` = ``userid``)."""
    return re.sub(r"[\s_]+", "", key).lower()


def _syntax_error(problem: str) -> ConfigurationError:
    return ConfigurationError(
        f"the connection string is not valid: {problem}",
        fix=f"correct it in WicGlobal.config; {ACCEPTED_FORMS}",
    )


def _read_key(text: str, start: int) -> tuple[str, int]:
    """The key starting at ``start`` up to its ``=``; ``==`` stands for a literal ``=`` (.NET)."""
    key: list[str] = []
    pos = start
    while pos < len(text):
        char = text[pos]
        if char == "=":
            if text.startswith("==", pos):
                key.append("=")
                pos += 2
                continue
            return "".join(key).strip(), pos + 1
        if char == ";":
            break
        key.append(char)
        pos += 1
    raise _syntax_error(
        f"the part starting at position {start + 1} has no '=' (is a ';' in a password not quoted? "
        "write the value in double quotes)"
    )


def _skip_to_separator(text: str, pos: int, key: str) -> int:
    while pos < len(text) and text[pos].isspace():
        pos += 1
    if pos < len(text) and text[pos] != ";":
        raise _syntax_error(f"unexpected text after the quoted value of {key!r} at position {pos + 1}")
    return pos + 1


def _read_quoted(text: str, start: int, key: str) -> tuple[str, int]:
    """A value enclosed in quotes/braces opening at ``start``; a doubled closer is a literal one."""
    opener = text[start]
    close = _CLOSERS[opener]
    value: list[str] = []
    pos = start + 1
    while pos < len(text):
        if text[pos] == close:
            if text.startswith(close * 2, pos):
                value.append(close)
                pos += 2
                continue
            return "".join(value), _skip_to_separator(text, pos + 1, key)
        value.append(text[pos])
        pos += 1
    raise _syntax_error(
        f"the value of {key!r} opens with {opener} at position {start + 1} but is never closed"
    )


def _read_plain(text: str, pos: int) -> tuple[str, int]:
    end = text.find(";", pos)
    end = len(text) if end < 0 else end
    return text[pos:end].strip(), end + 1


def tokenize(text: str, quotes: str) -> list[Pair]:
    """Split a connection string into pairs. ``quotes`` are the opening characters that quote a value.

    .NET quotes with ``"`` or ``'`` (doubled inside to escape); ODBC with ``{...}`` (``}}`` escapes).
    Empty parts (``;;``) are skipped. Values are returned unquoted; unquoted values are trimmed.
    """
    pairs: list[Pair] = []
    pos = 0
    while pos < len(text):
        if text[pos] == ";" or text[pos].isspace():
            pos += 1
            continue
        key, pos = _read_key(text, pos)
        if not key:
            raise _syntax_error(f"a value at position {pos} has no keyword before its '='")
        while pos < len(text) and text[pos] in " \t":
            pos += 1
        if pos < len(text) and text[pos] in quotes:
            value, pos = _read_quoted(text, pos, key)
        else:
            value, pos = _read_plain(text, pos)
        pairs.append(Pair(key, value))
    return pairs


def odbc_quote(value: str, *, braced: bool = False) -> str:
    """An ODBC attribute value: braced (``}`` doubled) when asked, when it holds ``;{}=`` or edge spaces,
    or is empty."""
    if not braced and value and not re.search(r"[;{}=]", value) and value == value.strip():
        return value
    return "{" + value.replace("}", "}}") + "}"


def odbc_join(pairs: Sequence[Pair], *, mask_secrets: bool) -> str:
    parts = []
    for pair in pairs:
        braced = pair.normalized_key == "driver"  # conventionally DRIVER={ODBC Driver 18 for SQL Server}
        value = MASK if mask_secrets and pair.is_secret else odbc_quote(pair.value, braced=braced)
        parts.append(f"{pair.key}={value}")
    return ";".join(parts)


# --------------------------------------------------------------------------- entry point


def parse_connection_string(
    text: str,
    *,
    odbc_drivers: Sequence[str],
    base_dir: Path | None = None,
    platform: str = "win32",
) -> DatabaseTarget:
    """Parse WicGlobal.config's connection string.

    ``odbc_drivers``: the installed ODBC driver names (``pyodbc.drivers()``). ``base_dir``: the
    configuration file's directory, for relative SQLite paths. ``platform`` (``sys.platform``)
    decides how ``(local)``/``.`` are written for the driver.
    """
    stripped = text.strip()
    if not stripped:
        raise _syntax_error("it is empty")
    if _SQLITE_PREFIX.match(stripped):
        return _sqlite_target(stripped[len("sqlite:///") :], base_dir)
    keys = _keywords(stripped)
    if "provider" in keys:
        raise ConfigurationError(
            "the connection string is an OLE DB string (it has Provider=); wicbox-bridge does not use OLE DB",
            fix="remove Provider=... to use it as a .NET SqlClient string, or write an ODBC string; "
            + ACCEPTED_FORMS,
        )
    if keys & {"driver", "dsn"}:
        return _odbc_target(stripped)
    return translate_sqlclient(
        tokenize(stripped, DOTNET_QUOTES), odbc_drivers=odbc_drivers, platform=platform
    )


def _keywords(text: str) -> set[str]:
    """The keywords, to tell the forms apart: read as .NET (quotes) first, else as ODBC (braces)."""
    try:
        pairs = tokenize(text, DOTNET_QUOTES)
    except ConfigurationError as dotnet_error:
        try:
            pairs = tokenize(text, ODBC_QUOTES)
        except ConfigurationError:
            raise dotnet_error from None
    return {pair.normalized_key for pair in pairs}


def _sqlite_target(raw_path: str, base_dir: Path | None) -> SqliteTarget:
    raw_path = raw_path.strip()
    if not raw_path or raw_path == ":memory:":
        raise _syntax_error("sqlite:/// must be followed by the path of the database file")
    path = Path(raw_path)
    if not (path.is_absolute() or _WINDOWS_ABSOLUTE.match(raw_path)) and base_dir is not None:
        path = base_dir / path
    return SqliteTarget(path=path)


def _odbc_target(text: str) -> OdbcTarget:
    pairs = tokenize(text, ODBC_QUOTES)
    driver = next((p.value for p in reversed(pairs) if p.normalized_key == "driver"), "")
    dialect = odbc_dialect(driver)
    encrypt = next((p.value.strip().lower() for p in reversed(pairs) if p.normalized_key == "encrypt"), "")
    return OdbcTarget(
        connection_string=Secret(text),
        dialect=dialect,
        description=odbc_join(pairs, mask_secrets=True),
        unencrypted=dialect == "mssql" and encrypt in _UNENCRYPTED,
    )


def odbc_dialect(driver: str) -> OdbcDialect:
    """Which SQL the driver speaks, from its name (or library path) as written after ``Driver=``."""
    name = driver.strip().strip("{}").lower()
    if "sql server" in name or "msodbcsql" in name or "freetds" in name or "tdsodbc" in name:
        return "mssql"
    if name.startswith("postgresql") or "psqlodbc" in name:
        return "postgresql"
    return "other"


# --------------------------------------------------------------------------- SQL Server driver choice


@dataclass(frozen=True)
class SqlServerDriver:
    """An installed SQL Server ODBC driver; ``version`` orders them (0 for the legacy ones)."""

    name: str
    version: float
    native_client: bool = False

    @property
    def is_modern(self) -> bool:
        """Microsoft's 'ODBC Driver N for SQL Server' (as opposed to Native Client / the old 'SQL Server')."""
        return self.version > 0

    def rank(self) -> tuple[int, float]:
        if self.is_modern:
            return (3, self.version)
        return (2, 0) if self.native_client else (1, 0)


def _as_sqlserver_driver(name: str) -> SqlServerDriver | None:
    match = _ODBC_DRIVER_VERSION.match(name.strip())
    if match:
        return SqlServerDriver(name.strip(), float(match.group(1)))
    lowered = name.strip().lower()
    if lowered.startswith("sql server native client"):
        return SqlServerDriver(name.strip(), 0, native_client=True)
    if lowered == "sql server":
        return SqlServerDriver(name.strip(), 0)
    return None


def best_sqlserver_driver(odbc_drivers: Sequence[str]) -> SqlServerDriver:
    """ODBC Driver 18 > 17 > 13.1 > 13 > 11 > SQL Server Native Client > the old 'SQL Server'."""
    candidates = [d for d in map(_as_sqlserver_driver, odbc_drivers) if d is not None]
    if not candidates:
        installed = ", ".join(odbc_drivers) if odbc_drivers else "none"
        raise ConfigurationError(
            "the connection string is a .NET SqlClient string, which needs a SQL Server ODBC driver, "
            f"and none is installed (installed ODBC drivers: {installed})",
            fix=INSTALL_DRIVER_FIX,
        )
    return max(candidates, key=lambda d: (d.rank(), d.name))


# --------------------------------------------------------------------------- .NET SqlClient -> ODBC


@dataclass(frozen=True)
class Translation:
    """What the SqlClient keywords say, collected before the ODBC string is written."""

    server: str = ""
    database: str = ""
    user: str = ""
    password: str = ""
    integrated: bool = False
    encrypt: str = "no"
    trust_server_certificate: str = "no"
    authentication: str = ""
    network_prefix: str = ""
    extra: tuple[Pair, ...] = ()


_SYNONYMS: dict[str, tuple[str, ...]] = {
    "server": ("datasource", "server", "address", "addr", "networkaddress"),
    "database": ("initialcatalog", "database"),
    "user": ("userid", "uid", "user"),
    "password": ("password", "pwd"),
    "integrated": ("integratedsecurity", "trustedconnection"),
    "encrypt": ("encrypt",),
    "trust": ("trustservercertificate",),
    "authentication": ("authentication",),
    "network": ("networklibrary", "network", "net"),
    "APP": ("applicationname", "app"),
    "MARS_Connection": ("multipleactiveresultsets",),
    "WSID": ("workstationid", "wsid"),
    "Language": ("currentlanguage", "language"),
    "Failover_Partner": ("failoverpartner",),
    "MultiSubnetFailover": ("multisubnetfailover",),
    "ApplicationIntent": ("applicationintent",),
    "AttachDBFileName": ("attachdbfilename", "extendedproperties", "initialfilename"),
    "ConnectRetryCount": ("connectretrycount",),
    "ConnectRetryInterval": ("connectretryinterval",),
    "ColumnEncryption": ("columnencryptionsetting",),
    "HostnameInCertificate": ("hostnameincertificate",),
    "ServerCertificate": ("servercertificate",),
    # Accepted and dropped: they tune ADO.NET's own pooling/transactions or have no ODBC keyword.
    # (The login timeout is a connection attribute in ODBC, not a keyword of the string.)
    "": (
        "persistsecurityinfo",
        "pooling",
        "maxpoolsize",
        "minpoolsize",
        "connectionlifetime",
        "loadbalancetimeout",
        "connectionreset",
        "enlist",
        "transactionbinding",
        "typesystemversion",
        "asynchronousprocessing",
        "async",
        "packetsize",
        "connecttimeout",
        "connectiontimeout",
        "timeout",
        "commandtimeout",
        "poolblockingperiod",
        "replication",
        "contextconnection",
    ),
}
_CANONICAL = {synonym: canonical for canonical, synonyms in _SYNONYMS.items() for synonym in synonyms}
_BOOLEAN_EXTRAS = {"MARS_Connection", "MultiSubnetFailover"}
# Keywords whose values are never secret (SqlClient's and the ODBC drivers' usual ones).
_KNOWN = set(_CANONICAL) - {"password", "pwd"} | {"driver", "dsn", "port", "sslmode", "uid", "encrypt"}
_UNENCRYPTED = {"no", "false", "optional"}
# SqlClient's keywords are words and spaces; anything else may be a password's piece after a ';'.
_LOOKS_LIKE_KEYWORD = re.compile(r"^[A-Za-z][A-Za-z ]{0,39}$")
_INTEGER_EXTRAS = {"ConnectRetryCount", "ConnectRetryInterval"}
_NETWORK_PREFIXES = {"dbmssocn": "tcp:", "dbnmpntw": "np:", "dbmslpcn": "lpc:"}
_AUTHENTICATION = {
    "sqlpassword": "SqlPassword",
    "activedirectorypassword": "ActiveDirectoryPassword",
    "activedirectoryintegrated": "ActiveDirectoryIntegrated",
    "activedirectoryinteractive": "ActiveDirectoryInteractive",
    "activedirectoryserviceprincipal": "ActiveDirectoryServicePrincipal",
    "activedirectorymanagedidentity": "ActiveDirectoryMsi",
    "activedirectorymsi": "ActiveDirectoryMsi",
}


def _keyword_error(pair: Pair, problem: str, fix: str) -> ConfigurationError:
    """An error about one keyword: its name only, never its value (which may be a password)."""
    return ConfigurationError(f"connection string keyword {pair.key!r}: its value {problem}", fix=fix)


def _sqlclient_bool(pair: Pair, *, sspi: bool = False) -> bool:
    value = pair.value.strip().lower()
    if value in ("true", "yes") or (sspi and value == "sspi"):
        return True
    if value in ("false", "no"):
        return False
    accepted = "true, false, yes, no" + (", sspi" if sspi else "")
    raise _keyword_error(pair, "is not a boolean", f"write one of: {accepted}")


def _encrypt_value(pair: Pair) -> str:
    value = pair.value.strip().lower()
    mapping = {"true": "yes", "yes": "yes", "mandatory": "yes", "false": "no", "no": "no", "optional": "no"}
    if value in mapping:
        return mapping[value]
    if value == "strict":
        return "strict"
    raise _keyword_error(
        pair, "is not a valid Encrypt value", "write one of: true, false, mandatory, optional, strict"
    )


def _authentication_value(pair: Pair) -> str:
    value = _AUTHENTICATION.get(normalize_keyword(pair.value))
    if value is None:
        raise _keyword_error(
            pair,
            "is an authentication method the SQL Server ODBC driver does not offer",
            "use Sql Password, Active Directory Password, Active Directory Integrated, Active Directory "
            "Interactive, Active Directory Service Principal or Active Directory Managed Identity",
        )
    return value


def _extra_value(canonical: str, pair: Pair) -> str:
    if canonical in _BOOLEAN_EXTRAS:
        return "yes" if _sqlclient_bool(pair) else "no"
    if canonical in _INTEGER_EXTRAS and not pair.value.strip().isdigit():
        raise _keyword_error(pair, "is not a whole number", "write a whole number of seconds/retries")
    if canonical == "ColumnEncryption":
        return "Enabled" if pair.value.strip().lower() == "enabled" else "Disabled"
    return pair.value


_HANDLERS: dict[str, Callable[[Translation, Pair], Translation]] = {
    "server": lambda t, p: replace(t, server=p.value.strip()),
    "database": lambda t, p: replace(t, database=p.value),
    "user": lambda t, p: replace(t, user=p.value),
    "password": lambda t, p: replace(t, password=p.value),
    "integrated": lambda t, p: replace(t, integrated=_sqlclient_bool(p, sspi=True)),
    "encrypt": lambda t, p: replace(t, encrypt=_encrypt_value(p)),
    "trust": lambda t, p: replace(t, trust_server_certificate="yes" if _sqlclient_bool(p) else "no"),
    "authentication": lambda t, p: replace(t, authentication=_authentication_value(p)),
    "network": lambda t, p: replace(t, network_prefix=_network_prefix(p)),
}


def _collect(pairs: Sequence[Pair]) -> Translation:
    found = Translation()
    extra: dict[str, Pair] = {}
    for pair in pairs:  # later keywords win, as in .NET
        canonical = _CANONICAL.get(pair.normalized_key)
        if canonical is None:
            named = f"keyword {pair.key!r}" if _LOOKS_LIKE_KEYWORD.match(pair.key) else "a keyword"
            raise ConfigurationError(
                f"connection string: {named} is not a .NET SqlClient keyword wicbox-bridge knows (its "
                "value is not shown: it may be a password, or part of one with an unquoted ';')",
                fix=f"remove it or correct its spelling; {ACCEPTED_FORMS}",
            )
        if canonical in _HANDLERS:
            found = _HANDLERS[canonical](found, pair)
        elif canonical:
            extra[canonical] = Pair(canonical, _extra_value(canonical, pair))
    return replace(found, extra=tuple(extra.values()))


def _network_prefix(pair: Pair) -> str:
    prefix = _NETWORK_PREFIXES.get(pair.value.strip().lower())
    if prefix is None:
        raise _keyword_error(
            pair, "is not a network library the ODBC driver supports", "use dbmssocn (TCP/IP)"
        )
    return prefix


def odbc_server(server: str, *, network_prefix: str = "", platform: str = "win32") -> str:
    """The Server= value for ODBC from a .NET Data Source.

    Forms: ``host``, ``host\\INSTANCE``, ``host,port``, each optionally with a protocol prefix
    (``tcp:``, ``np:``, ``lpc:``); ``(local)`` and ``.`` mean this machine. Windows drivers
    understand all of these as written; on other platforms the local aliases become ``localhost``
    (shared memory does not exist there) and ``lpc:`` is dropped.
    """
    match = re.match(r"^(?:(tcp|np|lpc|admin):)?(.*)$", server.strip(), re.IGNORECASE | re.DOTALL)
    assert match is not None  # the pattern matches every string
    prefix = f"{match.group(1).lower()}:" if match.group(1) else network_prefix
    address = match.group(2).strip()
    host, _, port = address.partition(",")
    name, _, instance = host.partition("\\")
    if not name.strip() or (port and not (port.strip().isdigit() and 0 < int(port) < 65536)):
        raise ConfigurationError(
            "connection string: the Data Source is not a valid SQL Server address",
            fix="write host, host\\INSTANCE, host,PORT or tcp:host,PORT (for example tcp:sql01,1433)",
        )
    if platform != "win32" and name.strip().lower() in ("(local)", ".", "(localdb)"):
        name = "localhost"
        prefix = "" if prefix == "lpc:" else prefix
    rebuilt = (
        name.strip() + (f"\\{instance.strip()}" if instance else "") + (f",{port.strip()}" if port else "")
    )
    return prefix + rebuilt


def _check_driver_features(found: Translation, driver: SqlServerDriver) -> None:
    if found.encrypt == "strict" and driver.version < 18:
        raise ConfigurationError(
            "connection string: Encrypt=strict needs ODBC Driver 18 for SQL Server; "
            f"the best installed is {driver.name!r}",
            fix=f"use Encrypt=true, or {INSTALL_DRIVER_FIX}",
        )
    if found.authentication and driver.version < 17:
        raise ConfigurationError(
            "connection string: Authentication= needs ODBC Driver 17 or 18 for SQL Server; "
            f"the best installed is {driver.name!r}",
            fix=INSTALL_DRIVER_FIX,
        )


def _credential_pairs(found: Translation) -> list[Pair]:
    if found.integrated:
        # As in .NET, Integrated Security wins: User ID and Password are then ignored.
        return [Pair("Trusted_Connection", "yes")]
    pairs = [Pair("Authentication", found.authentication)] if found.authentication else []
    if found.user:
        pairs.append(Pair("UID", found.user))
    if found.password:
        pairs.append(Pair("PWD", found.password))
    if not found.user and found.authentication not in ("ActiveDirectoryIntegrated", "ActiveDirectoryMsi"):
        raise ConfigurationError(
            "connection string: it names neither a login (User ID=) nor Integrated Security",
            fix="add Integrated Security=true to log in as the Windows account that runs wicbox, "
            "or User ID=...;Password=... for a SQL Server login",
        )
    return pairs


def translate_sqlclient(pairs: Sequence[Pair], *, odbc_drivers: Sequence[str], platform: str) -> OdbcTarget:
    """A .NET SqlClient connection string as an ODBC string for the best installed SQL Server driver."""
    found = _collect(pairs)
    if not found.server:
        raise ConfigurationError(
            "connection string: it names no server (Data Source= or Server=)",
            fix=f"add Data Source=SERVER; {ACCEPTED_FORMS}",
        )
    driver = best_sqlserver_driver(odbc_drivers)
    _check_driver_features(found, driver)
    odbc_pairs = [
        Pair("DRIVER", driver.name),
        Pair("SERVER", odbc_server(found.server, network_prefix=found.network_prefix, platform=platform)),
    ]
    if found.database:
        odbc_pairs.append(Pair("DATABASE", found.database))
    odbc_pairs += _credential_pairs(found)
    # System.Data.SqlClient (the provider WIC's .NET Framework programs use) defaults to Encrypt=false;
    # ODBC Driver 18 defaults to Encrypt=yes and would then refuse the self-signed certificate most
    # SQL Servers have. Both keywords are therefore always written, with the .NET meaning.
    odbc_pairs += [
        Pair("Encrypt", found.encrypt),
        Pair("TrustServerCertificate", found.trust_server_certificate),
    ]
    odbc_pairs += found.extra
    return OdbcTarget(
        connection_string=Secret(odbc_join(odbc_pairs, mask_secrets=False)),
        dialect="mssql",
        description=odbc_join(odbc_pairs, mask_secrets=True),
        unencrypted=found.encrypt == "no",
    )


def secret_values(text: str) -> list[str]:
    """What of a connection string may be secret, to register for redaction before it is parsed:
    the values of password keywords, of keywords wicbox-bridge does not know (a misspelt ``Pasword=``),
    and every part without ``=`` (the rest of a password with an unquoted ``;``)."""
    values = [part.strip() for part in text.split(";") if part.strip() and "=" not in part]
    for quotes in (DOTNET_QUOTES, ODBC_QUOTES):
        try:
            pairs = tokenize(text.strip(), quotes)
        except ConfigurationError:
            pairs = [Pair(*part.split("=", 1)) for part in text.split(";") if "=" in part]
        values += [p.value.strip() for p in pairs if p.is_secret or p.normalized_key not in _KNOWN]
        values += [p.key for p in pairs if not _LOOKS_LIKE_KEYWORD.match(p.key)]
    return [value for value in dict.fromkeys(values) if value]
