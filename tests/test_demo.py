"""README's first command: the demo runs its whole tour (check, send-test, run) and says so."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.testbed

ROOT = Path(__file__).resolve().parent.parent


def test_the_demo_sends_a_test_mail_files_six_mails_and_shows_the_log_file() -> None:
    env = {key: value for key, value in os.environ.items() if not key.startswith("WICBOX_")}
    completed = subprocess.run(
        [sys.executable, "-m", "tools.demo"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    output = completed.stdout + completed.stderr
    assert completed.returncode == 0, output
    assert "All checks passed." in output
    steps = re.findall(r"^\[(OK|FAIL|SKIP) *\] (token|connect|TLS|AUTH|MAIL|RCPT|DATA):", output, re.M)
    assert steps == [("OK", step) for step in ("token", "connect", "TLS", "AUTH", "MAIL", "RCPT", "DATA")]
    assert "The server accepted the test mail" in output
    assert "The sandbox's SMTP server accepted a mail from wicbox@klant.example" in output
    assert "fetched 6, filed 6 (1 unassigned)" in output
    filed = re.findall(r"^ +\d+  (\S+) +FILED ", output, re.M)
    assert filed == ["ALPHA", "BRAVO", "ALPHA", "BRAVO", "(unassigned)", "BRAVO"]
    log_file = re.search(
        r"^The log file is (\S+/state/\w+/logs/wicbox\.log); one line per mail:$", output, re.M
    )
    assert log_file is not None, output
    traced = re.findall(
        r"^  mailbox=wicbox@klant\.example folder=INBOX validity=\d+ key=(\d+) message_id=\S+ project=\S+ "
        r"outcome=filed",
        output,
        re.M,
    )
    assert traced == ["1", "2", "3", "4", "5", "6"]
    assert "DeprecationWarning" not in output  # msal's warning about the password grant never leaks
    # the product's own notice instead, once per command that signs in: check, send-test and run
    assert output.count("signs in with a stored password") == 3
    kept = re.search(r"^The demo's database, allow-list and log are kept in (\S+)\. Look", output, re.M)
    assert kept is not None, output
    assert Path(log_file[1]).is_relative_to(kept[1])
    # the embedded default, as the README's first steps: no WicGlobal.config anywhere
    assert "configuration: WicGlobal.config: none found: embedded defaults" in output
    assert not list(Path(kept[1]).rglob("WicGlobal.config"))
    shown = re.findall(r"^  WICBOX_HOME=(\S+) wicbox (status|params list)$", output, re.M)
    assert [command for _, command in shown] == ["status", "params list"]
    home = shown[0][0]
    for _, command in shown:  # the printed commands work as printed, after the sandbox is gone
        looked = subprocess.run(
            [sys.executable, "-m", "wicbox_bridge", *command.split()],
            env={**env, "WICBOX_HOME": home},
            capture_output=True,
            text=True,
            check=False,
        )
        assert looked.returncode in (0, 1), looked.stdout + looked.stderr
        wanted = "wicbox@klant.example" if command == "params list" else "fetched 6, filed 6"
        assert wanted in looked.stdout, looked.stdout
    shutil.rmtree(kept[1])


def test_the_demo_with_clean_removes_its_folder_and_prints_no_commands_to_look() -> None:
    env = {key: value for key, value in os.environ.items() if not key.startswith("WICBOX_")}
    completed = subprocess.run(
        [sys.executable, "-m", "tools.demo", "--clean"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    output = completed.stdout + completed.stderr
    assert completed.returncode == 0, output
    assert "fetched 6, filed 6 (1 unassigned)" in output  # the whole tour ran first
    removed = re.search(r"^The demo's folder (\S+) is removed \(--clean\)\.$", output, re.M)
    assert removed is not None, output
    assert Path(removed[1]).name.startswith("wicbox-demo-")
    assert not Path(removed[1]).exists()
    assert "are kept in" not in output
    assert "wicbox status" not in output  # no command to look at a database that is gone
