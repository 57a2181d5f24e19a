"""Connection strings: SQLite, ODBC as given, .NET SqlClient translated for the best SQL Server driver."""

from __future__ import annotations

from pathlib import Path

import pytest

from wicbox_bridge.config.connstr import (
    best_sqlserver_driver,
    odbc_dialect,
    odbc_quote,
    odbc_server,
    parse_connection_string,
    secret_values,
    tokenize,
)
from wicbox_bridge.config.dbtarget import OdbcTarget, SqliteTarget
from wicbox_bridge.errors import ConfigurationError

FAKE_PASSWORD = "Xv9-conn-secret-4417"  # distinctive: any leak is easy to find
DRIVER_18 = "ODBC Driver 18 for SQL Server"
ALL_DRIVERS = ["SQL Server", "SQL Server Native Client 11.0", "ODBC Driver 17 for SQL Server", DRIVER_18]
PREFIX_18 = "DRIVER={ODBC Driver 18 for SQL Server};"
PLAIN_TLS = "Encrypt=no;TrustServerCertificate=no"


def odbc(text: str, drivers: list[str] | None = None, platform: str = "win32") -> OdbcTarget:
    target = parse_connection_string(
        text, odbc_drivers=ALL_DRIVERS if drivers is None else drivers, platform=platform
    )
    assert isinstance(target, OdbcTarget)
    return target


def assert_no_leak(*texts: str) -> None:
    for text in texts:
        assert FAKE_PASSWORD not in text


# --------------------------------------------------------------------------- SQLite


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("sqlite:///wic.db", Path("/cfg/wic.db")),
        ("SQLite:///data/wic.db", Path("/cfg/data/wic.db")),
        ("sqlite:///../shared/wic.db", Path("/cfg/../shared/wic.db")),
        ("sqlite:////var/lib/wic/wic.db", Path("/var/lib/wic/wic.db")),
        ("  sqlite:///wic.db  ", Path("/cfg/wic.db")),
        (r"sqlite:///C:\WIC\wic.db", Path(r"C:\WIC\wic.db")),
        ("sqlite:///C:/WIC/wic.db", Path("C:/WIC/wic.db")),
        (r"sqlite:///\\server\share\wic.db", Path(r"\\server\share\wic.db")),
    ],
)
def test_sqlite(text: str, expected: Path) -> None:
    assert parse_connection_string(text, odbc_drivers=[], base_dir=Path("/cfg")) == SqliteTarget(expected)


def test_sqlite_relative_without_base_dir_stays_relative() -> None:
    assert parse_connection_string("sqlite:///wic.db", odbc_drivers=[]) == SqliteTarget(Path("wic.db"))


@pytest.mark.parametrize("text", ["sqlite:///", "sqlite:///   ", "sqlite:///:memory:"])
def test_sqlite_without_a_file_is_refused(text: str) -> None:
    with pytest.raises(ConfigurationError, match="path of the database file"):
        parse_connection_string(text, odbc_drivers=[])


# --------------------------------------------------------------------------- ODBC as given


@pytest.mark.parametrize(
    ("text", "dialect", "description"),
    [
        (
            f"Driver={{PostgreSQL Unicode}};Server=127.0.0.1;Port=5432;UID=wic;PWD={FAKE_PASSWORD}",
            "postgresql",
            "Driver={PostgreSQL Unicode};Server=127.0.0.1;Port=5432;UID=wic;PWD=********",
        ),
        (
            f"DRIVER={{PostgreSQL ANSI}};SERVER=db;pwd={{{FAKE_PASSWORD};x=}}}}y}}",
            "postgresql",
            "DRIVER={PostgreSQL ANSI};SERVER=db;pwd=********",
        ),
        (
            f"driver={{ODBC Driver 18 for SQL Server}};server=tcp:sql01;Password={FAKE_PASSWORD};Encrypt=yes",
            "mssql",
            "driver={ODBC Driver 18 for SQL Server};server=tcp:sql01;Password=********;Encrypt=yes",
        ),
        (
            "Driver=SQL Server;Server=(local);Trusted_Connection=yes",
            "mssql",
            "Driver={SQL Server};Server=(local);Trusted_Connection=yes",
        ),
        (
            "Driver=/usr/lib/x86_64-linux-gnu/odbc/psqlodbcw.so;Server=db",
            "postgresql",
            "Driver={/usr/lib/x86_64-linux-gnu/odbc/psqlodbcw.so};Server=db",
        ),
        (
            "Driver={FreeTDS};Server=sql01;TDS_Version=7.4",
            "mssql",
            "Driver={FreeTDS};Server=sql01;TDS_Version=7.4",
        ),
        ("Driver={SQLite3};Database=/tmp/x.db", "other", "Driver={SQLite3};Database=/tmp/x.db"),
        (f"DSN=WIC;UID=wic;PWD={FAKE_PASSWORD}", "other", "DSN=WIC;UID=wic;PWD=********"),
        (
            f"dsn = WIC ; Uid = wic ; KeystoreSecret = {FAKE_PASSWORD} ;",
            "other",
            "dsn=WIC;Uid=wic;KeystoreSecret=********",
        ),
    ],
)
def test_odbc_string_is_used_as_given(text: str, dialect: str, description: str) -> None:
    target = odbc(text, drivers=[])
    assert target.connection_string.reveal() == text
    assert target.dialect == dialect
    assert target.description == description
    assert_no_leak(target.description, repr(target), target.describe(), str(target))


def test_odbc_string_with_quotes_in_a_braced_password() -> None:
    text = 'Driver={PostgreSQL Unicode};PWD={a"b;c};Server=x'
    assert odbc(text, drivers=[]).description == "Driver={PostgreSQL Unicode};PWD=********;Server=x"


@pytest.mark.parametrize(
    ("driver", "dialect"),
    [
        ("ODBC Driver 18 for SQL Server", "mssql"),
        ("{SQL Server Native Client 11.0}", "mssql"),
        ("/opt/microsoft/msodbcsql18/lib64/libmsodbcsql-18.3.so.2.1", "mssql"),
        ("PostgreSQL Unicode(x64)", "postgresql"),
        ("PostgreSQL ANSI", "postgresql"),
        ("MariaDB ODBC 3.1 Driver", "other"),
        ("", "other"),
    ],
)
def test_odbc_dialect(driver: str, dialect: str) -> None:
    assert odbc_dialect(driver) == dialect


# --------------------------------------------------------------------------- .NET SqlClient translation


@pytest.mark.parametrize(
    ("text", "expected_tail"),
    [
        # every synonym of the server, database and login keywords, any case, spaces around
        (
            "Data Source=sql01;Initial Catalog=WIC;User ID=wic;Password=pw",
            "SERVER=sql01;DATABASE=WIC;UID=wic;PWD=pw",
        ),
        ("server=sql01;database=WIC;uid=wic;pwd=pw", "SERVER=sql01;DATABASE=WIC;UID=wic;PWD=pw"),
        ("Address=sql01;DATABASE=WIC;User=wic;PWD=pw", "SERVER=sql01;DATABASE=WIC;UID=wic;PWD=pw"),
        ("Addr=sql01;initial catalog=WIC;user id=wic", "SERVER=sql01;DATABASE=WIC;UID=wic"),
        ("Network Address=sql01;Initial Catalog=WIC;UserID=wic", "SERVER=sql01;DATABASE=WIC;UID=wic"),
        (
            "  Data Source = sql01 ;  Initial Catalog = WIC ; User ID = wic ;",
            "SERVER=sql01;DATABASE=WIC;UID=wic",
        ),
        # integrated security: true / yes / sspi, both keywords; login is then ignored like .NET does
        ("Data Source=sql01;Integrated Security=true", "SERVER=sql01;Trusted_Connection=yes"),
        (
            "Data Source=sql01;Integrated Security=SSPI;User ID=x;Password=y",
            "SERVER=sql01;Trusted_Connection=yes",
        ),
        ("Data Source=sql01;Trusted_Connection=Yes", "SERVER=sql01;Trusted_Connection=yes"),
        ("Data Source=sql01;Trusted Connection=True", "SERVER=sql01;Trusted_Connection=yes"),
        ("Data Source=sql01;Integrated Security=false;User ID=wic", "SERVER=sql01;UID=wic"),
        # later keywords win, as in .NET
        ("Server=a;Data Source=sql01;Integrated Security=true", "SERVER=sql01;Trusted_Connection=yes"),
        # accepted and dropped: pooling, timeouts, security-info
        (
            "Data Source=sql01;Integrated Security=true;Persist Security Info=False;Pooling=true;"
            "Max Pool Size=50;Min Pool Size=1;Connect Timeout=30;Connection Timeout=15;Enlist=false;"
            "Packet Size=8192;Load Balance Timeout=0;Connection Lifetime=0;Asynchronous Processing=true",
            "SERVER=sql01;Trusted_Connection=yes",
        ),
    ],
)
def test_sqlclient_keywords_and_synonyms(text: str, expected_tail: str) -> None:
    target = odbc(text)
    assert target.connection_string.reveal() == f"{PREFIX_18}{expected_tail};{PLAIN_TLS}"
    assert target.dialect == "mssql"


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ("", "Encrypt=no;TrustServerCertificate=no"),  # System.Data.SqlClient's default
        (";Encrypt=true", "Encrypt=yes;TrustServerCertificate=no"),
        (";Encrypt=True;TrustServerCertificate=True", "Encrypt=yes;TrustServerCertificate=yes"),
        (";Encrypt=yes;Trust Server Certificate=yes", "Encrypt=yes;TrustServerCertificate=yes"),
        (";Encrypt=Mandatory", "Encrypt=yes;TrustServerCertificate=no"),
        (";Encrypt=Optional", "Encrypt=no;TrustServerCertificate=no"),
        (";Encrypt=false;TrustServerCertificate=false", "Encrypt=no;TrustServerCertificate=no"),
        (";Encrypt=Strict", "Encrypt=strict;TrustServerCertificate=no"),
    ],
)
def test_encryption_is_always_explicit(options: str, expected: str) -> None:
    target = odbc(f"Data Source=sql01;Integrated Security=true{options}")
    assert target.connection_string.reveal() == f"{PREFIX_18}SERVER=sql01;Trusted_Connection=yes;{expected}"


@pytest.mark.parametrize(
    ("options", "extra"),
    [
        (";Application Name=WIC Box", "APP=WIC Box"),
        (";App=WICBOX", "APP=WICBOX"),
        (";MultipleActiveResultSets=True", "MARS_Connection=yes"),
        (";Multiple Active Result Sets=false", "MARS_Connection=no"),
        (";Workstation ID=APP01", "WSID=APP01"),
        (";Current Language=Dutch", "Language=Dutch"),
        (";Failover Partner=sql02", "Failover_Partner=sql02"),
        (";MultiSubnetFailover=True", "MultiSubnetFailover=yes"),
        (";ApplicationIntent=ReadOnly", "ApplicationIntent=ReadOnly"),
        (";Application Intent=ReadOnly", "ApplicationIntent=ReadOnly"),
        (";Connect Retry Count=3;ConnectRetryInterval=10", "ConnectRetryCount=3;ConnectRetryInterval=10"),
        (";Column Encryption Setting=enabled", "ColumnEncryption=Enabled"),
        (";Host Name In Certificate=sql.klant.example", "HostnameInCertificate=sql.klant.example"),
        (";AttachDbFilename=C:\\Data\\wic.mdf", "AttachDBFileName=C:\\Data\\wic.mdf"),
    ],
)
def test_other_keywords_are_carried_over(options: str, extra: str) -> None:
    target = odbc(f"Data Source=sql01;Integrated Security=true{options}")
    assert (
        target.connection_string.reveal()
        == f"{PREFIX_18}SERVER=sql01;Trusted_Connection=yes;{PLAIN_TLS};{extra}"
    )


@pytest.mark.parametrize(
    ("auth", "odbc_value", "login"),
    [
        ("Active Directory Password", "ActiveDirectoryPassword", ";User ID=a@klant.example;Password=pw"),
        ("ActiveDirectoryIntegrated", "ActiveDirectoryIntegrated", ""),
        ("Active Directory Managed Identity", "ActiveDirectoryMsi", ""),
        ("Active Directory MSI", "ActiveDirectoryMsi", ""),
        ("Active Directory Service Principal", "ActiveDirectoryServicePrincipal", ";User ID=app;Password=pw"),
        ("Sql Password", "SqlPassword", ";User ID=wic;Password=pw"),
    ],
)
def test_authentication_keyword(auth: str, odbc_value: str, login: str) -> None:
    target = odbc(f"Data Source=sql01;Authentication={auth}{login}")
    assert f";Authentication={odbc_value};" in target.connection_string.reveal() + ";"


# --------------------------------------------------------------------------- servers


@pytest.mark.parametrize(
    ("data_source", "platform", "server"),
    [
        ("tcp:sql01,1433", "win32", "tcp:sql01,1433"),
        ("TCP:sql01.klant.local, 1433", "win32", "tcp:sql01.klant.local,1433"),
        ("sql01\\WIC", "win32", "sql01\\WIC"),
        ("sql01\\WIC,1500", "win32", "sql01\\WIC,1500"),
        ("(local)", "win32", "(local)"),
        (".", "win32", "."),
        (".\\SQLEXPRESS", "win32", ".\\SQLEXPRESS"),
        ("(local)", "linux", "localhost"),
        (".\\SQLEXPRESS", "linux", "localhost\\SQLEXPRESS"),
        ("lpc:.", "linux", "localhost"),
        ("np:sql01", "win32", "np:sql01"),
        ("10.0.0.5,14330", "linux", "10.0.0.5,14330"),
    ],
)
def test_server_forms(data_source: str, platform: str, server: str) -> None:
    assert odbc_server(data_source, platform=platform) == server
    target = odbc(f"Data Source={data_source};Integrated Security=true", platform=platform)
    assert f";SERVER={server};" in target.connection_string.reveal()


def test_network_library_becomes_a_protocol_prefix() -> None:
    target = odbc("Data Source=sql01,1433;Network Library=DBMSSOCN;Integrated Security=true")
    assert ";SERVER=tcp:sql01,1433;" in target.connection_string.reveal()


@pytest.mark.parametrize("data_source", ["tcp:", ",1433", "sql01,port", "sql01,70000", "sql01,0", "\\INST"])
def test_invalid_server(data_source: str) -> None:
    with pytest.raises(ConfigurationError, match="not a valid SQL Server address"):
        odbc(f"Data Source={data_source};Integrated Security=true")


# --------------------------------------------------------------------------- quoting


@pytest.mark.parametrize(
    ("dotnet_password", "odbc_password"),
    [
        ('"semi;colon"', "{semi;colon}"),
        ("'semi;colon'", "{semi;colon}"),
        ('"has ""double"" quotes"', 'has "double" quotes'),
        ("'it''s'", "it's"),
        ('"a=b"', "{a=b}"),
        ("brace}here", "{brace}}here}"),
        ("{braced}", "{{braced}}}"),
        ('" padded "', "{ padded }"),
        ("plain", "plain"),
        ("'single \"inside\"'", 'single "inside"'),
    ],
)
def test_dotnet_quoting_becomes_odbc_quoting(dotnet_password: str, odbc_password: str) -> None:
    target = odbc(f"Data Source=sql01;User ID=wic;Password={dotnet_password};Initial Catalog=WIC")
    assert target.connection_string.reveal() == (
        f"{PREFIX_18}SERVER=sql01;DATABASE=WIC;UID=wic;PWD={odbc_password};{PLAIN_TLS}"
    )
    assert "PWD=********;" in target.description


def test_doubled_equals_in_a_keyword_is_a_literal_equals() -> None:
    pairs = tokenize("a==b=c;d=e", "\"'")
    assert [(p.key, p.value) for p in pairs] == [("a=b", "c"), ("d", "e")]


@pytest.mark.parametrize(
    ("value", "quoted"),
    [
        ("x", "x"),
        ("", "{}"),
        ("a;b", "{a;b}"),
        ("a}b", "{a}}b}"),
        ("{a", "{{a}"),
        (" a", "{ a}"),
        ("a=b", "{a=b}"),
    ],
)
def test_odbc_quote(value: str, quoted: str) -> None:
    assert odbc_quote(value) == quoted


def test_user_with_special_characters_is_braced_too() -> None:
    target = odbc('Data Source=sql01;User ID="dom;ain"')
    assert ";UID={dom;ain};" in target.connection_string.reveal()
    assert ";UID={dom;ain};" in target.description


# --------------------------------------------------------------------------- driver choice


@pytest.mark.parametrize(
    ("installed", "chosen"),
    [
        (ALL_DRIVERS, DRIVER_18),
        (
            ["SQL Server", "ODBC Driver 13 for SQL Server", "ODBC Driver 17 for SQL Server"],
            "ODBC Driver 17 for SQL Server",
        ),
        (
            ["ODBC Driver 13 for SQL Server", "ODBC Driver 13.1 for SQL Server"],
            "ODBC Driver 13.1 for SQL Server",
        ),
        (
            ["SQL Server", "SQL Server Native Client 11.0", "ODBC Driver 13 for SQL Server"],
            "ODBC Driver 13 for SQL Server",
        ),
        (["SQL Server", "SQL Server Native Client 11.0"], "SQL Server Native Client 11.0"),
        (["PostgreSQL Unicode", "SQL Server"], "SQL Server"),
        (["ODBC Driver 17 for SQL Server", "ODBC Driver 19 for SQL Server"], "ODBC Driver 19 for SQL Server"),
    ],
)
def test_best_driver(installed: list[str], chosen: str) -> None:
    assert best_sqlserver_driver(installed).name == chosen
    target = odbc("Data Source=sql01;Integrated Security=true", drivers=installed)
    assert target.connection_string.reveal().startswith(f"DRIVER={{{chosen}}};")


@pytest.mark.parametrize("installed", [[], ["PostgreSQL Unicode", "PostgreSQL ANSI", "SQLite3", "FreeTDS"]])
def test_no_sql_server_driver(installed: list[str]) -> None:
    with pytest.raises(ConfigurationError) as caught:
        odbc(f"Data Source=sql01;User ID=wic;Password={FAKE_PASSWORD}", drivers=installed)
    message = str(caught.value)
    assert "ODBC Driver 18 for SQL Server" in message
    assert "install" in message
    for name in installed:
        assert name in message
    assert_no_leak(message, repr(caught.value))


@pytest.mark.parametrize(
    ("text", "installed", "needs"),
    [
        ("Encrypt=strict", ["ODBC Driver 17 for SQL Server"], "Driver 18"),
        ("Authentication=ActiveDirectoryMsi", ["SQL Server Native Client 11.0"], "Driver 17"),
    ],
)
def test_features_older_drivers_lack(text: str, installed: list[str], needs: str) -> None:
    with pytest.raises(ConfigurationError, match=needs):
        odbc(f"Data Source=sql01;Integrated Security=true;{text}", drivers=installed)


# --------------------------------------------------------------------------- refusals, never leaking


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (f"Provider=SQLOLEDB;Data Source=sql01;User ID=wic;Password={FAKE_PASSWORD}", "OLE DB"),
        (f"provider = MSOLEDBSQL;Server=x;PWD={FAKE_PASSWORD}", "OLE DB"),
        ("", "empty"),
        ("   ", "empty"),
        ("just some text", "no '='"),
        (f"Data Source=sql01;Password={FAKE_PASSWORD}", "neither a login"),
        (f'Data Source=sql01;User ID=wic;Password="{FAKE_PASSWORD}', "never closed"),
        (f"Data Source=sql01;User ID=wic;Password='{FAKE_PASSWORD}'x", "unexpected text"),
        (f"Initial Catalog=WIC;User ID=wic;Password={FAKE_PASSWORD}", "names no server"),
        (f"Data Source=sql01;User ID=wic;Password={FAKE_PASSWORD};Colour=blue", "'Colour'"),
        (
            f"Data Source=sql01;User ID=wic;Password={FAKE_PASSWORD};Integrated Security=maybe",
            "not a boolean",
        ),
        (f"Data Source=sql01;User ID=wic;Password={FAKE_PASSWORD};Encrypt=always", "Encrypt"),
        (
            f"Data Source=sql01;User ID=wic;Password={FAKE_PASSWORD};Authentication=Active Directory Default",
            "method",
        ),
        (
            f"Data Source=sql01;User ID=wic;Password={FAKE_PASSWORD};Network Library=dbmsspxn",
            "network library",
        ),
        (f"Data Source=sql01;User ID=wic;Password={FAKE_PASSWORD};Connect Retry Count=many", "whole number"),
        (f"Data Source=sql01;=x;Password={FAKE_PASSWORD}", "no keyword"),
        (f"Driver={{PostgreSQL Unicode}};PWD={{{FAKE_PASSWORD}", "never closed"),
    ],
)
def test_refused_strings_explain_and_never_show_the_password(text: str, expected: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        parse_connection_string(text, odbc_drivers=ALL_DRIVERS)
    message = str(caught.value)
    assert expected in message
    assert caught.value.fix
    assert_no_leak(message, repr(caught.value), str(caught.value.fix))


def test_a_bad_value_is_named_by_its_keyword_only() -> None:
    with pytest.raises(ConfigurationError) as caught:
        odbc(f"Data Source=sql01;User ID=wic;Password={FAKE_PASSWORD};Integrated Security=maybe")
    assert "'Integrated Security': its value is not a boolean" in str(caught.value)
    assert "maybe" not in str(caught.value)
    assert_no_leak(str(caught.value))


@pytest.mark.parametrize(
    "text",
    [
        "Data Source=sql01;User ID=wic;Pasword=Sup3rS3cret!",  # a typo: not known to be a password
        "Data Source=sql01;User ID=wic;Password=Sup3r;S3cret!",  # an unquoted ';' in a password
        "Data Source=sql01;User ID=wic;Password=Sup3r;S3cret!=x",
        "Data Source=Sup3rS3cret!,99999;User ID=wic",
        "Data Source=sql01;User ID=wic;Encrypt=Sup3rS3cret!",
        "Data Source=sql01;User ID=wic;Connect Retry Count=Sup3rS3cret!",
    ],
)
def test_no_value_of_any_keyword_is_ever_in_an_error(text: str) -> None:
    # Attack: a password that reaches an error message is printed by check, run and status, and logged.
    with pytest.raises(ConfigurationError) as caught:
        odbc(text)
    for shown in (str(caught.value), repr(caught.value), caught.value.fix or ""):
        assert "Sup3r" not in shown and "S3cret" not in shown


def test_secret_values_cover_typos_and_split_passwords() -> None:
    values = secret_values(
        "Data Source=sql01;User ID=wic;Pasword=Sup3rS3cret!;PWD=Other-pw1;Password=ab;cdef"
    )
    assert {"Sup3rS3cret!", "Other-pw1", "ab", "cdef"} <= set(values)
    assert "sql01" not in values and "wic" not in values


@pytest.mark.parametrize(
    ("text", "unencrypted"),
    [
        ("Data Source=sql01;Integrated Security=true", True),  # .NET's default: no
        ("Data Source=sql01;Integrated Security=true;Encrypt=optional", True),
        ("Data Source=sql01;Integrated Security=true;Encrypt=False", True),
        ("Data Source=sql01;Integrated Security=true;Encrypt=yes;TrustServerCertificate=no", False),
        ("Data Source=sql01;Integrated Security=true;Encrypt=strict", False),
        ("Driver={ODBC Driver 18 for SQL Server};Server=sql01;Encrypt=no", True),
        ("Driver={ODBC Driver 18 for SQL Server};Server=sql01", False),  # driver 18: yes by default
        ("Driver={PostgreSQL Unicode};Server=pg;Encrypt=no", False),  # not SQL Server
    ],
)
def test_unencrypted_sql_server_is_flagged(text: str, unencrypted: bool) -> None:
    assert odbc(text).unencrypted is unencrypted


def test_odbc_detection_is_not_fooled_by_a_quoted_dotnet_password() -> None:
    target = odbc(f'Data Source=sql01;User ID=wic;Password="{FAKE_PASSWORD};Driver=x"')
    assert target.connection_string.reveal().startswith(PREFIX_18)
    assert f"PWD={{{FAKE_PASSWORD};Driver=x}}" in target.connection_string.reveal()
    assert_no_leak(target.description, repr(target))


def test_description_and_repr_never_contain_the_password() -> None:
    target = odbc(f"Data Source=sql01;Initial Catalog=WIC;User ID=wic;Password={FAKE_PASSWORD}")
    assert target.description == (f"{PREFIX_18}SERVER=sql01;DATABASE=WIC;UID=wic;PWD=********;{PLAIN_TLS}")
    assert_no_leak(target.description, repr(target), str(target), target.describe())
    assert FAKE_PASSWORD in target.connection_string.reveal()
