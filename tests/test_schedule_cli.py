"""`wicbox schedule` end to end on Linux: show for every platform, the refusals, and the real
stop/start cycle (pause marker, waiting on the run lock held by another process, `wicbox run`
while paused)."""

from __future__ import annotations

import hashlib
import json
import shlex
import subprocess
import sys
import threading
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.clihelp import WicboxCli, write_config
from tests.plugins.wic import WicInstallation
from wicbox_bridge.config.paths import machine_state_dir_for
from wicbox_bridge.schedule.commandline import CommandLine, SchedulerError, run_tool, tool_succeeds
from wicbox_bridge.schedule.files import write_then_run
from wicbox_bridge.schedule.pause import pause_file
from wicbox_bridge.schedule.spec import default_task_name, installed_program
from wicbox_bridge.schedule.windows import TASK_NAMESPACE
from wicbox_bridge.secret import MASK, Secret

HOLD_LOCK = (
    "import sys; from pathlib import Path; from wicbox_bridge.run.runlock import RunLock\n"
    "lock = RunLock(Path(sys.argv[1])); lock.acquire(); print('locked', flush=True)\n"
    "sys.stdin.read(); lock.release()\n"
)


@pytest.fixture
def wicbox(tmp_path: Path) -> WicboxCli:
    home, cwd = tmp_path / "home", tmp_path / "work"
    home.mkdir()
    cwd.mkdir()
    return WicboxCli(home=home, cwd=cwd)


@pytest.fixture
def config(tmp_path: Path) -> Path:
    folder = tmp_path / "WIC Klant"
    folder.mkdir()
    return write_config(folder / "WicGlobal.config", f"sqlite:///{tmp_path / 'wic.db'}")


def _state_dir(wicbox: WicboxCli, config: Path) -> Path:
    return machine_state_dir_for(config.resolve(), env={"WICBOX_HOME": str(wicbox.home)})


def _name(config: Path) -> str:
    return default_task_name(config.resolve(), Path(installed_program().executable).parent)


# --------------------------------------------------------------------------- show


def test_show_windows_prints_the_task_xml_and_the_command(wicbox: WicboxCli, config: Path) -> None:
    result = wicbox("schedule", "show", "--platform", "windows", "--every", "10", "--run-as", "KLANT\\svc",
                    "--config", str(config))  # fmt: skip
    assert result.exit_code == 0, result.output
    name = _name(config)
    assert name.startswith("WICBOX-WIC-Klant-")
    start = result.output.index("<?xml")
    end = result.output.index("</Task>") + len("</Task>")
    root = ET.fromstring(result.output[start:end].replace('encoding="UTF-16"', ""))
    ns = {"t": TASK_NAMESPACE}
    assert root.findtext("t:Triggers/t:TimeTrigger/t:Repetition/t:Interval", namespaces=ns) == "PT10M"
    assert (
        root.findtext("t:Actions/t:Exec/t:Arguments", namespaces=ns) == f'--config "{config.resolve()}" run'
    )
    assert root.findtext("t:Principals/t:Principal/t:UserId", namespaces=ns) == "KLANT\\svc"
    assert (
        f"schtasks /Create /TN {name} /XML <temporary file> /RU KLANT\\svc (password on its standard input)"
        in result.output
    )


def test_show_systemd_names_where_each_unit_goes(wicbox: WicboxCli, config: Path) -> None:
    result = wicbox("schedule", "show", "--platform", "systemd", "--name", "WICBOX-Prod", config=config)
    assert result.exit_code == 0, result.output
    assert "# --- /etc/systemd/system/wicbox-prod.service: the service" in result.output
    assert "# --- /etc/systemd/system/wicbox-prod.timer: the timer" in result.output
    assert f'--config "{config.resolve()}" run' in result.output
    assert "systemctl enable --now wicbox-prod.timer" in result.output
    user = wicbox(
        "schedule", "show", "--platform", "systemd", "--user", "--name", "WICBOX-Prod", config=config
    )
    assert "/.config/systemd/user/wicbox-prod.service" in user.output
    assert "systemctl --user enable --now wicbox-prod.timer" in user.output


def test_show_cron_and_json(wicbox: WicboxCli, config: Path) -> None:
    result = wicbox("schedule", "show", "--platform", "cron", "--every", "15", "--json", config=config)
    assert result.exit_code == 0, result.output
    plan = json.loads(result.stdout)
    assert plan["platform"] == "cron"
    assert plan["every_minutes"] == 15
    assert plan["time_limit_minutes"] == 60
    assert plan["cron_line"].startswith("*/15 * * * * ")
    assert str(_state_dir(wicbox, config) / "cron.log") in plan["cron_line"]


@pytest.mark.parametrize("platform", ["windows", "systemd", "cron"])
def test_lease_seconds_is_passed_to_the_scheduled_run(wicbox: WicboxCli, config: Path, platform: str) -> None:
    result = wicbox("schedule", "show", "--platform", platform, "--lease-seconds", "120", config=config)
    assert result.exit_code == 0, result.output
    assert "run --lease-seconds 120" in result.output
    plain = wicbox("schedule", "show", "--platform", platform, config=config)
    assert "--lease-seconds" not in plain.output
    refused = wicbox("schedule", "show", "--platform", platform, "--lease-seconds", "1", config=config)
    assert refused.exit_code == 2
    assert "--lease-seconds" in refused.output


def test_config_option_after_the_subcommand_or_before_it(wicbox: WicboxCli, config: Path) -> None:
    after = wicbox("schedule", "show", "--platform", "cron", "--config", str(config))
    before = wicbox("schedule", "show", "--platform", "cron", config=config)
    assert after.exit_code == before.exit_code == 0
    assert after.output == before.output
    both = wicbox("schedule", "show", "--config", str(config.parent / "other.config"), config=config)
    assert both.exit_code == 2
    assert "give --config once" in both.output


# --------------------------------------------------------------------------- refusals


@pytest.mark.parametrize(("every", "shown"), [("0", "--every 0"), ("1441", "--every 1441")])
def test_every_out_of_range(wicbox: WicboxCli, config: Path, every: str, shown: str) -> None:
    result = wicbox("schedule", "show", "--platform", "cron", "--every", every, config=config)
    assert result.exit_code == 2
    assert shown in result.stderr
    assert "1 to 1440" in result.stderr
    assert "wicbox: fix:" in result.stderr


def test_a_refused_option_s_fix_names_the_command_that_was_run(wicbox: WicboxCli, config: Path) -> None:
    every = wicbox("schedule", "show", "--platform", "cron", "--every", "90", config=config)
    assert every.exit_code == 2
    assert every.stderr.splitlines()[-1] == (
        "wicbox: fix: choose fewer than 60 minutes, or 60, 120, 180, 240, 360, 480, 720 or 1440; or use "
        "systemd (--platform systemd) where it runs; for example "
        f"`wicbox --config {shlex.quote(str(config))} schedule show --platform cron --every 5`"
    )
    name = wicbox(
        "schedule", "install", "--platform", "cron", "--every", "10", "--name", "a b", "--config", str(config)
    )
    assert name.exit_code == 2
    assert name.stderr.splitlines()[-1] == (
        "wicbox: fix: choose a name such as WICBOX-PROD; for example "
        f"`wicbox schedule install --config {shlex.quote(str(config))} --platform cron --every 10 "
        "--name WICBOX-PROD`"
    )


def test_missing_config_is_named_with_the_fix(wicbox: WicboxCli, tmp_path: Path) -> None:
    missing = tmp_path / "nergens" / "WicGlobal.config"
    result = wicbox("schedule", "install", "--platform", "cron", "--config", str(missing))
    assert result.exit_code == 2
    assert str(missing) in result.stderr
    assert "wicbox: fix:" in result.stderr


def test_the_embedded_default_is_scheduled_with_its_data_folder(wicbox: WicboxCli) -> None:
    """No WicGlobal.config: the help's first example works, and the runs get the same data folder."""
    result = wicbox("schedule", "show", "--platform", "cron", "--every", "5", "--json")
    assert result.exit_code == 0, result.output
    plan = json.loads(result.stdout)
    assert plan["config"] is None
    assert plan["data_dir"] == str(wicbox.home.absolute())
    assert plan["name"].startswith("WICBOX-embedded-")
    assert f"cd {wicbox.home.absolute()} && WICBOX_HOME={wicbox.home.absolute()} " in plan["cron_line"]
    assert "--config" not in plan["cron_line"]
    text = wicbox("schedule", "show", "--platform", "systemd", "--every", "5")
    assert f"for the embedded default in {wicbox.home.absolute()}: every 5 minutes" in text.output
    assert f"Environment=WICBOX_HOME={wicbox.home.absolute()}\n" in text.output


def test_a_scheduled_run_of_the_embedded_default_finds_the_same_database(wicbox: WicboxCli) -> None:
    """The real process, started as the unit starts it, reads what `params set` stored here."""
    assert wicbox("db", "init").exit_code == 0
    stored = wicbox("params", "set", "WICBOX_MAILCLIENT_USERNAME", "wic@klant.be")
    assert stored.exit_code == 0, stored.output
    unit = json.loads(wicbox("schedule", "show", "--platform", "systemd", "--json").stdout)["files"][0]
    lines = dict(line.split("=", 1) for line in unit["content"].splitlines() if "=" in line)
    program = lines["ExecStart"].split()
    assert program[-1] == "run"
    home = lines["Environment"].removeprefix("WICBOX_HOME=")
    listed = subprocess.run(
        [*program[:-1], "params", "list"],
        cwd=lines["WorkingDirectory"],
        env={"PATH": "/usr/bin:/bin", "HOME": str(wicbox.cwd), "WICBOX_HOME": home},
        capture_output=True,
        text=True,
        check=False,
    )
    assert listed.returncode == 0, listed.stderr
    assert "wic@klant.be" in listed.stdout


def test_the_embedded_default_is_not_scheduled_as_another_account(wicbox: WicboxCli) -> None:
    """Another account would not find this account's database; the fix names the command run."""
    result = wicbox("schedule", "show", "--platform", "windows", "--logon", "system", "--every", "5")
    assert result.exit_code == 2
    assert (
        f"the embedded default (no WicGlobal.config) is the database of this account, in "
        f"{wicbox.home.absolute()}" in result.stderr
    )
    assert "schedule it as yourself: `wicbox schedule show --platform windows --every 5`" in result.stderr


def test_install_of_the_embedded_default_creates_its_data_folder(wicbox: WicboxCli, tmp_path: Path) -> None:
    fresh = WicboxCli(home=tmp_path / "fresh" / "data", cwd=wicbox.cwd)
    result = fresh("schedule", "install", "--platform", "cron", "--every", "5")
    assert result.exit_code == 0, result.output
    assert fresh.home.is_dir()
    assert f"WICBOX_HOME={fresh.home}" in result.output


@pytest.mark.parametrize("action", ["install", "uninstall", "stop", "start"])
def test_windows_actions_are_refused_on_linux(wicbox: WicboxCli, config: Path, action: str) -> None:
    result = wicbox("schedule", action, "--platform", "windows", config=config)
    assert result.exit_code == 2
    assert "only be changed on Windows" in result.stderr
    assert "wicbox schedule show --platform windows" in result.stderr
    assert not pause_file(_state_dir(wicbox, config)).exists()


def test_install_refuses_a_broken_configuration(wicbox: WicboxCli, tmp_path: Path) -> None:
    broken = tmp_path / "WicGlobal.config"
    broken.write_text("<configuration><appSettings>", encoding="utf-8")
    result = wicbox("schedule", "install", "--platform", "cron", config=broken)
    assert result.exit_code == 2
    assert str(broken) in result.stderr


def test_run_as_is_refused_for_cron(wicbox: WicboxCli, config: Path) -> None:
    result = wicbox("schedule", "show", "--platform", "cron", "--run-as", "wic", config=config)
    assert result.exit_code == 2
    assert "crontab" in result.output


# --------------------------------------------------------------------------- the relay service


def _tasks(output: str) -> list[ET.Element]:
    """Every task XML that `show` printed."""
    texts = output.split("<?xml")[1:]
    return [ET.fromstring(text[text.index("<Task") : text.index("</Task>") + 7]) for text in texts]


def test_show_windows_with_the_relay(wicbox: WicboxCli, config: Path) -> None:
    tls = ("--relay-tls-cert", "D:\\certs\\relay & co.pem", "--relay-tls-key", "D:\\certs\\relay.key")
    remote = ("--relay-listen", "0.0.0.0:2525", "--relay-allow-remote", *tls)
    result = wicbox(
        "schedule",
        "show",
        "--platform",
        "windows",
        "--run-as",
        "KLANT\\svc",
        "--relay",
        *remote,
        config=config,
    )
    assert result.exit_code == 0, result.output
    name = _name(config)
    run, relay = _tasks(result.output)
    ns = {"t": TASK_NAMESPACE}
    assert run.find("t:Triggers/t:BootTrigger", ns) is None
    assert relay.find("t:Triggers/t:BootTrigger", ns) is not None
    assert relay.findtext("t:Settings/t:ExecutionTimeLimit", namespaces=ns) == "PT0S"
    assert relay.findtext("t:Actions/t:Exec/t:Arguments", namespaces=ns) == (
        f'--config "{config.resolve()}" relay --listen 0.0.0.0:2525 --tls-cert "D:\\certs\\relay & co.pem" '
        '--tls-key "D:\\certs\\relay.key" --allow-remote'
    )
    assert relay.findtext("t:Principals/t:Principal/t:UserId", namespaces=ns) == "KLANT\\svc"
    create = f"schtasks /Create /TN {name}-Relay /XML <temporary file> /RU KLANT\\svc"
    assert f"{create} (password on its standard input)" in result.output
    assert f"schtasks /Run /TN {name}-Relay" in result.output
    assert "# relay: " not in result.output  # no Task Scheduler here to ask


def test_show_systemd_with_the_relay_as_json(wicbox: WicboxCli, config: Path) -> None:
    result = wicbox("schedule", "show", "--platform", "systemd", "--name", "WICBOX-Prod", "--relay", "--json",
                    config=config)  # fmt: skip
    assert result.exit_code == 0, result.output
    plan = json.loads(result.stdout)
    relay = plan["files"][2]
    assert relay["path"] == "/etc/systemd/system/wicbox-prod-relay.service"
    assert "\nType=simple\n" in relay["content"]
    assert "\nRestart=on-failure\n" in relay["content"]
    assert f'--config "{config.resolve()}" relay --listen 127.0.0.1:2525\n' in relay["content"]
    assert plan["commands"][2:] == [
        "systemctl enable wicbox-prod-relay.service",
        "systemctl restart wicbox-prod-relay.service",
    ]
    assert plan["relay_command"] == [*installed_program().argv(str(config.resolve()), ("relay",)),
                                     "--listen", "127.0.0.1:2525"]  # fmt: skip
    assert plan["relay_service"] is None  # systemd does not run here: nothing to ask
    plain = json.loads(wicbox("schedule", "show", "--platform", "systemd", "--json", config=config).stdout)
    assert len(plain["files"]) == 2
    assert plain["relay_command"] is None


@pytest.mark.parametrize("action", ["show", "install"])
@pytest.mark.parametrize(
    ("options", "words"),
    [
        (["--relay-listen", "127.0.0.1:2626"], ["--relay-listen without --relay: add --relay to install"]),
        (["--relay-tls-cert", "c.pem", "--relay-allow-remote"],
         ["--relay-tls-cert, --relay-allow-remote without --relay", "or leave them out"]),
    ],
)  # fmt: skip
def test_relay_options_without_relay_are_refused(
    wicbox: WicboxCli, config: Path, action: str, options: list[str], words: list[str]
) -> None:
    result = wicbox("schedule", action, "--platform", "systemd", *options, config=config)
    assert result.exit_code == 2
    for word in words:
        assert word in result.output


@pytest.mark.parametrize("action", ["show", "install"])
def test_a_relay_open_to_the_network_without_tls_is_refused(
    wicbox: WicboxCli, config: Path, action: str
) -> None:
    result = wicbox("schedule", action, "--platform", "systemd", "--relay", "--relay-listen", "0.0.0.0:2525",
                    config=config)  # fmt: skip
    assert result.exit_code == 2
    assert "--relay-listen 0.0.0.0:2525: 0.0.0.0 is not a loopback address" in result.stderr
    assert (
        "wicbox: fix: add --relay-allow-remote and --relay-tls-cert FILE --relay-tls-key FILE"
        in result.stderr
    )


def test_install_refuses_missing_tls_files_then_cron(wicbox: WicboxCli, config: Path) -> None:
    relay = ("--relay", "--relay-listen", "0.0.0.0:2525", "--relay-allow-remote",
             "--relay-tls-cert", "relay.pem", "--relay-tls-key", "relay.key")  # fmt: skip
    missing = wicbox("schedule", "install", "--platform", "cron", *relay, config=config)
    assert missing.exit_code == 2
    assert (
        f"--relay-tls-cert {wicbox.cwd / 'relay.pem'}: no such file" in missing.stderr
    )  # the working directory's
    (wicbox.cwd / "relay.pem").write_text("cert", encoding="utf-8")
    (wicbox.cwd / "relay.key").write_text("key", encoding="utf-8")
    cron = wicbox("schedule", "install", "--platform", "cron", *relay, config=config)
    assert cron.exit_code == 2
    assert "--relay: cron cannot keep a service running" in cron.stderr
    assert "leave --relay out" in cron.stderr
    assert "crontab" not in cron.stdout  # refused before anything is printed to add


# --------------------------------------------------------------------------- cron install / uninstall


def test_cron_install_prints_the_line_and_changes_nothing(wicbox: WicboxCli, config: Path) -> None:
    result = wicbox("schedule", "install", "--platform", "cron", config=config)
    assert result.exit_code == 0, result.output
    assert "nothing was changed" in result.output
    assert "crontab -e" in result.output
    assert "*/5 * * * * " in result.output
    removed = wicbox("schedule", "uninstall", "--platform", "cron", config=config)
    assert removed.exit_code == 0
    assert "crontab -e" in removed.output


# --------------------------------------------------------------------------- stop / start


class LockHolder:
    """Another process that holds the run lock, like a busy scheduled run."""

    def __init__(self, state_dir: Path) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-c", HOLD_LOCK, str(state_dir)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdout is not None
        assert self.process.stdout.readline().strip() == "locked"

    def release(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()
        self.process.wait(timeout=30)


@pytest.fixture
def lock_holder(wicbox: WicboxCli, config: Path) -> Iterator[LockHolder]:
    holder = LockHolder(_state_dir(wicbox, config))
    try:
        yield holder
    finally:
        if holder.process.poll() is None:
            holder.release()


def test_stop_without_a_busy_run_pauses_and_start_resumes(wicbox: WicboxCli, config: Path) -> None:
    marker = pause_file(_state_dir(wicbox, config))
    stopped = wicbox("schedule", "stop", "--platform", "cron", config=config)
    assert stopped.exit_code == 0, stopped.output
    assert "comment out the wicbox line" in stopped.output
    assert "no run is busy" in stopped.output
    assert marker.exists()
    assert not (marker.parent / "run.lock").exists()  # the probe creates no lock file the task may not write
    started = wicbox("schedule", "start", "--platform", "cron", config=config)
    assert started.exit_code == 0, started.output
    assert "resumed" in started.output
    assert not marker.exists()
    again = wicbox("schedule", "start", "--platform", "cron", config=config)
    assert "runs were not paused" in again.output


def test_stop_times_out_naming_the_busy_run(wicbox: WicboxCli, config: Path, lock_holder: LockHolder) -> None:
    result = wicbox("schedule", "stop", "--platform", "cron", "--timeout", "1", config=config)
    assert result.exit_code == 5, result.output
    assert f"process {lock_holder.process.pid} on " in result.stderr
    assert "still busy after waiting 1 seconds" in result.stderr
    assert "--timeout" in result.stderr
    assert "kill PID" in result.stderr
    assert "loses no mail" in result.stderr
    assert f"waiting for the busy run to finish (process {lock_holder.process.pid}" in result.stdout
    assert pause_file(_state_dir(wicbox, config)).exists()  # new runs stay paused
    lock_holder.release()
    finished = wicbox("schedule", "stop", "--platform", "cron", "--timeout", "1", config=config)
    assert finished.exit_code == 0, finished.output
    assert "no run is busy" in finished.output


def test_stop_waits_until_the_busy_run_ends(wicbox: WicboxCli, config: Path, lock_holder: LockHolder) -> None:
    timer = threading.Timer(1.5, lock_holder.release)
    timer.start()
    try:
        result = wicbox("schedule", "stop", "--platform", "cron", "--timeout", "60", config=config)
    finally:
        timer.join()
    assert result.exit_code == 0, result.output
    assert f"waiting for the busy run to finish (process {lock_holder.process.pid}" in result.output
    assert "the busy run has finished" in result.output


def _run_rows(wic: WicInstallation) -> int:
    with wic.store() as store:
        row = store.query_one("SELECT COUNT(*) FROM WICBOX_RUN")
    assert row is not None
    return int(row[0])


def test_a_paused_run_exits_0_without_touching_the_database(wic: WicInstallation) -> None:
    stopped = wic.cli("schedule", "stop", "--platform", "cron")
    assert stopped.exit_code == 0, stopped.output
    paused = wic.cli("run")
    assert paused.exit_code == 0, paused.output
    assert "paused by `wicbox schedule stop` at " in paused.output
    assert "`wicbox schedule start` resumes" in paused.output
    assert len(paused.output.strip().splitlines()) == 1
    assert _run_rows(wic) == 0
    checked = wic.cli("check")
    assert "[WARN] runs: paused by `wicbox schedule stop` at " in checked.output
    assert "`wicbox schedule start` resumes them" in checked.output
    assert wic.cli("schedule", "start", "--platform", "cron").exit_code == 0
    assert "paused by" not in wic.cli("check").output
    resumed = wic.cli("run")  # the test bed's IMAP host is a closed port: the run fails, but it runs
    assert "paused by" not in resumed.output
    assert _run_rows(wic) == 1


# --------------------------------------------------------------------------- the tool runner


def test_run_tool_reports_the_tools_words_without_the_password() -> None:
    secret = Secret("Zeer-Geheim-99")
    command = CommandLine(("sh", "-c", 'echo "refused for $0" >&2; exit 3', secret))
    with pytest.raises(SchedulerError) as caught:
        run_tool(command, fix="do the right thing")
    message = str(caught.value)
    assert "exit code 3" in message
    assert f"refused for {MASK}" in message
    assert "Zeer-Geheim" not in message
    assert caught.value.fix == "do the right thing"
    assert run_tool(CommandLine(("sh", "-c", "echo ok")), fix="-") == "ok\n"
    answered = CommandLine(("sh", "-c", "read p; printf '%s' \"$p\" | sha256sum"), stdin=secret)
    digest = hashlib.sha256(b"Zeer-Geheim-99").hexdigest()
    assert run_tool(answered, fix="-").split()[0] == digest  # the password reached the prompt
    assert "Zeer-Geheim" not in " ".join(answered.revealed())
    echoed = CommandLine(("sh", "-c", 'read p; echo "refused: $p" >&2; exit 1'), stdin=secret)
    with pytest.raises(SchedulerError) as refused:
        run_tool(echoed, fix="-")
    assert "Zeer-Geheim" not in str(refused.value)
    assert f"refused: {MASK}" in str(refused.value)
    assert tool_succeeds(CommandLine(("true",)))
    assert not tool_succeeds(CommandLine(("false",)))


def test_a_missing_tool_says_so() -> None:
    with pytest.raises(SchedulerError) as caught:
        run_tool(CommandLine(("schtasks-not-here", "/Query")), fix="-")
    assert "schtasks-not-here was not found" in caught.value.message
    assert "wicbox schedule show" in (caught.value.fix or "")


def test_nothing_stays_half_installed(tmp_path: Path) -> None:
    new = tmp_path / "units" / "wicbox.service"
    replaced = tmp_path / "units" / "wicbox.timer"
    replaced.parent.mkdir()
    replaced.write_bytes(b"old timer")
    undo_mark = tmp_path / "reloaded"
    with pytest.raises(SchedulerError):
        write_then_run(
            [(new, b"new service"), (replaced, b"new timer")],
            [CommandLine(("true",)), CommandLine(("sh", "-c", "echo no >&2; exit 1"))],
            fix="-",
            after_undo=(CommandLine(("touch", str(undo_mark))),),
        )
    assert not new.exists()
    assert replaced.read_bytes() == b"old timer"
    assert undo_mark.exists()
    write_then_run([(new, b"new service")], [CommandLine(("true",))], fix="-")
    assert new.read_bytes() == b"new service"
