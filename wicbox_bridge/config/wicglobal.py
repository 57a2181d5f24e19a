"""WicGlobal.config: where it is, and what wicbox-bridge reads from it.

The file is WIC's .NET configuration file. wicbox-bridge reads three things from it:

* the connection string named ``WIC`` (``<connectionStrings><add name="WIC" .../>``), the database;
* the appSettings key ``WicBoxMaxMailsPerRun``, the per-run cap on mails (default 100, at most 1000);
* the appSettings key ``WicBoxLogDirectory``, the folder of the log file (default: the
  configuration's state directory, see :mod:`wicbox_bridge.logs.logfile`); a relative path is taken
  relative to the folder of the configuration file;
* the appSettings keys ``WicBoxAllowedHosts`` and ``WicBoxCaBundle``: servers other than Microsoft's
  that the host parameters in the database may name, and the CA bundle to trust (see
  :mod:`wicbox_bridge.config.endpoints`).

A configuration file always names its database: one without the ``WIC`` connection string, or whose
connection strings are protected (``configProtectionProvider``, which only .NET on the machine that
encrypted them can read), is a configuration error, never a silent switch to the embedded database.

Everything else in the file belongs to WIC and is ignored. Names and keys are matched
case-insensitively, as .NET does for appSettings. The XML is read with expat (the parser under
``xml.etree``) so that element line numbers are known and DTDs/entity declarations can be refused:
a customer's configuration has no use for them, and they are how "billion laughs" and external
entity attacks work. ``configSource`` on either section is followed, as .NET does, but only to a file
inside the configuration file's folder (no ``..``, no absolute path, no link that leads out).
"""

from __future__ import annotations

import enum
import importlib
import re
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import NoReturn
from xml.parsers import expat

from wicbox_bridge.config.connstr import parse_connection_string, secret_values
from wicbox_bridge.config.dbtarget import DatabaseTarget, OdbcTarget, SqliteTarget
from wicbox_bridge.config.endpoints import (
    ALLOWED_HOSTS_KEY,
    CA_BUNDLE_KEY,
    EndpointPolicy,
    parse_allowed_hosts,
)
from wicbox_bridge.config.local_hosts import embedded_policy
from wicbox_bridge.config.paths import embedded_database_path, user_data_dir
from wicbox_bridge.errors import ConfigFileError, ConfigurationError

CONFIG_FILE_NAME = "WicGlobal.config"
CONFIG_ENV_VAR = "WICBOX_CONFIG"
CONNECTION_STRING_NAME = "WIC"
MAX_MAILS_KEY = "WicBoxMaxMailsPerRun"
LOG_DIRECTORY_KEY = "WicBoxLogDirectory"
DEFAULT_MAX_MAILS_PER_RUN = 100
MAX_MAILS_LIMIT = 1000
_MAX_FILE_BYTES = 16 * 1024 * 1024


@dataclass(frozen=True)
class GlobalConfig:
    """What WicGlobal.config says (``path`` is ``None`` when running on the embedded defaults)."""

    path: Path | None
    database: DatabaseTarget
    max_mails_per_run: int
    warnings: tuple[str, ...] = ()
    log_directory: Path | None = None
    endpoints: EndpointPolicy = field(default_factory=EndpointPolicy)


class ConfigSource(str, enum.Enum):
    """Where the configuration file was found; the value is what ``wicbox check`` shows."""

    OPTION = "--config"
    ENVIRONMENT = CONFIG_ENV_VAR
    WORKING_DIRECTORY = "working directory"
    EXECUTABLE_DIRECTORY = "next to the executable"
    EMBEDDED = "embedded defaults"

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class ConfigLocation:
    """The configuration file to use (``None``: none found, run on embedded defaults) and why."""

    path: Path | None
    source: ConfigSource

    def describe(self) -> str:
        if self.path is None:
            return f"no {CONFIG_FILE_NAME} found: embedded defaults"
        return f"{self.path} (from {self.source})"


# --------------------------------------------------------------------------- locating


def locate_config(
    explicit: Path | None, env: Mapping[str, str], cwd: Path, executable_dir: Path
) -> ConfigLocation:
    """--config, else $WICBOX_CONFIG, else WicGlobal.config in ``cwd``, else next to the executable."""
    if explicit is not None:
        return _named_location(explicit, cwd, ConfigSource.OPTION, "the --config option")
    from_env = env.get(CONFIG_ENV_VAR, "").strip()
    if from_env:
        return _named_location(
            Path(from_env), cwd, ConfigSource.ENVIRONMENT, f"the {CONFIG_ENV_VAR} variable"
        )
    for directory, source in (
        (cwd, ConfigSource.WORKING_DIRECTORY),
        (executable_dir, ConfigSource.EXECUTABLE_DIRECTORY),
    ):
        candidate = directory / CONFIG_FILE_NAME
        if candidate.is_file():
            return ConfigLocation(candidate, source)
    return ConfigLocation(None, ConfigSource.EMBEDDED)


def _named_location(path: Path, cwd: Path, source: ConfigSource, origin: str) -> ConfigLocation:
    path = (path if path.is_absolute() else cwd / path).resolve()  # w/../cfg is shown as cfg
    if path.is_dir():
        raise ConfigFileError(
            f"{origin} names a directory, not a configuration file",
            path=str(path),
            fix=f"name the file itself, e.g. {path / CONFIG_FILE_NAME}",
        )
    if not path.exists():
        raise ConfigFileError(
            f"the configuration file named by {origin} does not exist",
            path=str(path),
            fix=f"correct {source} to name an existing {CONFIG_FILE_NAME}, or leave it out to use the "
            f"{CONFIG_FILE_NAME} of the working directory (none: the embedded default)",
        )
    return ConfigLocation(path, source)


# --------------------------------------------------------------------------- XML


@dataclass
class XmlElement:
    """An element of the configuration file with the line it starts on (xml.etree does not keep lines)."""

    tag: str
    attributes: dict[str, str]
    line: int
    children: list[XmlElement] = field(default_factory=list)

    def attribute(self, name: str) -> str | None:
        """An attribute by name, case-insensitively."""
        lowered = name.lower()
        return next((v for k, v in self.attributes.items() if k.lower() == lowered), None)


class _RefusedMarkup(Exception):
    def __init__(self, what: str, line: int) -> None:
        super().__init__(what)
        self.what = what
        self.line = line


def _refusing_parser() -> tuple[expat.XMLParserType, list[XmlElement]]:
    parser = expat.ParserCreate()
    parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
    roots: list[XmlElement] = []
    stack: list[XmlElement] = []

    def start(tag: str, attributes: dict[str, str]) -> None:
        element = XmlElement(tag, attributes, parser.CurrentLineNumber)
        (stack[-1].children if stack else roots).append(element)
        stack.append(element)

    def end(_tag: str) -> None:
        stack.pop()

    def refuse(what: str) -> Callable[..., NoReturn]:
        def handler(*_args: object) -> NoReturn:
            raise _RefusedMarkup(what, parser.CurrentLineNumber)

        return handler

    parser.StartElementHandler = start
    parser.EndElementHandler = end
    parser.StartDoctypeDeclHandler = refuse("a document type declaration (<!DOCTYPE>)")
    parser.EntityDeclHandler = refuse("an entity declaration (<!ENTITY>)")
    parser.UnparsedEntityDeclHandler = refuse("an entity declaration (<!ENTITY>)")
    parser.ExternalEntityRefHandler = refuse("an external entity reference")
    return parser, roots


def parse_xml(data: bytes, path: Path) -> XmlElement:
    """The root element of ``data``; the encoding comes from the BOM / XML declaration as usual."""
    parser, roots = _refusing_parser()
    try:
        parser.Parse(data, True)
    except _RefusedMarkup as refused:
        raise ConfigFileError(
            f"the file contains {refused.what}; configuration files must not declare a DTD or entities",
            path=str(path),
            line=refused.line,
            fix="remove the <!DOCTYPE ...> block (WIC's configuration files have none)",
        ) from None
    except expat.ExpatError as exc:
        raise ConfigFileError(
            f"the file is not well-formed XML: {expat.ErrorString(exc.code)} (column {exc.offset + 1})",
            path=str(path),
            line=exc.lineno,
            fix="correct the XML (an editor with XML checking shows where), or restore a backup",
        ) from exc
    return roots[0]


def read_config_xml(path: Path) -> XmlElement:
    """Read and parse one configuration file; missing/unreadable files name the OS reason."""
    try:
        with path.open("rb") as handle:
            data = handle.read(_MAX_FILE_BYTES + 1)
    except OSError as exc:
        reason = exc.strerror or exc.__class__.__name__
        raise ConfigFileError(
            f"cannot read the configuration file: {reason}",
            path=str(path),
            fix="check that the file exists and that the account running wicbox may read it",
        ) from exc
    if len(data) > _MAX_FILE_BYTES:
        raise ConfigFileError(
            f"the file is larger than {_MAX_FILE_BYTES // (1024 * 1024)} MB: not a configuration file",
            path=str(path),
            fix=f"point --config or {CONFIG_ENV_VAR} at WIC's {CONFIG_FILE_NAME}",
        )
    return parse_xml(data, path)


# --------------------------------------------------------------------------- sections


@dataclass(frozen=True)
class Entry:
    """One ``<add>`` of a section: its value, the file and line it came from."""

    value: str
    path: Path
    line: int
    replaces_line: int | None = None


def _section(root: XmlElement, name: str, path: Path) -> tuple[XmlElement, Path] | None:
    """The section element, following ``configSource="file"`` (relative to the file, as .NET does)."""
    element = next((child for child in reversed(root.children) if child.tag == name), None)
    if element is None:
        return None
    source = element.attribute("configSource")
    if not source:
        return element, path
    target = _config_source(name, source, element, path)
    included = read_config_xml(target)
    if included.tag != name:
        raise ConfigFileError(
            f"the file named by configSource must have <{name}> as its root element, not <{included.tag}>",
            path=str(target),
            line=included.line,
            fix=f"wrap its content in <{name}>...</{name}>",
        )
    return included, target


def _config_source(name: str, source: str, element: XmlElement, path: Path) -> Path:
    """The file ``configSource`` names, which must stay inside the configuration file's folder."""
    parts = re.split(r"[\\/]", source)
    outside = (
        Path(source).is_absolute()
        or re.match(r"^[A-Za-z]:", source) is not None
        or source.startswith(("\\", "/"))
        or ".." in parts
    )
    folder = path.parent.resolve()
    target = path.parent / source
    if not outside:
        resolved = target.resolve()
        outside = resolved != folder and folder not in resolved.parents
    if outside:
        raise ConfigFileError(
            f"<{name} configSource=...> must name a file inside the configuration file's folder "
            "(no '..', no absolute path, no link that leads out of the folder)",
            path=str(path),
            line=element.line,
            fix=f"move the file next to WicGlobal.config and write its name only, such as {name}.config",
        )
    return target


def _refuse_protected(section: XmlElement, name: str, path: Path) -> None:
    """A section encrypted with ``configProtectionProvider`` cannot be read here: say so, never guess."""
    protected = section.attribute("configProtectionProvider") or any(
        child.tag == "EncryptedData" for child in section.children
    )
    if protected:
        raise ConfigFileError(
            f"<{name}> is protected (configProtectionProvider): it is encrypted for .NET on the machine "
            "that protected it, and wicbox-bridge cannot decrypt it",
            path=str(path),
            line=section.line,
            fix=f'decrypt the section (aspnet_regiis -pdf "{name}" on that machine) and keep '
            f"{CONFIG_FILE_NAME} readable only by the administrators and the account running wicbox",
        )


def _collection(
    section: XmlElement, path: Path, key_attribute: str, value_attribute: str
) -> dict[str, Entry]:
    """A .NET add/remove/clear collection, keys lower-cased; later ``<add>``s override earlier ones."""
    entries: dict[str, Entry] = {}
    for child in section.children:
        key = (child.attribute(key_attribute) or "").strip().lower()
        if child.tag == "clear":
            entries.clear()
        elif child.tag == "remove":
            entries.pop(key, None)
        elif child.tag == "add" and key:
            value = child.attribute(value_attribute) or ""
            previous = entries.get(key)
            entries[key] = Entry(value, path, child.line, previous.line if previous else None)
    return entries


def _entries(root: XmlElement, path: Path, section: str, key_attr: str, value_attr: str) -> dict[str, Entry]:
    found = _section(root, section, path)
    if found is None:
        return {}
    element, source_path = found
    _refuse_protected(element, section, source_path)
    return _collection(element, source_path, key_attr, value_attr)


# --------------------------------------------------------------------------- values


def max_mails_per_run(entry: Entry | None) -> tuple[int, tuple[str, ...]]:
    """The per-run cap: default 100; 1..1000; above 1000 clamped with a warning."""
    if entry is None:
        return DEFAULT_MAX_MAILS_PER_RUN, ()
    text = entry.value.strip()
    if not re.fullmatch(r"[+-]?\d{1,18}", text) or int(text) < 1:
        raise ConfigFileError(
            f"appSettings key {MAX_MAILS_KEY} is {text!r}; "
            f"it must be a whole number from 1 to {MAX_MAILS_LIMIT}",
            path=str(entry.path),
            line=entry.line,
            fix=f'write for example <add key="{MAX_MAILS_KEY}" value="{DEFAULT_MAX_MAILS_PER_RUN}"/>',
        )
    value = int(text)
    if value > MAX_MAILS_LIMIT:
        warning = (
            f"{entry.path}, line {entry.line}: {MAX_MAILS_KEY} is {value}, above the maximum of "
            f"{MAX_MAILS_LIMIT}; {MAX_MAILS_LIMIT} is used"
        )
        return MAX_MAILS_LIMIT, (warning,)
    return value, ()


def log_directory(entry: Entry | None) -> Path | None:
    """The log file's folder from ``WicBoxLogDirectory`` (``None``: the default); relative to the file."""
    if entry is None or not entry.value.strip():
        return None
    return entry.path.parent / entry.value.strip()


def endpoint_policy(hosts: Entry | None, ca_bundle: Entry | None) -> EndpointPolicy:
    """``WicBoxAllowedHosts`` and ``WicBoxCaBundle`` (relative to the file); a bad host entry is an error."""
    allowed: frozenset[str] = frozenset()
    if hosts is not None:
        allowed, bad = parse_allowed_hosts(hosts.value)
        if bad:
            raise ConfigFileError(
                f"appSettings key {ALLOWED_HOSTS_KEY}: these entries are not a plain host name or IP "
                f"address: {', '.join(repr(entry) for entry in bad)}",
                path=str(hosts.path),
                line=hosts.line,
                fix="write host names or IP addresses separated by ';' (no scheme, port, user, wildcard "
                "or trailing dot), e.g. imap.example.org;10.0.0.5",
            )
    bundle = None
    if ca_bundle is not None and ca_bundle.value.strip():
        bundle = ca_bundle.path.parent / ca_bundle.value.strip().strip('"')
    return EndpointPolicy(allowed, bundle)


def installed_odbc_drivers() -> list[str]:
    """The ODBC drivers the driver manager knows (empty when ODBC itself is not available)."""
    try:
        pyodbc = importlib.import_module("pyodbc")  # loads libodbc: only when a file is read
        return [str(name) for name in pyodbc.drivers()]
    except (ImportError, OSError, RuntimeError):
        return []


def _database(entry: Entry, odbc_drivers: Sequence[str] | None, platform: str | None) -> DatabaseTarget:
    drivers = installed_odbc_drivers() if odbc_drivers is None else odbc_drivers
    try:
        return parse_connection_string(
            entry.value,
            odbc_drivers=drivers,
            base_dir=entry.path.parent,
            platform=sys.platform if platform is None else platform,
        )
    except ConfigFileError:
        raise
    except ConfigurationError as exc:
        raise ConfigFileError(
            f'connection string "{CONNECTION_STRING_NAME}": {exc.message}',
            path=str(entry.path),
            line=entry.line,
            fix=exc.fix,
        ) from exc


def unencrypted_warning(connection: Entry) -> str:
    """SQL Server without TLS: the login and every mail travel readable on the network."""
    return (
        f'{connection.path}, line {connection.line}: the connection string "{CONNECTION_STRING_NAME}" does '
        "not encrypt the connection to SQL Server (Encrypt=no, false or optional, or not set, which .NET "
        "reads as no): the SQL login and every filed mail cross the network readable. Fix: add "
        "Encrypt=yes;TrustServerCertificate=no and give SQL Server a certificate this machine trusts "
        "(TrustServerCertificate=yes encrypts but accepts any certificate: only as a stopgap)"
    )


def _refuse_duplicate(connection: Entry) -> None:
    """.NET refuses a second ``<add>`` of the same connection string name, and so does wicbox."""
    if connection.replaces_line is not None:
        raise ConfigFileError(
            f'the connection string "{CONNECTION_STRING_NAME}" is added twice (also on line '
            f"{connection.replaces_line}); it is not clear which database is meant",
            path=str(connection.path),
            line=connection.line,
            fix='keep one <add name="WIC" .../>, or put <remove name="WIC"/> before the second',
        )


def _embedded_target(env: Mapping[str, str] | None, platform: str | None) -> SqliteTarget:
    return SqliteTarget(embedded_database_path(env, platform), embedded=True)


# --------------------------------------------------------------------------- loading


def load_global_config(
    path: Path,
    *,
    env: Mapping[str, str] | None = None,
    platform: str | None = None,
    odbc_drivers: Sequence[str] | None = None,
    redact: Callable[[Iterable[str]], None] | None = None,
) -> GlobalConfig:
    """Read WicGlobal.config. ``odbc_drivers`` defaults to ``pyodbc.drivers()`` (tests pass a list).

    ``redact`` is given what of the connection string may be secret (its passwords, the values of
    keywords not known), before the string is parsed, so that no later log line can show them.
    """
    root = read_config_xml(path)
    if root.tag != "configuration":
        raise ConfigFileError(
            f"the root element is <{root.tag}>, not <configuration>: this is not a .NET configuration file",
            path=str(path),
            line=root.line,
            fix=f"point --config or {CONFIG_ENV_VAR} at WIC's {CONFIG_FILE_NAME}",
        )
    settings = _entries(root, path, "appSettings", "key", "value")
    cap, warnings = max_mails_per_run(settings.get(MAX_MAILS_KEY.lower()))
    connection = _entries(root, path, "connectionStrings", "name", "connectionString").get(
        CONNECTION_STRING_NAME.lower()
    )
    if connection is None:
        raise ConfigFileError(
            f'has no connection string named "{CONNECTION_STRING_NAME}": the database to file into is not '
            "known (the embedded database is used only when there is no configuration file at all)",
            path=str(path),
            fix=f'add <add name="{CONNECTION_STRING_NAME}" connectionString="..."/> under '
            f"<connectionStrings>, or point --config or {CONFIG_ENV_VAR} at the {CONFIG_FILE_NAME} "
            "that has it",
        )
    _refuse_duplicate(connection)
    if redact is not None:
        redact(secret_values(connection.value))
    database = _database(connection, odbc_drivers, platform)
    if isinstance(database, OdbcTarget) and database.unencrypted:
        warnings += (unencrypted_warning(connection),)
    endpoints = endpoint_policy(settings.get(ALLOWED_HOSTS_KEY.lower()), settings.get(CA_BUNDLE_KEY.lower()))
    return GlobalConfig(
        path=path,
        database=database,
        max_mails_per_run=cap,
        warnings=warnings,
        log_directory=log_directory(settings.get(LOG_DIRECTORY_KEY.lower())),
        endpoints=endpoints,
    )


def embedded_default_config(
    env: Mapping[str, str] | None = None, platform: str | None = None
) -> GlobalConfig:
    """No configuration file: the embedded SQLite database, the default cap, and the servers its
    owner-only data folder allows (:mod:`wicbox_bridge.config.local_hosts`)."""
    return GlobalConfig(
        path=None,
        database=_embedded_target(env, platform),
        max_mails_per_run=DEFAULT_MAX_MAILS_PER_RUN,
        endpoints=embedded_policy(user_data_dir(env, platform)),
    )
