"""`wicbox schedule`'s pure generators: task XML, systemd units, cron line, command lines (tables).

The systemd units are checked for real by `systemd-analyze verify`, and the cron line's command is
run for real by the shell (against a paused configuration, so it ends at once).
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from tests.clihelp import write_config
from wicbox_bridge.config.paths import state_dir_for
from wicbox_bridge.errors import ConfigurationError
from wicbox_bridge.schedule.commandline import CommandLine
from wicbox_bridge.schedule.cron import cron_command, cron_line, cron_notes
from wicbox_bridge.schedule.host import foreign_platform_problem, host_platform
from wicbox_bridge.schedule.pause import pause_runs
from wicbox_bridge.schedule.plan import plan_json, plan_text, systemd_plan, windows_plan
from wicbox_bridge.schedule.relay import RelaySpec, check_relay_files, relay_task_name
from wicbox_bridge.schedule.spec import (
    Logon,
    Platform,
    Program,
    ScheduleSpec,
    default_task_name,
    default_time_limit,
    installed_program,
)
from wicbox_bridge.schedule.systemd import (
    daemon_reload,
    disable_timer,
    enable_timer,
    exec_start,
    quote_word,
    relay_is_active,
    relay_unit,
    relay_unit_name,
    service_unit,
    start_relay,
    stop_relay,
    stop_service,
    timer_unit,
    unit_base,
    user_unit_dir,
)
from wicbox_bridge.schedule.timing import accuracy_seconds, cron_schedule, iso_duration, systemd_calendar
from wicbox_bridge.schedule.windows import (
    TASK_NAMESPACE,
    InstalledTask,
    installed_task,
    schtasks_create,
    schtasks_delete,
    schtasks_disable,
    schtasks_enable,
    schtasks_end,
    schtasks_query,
    schtasks_query_xml,
    schtasks_run,
    task_arguments,
    task_xml,
    task_xml_bytes,
    windows_quote,
)
from wicbox_bridge.secret import Secret

NS = {"t": TASK_NAMESPACE}
WIN_CONFIG = "D:\\WIC Klant\\WicGlobal.config"
WIN_PROGRAM = Program("C:\\Program Files\\wicbox\\wicbox.exe")
START = dt.datetime(2024, 3, 1, 8, 30)  # local time, as Task Scheduler keeps it


def win_spec(**changes: object) -> ScheduleSpec:
    values: dict[str, object] = {
        "name": "WICBOX",
        "config_path": WIN_CONFIG,
        "program": WIN_PROGRAM,
        "run_as": "KLANT\\svc-wicbox",
        "start_boundary": START,
    }
    values.update(changes)
    return ScheduleSpec(**values)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- timing


@pytest.mark.parametrize(
    ("minutes", "expected"),
    [(1, "PT1M"), (5, "PT5M"), (59, "PT59M"), (60, "PT1H"), (90, "PT1H30M"), (120, "PT2H"), (1440, "P1D")],
)
def test_iso_duration(minutes: int, expected: str) -> None:
    assert iso_duration(minutes) == expected


@pytest.mark.parametrize(
    ("minutes", "calendar", "cron"),
    [
        (1, "*-*-* *:00/1:00", "* * * * *"),
        (5, "*-*-* *:00/5:00", "*/5 * * * *"),
        (7, None, "*/7 * * * *"),
        (30, "*-*-* *:00/30:00", "*/30 * * * *"),
        (60, "*-*-* 00/1:00:00", "0 * * * *"),
        (90, None, None),
        (120, "*-*-* 00/2:00:00", "0 */2 * * *"),
        (300, None, None),  # 5 hours do not divide a day
        (480, "*-*-* 00/8:00:00", "0 */8 * * *"),
        (1440, "*-*-* 00:00:00", "0 0 * * *"),
    ],
)
def test_calendar_and_cron_schedules(minutes: int, calendar: str | None, cron: str | None) -> None:
    assert systemd_calendar(minutes) == calendar
    assert cron_schedule(minutes) == cron


@pytest.mark.parametrize(
    ("every", "limit", "accuracy"),
    [(1, 10, 6), (2, 10, 12), (5, 20, 30), (15, 60, 60), (60, 120, 60), (1440, 120, 60)],
)
def test_time_limit_and_accuracy_follow_the_interval(every: int, limit: int, accuracy: int) -> None:
    assert default_time_limit(every) == limit
    assert accuracy_seconds(every) == accuracy
    assert win_spec(every_minutes=every).time_limit_minutes == limit


# --------------------------------------------------------------------------- the specification


@pytest.mark.parametrize(
    ("changes", "words"),
    [
        ({"every_minutes": 0}, ["--every 0", "1 to 1440 minutes"]),
        ({"every_minutes": 1441}, ["--every 1441", "1 to 1440"]),
        ({"time_limit_minutes": 1441}, ["--time-limit 1441"]),
        ({"name": "WIC BOX"}, ["--name 'WIC BOX'", "letters, digits"]),
        ({"name": "-x"}, ["--name '-x'"]),
        ({"name": "a" * 65}, ["1 to 64"]),
        ({"config_path": "D:\\WIC\nX\\WicGlobal.config"}, ["configuration path", "control character"]),
    ],
)
def test_spec_refuses_what_no_scheduler_can_take(changes: dict[str, object], words: list[str]) -> None:
    with pytest.raises(ConfigurationError) as caught:
        win_spec(**changes)
    for word in words:
        assert word in caught.value.message
    assert caught.value.fix


@pytest.mark.parametrize(
    ("config", "working_dir"),
    [
        ("D:\\WIC Klant\\WicGlobal.config", "D:\\WIC Klant"),
        ("C:\\WicGlobal.config", "C:\\"),
        ("\\\\server\\share\\WIC\\WicGlobal.config", "\\\\server\\share\\WIC"),
        ("/srv/wic/WicGlobal.config", "/srv/wic"),
        ("/WicGlobal.config", "/"),
    ],
)
def test_working_directory_is_the_configurations_folder(config: str, working_dir: str) -> None:
    assert win_spec(config_path=config).working_dir == working_dir


@pytest.mark.parametrize(
    ("config", "executable_dir", "expected"),
    [
        (Path("/opt/wic/WicGlobal.config"), Path("/opt/wic"), "WICBOX"),
        (Path("/srv/WIC Klant A/WicGlobal.config"), Path("/opt/venv/bin"), "WICBOX-WIC-Klant-A-"),
        (Path("/srv/wic-test/WicGlobal.config"), Path("/opt/venv/bin"), "WICBOX-wic-test-"),
        (Path("/srv/___/WicGlobal.config"), Path("/opt/venv/bin"), "WICBOX-config-"),
    ],
)
def test_default_task_name(config: Path, executable_dir: Path, expected: str) -> None:
    name = default_task_name(config, executable_dir)
    if expected == "WICBOX":
        assert name == "WICBOX"
    else:
        assert name.startswith(expected)
        assert len(name) == len(expected) + 6
        win_spec(name=name)  # a valid task and unit name


def test_default_task_names_differ_per_configuration_and_are_stable() -> None:
    first = default_task_name(Path("/srv/a/wic/WicGlobal.config"), Path("/opt/bin"))
    second = default_task_name(Path("/srv/b/wic/WicGlobal.config"), Path("/opt/bin"))
    assert first != second
    assert first == default_task_name(Path("/srv/a/wic/WicGlobal.config"), Path("/opt/bin"))


def test_installed_program_is_this_installations_wicbox() -> None:
    program = installed_program()
    assert Path(program.executable).is_absolute()
    assert Path(program.executable).is_file()
    completed = subprocess.run(
        [*program.argv("x")[:-3], "--version"], capture_output=True, text=True, check=False
    )
    assert completed.returncode == 0, completed.stderr
    assert "wicbox" in completed.stdout


# --------------------------------------------------------------------------- Windows


@pytest.mark.parametrize(
    ("argument", "always", "expected"),
    [
        ("run", False, "run"),
        ("run", True, '"run"'),
        ("D:\\WIC Klant\\WicGlobal.config", True, '"D:\\WIC Klant\\WicGlobal.config"'),
        ("C:\\a b\\", False, '"C:\\a b\\\\"'),  # a trailing backslash must not escape the closing quote
        ('say "hi"', False, '"say \\"hi\\""'),
        ('a\\"b', False, '"a\\\\\\"b"'),
        ("", False, '""'),
    ],
)
def test_windows_quote(argument: str, always: bool, expected: str) -> None:
    assert windows_quote(argument, always=always) == expected


def test_task_arguments_quote_the_config_and_keep_a_module_launch() -> None:
    assert task_arguments(win_spec()) == '--config "D:\\WIC Klant\\WicGlobal.config" run'
    module = win_spec(program=Program("C:\\Python 3\\python.exe", ("-m", "wicbox_bridge")))
    assert task_arguments(module) == '-m wicbox_bridge --config "D:\\WIC Klant\\WicGlobal.config" run'


def _parsed(spec: ScheduleSpec) -> ET.Element:
    data = task_xml_bytes(spec)
    assert data.startswith(b"\xff\xfe")  # UTF-16 little-endian with its byte-order mark
    assert data.decode("utf-16").lstrip("\ufeff").startswith('<?xml version="1.0" encoding="UTF-16"?>')
    return ET.fromstring(data)


def _text(root: ET.Element, path: str) -> str | None:
    element = root.find(path, NS)
    return None if element is None else element.text


def test_task_xml_schedule_settings_and_action() -> None:
    root = _parsed(win_spec(every_minutes=10))
    assert root.tag == f"{{{TASK_NAMESPACE}}}Task"
    assert root.get("version") == "1.2"
    trigger = root.find("t:Triggers/t:TimeTrigger", NS)
    assert trigger is not None
    assert [child.tag.split("}")[1] for child in trigger] == ["Enabled", "StartBoundary", "Repetition"]
    assert _text(trigger, "t:StartBoundary") == "2024-03-01T08:30:00"
    assert _text(trigger, "t:Repetition/t:Interval") == "PT10M"
    assert trigger.find("t:Repetition/t:Duration", NS) is None  # indefinitely
    expected_settings = {
        "MultipleInstancesPolicy": "IgnoreNew",
        "DisallowStartIfOnBatteries": "false",
        "StopIfGoingOnBatteries": "false",
        "StartWhenAvailable": "true",
        "Enabled": "true",
        "ExecutionTimeLimit": "PT40M",
    }
    for tag, value in expected_settings.items():
        assert _text(root, f"t:Settings/t:{tag}") == value, tag
    actions = root.find("t:Actions", NS)
    assert actions is not None
    assert actions.get("Context") == root.find("t:Principals/t:Principal", NS).get("id")  # type: ignore[union-attr]
    assert _text(actions, "t:Exec/t:Command") == "C:\\Program Files\\wicbox\\wicbox.exe"
    assert _text(actions, "t:Exec/t:Arguments") == '--config "D:\\WIC Klant\\WicGlobal.config" run'
    assert _text(actions, "t:Exec/t:WorkingDirectory") == "D:\\WIC Klant"
    assert _text(root, "t:RegistrationInfo/t:URI") == "\\WICBOX"


@pytest.mark.parametrize(
    ("logon", "highest", "user_id", "logon_type", "run_level"),
    [
        (Logon.PASSWORD, False, "KLANT\\svc-wicbox", "Password", "LeastPrivilege"),
        (Logon.PASSWORD, True, "KLANT\\svc-wicbox", "Password", "HighestAvailable"),
        (Logon.S4U, False, "KLANT\\svc-wicbox", "S4U", "LeastPrivilege"),
        (Logon.SYSTEM, False, "S-1-5-18", None, "HighestAvailable"),
    ],
)
def test_task_principal(
    logon: Logon, highest: bool, user_id: str, logon_type: str | None, run_level: str
) -> None:
    root = _parsed(win_spec(logon=logon, highest=highest, time_limit_minutes=45))
    principal = "t:Principals/t:Principal"
    assert _text(root, f"{principal}/t:UserId") == user_id
    assert _text(root, f"{principal}/t:LogonType") == logon_type
    assert _text(root, f"{principal}/t:RunLevel") == run_level
    assert _text(root, "t:Settings/t:ExecutionTimeLimit") == "PT45M"


def test_task_xml_escapes_every_text() -> None:
    hostile = "D:\\R&D <\"test\"> 'x'\\WicGlobal.config"
    spec = win_spec(config_path=hostile, run_as="KLANT\\o'brien&co")
    text = task_xml(spec)
    assert "R&amp;D &lt;" in text
    root = _parsed(spec)
    assert (
        _text(root, "t:Exec/t:WorkingDirectory".replace("t:Exec", "t:Actions/t:Exec"))
        == "D:\\R&D <\"test\"> 'x'"
    )
    assert (
        _text(root, "t:Actions/t:Exec/t:Arguments")
        == '--config "D:\\R&D <\\"test\\"> \'x\'\\WicGlobal.config" run'
    )
    assert _text(root, "t:Principals/t:Principal/t:UserId") == "KLANT\\o'brien&co"


def test_schtasks_command_lines() -> None:
    spec = win_spec()
    password = Secret("Geheim-Wachtwoord-42")
    create = schtasks_create(spec, "C:\\Temp\\t.xml", password, force=False)
    assert create.revealed() == [
        "schtasks",
        "/Create",
        "/TN",
        "WICBOX",
        "/XML",
        "C:\\Temp\\t.xml",
        "/RU",
        "KLANT\\svc-wicbox",
    ]  # fmt: skip  (no /RP: the password goes to schtasks' own prompt, never into its arguments)
    assert create.stdin is password
    assert "Geheim" not in create.display()
    assert "Geheim" not in repr(create)
    assert create.display().endswith("/RU KLANT\\svc-wicbox (password on its standard input)")
    assert schtasks_create(spec, "t.xml", password, force=True).revealed()[-1] == "/F"
    for logon in (Logon.S4U, Logon.SYSTEM):  # the principal is in the XML: no /RU, no /RP
        command = schtasks_create(win_spec(logon=logon), "t.xml", None, force=False)
        assert command.revealed() == ["schtasks", "/Create", "/TN", "WICBOX", "/XML", "t.xml"]
        assert command.stdin is None
    assert schtasks_query("WICBOX").revealed() == ["schtasks", "/Query", "/TN", "WICBOX"]
    assert schtasks_delete("WICBOX").revealed() == ["schtasks", "/Delete", "/TN", "WICBOX", "/F"]
    assert schtasks_disable("WICBOX").revealed() == ["schtasks", "/Change", "/TN", "WICBOX", "/DISABLE"]
    assert schtasks_enable("WICBOX").revealed() == ["schtasks", "/Change", "/TN", "WICBOX", "/ENABLE"]
    assert schtasks_end("WICBOX").revealed() == ["schtasks", "/End", "/TN", "WICBOX"]


def test_windows_plan_grants_the_task_account_its_state_directory_first() -> None:
    state_dir = Path("C:/ProgramData/wicbox-bridge/state/0123456789ab")
    grant, create = windows_plan(win_spec(), state_dir).commands
    assert grant.revealed() == ["icacls", str(state_dir), "/grant", "KLANT\\svc-wicbox:(OI)(CI)M", "/T", "/Q"]
    assert create.revealed()[:2] == ["schtasks", "/Create"]
    s4u = windows_plan(win_spec(logon=Logon.S4U), state_dir).commands
    assert [command.revealed()[0] for command in s4u] == ["icacls", "schtasks"]
    system = windows_plan(win_spec(logon=Logon.SYSTEM), state_dir).commands
    assert [command.revealed()[0] for command in system] == ["schtasks"]  # LocalSystem has full control


def test_windows_plan_shows_the_xml_and_never_a_password() -> None:
    plan = windows_plan(win_spec(), Path("C:/ProgramData/wicbox-bridge/state/x"))
    text = "\n".join(plan_text(plan))
    assert "<temporary file>" in text
    assert "<Interval>PT5M</Interval>" in text
    assert "/RU KLANT\\svc-wicbox (password on its standard input)" in text
    assert "/RP" not in text
    assert "password of KLANT\\svc-wicbox" in text
    assert plan_json(plan)["files"][0]["content"] == task_xml(win_spec())


# --------------------------------------------------------------------------- systemd


@pytest.mark.parametrize(
    ("word", "dollar", "expected"),
    [
        ("run", True, "run"),
        ("/srv/wic/WicGlobal.config", True, "/srv/wic/WicGlobal.config"),
        ("/srv/WIC Klant/WicGlobal.config", True, '"/srv/WIC Klant/WicGlobal.config"'),
        ("/srv/100%/x", True, "/srv/100%%/x"),
        ("/srv/$HOME/x", True, "/srv/$$HOME/x"),
        ("/srv/$HOME/x", False, "/srv/$HOME/x"),
        ('/srv/a"b\\c', True, '"/srv/a\\"b\\\\c"'),
        ("a;b", True, '"a;b"'),
        ("", True, '""'),
    ],
)
def test_systemd_quoting(word: str, dollar: bool, expected: str) -> None:
    assert quote_word(word, dollar=dollar) == expected


def test_exec_start_keeps_dollars_in_the_program_path() -> None:
    assert (
        exec_start(("/opt/a$b/wicbox", "--config", "/x/$y", "run")) == "/opt/a$b/wicbox --config /x/$$y run"
    )


def linux_spec(config: str, **changes: object) -> ScheduleSpec:
    values: dict[str, object] = {"name": "WICBOX-Test", "config_path": config, "program": installed_program()}
    values.update(changes)
    return ScheduleSpec(**values)  # type: ignore[arg-type]


def test_service_and_timer_content() -> None:
    spec = linux_spec(
        "/srv/wic/WicGlobal.config", run_as="wic", every_minutes=5, wicbox_home="/var/lib/wicbox"
    )
    service = service_unit(spec, user_units=False)
    assert "Type=oneshot" in service
    assert f"ExecStart={installed_program().executable} --config /srv/wic/WicGlobal.config run" in service
    assert "WorkingDirectory=/srv/wic\n" in service
    assert "User=wic\n" in service
    assert "Environment=WICBOX_HOME=/var/lib/wicbox\n" in service
    assert "TimeoutStartSec=20min\n" in service
    assert "Restart=no\n" in service
    assert "After=network-online.target" in service
    user_service = service_unit(spec, user_units=True)
    assert "User=" not in user_service
    assert "network-online" not in user_service
    timer = timer_unit(spec)
    assert "OnCalendar=*-*-* *:00/5:00\n" in timer
    assert "Persistent=true\n" in timer
    assert "AccuracySec=30s\n" in timer
    assert "Unit=wicbox-test.service\n" in timer
    assert "WantedBy=timers.target" in timer
    monotonic = timer_unit(linux_spec("/srv/wic/WicGlobal.config", every_minutes=90))
    assert "OnActiveSec=1min\nOnUnitActiveSec=90min\n" in monotonic
    assert "OnCalendar" not in monotonic


def test_systemctl_command_lines() -> None:
    assert daemon_reload(user_units=False).revealed() == ["systemctl", "daemon-reload"]
    assert daemon_reload(user_units=True).revealed() == ["systemctl", "--user", "daemon-reload"]
    assert enable_timer("WICBOX", user_units=False).revealed() == [
        "systemctl",
        "enable",
        "--now",
        "wicbox.timer",
    ]
    assert disable_timer("WICBOX-x", user_units=True).revealed() == [
        "systemctl", "--user", "disable", "--now", "wicbox-x.timer",
    ]  # fmt: skip
    assert stop_service("WICBOX", user_units=False).revealed() == ["systemctl", "stop", "wicbox.service"]
    assert unit_base("WICBOX-Klant") == "wicbox-klant"


def test_user_unit_dir() -> None:
    assert user_unit_dir({}, Path("/home/wic")) == Path("/home/wic/.config/systemd/user")
    assert user_unit_dir({"XDG_CONFIG_HOME": "/cfg"}, Path("/home/wic")) == Path("/cfg/systemd/user")


def _awkward_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "WIC Klant 100% $HOME \"q\" 'a' \\b"
    folder.mkdir()
    config = folder / "WicGlobal.config"
    config.write_text("<configuration/>", encoding="utf-8")
    return config


@pytest.mark.parametrize(("every", "user_units"), [(5, False), (90, False), (1440, True)])
def test_systemd_analyze_verifies_the_units(tmp_path: Path, every: int, user_units: bool) -> None:
    analyze = shutil.which("systemd-analyze")
    assert analyze is not None, "systemd-analyze is part of Debian's systemd package"
    config = _awkward_folder(tmp_path)
    spec = linux_spec(str(config), every_minutes=every, run_as=None if user_units else "root",
                      wicbox_home=str(tmp_path / "home 50%"))  # fmt: skip
    units = tmp_path / "units"
    relay = RelaySpec(listen="[::]:2525", tls_cert=str(config.parent / "relay 100%.pem"),
                      tls_key=str(config.parent / "relay $KEY.pem"), allow_remote=True)  # fmt: skip
    plan = systemd_plan(spec, units, user_units=user_units, relay=relay)
    for planned in plan.files:
        Path(planned.path).parent.mkdir(parents=True, exist_ok=True)
        Path(planned.path).write_bytes(planned.data)
    argv = [analyze, *(["--user"] if user_units else []), "verify", *(f.path for f in plan.files)]
    runtime_dir = tmp_path / "runtime"  # the user manager's own directory, which a user session has
    runtime_dir.mkdir(mode=0o700)
    env = {**os.environ, "XDG_RUNTIME_DIR": str(runtime_dir)}
    completed = subprocess.run(argv, capture_output=True, text=True, check=False, env=env)
    assert completed.returncode == 0, completed.stderr
    assert "wicbox" not in completed.stderr, completed.stderr  # no complaint about our units
    assert [Path(f.path).name for f in plan.files] == [
        "wicbox-test.service",
        "wicbox-test.timer",
        "wicbox-test-relay.service",
    ]


def test_systemd_analyze_catches_a_broken_unit(tmp_path: Path) -> None:
    """The check above can fail: the same verify refuses unbalanced quoting and unknown settings."""
    config = _awkward_folder(tmp_path)
    service = service_unit(linux_spec(str(config)), user_units=False).replace('"run', "run")
    broken = service.replace('--config "', '--config "x', 1).replace('WicGlobal.config"', "WicGlobal.config")
    path = tmp_path / "wicbox-broken.service"
    path.write_text(broken, encoding="utf-8")
    completed = subprocess.run(
        ["systemd-analyze", "verify", str(path)], capture_output=True, text=True, check=False
    )
    assert completed.returncode != 0
    relay = relay_unit(linux_spec(str(config), run_as="root"), RelaySpec(), user_units=False)
    unknown = tmp_path / "wicbox-broken-relay.service"
    unknown.write_text(relay.replace("ProtectSystem=strict", "ProtectSystem=fully"), encoding="utf-8")
    warned = subprocess.run(
        ["systemd-analyze", "verify", str(unknown)], capture_output=True, text=True, check=False
    )
    assert "wicbox-broken-relay.service" in warned.stderr  # what the check above looks for
    assert "fully" in warned.stderr


# --------------------------------------------------------------------------- cron


def test_cron_line_escapes_percent_and_redirects_output() -> None:
    spec = linux_spec("/srv/WIC 100%/WicGlobal.config", every_minutes=10)
    line = cron_line(spec, "/var/log/wicbox.log")
    assert line.startswith("*/10 * * * * cd '/srv/WIC 100\\%' && timeout --kill-after=1m 40m ")
    assert "--config '/srv/WIC 100\\%/WicGlobal.config' run >>/var/log/wicbox.log 2>&1" in line
    assert "%" not in line.replace("\\%", "")
    assert cron_notes(spec) == ()
    assert (
        "last gap of each hour is 4 minutes"
        in cron_notes(linux_spec("/x/WicGlobal.config", every_minutes=7))[0]
    )


def test_cron_refuses_an_interval_it_cannot_keep() -> None:
    with pytest.raises(ConfigurationError) as caught:
        cron_line(linux_spec("/x/WicGlobal.config", every_minutes=90), "/x/log")
    assert "every 90 minutes" in caught.value.message
    assert "--platform systemd" in (caught.value.fix or "")


def test_cron_command_runs_for_real_and_respects_the_pause(tmp_path: Path) -> None:
    """The command of the line, as cron's shell runs it: the paused run ends at once with exit 0."""
    config = _awkward_folder(tmp_path)
    write_config(config, f"sqlite:///{tmp_path / 'wic.db'}")
    home = tmp_path / "home 100%"
    spec = linux_spec(str(config), wicbox_home=str(home))
    state_dir = state_dir_for(config, env={"WICBOX_HOME": str(home)})
    pause_runs(state_dir, at=dt.datetime(2024, 3, 1, 9, 0, tzinfo=dt.timezone.utc), by="admin on srv")
    log = tmp_path / "cron 100%.log"
    line = cron_line(spec, str(log))
    command = line.split(" ", 5)[5].replace("\\%", "%")  # what cron hands to the shell
    assert command == cron_command(spec, str(log))
    completed = subprocess.run(
        ["/bin/sh", "-c", command], capture_output=True, text=True, check=False, timeout=60
    )
    assert completed.returncode == 0, log.read_text(encoding="utf-8") if log.exists() else completed.stderr
    assert "paused by `wicbox schedule stop` at 2024-03-01 09:00:00+00:00 by admin on srv" in log.read_text(
        encoding="utf-8"
    )


# --------------------------------------------------------------------------- platforms


@pytest.mark.parametrize(
    ("requested", "host", "problem"),
    [
        (Platform.WINDOWS, Platform.WINDOWS, None),
        (Platform.SYSTEMD, Platform.SYSTEMD, None),
        (Platform.CRON, Platform.CRON, None),
        (Platform.CRON, Platform.SYSTEMD, None),
        (Platform.WINDOWS, Platform.CRON, "only be changed on Windows"),
        (Platform.WINDOWS, Platform.SYSTEMD, "only be changed on Windows"),
        (Platform.SYSTEMD, Platform.CRON, "systemd is not running"),
        (Platform.SYSTEMD, Platform.WINDOWS, "not a Windows scheduler"),
        (Platform.CRON, Platform.WINDOWS, "not a Windows scheduler"),
    ],
)
def test_foreign_platforms(requested: Platform, host: Platform, problem: str | None) -> None:
    found = foreign_platform_problem(requested, host)
    assert found == problem if problem is None else problem in (found or "")


def test_host_platform(tmp_path: Path) -> None:
    assert host_platform("win32") is Platform.WINDOWS
    assert host_platform("linux", tmp_path / "missing") is Platform.CRON
    assert host_platform("linux", tmp_path) is Platform.SYSTEMD


def test_command_line_display_quotes_for_reading() -> None:
    line = CommandLine(
        ("schtasks", "/TN", "WICBOX", "/XML", "C:\\Temp dir\\t.xml", "/RU", "a b", "<temporary file>")
    )
    assert line.display() == "schtasks /TN WICBOX /XML \"C:\\Temp dir\\t.xml\" /RU 'a b' <temporary file>"


# --------------------------------------------------------------------------- the relay service

REMOTE_RELAY = RelaySpec(
    listen="0.0.0.0:2525",
    tls_cert="D:\\certs\\R&D relay.pem",
    tls_key="D:\\certs\\relay.key",
    allow_remote=True,
)


@pytest.mark.parametrize(
    ("relay", "arguments"),
    [
        (RelaySpec(), ("relay", "--listen", "127.0.0.1:2525")),
        (RelaySpec(listen="[::1]:25"), ("relay", "--listen", "[::1]:25")),
        (RelaySpec(listen="localhost:2525", tls_cert="/c.pem", tls_key="/k.pem"),
         ("relay", "--listen", "localhost:2525", "--tls-cert", "/c.pem", "--tls-key", "/k.pem")),
        (REMOTE_RELAY, ("relay", "--listen", "0.0.0.0:2525", "--tls-cert", "D:\\certs\\R&D relay.pem",
                        "--tls-key", "D:\\certs\\relay.key", "--allow-remote")),
    ],
)  # fmt: skip
def test_relay_arguments(relay: RelaySpec, arguments: tuple[str, ...]) -> None:
    assert relay.arguments == arguments


@pytest.mark.parametrize(
    ("changes", "words", "fix_words"),
    [
        ({"listen": "0.0.0.0:2525"}, ["--relay-listen 0.0.0.0:2525", "not a loopback"],
         ["--relay-allow-remote", "--relay-tls-cert FILE --relay-tls-key FILE", "127.0.0.1:2525"]),
        ({"listen": "10.1.2.3:2525", "allow_remote": True}, ["10.1.2.3 is not a loopback"],
         ["add --relay-tls-cert FILE --relay-tls-key FILE to"]),
        ({"listen": "[::]:2525", "tls_cert": "/c", "tls_key": "/k"}, [":: is not a loopback"],
         ["add --relay-allow-remote to"]),
        ({"listen": "relay.klant.be:2525"}, ["relay.klant.be is not a loopback"], ["--relay-allow-remote"]),
        ({"listen": "127.0.0.1"}, ["--relay-listen 127.0.0.1", "HOST:PORT"], ["127.0.0.1:2525"]),
        ({"listen": "127.0.0.1:0"}, ["1 to 65535"], ["[::1]:2525"]),
        ({"listen": ":2525"}, ["HOST:PORT"], []),
        ({"listen": "127.0.0.1:2525", "allow_remote": True}, ["no effect on the loopback"],
         ["leave --relay-allow-remote out"]),
        ({"tls_cert": "/c.pem"}, ["go together"], ["both files"]),
        ({"tls_key": "/k.pem"}, ["go together"], ["both files"]),
        ({"tls_cert": "/c\n.pem", "tls_key": "/k.pem"}, ["--relay-tls-cert", "control character"], []),
    ],
)  # fmt: skip
def test_relay_refuses_what_the_relay_would_refuse(
    changes: dict[str, object], words: list[str], fix_words: list[str]
) -> None:
    with pytest.raises(ConfigurationError) as caught:
        RelaySpec(**changes)  # type: ignore[arg-type]
    for word in words:
        assert word in caught.value.message
    assert caught.value.fix
    for word in fix_words:
        assert word in caught.value.fix


def test_relay_files_must_exist_at_install(tmp_path: Path) -> None:
    cert, key = tmp_path / "relay cert.pem", tmp_path / "relay.key"
    cert.write_text("cert", encoding="utf-8")
    relay = RelaySpec(listen="0.0.0.0:2525", tls_cert=str(cert), tls_key=str(key), allow_remote=True)
    with pytest.raises(ConfigurationError) as caught:
        check_relay_files(relay)
    assert caught.value.message == f"--relay-tls-key {key}: no such file"
    key.write_text("key", encoding="utf-8")
    check_relay_files(relay)


def test_relay_task_arguments_quote_every_path() -> None:
    assert task_arguments(win_spec(), REMOTE_RELAY) == (
        '--config "D:\\WIC Klant\\WicGlobal.config" relay --listen 0.0.0.0:2525 '
        '--tls-cert "D:\\certs\\R&D relay.pem" --tls-key "D:\\certs\\relay.key" --allow-remote'
    )
    module = win_spec(program=Program("C:\\Python 3\\python.exe", ("-m", "wicbox_bridge")))
    assert task_arguments(module, RelaySpec()) == (
        '-m wicbox_bridge --config "D:\\WIC Klant\\WicGlobal.config" relay --listen 127.0.0.1:2525'
    )


def test_relay_task_starts_at_boot_and_never_ends() -> None:
    spec = win_spec(config_path="D:\\WIC & Co\\WicGlobal.config")
    root = _parsed_relay(spec, REMOTE_RELAY)
    boot = root.find("t:Triggers/t:BootTrigger", NS)
    assert boot is not None
    assert [child.tag.split("}")[1] for child in boot] == ["Enabled"]
    assert _text(boot, "t:Enabled") == "true"
    watch = root.find("t:Triggers/t:TimeTrigger", NS)  # starts a relay that ended with an error again
    assert watch is not None
    assert _text(watch, "t:Repetition/t:Interval") == "PT5M"
    assert watch.find("t:Repetition/t:Duration", NS) is None
    settings = {
        "MultipleInstancesPolicy": "IgnoreNew",
        "ExecutionTimeLimit": "PT0S",
        "RestartOnFailure/t:Interval": "PT1M",
        "RestartOnFailure/t:Count": "255",
        "Enabled": "true",
    }
    for tag, value in settings.items():
        assert _text(root, f"t:Settings/t:{tag}") == value, tag
    assert _text(root, "t:Actions/t:Exec/t:Command") == "C:\\Program Files\\wicbox\\wicbox.exe"
    assert _text(root, "t:Actions/t:Exec/t:Arguments") == (
        '--config "D:\\WIC & Co\\WicGlobal.config" relay --listen 0.0.0.0:2525 '
        '--tls-cert "D:\\certs\\R&D relay.pem" --tls-key "D:\\certs\\relay.key" --allow-remote'
    )
    assert _text(root, "t:Actions/t:Exec/t:WorkingDirectory") == "D:\\WIC & Co"
    assert _text(root, "t:RegistrationInfo/t:URI") == "\\WICBOX-Relay"
    text = task_xml(spec, REMOTE_RELAY)
    assert '--config "D:\\WIC &amp; Co\\WicGlobal.config" relay' in text
    assert '"D:\\certs\\R&amp;D relay.pem"' in text


def _parsed_relay(spec: ScheduleSpec, relay: RelaySpec) -> ET.Element:
    data = task_xml_bytes(spec, relay)
    assert data.startswith(b"\xff\xfe")
    return ET.fromstring(data)


@pytest.mark.parametrize("logon", list(Logon))
def test_relay_task_runs_as_the_run_tasks_account(logon: Logon) -> None:
    spec = win_spec(logon=logon, highest=True)
    run, relay = _parsed(spec), _parsed_relay(spec, RelaySpec())
    principal = run.find("t:Principals/t:Principal", NS)
    assert principal is not None
    assert ET.tostring(principal) == ET.tostring(relay.find("t:Principals/t:Principal", NS))  # type: ignore[arg-type]


def test_installed_task_reads_what_schtasks_query_prints() -> None:
    spec = win_spec()
    installed = installed_task(task_xml(spec, REMOTE_RELAY))
    assert installed == InstalledTask(
        '"C:\\Program Files\\wicbox\\wicbox.exe" ' + task_arguments(spec, REMOTE_RELAY), enabled=True
    )
    disabled = task_xml(spec, RelaySpec()).replace("<Enabled>true</Enabled>\n    <Hidden>",
                                                   "<Enabled>false</Enabled>\n    <Hidden>")  # fmt: skip
    assert installed_task("\ufeff" + disabled) == InstalledTask(
        '"C:\\Program Files\\wicbox\\wicbox.exe" ' + task_arguments(spec, RelaySpec()), enabled=False
    )
    assert installed_task("ERROR: The system cannot find the file specified.") is None


def test_windows_plan_with_the_relay() -> None:
    state_dir = Path("C:/ProgramData/wicbox-bridge/state/x")
    plan = windows_plan(win_spec(), state_dir, relay=RelaySpec())
    assert [" ".join(command.revealed()) for command in plan.commands] == [
        f"icacls {state_dir} /grant KLANT\\svc-wicbox:(OI)(CI)M /T /Q",
        "schtasks /Create /TN WICBOX /XML <temporary file> /RU KLANT\\svc-wicbox",
        "schtasks /Create /TN WICBOX-Relay /XML <temporary file> /RU KLANT\\svc-wicbox",
        "schtasks /Run /TN WICBOX-Relay",
    ]
    assert plan.commands[2].stdin is not None  # the same password, on schtasks' own prompt
    assert [planned.data for planned in plan.files] == [
        task_xml_bytes(win_spec()),
        task_xml_bytes(win_spec(), RelaySpec()),
    ]
    forced = windows_plan(win_spec(logon=Logon.SYSTEM), state_dir, force=True, relay=RelaySpec())
    assert [command.revealed() for command in forced.commands] == [
        ["schtasks", "/Create", "/TN", "WICBOX", "/XML", "<temporary file>", "/F"],
        ["schtasks", "/End", "/TN", "WICBOX-Relay"],  # a running relay would keep its old options
        ["schtasks", "/Create", "/TN", "WICBOX-Relay", "/XML", "<temporary file>", "/F"],
        ["schtasks", "/Run", "/TN", "WICBOX-Relay"],
    ]  # fmt: skip
    text = "\n".join(plan_text(plan))
    assert (
        "# and the relay service, started at boot and again when it fails: "
        '"C:\\Program Files\\wicbox\\wicbox.exe" --config "D:\\WIC Klant\\WicGlobal.config" relay '
        "--listen 127.0.0.1:2525\n" in text
    )
    assert plan_json(plan)["relay_command"] == [
        WIN_PROGRAM.executable, "--config", WIN_CONFIG, "relay", "--listen", "127.0.0.1:2525",
    ]  # fmt: skip
    assert plan_json(windows_plan(win_spec(), state_dir))["relay_command"] is None


def test_relay_unit_content() -> None:
    spec = linux_spec("/srv/WIC 100%/WicGlobal.config", run_as="wic", wicbox_home="/var/lib/wicbox")
    relay = RelaySpec(listen="[::]:2525", tls_cert="/etc/wic/relay $1.pem", tls_key="/etc/wic/k.pem",
                      allow_remote=True)  # fmt: skip
    unit = relay_unit(spec, relay, user_units=False)
    program = installed_program().executable
    assert (
        f'ExecStart={program} --config "/srv/WIC 100%%/WicGlobal.config" relay --listen [::]:2525 '
        '--tls-cert "/etc/wic/relay $$1.pem" --tls-key /etc/wic/k.pem --allow-remote\n'
    ) in unit
    for line in ("Type=simple", "Restart=on-failure", "RestartSec=10s", "StartLimitIntervalSec=0",
                 "User=wic", "Environment=WICBOX_HOME=/var/lib/wicbox", "WorkingDirectory=/srv/WIC 100%%",
                 "After=network-online.target", "NoNewPrivileges=yes", "PrivateTmp=yes",
                 "ProtectSystem=strict", "ProtectHome=read-only", "ReadWritePaths=-/var/lib/wicbox",
                 "WantedBy=multi-user.target"):  # fmt: skip
        assert f"\n{line}\n" in unit, line
    user = relay_unit(spec, relay, user_units=True)
    assert "\nWantedBy=default.target\n" in user
    assert "\nNoNewPrivileges=yes\n" in user
    for absent in ("User=", "PrivateTmp", "ProtectSystem", "network-online"):
        assert absent not in user, absent


def test_systemd_plan_with_the_relay() -> None:
    spec = linux_spec("/srv/wic/WicGlobal.config")
    plan = systemd_plan(spec, Path("/etc/systemd/system"), user_units=False, relay=RelaySpec())
    assert [planned.path for planned in plan.files] == [
        "/etc/systemd/system/wicbox-test.service",
        "/etc/systemd/system/wicbox-test.timer",
        "/etc/systemd/system/wicbox-test-relay.service",
    ]
    assert plan.files[2].text == relay_unit(spec, RelaySpec(), user_units=False)
    assert [command.display() for command in plan.commands] == [
        "systemctl daemon-reload",
        "systemctl enable --now wicbox-test.timer",
        "systemctl enable wicbox-test-relay.service",
        "systemctl restart wicbox-test-relay.service",  # takes a replaced unit's options (--force)
    ]
    assert relay_unit_name("WICBOX") == "wicbox-relay.service"
    assert relay_task_name("WICBOX") == "WICBOX-Relay"


def test_relay_systemctl_command_lines() -> None:
    assert start_relay("WICBOX", user_units=False).revealed() == [
        "systemctl", "enable", "--now", "wicbox-relay.service",
    ]  # fmt: skip
    assert stop_relay("WICBOX-x", user_units=True).revealed() == [
        "systemctl", "--user", "disable", "--now", "wicbox-x-relay.service",
    ]  # fmt: skip
    assert relay_is_active("WICBOX", user_units=False).revealed() == [
        "systemctl", "is-active", "wicbox-relay.service",
    ]  # fmt: skip
    assert schtasks_run("WICBOX-Relay").revealed() == ["schtasks", "/Run", "/TN", "WICBOX-Relay"]
    assert schtasks_query_xml("WICBOX-Relay").revealed() == [
        "schtasks", "/Query", "/TN", "WICBOX-Relay", "/XML",
    ]  # fmt: skip
