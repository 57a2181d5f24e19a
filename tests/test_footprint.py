"""The bridge's footprint on disk, attacked by another local account.

POSIX for real (modes, symbolic links, `wicbox check` and `--fix-permissions`, the umask of the
installed command); the Windows access lists through a fake of the one OS seam
(:class:`wicbox_bridge.config.winacl.WindowsSecurity`): ProgramData's loose list is found, the fix
is computed, inheritance goes off and Users goes away.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from tests.clihelp import WicboxCli
from wicbox_bridge.config.footprint import (
    FootprintItem,
    LinkRefused,
    footprint_findings,
    make_private_dir,
    refuse_links,
    touch_private,
    write_private_text,
)
from wicbox_bridge.config.paths import machine_state_dir_for
from wicbox_bridge.config.winacl import (
    ADMINISTRATORS_SID,
    SYSTEM_SID,
    dacl_problems,
    icacls_fix,
    parse_dacl,
    private_folder_dacl,
    tightened_dacl,
)
from wicbox_bridge.run.runlock import RunLock
from wicbox_bridge.schedule.pause import pause_runs

# %ProgramData%'s own list, as a new folder there inherits it: Users may create files and folders.
PROGRAMDATA_CHILD = (
    "D:AI(A;OICIID;FA;;;SY)(A;OICIID;FA;;;BA)(A;OICIIOID;GA;;;CO)"
    "(A;OICIID;0x1200a9;;;BU)(A;CIID;DCLCRPCR;;;BU)"
)
TASK_SID = "S-1-5-21-1004336348-1177238915-682003330-1105"
ME_SID = "S-1-5-21-1004336348-1177238915-682003330-500"


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


@pytest.fixture
def wicbox(tmp_path: Path) -> WicboxCli:
    home, cwd = tmp_path / "home", tmp_path / "work"
    cwd.mkdir()
    return WicboxCli(home=home, cwd=cwd)


class FakeWindows:
    """The OS seam with Windows' answers kept in dictionaries (the ACL logic itself is real)."""

    def __init__(self) -> None:
        self.dacls: dict[Path, str] = {}
        self.reparse: set[Path] = set()
        self.accounts = {"KLANT\\wicbox$": TASK_SID}

    def read_dacl(self, path: Path) -> str:
        return self.dacls.get(path, PROGRAMDATA_CHILD)

    def write_dacl(self, path: Path, sddl: str) -> None:
        self.dacls[path] = sddl

    def is_reparse_point(self, path: Path) -> bool:
        return path in self.reparse

    def account_sid(self, account: str) -> str:
        return self.accounts[account]

    def current_sid(self) -> str:
        return ME_SID


# --------------------------------------------------------------------------- POSIX modes


def test_everything_the_cli_creates_is_0600_in_0700_folders(wicbox: WicboxCli) -> None:
    assert os.umask(0o022) == 0o022  # the test process' umask (read back): modes must not depend on it
    os.umask(0o022)
    assert wicbox("db", "init").exit_code == 0
    set_secret = wicbox(
        "params", "set", "WICBOX_MAILCLIENT_CLIENTSECRET", "--stdin", input="s3cret-value~x\n"
    )
    assert set_secret.exit_code == 0, set_secret.output
    state = machine_state_dir_for(None, env={"WICBOX_HOME": str(wicbox.home)})
    pause_runs(state, at=__import__("datetime").datetime(2026, 1, 1), by="test")
    with RunLock(state):
        pass
    created = [wicbox.home, *wicbox.home.rglob("*")]
    assert len(created) > 6
    for path in created:
        wanted = 0o700 if path.is_dir() else 0o600
        assert _mode(path) == wanted, f"{path} is {_mode(path):o}"


def test_the_installed_command_sets_umask_077_for_what_libraries_create(tmp_path: Path) -> None:
    home = tmp_path / "home"
    env = {**os.environ, "WICBOX_HOME": str(home)}
    env.pop("WICBOX_CONFIG", None)
    completed = subprocess.run(
        [sys.executable, "-c",
         "import os; os.umask(0o022); from wicbox_bridge.cli import main; main(['db', 'init'])"],
        capture_output=True, text=True, cwd=tmp_path, env=env, check=False,
    )  # fmt: skip
    assert completed.returncode == 0, completed.stderr
    journal = home / "after-start.txt"
    probe = subprocess.run(  # a file created by plain open() after main's umask, in the same process
        [sys.executable, "-c",
         "import os, sys; from wicbox_bridge.cli import main\n"
         "try: main(['--version'])\nexcept SystemExit: pass\n"
         f"open({str(journal)!r}, 'w').close()"],
        capture_output=True, text=True, cwd=tmp_path, env=env, check=False,
    )  # fmt: skip
    assert probe.returncode == 0, probe.stderr
    assert _mode(journal) == 0o600
    for path in home.rglob("*"):
        assert not _mode(path) & 0o077, f"{path} is {_mode(path):o}"


def test_check_flags_a_world_readable_database_and_fixes_it(wicbox: WicboxCli) -> None:
    assert wicbox("db", "init").exit_code == 0
    database = wicbox.home / "wicbox.db"
    database.chmod(0o644)
    wicbox.home.chmod(0o755)
    result = wicbox("check")
    assert (
        f"[WARN] permissions: the database {database} can be read by other accounts (mode -rw-r--r--)"
        in result.output
    )
    assert f"fix: chmod 600 '{database}' (or `wicbox check --fix-permissions`)" in result.output
    assert f"chmod 700 '{wicbox.home}'" in result.output
    fixed = wicbox("check", "--fix-permissions")
    assert f"fixed (chmod 600 '{database}')" in fixed.output
    assert _mode(database) == 0o600
    assert _mode(wicbox.home) == 0o700
    again = wicbox("check")
    assert "[WARN] permissions" not in again.output
    assert "[OK  ] permissions:" in again.output


def test_check_flags_a_log_folder_others_may_write_and_the_log_file_is_closed_again(
    wicbox: WicboxCli,
) -> None:
    assert wicbox("db", "init").exit_code == 0
    log = next(wicbox.home.rglob("wicbox.log"))
    log.parent.chmod(0o773)
    log.chmod(0o666)
    result = wicbox("check")
    assert f"the log folder {log.parent} can be read by other accounts (mode drwxrwx-wx)" in result.output
    assert _mode(log) == 0o600  # the log handler opens it with mode 0600 again
    log.parent.chmod(0o703)
    assert (
        f"the log folder {log.parent} can be changed by other accounts (mode drwx----wx)"
        in wicbox("check").output
    )


def test_check_flags_a_readable_record_of_failed_runs_and_fixes_it(wicbox: WicboxCli) -> None:
    # A run that cannot reach the database keeps its error in failed-runs.json (machine-local):
    # its error text may name servers and accounts, so check watches that file too.
    assert wicbox("run").exit_code == 2  # no database yet: recorded in failed-runs.json
    record = next(wicbox.home.rglob("failed-runs.json"))
    assert _mode(record) == 0o600
    record.chmod(0o644)
    result = wicbox("check")
    assert (
        f"[WARN] permissions: the record of runs that failed before the database {record} can be read "
        "by other accounts (mode -rw-r--r--)"
    ) in result.output
    assert f"fix: chmod 600 '{record}' (or `wicbox check --fix-permissions`)" in result.output
    assert f"fixed (chmod 600 '{record}')" in wicbox("check", "--fix-permissions").output
    assert _mode(record) == 0o600


def test_check_flags_another_owner_with_the_chown(tmp_path: Path) -> None:
    folder = tmp_path / "state"
    make_private_dir(folder)
    item = FootprintItem("the state folder", folder, folder=True)
    [finding] = footprint_findings([item], uid=os.getuid() + 1)
    assert "belongs to another account" in finding.problem
    assert finding.fix == f"chown <the account that runs wicbox> '{folder}'"
    assert finding.repair is None  # only root may give a file away


# --------------------------------------------------------------------------- links


def test_a_symlink_planted_as_the_pause_marker_is_refused(tmp_path: Path) -> None:
    state = make_private_dir(tmp_path / "state")
    victim = tmp_path / "victim.txt"
    victim.write_text("another account's file", encoding="utf-8")
    (state / "paused.json").symlink_to(victim)
    with pytest.raises(LinkRefused) as caught:
        pause_runs(state, at=__import__("datetime").datetime(2026, 1, 1), by="attacker")
    assert "symbolic link" in caught.value.message
    assert victim.read_text(encoding="utf-8") == "another account's file"


def test_a_symlinked_state_folder_is_refused_by_the_run_lock(tmp_path: Path) -> None:
    base = tmp_path / "home"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    make_private_dir(base / "state")
    (base / "state" / "abc").symlink_to(elsewhere, target_is_directory=True)
    with pytest.raises(LinkRefused):
        make_private_dir(base / "state" / "abc", within=base)
    with pytest.raises(LinkRefused):
        RunLock(base / "state" / "abc").acquire()
    assert list(elsewhere.iterdir()) == []


def test_a_symlinked_log_file_is_refused_and_the_command_goes_on(wicbox: WicboxCli, tmp_path: Path) -> None:
    assert wicbox("db", "init").exit_code == 0
    log = next(wicbox.home.rglob("wicbox.log"))
    log.unlink()
    target = tmp_path / "someone-elses.txt"
    target.write_text("", encoding="utf-8")
    log.symlink_to(target)
    result = wicbox("params", "list")
    assert result.exit_code == 0
    assert "symbolic link" in result.output
    assert target.read_text(encoding="utf-8") == ""
    assert "symbolic link or junction" in wicbox("check").output


def test_a_symlinked_database_is_refused(wicbox: WicboxCli, tmp_path: Path) -> None:
    wicbox.home.mkdir(mode=0o700)
    target = tmp_path / "elsewhere.db"
    (wicbox.home / "wicbox.db").symlink_to(target)
    result = wicbox("db", "init")
    assert result.exit_code == 2
    assert "symbolic link" in result.output
    assert not target.exists()


def test_private_files_are_never_written_through_a_link(tmp_path: Path) -> None:
    target = tmp_path / "target"
    target.write_text("kept", encoding="utf-8")
    link = tmp_path / "link"
    link.symlink_to(target)
    with pytest.raises(LinkRefused):
        write_private_text(link, "overwritten")
    with pytest.raises(LinkRefused):
        touch_private(link)
    assert target.read_text(encoding="utf-8") == "kept"
    refuse_links(target, within=tmp_path)  # a real file is fine


# --------------------------------------------------------------------------- Windows ACLs (seam)


def test_programdata_inheritance_is_a_loose_acl() -> None:
    dacl = parse_dacl(PROGRAMDATA_CHILD)
    assert not dacl.protected
    problems = dacl_problems(dacl)
    assert "inherits the parent folder's permissions (inheritance is on)" in problems
    assert "grants access to BUILTIN\\Users, CREATOR OWNER" in problems


def test_the_fix_turns_inheritance_off_and_removes_users_keeping_the_task_account() -> None:
    granted = PROGRAMDATA_CHILD + f"(A;OICI;0x1301bf;;;{TASK_SID})"
    wanted = tightened_dacl(parse_dacl(granted))
    assert wanted.protected
    assert wanted.text().startswith("D:PAI(A;OICI;FA;;;S-1-5-18)(A;OICI;FA;;;S-1-5-32-544)")
    sids = {ace.sid for ace in wanted.aces}
    assert sids == {SYSTEM_SID, ADMINISTRATORS_SID, TASK_SID}
    assert not any(ace.inherited for ace in wanted.aces)
    assert dacl_problems(parse_dacl(wanted.text())) == []


def test_the_icacls_fix_is_one_command() -> None:
    command = icacls_fix(Path("C:/ProgramData/wicbox-bridge/state/x"), parse_dacl(PROGRAMDATA_CHILD))
    assert command.startswith('icacls "C:/ProgramData/wicbox-bridge/state/x" /inheritance:d /remove:g ')
    assert "*S-1-5-32-545" in command  # Users
    assert "*S-1-1-0" in command  # Everyone
    assert f"/grant:r *{SYSTEM_SID}:(OI)(CI)F *{ADMINISTRATORS_SID}:(OI)(CI)F /T /Q" in command


def test_check_finds_and_fixes_a_loose_acl_through_the_seam(tmp_path: Path) -> None:
    windows = FakeWindows()
    folder = tmp_path / "state"
    folder.mkdir()
    item = FootprintItem("the machine-wide state folder (run lock, pause)", folder, folder=True)
    [finding] = footprint_findings([item], windows=windows)
    assert "grants access to BUILTIN\\Users" in finding.problem
    assert finding.fix.startswith(f'icacls "{folder}" /inheritance:d')
    assert finding.repair is not None
    finding.repair()
    assert windows.dacls[folder].startswith("D:PAI(")
    assert "BU" not in windows.dacls[folder]
    assert footprint_findings([item], windows=windows) == []


def test_a_folder_the_bridge_creates_on_windows_gets_its_own_acl(tmp_path: Path) -> None:
    windows = FakeWindows()
    base = tmp_path / "ProgramData" / "wicbox-bridge"
    base.parent.mkdir()
    make_private_dir(base / "state" / "abc", within=base, windows=windows)
    assert list(windows.dacls) == [base]  # the folders below inherit it
    assert windows.dacls[base] == private_folder_dacl(ME_SID).text()
    assert parse_dacl(windows.dacls[base]).protected
    assert "S-1-5-32-545" not in windows.dacls[base]


def test_a_junction_is_refused_on_windows(tmp_path: Path) -> None:
    windows = FakeWindows()
    base = tmp_path / "wicbox-bridge"
    (base / "state").mkdir(parents=True)
    windows.reparse.add(base / "state")
    with pytest.raises(LinkRefused):
        make_private_dir(base / "state" / "abc", within=base, windows=windows)
    item = FootprintItem("the state folder", base / "state", folder=True)
    assert "junction" in footprint_findings([item], windows=windows)[0].problem
