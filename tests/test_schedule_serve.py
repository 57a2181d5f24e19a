"""`wicbox schedule install --serve`: the entry runs `wicbox serve` (at boot, again when it fails)
instead of runs, on systemd and Windows; it replaces a run entry only with --force, and show, stop,
start and uninstall cover it. The scheduler tools are the stand-ins of test_schedule_relay (they
record their command line); the unit files are written into the test's folder."""

from __future__ import annotations

import json
import threading
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from tests.clihelp import WicboxCli, write_config
from tests.test_schedule_cli import LockHolder
from tests.test_schedule_relay import Tools, _linux_spec, _said, _temporary, _win_spec, _win_target, tools
from wicbox_bridge.schedule import actions
from wicbox_bridge.schedule.actions import Target
from wicbox_bridge.schedule.lockwait import RunStillBusy
from wicbox_bridge.schedule.pause import pause_file
from wicbox_bridge.schedule.plan import plan_text, systemd_plan, windows_plan
from wicbox_bridge.schedule.relay import RelaySpec
from wicbox_bridge.schedule.serve import ServeSpec, is_serve_command
from wicbox_bridge.schedule.spec import Platform
from wicbox_bridge.schedule.systemd import HARDENING
from wicbox_bridge.schedule.windows import TASK_NAMESPACE
from wicbox_bridge.secret import Secret

__all__ = ["tools"]  # the stand-in tools' fixture
NS = f"{{{TASK_NAMESPACE}}}"


def _target(tmp_path: Path) -> Target:
    return Target(Platform.SYSTEMD, "WICBOX-Test", tmp_path / "state", tmp_path / "units")


def test_systemd_serve_unit_restarts_on_failure_with_the_hardening_and_has_no_timer(tmp_path: Path) -> None:
    config = tmp_path / "WicGlobal.config"
    plan = systemd_plan(_linux_spec(config), tmp_path / "units", user_units=False, serve=ServeSpec())
    [unit] = plan.files
    assert unit.path.endswith("wicbox-test.service")
    lines = unit.text.splitlines()
    assert "Type=simple" in lines
    assert "Restart=on-failure" in lines
    assert "WantedBy=multi-user.target" in lines
    assert all(line in lines for line in HARDENING)
    assert next(line for line in lines if line.startswith("ExecStart=")).endswith(" serve")
    assert [command.display() for command in plan.commands] == [
        "systemctl daemon-reload",
        "systemctl enable wicbox-test.service",
        "systemctl restart wicbox-test.service",
    ]
    assert "`wicbox serve`, started at boot and again when it fails" in plan_text(plan)[0]


def test_systemd_serve_replaces_the_timer_only_with_force_and_stop_start_uninstall_cover_it(
    tools: Tools, tmp_path: Path
) -> None:
    target = _target(tmp_path)
    spec = _linux_spec(tmp_path / "WicGlobal.config")
    runs = systemd_plan(spec, target.unit_dir, user_units=False)
    actions.install(runs, target, force=False, prompt=lambda _: Secret("-"), say=lambda _: None)
    tools.calls()
    serve = systemd_plan(spec, target.unit_dir, user_units=False, serve=ServeSpec())
    with pytest.raises(actions.SchedulerError) as caught:  # the timer's runs would go on beside serve
        actions.install(serve, target, force=False, prompt=lambda _: Secret("-"), say=lambda _: None)
    assert "already exists" in caught.value.message
    assert "--force" in (caught.value.fix or "")

    said, say = _said()
    actions.install(serve, target, force=True, prompt=lambda _: Secret("-"), say=say)
    assert tools.calls() == [
        "systemctl disable --now wicbox-test.timer",
        "systemctl daemon-reload",
        "systemctl enable wicbox-test.service",
        "systemctl restart wicbox-test.service",
    ]
    assert sorted(path.name for path in target.unit_dir.iterdir()) == ["wicbox-test.service"]
    assert target.serves()
    assert said[0].startswith("installed and started wicbox-test.service (wicbox serve)")

    said, say = _said()
    actions.stop(target, timeout=5, env={}, say=say)
    assert tools.calls() == ["systemctl disable --now wicbox-test.service"]
    assert "disabled the service wicbox-test.service (wicbox serve)" in said
    actions.start(target, say=say)
    assert tools.calls() == ["systemctl enable --now wicbox-test.service"]

    actions.install(runs, target, force=True, prompt=lambda _: Secret("-"), say=lambda _: None)
    assert tools.calls()[0] == "systemctl disable --now wicbox-test.service"  # serve ends before runs
    assert not target.serves()
    actions.install(serve, target, force=True, prompt=lambda _: Secret("-"), say=lambda _: None)
    tools.calls()
    said, say = _said()
    actions.uninstall(target, cron_runs="-", say=say)
    assert tools.calls() == ["systemctl disable --now wicbox-test.service", "systemctl daemon-reload"]
    assert not any(target.unit_dir.iterdir())


def test_windows_serve_task_starts_at_boot_restarts_and_is_started_at_once(
    tools: Tools, tmp_path: Path
) -> None:
    target = _win_target(tmp_path)
    tools.answer("schtasks /Query /TN WICBOX", 1, "ERROR: The system cannot find the file specified.")
    relay = RelaySpec(listen="127.0.0.1:2525")
    plan = windows_plan(_win_spec(), target.state_dir, serve=ServeSpec(relay=relay))
    said, say = _said()
    actions.install(plan, target, force=False, prompt=lambda _: Secret("Geheim-42"), say=say)
    calls = tools.calls()
    assert calls[-2:] == [
        f"schtasks /Create /TN WICBOX /XML {_temporary('WICBOX')} /RU KLANT\\svc",
        "schtasks /Run /TN WICBOX",
    ]
    task = ET.fromstring((tools.folder / "WICBOX.xml").read_bytes())
    assert task.find(f"{NS}Triggers/{NS}BootTrigger") is not None
    assert task.findtext(f"{NS}Settings/{NS}ExecutionTimeLimit") == "PT0S"
    assert task.find(f"{NS}Settings/{NS}RestartOnFailure") is not None
    arguments = task.findtext(f"{NS}Actions/{NS}Exec/{NS}Arguments") or ""
    assert arguments.endswith("serve --relay --relay-listen 127.0.0.1:2525")
    assert is_serve_command(arguments)
    assert said[0].startswith('installed and started the task "WICBOX": ')

    tools.answer("schtasks /Query /TN WICBOX", 0)  # installed now
    tools.answer("schtasks /Query /TN WICBOX /XML", 0, plan.files[0].text)
    tools.answer("schtasks /Query /TN WICBOX-Relay", 1, "ERROR: The system cannot find the file specified.")
    said, say = _said()
    actions.stop(target, timeout=5, env={}, say=say)
    calls = tools.calls()
    assert calls[2] == "schtasks /Change /TN WICBOX /DISABLE"
    assert "schtasks /End /TN WICBOX" not in calls  # no serve busy: the pause marker is enough
    actions.start(target, say=say)
    assert tools.calls()[2:4] == ["schtasks /Change /TN WICBOX /ENABLE", "schtasks /Run /TN WICBOX"]


def test_a_quoted_path_named_serve_is_not_serve() -> None:
    assert not is_serve_command('wicbox.exe --config "D:\\serve\\WicGlobal.config" run')
    assert is_serve_command('wicbox.exe --config "D:\\WIC\\WicGlobal.config" serve --poll-seconds 5')
    assert not is_serve_command(None)


def test_cli_show_serve_with_the_relay_inside_and_cron_refuses_it(tmp_path: Path) -> None:
    home, cwd, folder = tmp_path / "home", tmp_path / "work", tmp_path / "WIC"
    for directory in (home, cwd, folder):
        directory.mkdir()
    wicbox = WicboxCli(home=home, cwd=cwd)
    config = write_config(folder / "WicGlobal.config", f"sqlite:///{tmp_path / 'wic.db'}")
    options = ("--platform", "systemd", "--name", "WICBOX-Prod", "--serve", "--relay", "--json")
    result = wicbox("schedule", "show", *options, config=config)
    assert result.exit_code == 0, result.output
    plan = json.loads(result.stdout)
    [unit] = plan["files"]
    assert unit["path"] == "/etc/systemd/system/wicbox-prod.service"
    assert "\nRestart=on-failure\n" in unit["content"]
    assert plan["serve_command"][-4:] == ["serve", "--relay", "--relay-listen", "127.0.0.1:2525"]
    assert plan["relay_command"] is None  # the relay runs inside serve, not as a service of its own
    refused = wicbox("schedule", "show", "--platform", "cron", "--serve", config=config)
    assert refused.exit_code == 2, refused.output
    assert "--serve: cron cannot keep a service running" in refused.output


def test_windows_stop_lets_a_paused_serve_end_and_ends_its_task_only_after_the_grace(
    tools: Tools, tmp_path: Path
) -> None:
    """Task Scheduler's End terminates the process: stop first pauses (serve sees the marker with its
    next heartbeat and ends cleanly), and ends the task only when serve still holds the run lock
    after the grace period. A serve that ends in time is never ended."""
    target = _win_target(tmp_path)
    plan = windows_plan(_win_spec(), target.state_dir, serve=ServeSpec())
    tools.answer("schtasks /Query /TN WICBOX", 0)
    tools.answer("schtasks /Query /TN WICBOX /XML", 0, plan.files[0].text)
    tools.answer("schtasks /Query /TN WICBOX-Relay", 1, "ERROR: The system cannot find the file specified.")
    holder = LockHolder(target.state_dir)  # a serve that does not end by itself
    try:
        _said_lines, say = _said()
        warned: list[str] = []
        with pytest.raises(RunStillBusy):  # and afterwards the lock is still held: stop says so
            actions.stop(target, timeout=1, env={}, say=say, warn=warned.append, serve_grace=0.5)
        calls = tools.calls()
        assert calls.index("schtasks /Change /TN WICBOX /DISABLE") < calls.index("schtasks /End /TN WICBOX")
        assert pause_file(target.state_dir).exists()  # paused before the grace began
        assert any("did not end within 0.5 s of the pause: its task was ended" in line for line in warned)
    finally:
        holder.release()
    timer = threading.Timer(0.5, LockHolder(target.state_dir).release)
    timer.start()  # this serve ends within the grace, as a paused serve does
    try:
        actions.stop(target, timeout=5, env={}, say=say, warn=warned.append, serve_grace=30)
    finally:
        timer.join()
    assert "schtasks /End /TN WICBOX" not in tools.calls()
