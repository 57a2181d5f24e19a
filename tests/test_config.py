"""WicGlobal.config: locating, parsing, the per-run cap, the connection string, refusing DTDs."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from wicbox_bridge.config.dbtarget import OdbcTarget, SqliteTarget
from wicbox_bridge.config.local_hosts import embedded_policy
from wicbox_bridge.config.wicglobal import (
    ConfigLocation,
    ConfigSource,
    GlobalConfig,
    embedded_default_config,
    load_global_config,
    locate_config,
)
from wicbox_bridge.errors import ConfigFileError, ConfigurationError, ExitCode

DATA = Path(__file__).parent / "data" / "config"
SQLSERVER_DRIVERS = ["PostgreSQL Unicode", "ODBC Driver 18 for SQL Server"]
FAKE_DB_PASSWORD = "Zq8-db-pass-7741"  # distinctive, so a leak is easy to spot


def write_config(directory: Path, body: str, *, encoding: str = "utf-8", bom: bool = False) -> Path:
    path = directory / "WicGlobal.config"
    data = body.encode(encoding)
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + data)
    return path


WIC_SQLITE = '    <add name="WIC" connectionString="sqlite:///wic.db"/>'


def config_with(app_settings: str = "", connection_strings: str = WIC_SQLITE) -> str:
    return (
        '<?xml version="1.0" encoding="utf-8"?>\n'
        "<configuration>\n"
        f"  <connectionStrings>\n{connection_strings}  </connectionStrings>\n"
        f"  <appSettings>\n{app_settings}  </appSettings>\n"
        "</configuration>\n"
    )


def load(path: Path, home: Path) -> GlobalConfig:
    return load_global_config(path, env={"WICBOX_HOME": str(home)}, odbc_drivers=SQLSERVER_DRIVERS)


# --------------------------------------------------------------------------- sample files


def test_realistic_file_with_bom_other_sections_and_case_insensitive_names(tmp_path: Path) -> None:
    config = load(DATA / "realistic-bom.config", tmp_path)
    assert config.max_mails_per_run == 250
    (warning,) = config.warnings  # no Encrypt=: .NET's default, no encryption
    assert "Encrypt=yes;TrustServerCertificate=no" in warning and "line 14" in warning
    assert isinstance(config.database, OdbcTarget)
    assert config.database.dialect == "mssql"
    assert config.database.connection_string.reveal() == (
        "DRIVER={ODBC Driver 18 for SQL Server};SERVER=tcp:sql01.klant.local,1433;DATABASE=WIC;UID=wicbox;"
        "PWD={Geh;eim=1};Encrypt=no;TrustServerCertificate=no;APP=WICBOX"
    )
    assert "Geh;eim" not in repr(config)
    assert "Geh;eim" not in config.database.describe()


def test_utf16_file(tmp_path: Path) -> None:
    config = load_global_config(
        DATA / "utf16.config",
        env={"WICBOX_HOME": str(tmp_path)},
        platform="win32",
        odbc_drivers=["SQL Server Native Client 11.0"],
    )
    assert config.max_mails_per_run == 40
    assert isinstance(config.database, OdbcTarget)
    assert config.database.connection_string.reveal() == (
        "DRIVER={SQL Server Native Client 11.0};SERVER=(local);DATABASE=WIC_été;Trusted_Connection=yes;"
        "Encrypt=no;TrustServerCertificate=no"
    )


@pytest.mark.parametrize(
    ("encoding", "declaration", "bom"),
    [
        ("utf-8", "utf-8", False),
        ("utf-8", "utf-8", True),
        ("utf-16", "utf-16", False),  # Python's utf-16 codec writes a BOM
        ("utf-16-le", "utf-16", False),  # no BOM: expat detects it from '<?xml'
        ("utf-8", None, True),
    ],
)
def test_encodings(tmp_path: Path, encoding: str, declaration: str | None, bom: bool) -> None:
    decl = f'<?xml version="1.0" encoding="{declaration}"?>\n' if declaration else ""
    body = (
        decl
        + '<configuration><appSettings><add key="WicBoxMaxMailsPerRun" value="77"/></appSettings>'
        + '<connectionStrings><add name="WIC" connectionString="sqlite:///wic.db"/></connectionStrings>'
        + "</configuration>"
    )
    config = load(write_config(tmp_path, body, encoding=encoding, bom=bom), tmp_path)
    assert config.max_mails_per_run == 77


def test_config_source_sections_are_followed_relative_to_the_file(tmp_path: Path) -> None:
    config = load(DATA / "config-source.config", tmp_path)
    assert config.database == SqliteTarget(DATA / "data" / "wic.db")
    assert config.max_mails_per_run == 1000
    assert any("5000" in warning and "1000" in warning for warning in config.warnings)


def test_config_source_with_wrong_root_names_the_included_file(tmp_path: Path) -> None:
    (tmp_path / "cs.config").write_text('<appSettings><add key="x" value="y"/></appSettings>')
    path = write_config(
        tmp_path, '<configuration><connectionStrings configSource="cs.config"/></configuration>'
    )
    with pytest.raises(ConfigFileError) as caught:
        load(path, tmp_path)
    assert caught.value.path == str(tmp_path / "cs.config")
    assert "<connectionStrings>" in str(caught.value)


def test_config_source_must_be_relative(tmp_path: Path) -> None:
    path = write_config(
        tmp_path, f'<configuration><appSettings configSource="{tmp_path / "x.config"}"/></configuration>'
    )
    with pytest.raises(ConfigFileError, match="inside the configuration file's folder"):
        load(path, tmp_path)


def test_a_config_file_without_the_wic_connection_string_is_a_configuration_error(tmp_path: Path) -> None:
    # Attack: a task named with --config files into a per-user database nobody reads. Refused instead.
    with pytest.raises(ConfigFileError) as caught:
        load(DATA / "no-connection-string.config", tmp_path)
    assert caught.value.exit_code is ExitCode.CONFIGURATION
    assert '"WIC"' in str(caught.value)
    assert str(DATA / "no-connection-string.config") in str(caught.value)
    assert not (tmp_path / "wicbox.db").exists()


def test_embedded_default_config(tmp_path: Path) -> None:
    config = embedded_default_config(env={"WICBOX_HOME": str(tmp_path)})
    embedded = SqliteTarget(tmp_path / "wicbox.db", embedded=True)
    assert config == GlobalConfig(None, embedded, 100, (), endpoints=embedded_policy(tmp_path))
    assert config.endpoints.allowed_hosts == frozenset()  # no allowed-hosts.txt: Microsoft's servers only


# --------------------------------------------------------------------------- the per-run cap


@pytest.mark.parametrize(
    ("setting", "expected", "warns"),
    [
        ("", 100, False),
        ('<add key="WicBoxMaxMailsPerRun" value="1"/>', 1, False),
        ('<add key="WicBoxMaxMailsPerRun" value=" 1000 "/>', 1000, False),
        ('<add key="WICBOXMAXMAILSPERRUN" value="333"/>', 333, False),
        ('<add key="WicBoxMaxMailsPerRun" value="1001"/>', 1000, True),
        ('<add key="WicBoxMaxMailsPerRun" value="999999"/>', 1000, True),
        # later <add>s override earlier ones, <remove> and <clear> work as in .NET
        ('<add key="WicBoxMaxMailsPerRun" value="5"/><add key="wicboxmaxmailsperrun" value="6"/>', 6, False),
        ('<add key="WicBoxMaxMailsPerRun" value="5"/><remove key="WicBoxMaxMailsPerRun"/>', 100, False),
        ('<add key="WicBoxMaxMailsPerRun" value="5"/><clear/>', 100, False),
    ],
)
def test_cap(tmp_path: Path, setting: str, expected: int, warns: bool) -> None:
    config = load(write_config(tmp_path, config_with(app_settings=setting)), tmp_path)
    assert config.max_mails_per_run == expected
    cap_warnings = [w for w in config.warnings if "WicBoxMaxMailsPerRun" in w]
    assert bool(cap_warnings) is warns
    if warns:
        assert "line 6" in cap_warnings[0]


@pytest.mark.parametrize("value", ["0", "-5", "abc", "", "12.5", "1e3", "100 mails"])
def test_invalid_cap_names_key_file_line_and_range(tmp_path: Path, value: str) -> None:
    body = config_with(app_settings=f'    <add key="WicBoxMaxMailsPerRun"\n         value="{value}"/>\n')
    path = write_config(tmp_path, body)
    with pytest.raises(ConfigFileError) as caught:
        load(path, tmp_path)
    error = caught.value
    assert error.line == 6  # the line the <add> element starts on
    assert error.path == str(path)
    message = str(error)
    assert "WicBoxMaxMailsPerRun" in message
    assert "from 1 to 1000" in message
    assert f"{path}, line 6" in message
    assert error.exit_code is ExitCode.CONFIGURATION


# --------------------------------------------------------------------------- connection strings in the file


@pytest.mark.parametrize(
    ("connection_strings", "expected"),
    [
        ('<add name="WIC" connectionString="sqlite:///wic.db"/>', "relative"),
        ('<add name="wIc" connectionString="sqlite:///wic.db"/>', "relative"),
        ('<add name="WIC" connectionString="sqlite:////var/lib/wic.db"/>', "absolute"),
        ('<add name="WIC" connectionString="sqlite:///x.db"/><remove name="WIC"/>', "refused"),
        (
            '<add name="WIC" connectionString="sqlite:///x.db"/><clear/><add name="WIC" connectionString="sqlite:///wic.db"/>',
            "relative",
        ),
        ('<add name="WICOld" connectionString="sqlite:///old.db"/>', "refused"),
    ],
)
def test_connection_string_selection(tmp_path: Path, connection_strings: str, expected: str) -> None:
    path = write_config(tmp_path, config_with(connection_strings=connection_strings))
    if expected == "refused":
        with pytest.raises(ConfigFileError, match='no connection string named "WIC"'):
            load(path, tmp_path)
        return
    config = load(path, tmp_path)
    wanted = {
        "relative": SqliteTarget(tmp_path / "wic.db"),
        "absolute": SqliteTarget(Path("/var/lib/wic.db")),
    }[expected]
    assert config.database == wanted


def test_duplicate_wic_connection_string_is_refused_with_both_lines(tmp_path: Path) -> None:
    body = config_with(
        connection_strings='    <add name="WIC" connectionString="sqlite:///a.db"/>\n'
        '    <add name="wic" connectionString="sqlite:///b.db"/>\n'
    )
    with pytest.raises(ConfigFileError) as caught:
        load(write_config(tmp_path, body), tmp_path)
    assert caught.value.line == 5
    assert "line 4" in str(caught.value)


def test_bad_connection_string_names_file_and_line_but_not_the_password(tmp_path: Path) -> None:
    body = config_with(
        connection_strings=f'    <add name="WIC" connectionString="Provider=SQLOLEDB;Data Source=x;'
        f'User ID=a;Password={FAKE_DB_PASSWORD}"/>\n'
    )
    path = write_config(tmp_path, body)
    with pytest.raises(ConfigFileError) as caught:
        load(path, tmp_path)
    assert caught.value.line == 4
    assert caught.value.path == str(path)
    assert "OLE DB" in str(caught.value)
    assert FAKE_DB_PASSWORD not in str(caught.value)
    assert FAKE_DB_PASSWORD not in repr(caught.value)


def test_no_sql_server_driver_is_a_configuration_error(tmp_path: Path) -> None:
    body = config_with(
        connection_strings='<add name="WIC" connectionString="Server=sql01;Trusted_Connection=yes"/>'
    )
    with pytest.raises(ConfigFileError) as caught:
        load_global_config(write_config(tmp_path, body), env={"WICBOX_HOME": str(tmp_path)}, odbc_drivers=[])
    assert "ODBC Driver 18 for SQL Server" in str(caught.value)


def test_the_installed_drivers_are_asked_when_not_given(tmp_path: Path) -> None:
    # This machine has the PostgreSQL ODBC driver installed, so an ODBC string for it is accepted as is.
    body = config_with(
        connection_strings='<add name="WIC" connectionString="Driver={PostgreSQL Unicode};Server=127.0.0.1"/>'
    )
    config = load_global_config(write_config(tmp_path, body), env={"WICBOX_HOME": str(tmp_path)})
    assert isinstance(config.database, OdbcTarget)
    assert config.database.dialect == "postgresql"


# --------------------------------------------------------------------------- XML errors


@pytest.mark.parametrize(
    ("body", "line"),
    [
        ((DATA / "malformed.config").read_text(), 5),
        ("<configuration>\n<appSettings>\n<add key='a' value='b'/>\n</appsettings>\n</configuration>", 4),
        ("<configuration>\n\n<add key='a' value='&undefined;'/>\n</configuration>", 3),
        ("", 1),
        ("<configuration/>\n<second/>", 2),
        ('<?xml version="1.0" encoding="utf-16"?>\n<configuration/>', 1),  # declared utf-16, saved as utf-8
    ],
)
def test_malformed_xml_names_path_and_line(tmp_path: Path, body: str, line: int) -> None:
    path = write_config(tmp_path, body)
    with pytest.raises(ConfigFileError) as caught:
        load(path, tmp_path)
    assert caught.value.line == line
    assert caught.value.path == str(path)
    assert "not well-formed XML" in str(caught.value)


@pytest.mark.parametrize(("sample", "line"), [("billion-laughs.config", 2), ("external-entity.config", 2)])
def test_dtd_and_entities_are_refused(tmp_path: Path, sample: str, line: int) -> None:
    with pytest.raises(ConfigFileError) as caught:
        load(DATA / sample, tmp_path)
    assert caught.value.line == line
    assert "DTD" in str(caught.value)
    assert "lol" not in str(caught.value)


def test_internal_entity_without_doctype_handler_is_still_refused(tmp_path: Path) -> None:
    body = '<!DOCTYPE c [<!ENTITY x "y">]>\n<configuration/>'
    with pytest.raises(ConfigFileError, match="DTD"):
        load(write_config(tmp_path, body), tmp_path)


def test_wrong_root_element(tmp_path: Path) -> None:
    with pytest.raises(ConfigFileError) as caught:
        load(write_config(tmp_path, "<settings/>"), tmp_path)
    assert "<settings>" in str(caught.value)
    assert "<configuration>" in str(caught.value)


def test_missing_file_names_path_and_os_reason(tmp_path: Path) -> None:
    path = tmp_path / "gone.config"
    with pytest.raises(ConfigFileError) as caught:
        load(path, tmp_path)
    assert str(path) in str(caught.value)
    assert os.strerror(2) in str(caught.value)


def test_unreadable_path_gives_os_reason(tmp_path: Path) -> None:
    (tmp_path / "plain-file").write_text("")
    path = tmp_path / "plain-file" / "WicGlobal.config"
    with pytest.raises(ConfigFileError) as caught:
        load(path, tmp_path)
    assert os.strerror(20) in str(caught.value)  # ENOTDIR: "Not a directory"
    assert str(path) in str(caught.value)


def test_directory_instead_of_file_gives_os_reason(tmp_path: Path) -> None:
    with pytest.raises(ConfigFileError) as caught:
        load(tmp_path, tmp_path)
    assert str(tmp_path) in str(caught.value)
    assert "cannot read" in str(caught.value)


def test_errors_are_configuration_errors() -> None:
    assert issubclass(ConfigFileError, ConfigurationError)


# --------------------------------------------------------------------------- locating


@pytest.fixture
def places(tmp_path: Path) -> dict[str, Path]:
    dirs = {name: tmp_path / name for name in ("cwd", "exe", "elsewhere")}
    for directory in dirs.values():
        directory.mkdir()
    return dirs


def touch(path: Path) -> Path:
    path.write_text("<configuration/>")
    return path


@pytest.mark.parametrize(
    ("explicit", "env_value", "files", "expected_source", "expected_dir"),
    [
        ("elsewhere/a.config", "elsewhere/b.config", ["cwd", "exe"], ConfigSource.OPTION, "elsewhere"),
        (None, "elsewhere/b.config", ["cwd", "exe"], ConfigSource.ENVIRONMENT, "elsewhere"),
        (None, "   ", ["cwd", "exe"], ConfigSource.WORKING_DIRECTORY, "cwd"),
        (None, None, ["cwd", "exe"], ConfigSource.WORKING_DIRECTORY, "cwd"),
        (None, None, ["exe"], ConfigSource.EXECUTABLE_DIRECTORY, "exe"),
        (None, None, [], ConfigSource.EMBEDDED, None),
    ],
)
def test_locate_order(
    tmp_path: Path,
    places: dict[str, Path],
    explicit: str | None,
    env_value: str | None,
    files: list[str],
    expected_source: ConfigSource,
    expected_dir: str | None,
) -> None:
    touch(places["elsewhere"] / "a.config")
    touch(places["elsewhere"] / "b.config")
    for name in files:
        touch(places[name] / "WicGlobal.config")
    env = {
        "WICBOX_CONFIG": str(tmp_path / env_value) if env_value and env_value.strip() else (env_value or "")
    }
    location = locate_config(tmp_path / explicit if explicit else None, env, places["cwd"], places["exe"])
    assert location.source is expected_source
    if expected_dir is None:
        assert location == ConfigLocation(None, ConfigSource.EMBEDDED)
    else:
        assert location.path is not None
        assert location.path.parent == places[expected_dir]


def test_relative_explicit_path_is_relative_to_cwd(places: dict[str, Path]) -> None:
    touch(places["cwd"] / "mine.config")
    location = locate_config(Path("mine.config"), {}, places["cwd"], places["exe"])
    assert location.path == places["cwd"] / "mine.config"


@pytest.mark.parametrize(("use_option", "origin"), [(True, "--config"), (False, "WICBOX_CONFIG")])
def test_missing_explicit_or_env_path_names_path_and_origin(
    places: dict[str, Path], use_option: bool, origin: str
) -> None:
    touch(places["cwd"] / "WicGlobal.config")  # must not be used as a silent fallback
    missing = places["elsewhere"] / "nope.config"
    explicit = missing if use_option else None
    env = {} if use_option else {"WICBOX_CONFIG": str(missing)}
    with pytest.raises(ConfigFileError) as caught:
        locate_config(explicit, env, places["cwd"], places["exe"])
    assert str(missing) in str(caught.value)
    assert origin in str(caught.value)


def test_directory_as_explicit_path(places: dict[str, Path]) -> None:
    with pytest.raises(ConfigFileError, match="directory"):
        locate_config(places["elsewhere"], {}, places["cwd"], places["exe"])


def test_location_is_shown_readably(places: dict[str, Path]) -> None:
    path = touch(places["exe"] / "WicGlobal.config")
    location = locate_config(None, {}, places["cwd"], places["exe"])
    assert f"{location.source}" == "next to the executable"
    assert location.describe() == f"{path} (from next to the executable)"
    assert "embedded" in ConfigLocation(None, ConfigSource.EMBEDDED).describe()


# --------------------------------------------------------------------------- attacks on the file


@pytest.mark.parametrize(
    "source",
    [
        "../outside.config",
        "sub/../../outside.config",
        "..\\outside.config",
        "/etc/outside.config",
        "C:\\x.config",
    ],
)
def test_config_source_cannot_leave_the_folder(tmp_path: Path, source: str) -> None:
    # Attack: configSource points at a connection string file of someone else's choosing.
    folder = tmp_path / "wic"
    folder.mkdir()
    (folder / "sub").mkdir()
    (tmp_path / "outside.config").write_text(
        '<connectionStrings><add name="WIC" connectionString="sqlite:///evil.db"/></connectionStrings>'
    )
    path = write_config(
        folder, f'<configuration><connectionStrings configSource="{source}"/></configuration>'
    )
    with pytest.raises(ConfigFileError) as caught:
        load(path, tmp_path)
    assert caught.value.exit_code is ExitCode.CONFIGURATION
    assert "inside the configuration file's folder" in str(caught.value)


def test_config_source_cannot_follow_a_link_out_of_the_folder(tmp_path: Path) -> None:
    folder = tmp_path / "wic"
    folder.mkdir()
    outside = tmp_path / "outside.config"
    outside.write_text(
        '<connectionStrings><add name="WIC" connectionString="sqlite:///evil.db"/></connectionStrings>'
    )
    (folder / "cs.config").symlink_to(outside)
    path = write_config(
        folder, '<configuration><connectionStrings configSource="cs.config"/></configuration>'
    )
    with pytest.raises(ConfigFileError, match="no link that leads out"):
        load(path, tmp_path)


def test_config_source_inside_the_folder_is_followed(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "cs.config").write_text(
        '<connectionStrings><add name="WIC" connectionString="sqlite:///in.db"/></connectionStrings>'
    )
    path = write_config(
        tmp_path, '<configuration><connectionStrings configSource="sub/cs.config"/></configuration>'
    )
    assert load(path, tmp_path).database == SqliteTarget(tmp_path / "sub" / "in.db")


PROTECTED = """<configuration>
  <connectionStrings configProtectionProvider="DataProtectionConfigurationProvider">
    <EncryptedData><CipherData><CipherValue>AQAAANCMnd8BFdERjHoAwE/Cl+sBAAAA</CipherValue></CipherData></EncryptedData>
  </connectionStrings>
</configuration>"""


def test_a_protected_connection_string_is_a_configuration_error_not_the_embedded_database(
    tmp_path: Path,
) -> None:
    with pytest.raises(ConfigFileError) as caught:
        load(write_config(tmp_path, PROTECTED), tmp_path)
    assert caught.value.exit_code is ExitCode.CONFIGURATION
    assert caught.value.line == 2
    assert "configProtectionProvider" in str(caught.value)
    assert "AQAAANCMnd8" not in str(caught.value)


def test_allowed_hosts_and_ca_bundle_come_from_app_settings(tmp_path: Path) -> None:
    settings = (
        '<add key="WicBoxAllowedHosts" value=" IMAP.Example.org ; 127.0.0.5;;[::1] "/>'
        '<add key="WicBoxCaBundle" value="certs\\ca.pem"/>'
    )
    config = load(write_config(tmp_path, config_with(app_settings=settings)), tmp_path)
    assert config.endpoints.allowed_hosts == frozenset({"imap.example.org", "127.0.0.5", "::1"})
    assert config.endpoints.ca_bundle == tmp_path / "certs\\ca.pem"


@pytest.mark.parametrize("entry", ["*.example.org", "imap.example.org.", "https://x.example", "x:993", "u@x"])
def test_allowed_hosts_refuses_what_is_not_a_plain_host(tmp_path: Path, entry: str) -> None:
    settings = f'<add key="WicBoxAllowedHosts" value="ok.example;{entry}"/>'
    with pytest.raises(ConfigFileError, match="WicBoxAllowedHosts") as caught:
        load(write_config(tmp_path, config_with(app_settings=settings)), tmp_path)
    assert caught.value.exit_code is ExitCode.CONFIGURATION
