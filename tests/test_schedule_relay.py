"""The relay service through install, show, stop, start and uninstall, on Windows and systemd.

Neither Task Scheduler nor a running systemd is here, so ``schtasks``, ``icacls`` and ``systemctl``
are stand-ins on PATH: small programs that record their command line (and keep the task XML they
are given) and answer as the real tools do. Everything of ours runs as it does for real: the
actions, the tool runner (subprocess), the unit files written into a folder of the test.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import stat
import sys
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import pytest

from wicbox_bridge.schedule import actions
from wicbox_bridge.schedule.actions import RelayState, Target
from wicbox_bridge.schedule.pause import pause_file
from wicbox_bridge.schedule.plan import systemd_plan, windows_plan
from wicbox_bridge.schedule.relay import RelaySpec
from wicbox_bridge.schedule.spec import Logon, Platform, Program, ScheduleSpec, installed_program
from wicbox_bridge.schedule.windows import TASK_NAMESPACE
from wicbox_bridge.secret import Secret

STAND_IN = """#!{python}
import hashlib, json, shutil, sys
from pathlib import Path
here = Path(__file__).parent
argv = [Path(sys.argv[0]).name, *sys.argv[1:]]
with (here / "calls.jsonl").open("a", encoding="utf-8") as log:
    log.write(json.dumps(argv) + "\\n")
if "/Create" in argv and "/RU" in argv:  # schtasks reads the account's password from its standard input
    with (here / "stdin.jsonl").open("a", encoding="utf-8") as log:
        log.write(json.dumps(hashlib.sha256(sys.stdin.read().encode()).hexdigest()) + "\\n")
if "/XML" in argv and "/Create" in argv:  # keep the definition schtasks was given
    shutil.copyfile(argv[argv.index("/XML") + 1], here / (argv[argv.index("/TN") + 1] + ".xml"))
answers = json.loads((here / "answers.json").read_text(encoding="utf-8"))
code, said = answers.get(" ".join(argv), [0, ""])
sys.stdout.write(said)
sys.exit(code)
"""

RELAY = RelaySpec(listen="0.0.0.0:2525", tls_cert="C:\\certs\\relay & co.pem", tls_key="C:\\certs\\k.pem",
                  allow_remote=True)  # fmt: skip


@dataclass(frozen=True)
class Tools:
    """The stand-ins' folder: what they were called with, and what they answer."""

    folder: Path

    def answer(self, command: str, code: int, said: str = "") -> None:
        answers = json.loads((self.folder / "answers.json").read_text(encoding="utf-8"))
        answers[command] = [code, said]
        (self.folder / "answers.json").write_text(json.dumps(answers), encoding="utf-8")

    def calls(self) -> list[str]:
        """The command lines since the last call, one string each (a temporary XML file as
        ``<its name>``: its folder is random); the log starts again."""
        log = self.folder / "calls.jsonl"
        lines = log.read_text(encoding="utf-8").splitlines() if log.exists() else []
        log.unlink(missing_ok=True)
        return [" ".join(_stable(json.loads(line))) for line in lines]


def _stable(argv: list[str]) -> list[str]:
    pairs = itertools.pairwise(["", *argv])  # each argument with the one before it
    return [f"<{Path(arg).name}>" if before == "/XML" else arg for before, arg in pairs]


@pytest.fixture
def tools(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Tools:
    folder = tmp_path / "bin"
    folder.mkdir()
    for name in ("schtasks", "icacls", "systemctl"):
        program = folder / name
        program.write_text(STAND_IN.format(python=sys.executable), encoding="utf-8")
        program.chmod(program.stat().st_mode | stat.S_IXUSR)
    (folder / "answers.json").write_text("{}", encoding="utf-8")
    monkeypatch.setenv("PATH", f"{folder}{os.pathsep}{os.environ['PATH']}")  # the tools, not our code
    return Tools(folder)


def _said() -> tuple[list[str], actions.Say]:
    lines: list[str] = []
    return lines, lines.append


# --------------------------------------------------------------------------- Windows


def _win_spec() -> ScheduleSpec:
    return ScheduleSpec(
        name="WICBOX",
        config_path="D:\\WIC Klant\\WicGlobal.config",
        program=Program("C:\\Program Files\\wicbox\\wicbox.exe"),
        run_as="KLANT\\svc",
        logon=Logon.PASSWORD,
    )


def _win_target(tmp_path: Path) -> Target:
    return Target(Platform.WINDOWS, "WICBOX", tmp_path / "state", tmp_path / "units")


def test_windows_install_registers_the_relay_as_the_same_account_and_starts_it(
    tools: Tools, tmp_path: Path
) -> None:
    target = _win_target(tmp_path)
    for name in ("WICBOX", "WICBOX-Relay"):
        tools.answer(f"schtasks /Query /TN {name}", 1, "ERROR: The system cannot find the file specified.")
    prompted: list[str] = []

    def prompt(account: str) -> Secret:
        prompted.append(account)
        return Secret("Geheim-42")

    said, say = _said()
    plan = windows_plan(_win_spec(), target.state_dir, relay=RELAY)
    actions.install(plan, target, force=False, prompt=prompt, say=say)
    assert prompted == ["KLANT\\svc"]  # once, for both tasks
    # both tasks got the password on schtasks' standard input (as its prompt reads it), never in argv
    received = (tools.folder / "stdin.jsonl").read_text(encoding="utf-8").splitlines()
    assert [json.loads(line) for line in received] == [hashlib.sha256(b"Geheim-42\n").hexdigest()] * 2
    calls = tools.calls()
    assert not any("Geheim-42" in call for call in calls)
    assert calls == [
        "schtasks /Query /TN WICBOX",
        "schtasks /Query /TN WICBOX-Relay",
        f"icacls {target.state_dir} /grant KLANT\\svc:(OI)(CI)M /T /Q",
        f"schtasks /Create /TN WICBOX /XML {_temporary('WICBOX')} /RU KLANT\\svc",
        f"schtasks /Create /TN WICBOX-Relay /XML {_temporary('WICBOX-Relay')} /RU KLANT\\svc",
        "schtasks /Run /TN WICBOX-Relay",
    ]
    assert (tools.folder / "WICBOX-Relay.xml").read_bytes() == plan.files[1].data
    relay = ET.fromstring((tools.folder / "WICBOX-Relay.xml").read_bytes())
    assert relay.find(f"{{{TASK_NAMESPACE}}}Triggers/{{{TASK_NAMESPACE}}}BootTrigger") is not None
    assert said[0].startswith('installed the task "WICBOX": ')
    assert said[1] == (
        'installed and started the relay\'s task "WICBOX-Relay": "C:\\Program Files\\wicbox\\wicbox.exe" '
        '--config "D:\\WIC Klant\\WicGlobal.config" relay --listen 0.0.0.0:2525 --tls-cert '
        '"C:\\certs\\relay & co.pem" --tls-key C:\\certs\\k.pem --allow-remote'
    )


def _temporary(name: str) -> str:
    """The temporary XML file install hands schtasks, as ``Tools.calls`` shows it."""
    return f"<{name}.xml>"


def test_windows_install_refuses_an_existing_relay_task_and_force_replaces_it(
    tools: Tools, tmp_path: Path
) -> None:
    target = _win_target(tmp_path)
    tools.answer("schtasks /Query /TN WICBOX", 1)
    plan = windows_plan(_win_spec(), target.state_dir, relay=RELAY)
    with pytest.raises(actions.SchedulerError) as caught:
        actions.install(plan, target, force=False, prompt=lambda _: Secret("x"), say=lambda _: None)
    assert caught.value.message == 'a task named "WICBOX-Relay" already exists'
    assert caught.value.fix == (
        "add --force to replace it (`wicbox schedule install --force`), or remove it first with "
        "`wicbox schedule uninstall`"
    )
    assert "--force" in (caught.value.fix or "")
    assert tools.calls() == ["schtasks /Query /TN WICBOX", "schtasks /Query /TN WICBOX-Relay"]
    tools.answer("schtasks /End /TN WICBOX-Relay", 1, "ERROR: The task is not running.")  # not an error
    forced = windows_plan(_win_spec(), target.state_dir, force=True, relay=RELAY)
    actions.install(forced, target, force=True, prompt=lambda _: Secret("x"), say=lambda _: None)
    assert tools.calls() == [
        "schtasks /Query /TN WICBOX /XML",  # a serve task would be ended before it is replaced
        f"icacls {target.state_dir} /grant KLANT\\svc:(OI)(CI)M /T /Q",
        f"schtasks /Create /TN WICBOX /XML {_temporary('WICBOX')} /RU KLANT\\svc /F",
        "schtasks /End /TN WICBOX-Relay",
        f"schtasks /Create /TN WICBOX-Relay /XML {_temporary('WICBOX-Relay')} /RU KLANT\\svc /F",
        "schtasks /Run /TN WICBOX-Relay",
    ]


def test_windows_show_stop_start_uninstall_include_the_relay(tools: Tools, tmp_path: Path) -> None:
    target = _win_target(tmp_path)
    installed = windows_plan(_win_spec(), target.state_dir, relay=RELAY).files[1].text
    disabled = installed.replace(
        "<Enabled>true</Enabled>\n    <Hidden>", "<Enabled>false</Enabled>\n    <Hidden>"
    )
    tools.answer("schtasks /Query /TN WICBOX-Relay /XML", 0, disabled)
    assert actions.relay_state(target) == RelayState(
        'the relay\'s task "WICBOX-Relay"',
        installed=True,
        state="disabled",
        command='"C:\\Program Files\\wicbox\\wicbox.exe" --config "D:\\WIC Klant\\WicGlobal.config" relay '
        '--listen 0.0.0.0:2525 --tls-cert "C:\\certs\\relay & co.pem" --tls-key "C:\\certs\\k.pem" '
        "--allow-remote",
    )
    assert tools.calls() == ["schtasks /Query /TN WICBOX-Relay", "schtasks /Query /TN WICBOX-Relay /XML"]
    tools.answer("schtasks /Query /TN WICBOX-Relay /XML", 1, "ERROR: Access is denied.")
    assert actions.relay_state(target) == RelayState('the relay\'s task "WICBOX-Relay"', installed=True)
    assert "is installed, state unknown: ?" in actions.relay_state(target).line()
    tools.calls()

    said, say = _said()
    actions.stop(target, timeout=5, env={"USERNAME": "admin"}, say=say)
    assert tools.calls() == [
        "schtasks /Query /TN WICBOX",
        "schtasks /Query /TN WICBOX /XML",  # serve or runs
        "schtasks /Change /TN WICBOX /DISABLE",
        "schtasks /Query /TN WICBOX-Relay",
        "schtasks /Change /TN WICBOX-Relay /DISABLE",
        "schtasks /End /TN WICBOX-Relay",
    ]
    assert 'stopped and disabled the relay\'s task "WICBOX-Relay"' in said
    assert pause_file(target.state_dir).exists()

    said, say = _said()
    actions.start(target, say=say)
    assert tools.calls() == [
        "schtasks /Query /TN WICBOX",
        "schtasks /Query /TN WICBOX /XML",  # serve or runs
        "schtasks /Change /TN WICBOX /ENABLE",
        "schtasks /Query /TN WICBOX-Relay",
        "schtasks /Change /TN WICBOX-Relay /ENABLE",
        "schtasks /Run /TN WICBOX-Relay",
    ]
    assert said[-1] == 'enabled and started the relay\'s task "WICBOX-Relay"'

    said, say = _said()
    actions.uninstall(target, cron_runs="-", say=say)
    assert tools.calls() == [
        "schtasks /Query /TN WICBOX-Relay",
        "schtasks /End /TN WICBOX-Relay",
        "schtasks /Delete /TN WICBOX-Relay /F",
        "schtasks /Query /TN WICBOX",
        "schtasks /Query /TN WICBOX /XML",  # serve or runs
        "schtasks /Delete /TN WICBOX /F",
    ]
    assert said[:2] == ['removed the relay\'s task "WICBOX-Relay"', 'removed the task "WICBOX"']


def test_windows_without_a_relay_nothing_changes(tools: Tools, tmp_path: Path) -> None:
    target = _win_target(tmp_path)
    tools.answer("schtasks /Query /TN WICBOX-Relay", 1, "ERROR: The system cannot find the file specified.")
    assert actions.relay_state(target) == RelayState('the relay\'s task "WICBOX-Relay"', installed=False)
    assert "`wicbox schedule install --relay` installs it" in actions.relay_state(target).line()
    tools.calls()
    said, say = _said()
    actions.stop(target, timeout=5, env={}, say=say)
    assert tools.calls() == [
        "schtasks /Query /TN WICBOX",
        "schtasks /Query /TN WICBOX /XML",  # serve or runs
        "schtasks /Change /TN WICBOX /DISABLE",
        "schtasks /Query /TN WICBOX-Relay",
    ]
    assert not any("WICBOX-Relay" in line for line in said)


# --------------------------------------------------------------------------- systemd


def _linux_spec(config: Path) -> ScheduleSpec:
    return ScheduleSpec(
        name="WICBOX-Test",
        config_path=str(config),
        program=installed_program(),
        run_as="wic",
        wicbox_home="/var/lib/wicbox",
    )


def test_systemd_install_show_stop_start_uninstall(tools: Tools, tmp_path: Path) -> None:
    target = Target(Platform.SYSTEMD, "WICBOX-Test", tmp_path / "state", tmp_path / "units")
    config = tmp_path / "WIC Klant" / "WicGlobal.config"
    relay = RelaySpec(listen="[::1]:2525")
    plan = systemd_plan(_linux_spec(config), target.unit_dir, user_units=False, relay=relay)
    said, say = _said()
    actions.install(plan, target, force=False, prompt=lambda _: Secret("-"), say=say)
    assert tools.calls() == [
        "systemctl daemon-reload",
        "systemctl enable --now wicbox-test.timer",
        "systemctl enable wicbox-test-relay.service",
        "systemctl restart wicbox-test-relay.service",
    ]
    unit = target.unit_dir / "wicbox-test-relay.service"
    assert unit.read_text(encoding="utf-8") == plan.files[2].text
    assert said[1] == (
        "installed and started the relay's service wicbox-test-relay.service: "
        f"{installed_program().executable} --config '{config}' relay --listen '[::1]:2525'"
    )

    with pytest.raises(actions.SchedulerError) as caught:  # installed: refused without --force
        actions.install(plan, target, force=False, prompt=lambda _: Secret("-"), say=say)
    assert "already exists" in caught.value.message

    tools.answer("systemctl is-active wicbox-test-relay.service", 3, "failed\n")
    state = actions.relay_state(target)
    assert state == RelayState(
        "the relay's service wicbox-test-relay.service",
        installed=True,
        state="failed",
        command=f'{installed_program().executable} --config "{config}" relay --listen [::1]:2525',
    )
    assert (
        state.line() == f"the relay's service wicbox-test-relay.service is installed, failed: {state.command}"
    )
    assert tools.calls() == ["systemctl is-active wicbox-test-relay.service"]

    said, say = _said()
    actions.stop(target, timeout=5, env={}, say=say)
    assert tools.calls() == [
        "systemctl disable --now wicbox-test.timer",
        "systemctl disable --now wicbox-test-relay.service",
    ]
    assert "stopped and disabled the relay's service wicbox-test-relay.service" in said

    actions.start(target, say=say)
    assert tools.calls() == [
        "systemctl enable --now wicbox-test.timer",
        "systemctl enable --now wicbox-test-relay.service",
    ]

    said, say = _said()
    actions.uninstall(target, cron_runs="-", say=say)
    assert tools.calls() == [
        "systemctl disable --now wicbox-test-relay.service",
        "systemctl daemon-reload",
        "systemctl disable --now wicbox-test.timer",
        "systemctl daemon-reload",
    ]
    assert not any(target.unit_dir.iterdir())
    assert said[0] == "removed the relay's service wicbox-test-relay.service"
    assert actions.relay_state(target) == RelayState(
        "the relay's service wicbox-test-relay.service", installed=False
    )


def test_systemd_a_relay_that_cannot_be_stopped_is_a_warning(tools: Tools, tmp_path: Path) -> None:
    target = Target(Platform.SYSTEMD, "WICBOX-Test", tmp_path / "state", tmp_path / "units", user_units=True)
    target.relay_unit.parent.mkdir(parents=True)
    target.relay_unit.write_text("[Service]\n", encoding="utf-8")
    tools.answer("systemctl --user disable --now wicbox-test-relay.service", 1, "Access denied")
    said, say = _said()
    actions.stop(target, timeout=5, env={}, say=say)
    assert tools.calls() == ["systemctl --user disable --now wicbox-test-relay.service"]  # no timer installed
    assert (
        "wicbox: warning: could not stop the relay's service wicbox-test-relay.service: "
        "`systemctl --user disable --now wicbox-test-relay.service` failed (exit code 1): Access denied"
    ) in said
    assert pause_file(target.state_dir).exists()  # the runs are paused all the same
