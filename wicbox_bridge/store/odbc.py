"""The ODBC store: SQL Server in production, PostgreSQL (psqlODBC) in the tests, through pyodbc.

The connection runs in autocommit mode; :meth:`OdbcStore.transaction` switches autocommit off for
the duration of the transaction. Driver messages are passed on (they name the cause) with every
password of the connection string masked.
"""

from __future__ import annotations

import re
from typing import Final

import pyodbc  # type: ignore[import-not-found,unused-ignore]

from wicbox_bridge.config.dbtarget import OdbcTarget
from wicbox_bridge.config.netcause import DATABASE_SERVER, NetFailure, Target, unreached
from wicbox_bridge.errors import DatabaseError, DataRejected, SchemaError
from wicbox_bridge.secret import mask_values
from wicbox_bridge.store.base import Dialect, SqlParams
from wicbox_bridge.store.dbapi import Cursor, DbApiStore

_SECRET_KEYS = frozenset({"PWD", "PASSWORD"})
_SERVER_KEYS = ("SERVER", "ADDRESS", "ADDR", "NETWORK ADDRESS", "HOST", "DATA SOURCE")
_DATABASE_KEYS = ("DATABASE", "INITIAL CATALOG")
_DBMS_DIALECTS: dict[str, Dialect] = {"microsoft sql server": "mssql", "postgresql": "postgresql"}
_UNDEFINED_TABLE_STATES = frozenset({"42S02", "42P01"})
_DRIVER_MISSING_STATES = frozenset({"IM002", "IM003"})
_LOGIN_MARKERS = ("login failed", "password authentication failed", "authentication failed")
_ODBC_NOISE = re.compile(r"\s*\(\d+\)\s*\((?:SQL\w+)\)\s*$")


def connection_attributes(connection_string: str) -> dict[str, str]:
    """``KEY=value;`` pairs of an ODBC connection string (keys upper-cased, ``{...}`` unquoted)."""
    attributes: dict[str, str] = {}
    position = 0
    while position < len(connection_string):
        equals = connection_string.find("=", position)
        if equals < 0:
            break
        key = connection_string[position:equals].strip().strip(";").strip().upper()
        value, position = _attribute_value(connection_string, equals + 1)
        if key:
            attributes[key] = value
    return attributes


def _attribute_value(text: str, start: int) -> tuple[str, int]:
    """The value starting at ``start`` and the position after its terminating ``;``."""
    if text[start : start + 1] == "{":
        chars: list[str] = []
        position = start + 1
        while position < len(text):
            if text[position] == "}":
                if text[position + 1 : position + 2] == "}":
                    chars.append("}")
                    position += 2
                    continue
                position += 1
                break
            chars.append(text[position])
            position += 1
        end = text.find(";", position)
        return "".join(chars), len(text) if end < 0 else end + 1
    end = text.find(";", start)
    if end < 0:
        return text[start:].strip(), len(text)
    return text[start:end].strip(), end + 1


def _secret_values(attributes: dict[str, str]) -> tuple[str, ...]:
    return tuple(value for key, value in attributes.items() if key in _SECRET_KEYS and value)


def _odbc_message(exc: pyodbc.Error, secrets: tuple[str, ...]) -> tuple[str, str]:
    """(SQLSTATE, the driver's message on one line with passwords masked)."""
    state = str(exc.args[0]) if exc.args else ""
    message = str(exc.args[1]) if len(exc.args) > 1 else str(exc)
    message = _ODBC_NOISE.sub("", message)
    message = re.sub(r"\s+", " ", message).strip()
    return state, mask_values(message, secrets)


def _where(attributes: dict[str, str], description: str) -> str:
    server = next((attributes[key] for key in _SERVER_KEYS if attributes.get(key)), None)
    database = next((attributes[key] for key in _DATABASE_KEYS if attributes.get(key)), None)
    if server is None and attributes.get("DSN"):
        return f"ODBC data source {attributes['DSN']!r}"
    if server and attributes.get("PORT"):
        server = f"{server} port {attributes['PORT']}"
    parts = [f"server {server}" if server else None, f"database {database}" if database else None]
    return ", ".join(part for part in parts if part) or description


def connect_error(target: OdbcTarget, exc: pyodbc.Error) -> DatabaseError:
    """A DatabaseError naming the server/database (or driver) and the ODBC message."""
    attributes = connection_attributes(target.connection_string.reveal())
    state, message = _odbc_message(exc, _secret_values(attributes))
    if state in _DRIVER_MISSING_STATES or "can't open lib" in message.lower():
        return _driver_missing_error(attributes, message)
    unreachable = _unreached_server(attributes, target, message)
    if unreachable is not None:
        return unreachable
    where = _where(attributes, target.description)
    if state == "28000" or any(marker in message.lower() for marker in _LOGIN_MARKERS):
        return DatabaseError(
            f"the database at {where} refused the login: {message}",
            fix="check UID and PWD (or Trusted_Connection) in the connection string in WicGlobal.config",
        )
    return DatabaseError(
        f"cannot connect to the database at {where}: {message}",
        fix="check that the database server runs and is reachable from here (SERVER, PORT and DATABASE "
        "in the connection string in WicGlobal.config; firewall)",
    )


_NETWORK_MARKERS: Final = (
    (NetFailure.DNS, ("could not translate host name", "name or service not known", "no such host is known")),
    (NetFailure.REFUSED, ("connection refused", "actively refused")),
    (NetFailure.TIMEOUT, ("timeout expired", "timed out")),
)
"""The drivers' words (psqlODBC, Microsoft's ODBC drivers) for a server that was not reached."""
_DEFAULT_PORTS: Final = {"postgresql": 5432, "mssql": 1433}


def _unreached_server(attributes: dict[str, str], target: OdbcTarget, message: str) -> DatabaseError | None:
    """The database server not reached (DNS, refused, no answer) in the words every service uses
    (:mod:`wicbox_bridge.config.netcause`); None for any other failure."""
    lowered = message.lower()
    kind = next(
        (kind for kind, markers in _NETWORK_MARKERS if any(word in lowered for word in markers)), None
    )
    server = next((attributes[key] for key in _SERVER_KEYS if attributes.get(key)), None)
    if kind is None or server is None:
        return None
    host, _, port = server.removeprefix("tcp:").partition(",")  # SQL Server: tcp:host,port
    host = host.split("\\", 1)[0]  # a named instance: the host is what is reached
    number = port or attributes.get("PORT") or ""
    where = Target(
        DATABASE_SERVER,
        host,
        int(number) if number.isdigit() else _DEFAULT_PORTS.get(target.dialect, 0),
        "SERVER and PORT of the connection string in WicGlobal.config",
    )
    failure = unreached(kind, where, message)
    database = next((attributes[key] for key in _DATABASE_KEYS if attributes.get(key)), None)
    wanted = f"database {database}; " if database else ""
    return DatabaseError(f"{failure.message[:-1]} ({wanted}the driver: {message}).", fix=failure.fix)


def _driver_missing_error(attributes: dict[str, str], message: str) -> DatabaseError:
    installed = ", ".join(pyodbc.drivers()) or "none"
    driver = attributes.get("DRIVER")
    if driver:
        return DatabaseError(
            f"the ODBC driver {driver!r} is not installed (installed ODBC drivers: {installed}): {message}",
            fix="install that driver (for SQL Server: Microsoft ODBC Driver 18 for SQL Server), or name an "
            "installed driver in the connection string in WicGlobal.config",
        )
    return DatabaseError(
        f"the ODBC data source {attributes.get('DSN', '(default)')!r} is not defined "
        f"(installed ODBC drivers: {installed}): {message}",
        fix="define the data source in the 64-bit ODBC Data Source Administrator, or use a "
        "DRIVER={...};SERVER=...;DATABASE=... connection string",
    )


# SQLSTATE classes for "this statement's data was refused": 22 data exception, 23 integrity constraint.
_DATA_REJECTED_CLASSES: Final = frozenset({"22", "23"})


class OdbcStore(DbApiStore):
    def __init__(
        self, connection: pyodbc.Connection, dialect: Dialect, description: str, secrets: tuple[str, ...]
    ) -> None:
        super().__init__(dialect, description)
        self._connection = connection
        self._secrets = secrets

    @property
    def _driver_errors(self) -> tuple[type[Exception], ...]:
        return (pyodbc.Error,)

    def _cursor_for(self, sql: str, params: SqlParams) -> Cursor:
        cursor: Cursor = self._connection.execute(sql, *params)
        return cursor

    def _begin(self) -> None:
        self._connection.autocommit = False

    def _commit(self) -> None:
        self._connection.commit()
        self._connection.autocommit = True

    def _rollback(self) -> None:
        try:
            self._connection.rollback()
        finally:
            self._connection.autocommit = True

    def _close(self) -> None:
        self._connection.close()

    def _translate(self, exc: Exception, action: str) -> DatabaseError:
        if not isinstance(exc, pyodbc.Error):
            return DatabaseError(f"{self.description}: {exc} (while running: {action})")
        state, message = _odbc_message(exc, self._secrets)
        text = f"{self.description}: {message} (while running: {action})"
        if state in _UNDEFINED_TABLE_STATES:
            return SchemaError(text, fix="run `wicbox db init`")
        if state[:2] in _DATA_REJECTED_CLASSES:
            return DataRejected(text)
        if state.startswith("08") or "connection" in message.lower():
            return DatabaseError(
                text,
                fix="check that the database server runs and is reachable; nothing uncommitted was "
                "acknowledged on the mail server, so the next run continues where this one stopped",
            )
        return DatabaseError(text)


def _dialect_of(connection: pyodbc.Connection, target: OdbcTarget) -> Dialect:
    dbms = str(connection.getinfo(pyodbc.SQL_DBMS_NAME) or "")
    dialect = _DBMS_DIALECTS.get(dbms.strip().lower())
    if dialect is not None:
        return dialect
    if target.dialect != "other":
        return target.dialect
    raise DatabaseError(
        f"{target.describe()}: the database is {dbms or 'of an unknown kind'}; wicbox-bridge works with "
        "Microsoft SQL Server (and PostgreSQL)",
        fix="point the connection string in WicGlobal.config at the WIC database on SQL Server",
    )


def open_odbc(target: OdbcTarget, timeout_s: float) -> OdbcStore:
    """Connect (login timeout ``timeout_s``) and find out which dialect the server speaks."""
    connection_string = target.connection_string.reveal()
    try:
        connection = pyodbc.connect(connection_string, autocommit=True, timeout=max(1, round(timeout_s)))
    except pyodbc.Error as exc:
        raise connect_error(target, exc) from exc
    try:
        dialect = _dialect_of(connection, target)
    except pyodbc.Error as exc:
        connection.close()
        raise connect_error(target, exc) from exc
    except DatabaseError:
        connection.close()
        raise
    secrets = _secret_values(connection_attributes(connection_string))
    return OdbcStore(connection, dialect, target.describe(), secrets)
