"""The log file: its lines (pure), its place and level, and what `wicbox run` leaves in it against the
test bed (one `wicbox.mail` line per mail, the run's start and end, no secret at -vvv)."""

from __future__ import annotations

import logging
import re
import sys
from pathlib import Path

import pytest

from tests.helpers.mailgen import make_mail
from tests.helpers.secrets import assert_no_secrets as scan_for_secrets
from tests.plugins.wic import Mailroom, WicInstallation, application_parameters
from tools.testbed.idp import IdentityPlatformEmulator
from tools.testbed.pki import LoopbackPki
from wicbox_bridge.config.paths import state_dir_for
from wicbox_bridge.config.wicglobal import load_global_config
from wicbox_bridge.logs.logfile import LogFileFormatter
from wicbox_bridge.logs.setup import LogSettings

LINE = re.compile(
    r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}[+-]\d\d:\d\d (?P<pid>\d+) (?P<level>[A-Z]+) +"
    r"(?P<logger>[\w.]+): (?P<message>.*)$"
)
MAIL_LINE = re.compile(
    r"^mailbox=(?P<mailbox>\S+) folder=(?P<folder>\S+) validity=(?P<validity>\S+) key=(?P<key>\S+) "
    r"message_id=(?P<message_id>\S+) project=(?P<project>\S+) outcome=(?P<outcome>\S+) "
    r"mail_id=(?P<mail_id>\S+) routing=(?P<routing>.+)$"
)


def _record(message: str, exc_info: bool = False) -> logging.LogRecord:
    record = logging.LogRecord("wicbox.mail", logging.INFO, __file__, 1, message, None, None)
    if exc_info:
        try:
            raise ValueError("kapot")
        except ValueError:
            record.exc_info = sys.exc_info()
    return record


# ------------------------------------------------------------------------------ pure: lines


FORMATTED = [
    # (message, what follows "wicbox.mail: " on the first line)
    ("mailbox=a@b key=7", "mailbox=a@b key=7"),
    ("subject: line one\r\nInjected: fake", "subject: line one\\r\\nInjected: fake"),
    ("bare\nnewline", "bare\\nnewline"),
    ("Ünïcode één", "Ünïcode één"),
]


@pytest.mark.parametrize(("message", "expected"), FORMATTED)
def test_a_record_is_one_line_with_time_offset_pid_level_and_logger(message: str, expected: str) -> None:
    text = LogFileFormatter().format(_record(message))
    assert "\n" not in text
    match = LINE.match(text)
    assert match is not None, text
    assert (match["level"], match["logger"], match["message"]) == ("INFO", "wicbox.mail", expected)
    assert int(match["pid"]) > 0


def test_a_traceback_follows_its_line_indented() -> None:
    first, *trace = LogFileFormatter().format(_record("failed", exc_info=True)).split("\n")
    assert LINE.match(first)
    assert trace[0] == "    Traceback (most recent call last):"
    assert trace[-1] == "    ValueError: kapot"
    assert all(line.startswith("    ") for line in trace)


LEVELS = [
    # (-v count, --log-level, terminal level, file level)
    (0, logging.INFO, logging.WARNING, logging.INFO),
    (1, logging.INFO, logging.INFO, logging.INFO),
    (2, logging.INFO, logging.DEBUG, logging.DEBUG),
    (3, logging.WARNING, logging.DEBUG, logging.DEBUG),
    (0, logging.ERROR, logging.WARNING, logging.WARNING),
    (0, logging.DEBUG, logging.WARNING, logging.DEBUG),
]


@pytest.mark.parametrize(("verbosity", "file_level", "stderr_level", "effective"), LEVELS)
def test_the_file_keeps_at_least_what_the_terminal_shows(
    verbosity: int, file_level: int, stderr_level: int, effective: int
) -> None:
    settings = LogSettings(verbosity, file_level)
    assert (settings.stderr_level, settings.effective_file_level) == (stderr_level, effective)


def _config_with_log_directory(tmp_path: Path, value: str | None) -> Path:
    setting = f'<appSettings><add key="wicboxlogdirectory" value="{value}"/></appSettings>' if value else ""
    path = tmp_path / "conf" / "WicGlobal.config"
    path.parent.mkdir(exist_ok=True)
    wic = '<connectionStrings><add name="WIC" connectionString="sqlite:///wic.db"/></connectionStrings>'
    path.write_text(
        f'<?xml version="1.0"?>\n<configuration>{wic}{setting}</configuration>\n', encoding="utf-8"
    )
    return path


LOG_DIRECTORIES = [
    # (WicBoxLogDirectory, the folder relative to tmp_path; None: the default)
    (None, None),
    ("  ", None),
    ("logs", "conf/logs"),
    ("../wic-logs", "conf/../wic-logs"),
    ("{tmp}/elders", "elders"),
]


@pytest.mark.parametrize(("value", "expected"), LOG_DIRECTORIES)
def test_wicboxlogdirectory_is_relative_to_the_configuration_file(
    tmp_path: Path, value: str | None, expected: str | None
) -> None:
    path = _config_with_log_directory(tmp_path, value and value.format(tmp=tmp_path))
    config = load_global_config(path, env={"WICBOX_HOME": str(tmp_path / "home")}, odbc_drivers=[])
    assert config.log_directory == (tmp_path / expected if expected else None)


# ------------------------------------------------------------------------------ a real run


def log_file(wic: WicInstallation) -> Path:
    """Where the module docstring of wicbox_bridge.logs.logfile says the log file is."""
    home = wic.cli_runner.home
    return state_dir_for(wic.config, env={"WICBOX_HOME": str(home)}) / "logs" / "wicbox.log"


def log_lines(path: Path) -> list[re.Match[str]]:
    lines = [line for line in path.read_text(encoding="utf-8").splitlines() if not line.startswith("    ")]
    assert all(LINE.match(line) for line in lines), [line for line in lines if not LINE.match(line)]
    return [match for match in map(LINE.match, lines) if match is not None]


def mail_lines(path: Path) -> list[dict[str, str]]:
    found = []
    for line in log_lines(path):
        if line["logger"] == "wicbox.mail":
            mail = MAIL_LINE.match(line["message"])
            assert mail is not None, line["message"]
            assert line["level"] == "INFO"
            found.append(mail.groupdict())
    return found


def test_a_run_leaves_one_line_per_mail_in_the_log_file(mailroom: Mailroom) -> None:
    wic = mailroom.wic
    wic.add_project(1, "ALPHA", mailbox="alpha@klant.example")
    uids = mailroom.deliver(
        [make_mail(1, to="alpha@klant.example"), make_mail(2, subject="geen project"), make_mail(3)]
    )
    result = wic.cli("run")
    assert result.exit_code == 0, result.output
    assert "wicbox.mail" not in result.output  # the terminal shows warnings only
    path = log_file(wic)
    mails = mail_lines(path)
    assert [(m["mailbox"], m["key"], m["message_id"], m["outcome"]) for m in mails] == [
        (mailroom.mailbox, str(uid), f"mail-{n}@example.org", "filed")
        for n, uid in zip((1, 2, 3), uids, strict=True)
    ]
    assert [m["project"] for m in mails] == ["ALPHA(1)", "unassigned", "unassigned"]
    with mailroom.dovecot.admin_session(mailroom.mailbox) as client:
        validity = client.select_folder("INBOX", readonly=True)[b"UIDVALIDITY"]
    assert {(m["folder"], m["validity"]) for m in mails} == {("INBOX", str(validity))}
    filed = {row.mail_id for row in mailroom.filed()}
    assert {int(m["mail_id"]) for m in mails} == filed
    messages = [line["message"] for line in log_lines(path)]
    [started] = [m for m in messages if m.startswith("run ") and " started: " in m]
    assert re.match(
        rf"run \d+ started: mode=SINGLE cap=100 dry_run=False version=\S+ config={wic.config} ", started
    )
    [ended] = [m for m in messages if m.startswith("run ") and " ended: " in m]
    assert "fetched 3, filed 3 (2 unassigned)" in ended
    assert messages[-1] == "wicbox run ended with exit code 0"


def test_a_second_run_appends_and_the_terminal_shows_the_summary_once(mailroom: Mailroom) -> None:
    mailroom.deliver([make_mail(1)])
    assert mailroom.wic.cli("run").exit_code == 0
    mailroom.deliver([make_mail(2)])
    result = mailroom.wic.cli("-v", "run")
    assert result.exit_code == 0, result.output
    assert result.output.count("fetched 1, filed 1") == 1  # the summary, not its log line too
    assert "wicbox.mail: mailbox=" in result.output  # -v shows the mail lines on the terminal
    mails = mail_lines(log_file(mailroom.wic))
    assert [m["message_id"] for m in mails] == ["mail-1@example.org", "mail-2@example.org"]


FILE_LEVELS = [
    # (--log-level, the levels a failed run leaves in the file)
    ("error", {"ERROR"}),
    ("warning", {"ERROR"}),
    ("info", {"INFO", "ERROR"}),
    ("DEBUG", {"DEBUG", "INFO", "ERROR"}),
]


@pytest.mark.parametrize(("level", "expected"), FILE_LEVELS)
def test_log_level_sets_what_the_file_keeps(wic: WicInstallation, level: str, expected: set[str]) -> None:
    wic.set_params({"WICBOX_MAILCLIENT_CLIENTID": None})
    result = wic.cli("--log-level", level, "run")
    assert result.exit_code == 2, result.output
    assert {line["level"] for line in log_lines(log_file(wic))} == expected
    assert ("    Traceback (most recent call last):" in log_file(wic).read_text()) is ("DEBUG" in expected)


def test_at_log_level_warning_a_run_leaves_no_mail_lines(mailroom: Mailroom) -> None:
    mailroom.deliver([make_mail(1)])
    assert mailroom.wic.cli("--log-level", "warning", "run").exit_code == 0
    assert mail_lines(log_file(mailroom.wic)) == []


def test_highest_verbosity_writes_no_secret_to_the_file(
    mailroom: Mailroom, idp: IdentityPlatformEmulator
) -> None:
    wic = mailroom.wic
    mailroom.deliver([make_mail(1)])
    for args in (("-vvv", "check"), ("-vvv", "token"), ("-vvv", "run")):
        result = wic.cli(*args)
        assert result.exit_code == 0, result.output
    text = log_file(wic).read_text(encoding="utf-8")
    assert "DEBUG" in text and "msal" in text  # the libraries' debug output is there ...
    # ... redacted: the password, every token, every refresh token the platform issued
    scan_for_secrets(text, secrets=[wic.directory.mailbox.password, *idp.issued_refresh_tokens()])
    assert len(mail_lines(log_file(wic))) == 1


def test_application_permissions_write_no_client_secret_to_the_file(
    mailroom: Mailroom, idp_clean: IdentityPlatformEmulator, loopback_pki: LoopbackPki
) -> None:
    wic = mailroom.wic
    imap = {"WICBOX_MAILCLIENT_IMAPHOST": f"{mailroom.dovecot.host}:{mailroom.dovecot.imaps_port}"}
    wic.set_params({**application_parameters(idp_clean, wic.directory, loopback_pki), **imap})
    mailroom.dovecot.grant_app_access(wic.directory.confidential_client_sp_id, mailroom.mailbox)
    mailroom.deliver([make_mail(1)])
    result = wic.cli("-vvv", "run")
    assert result.exit_code == 0, result.output
    text = log_file(wic).read_text(encoding="utf-8")
    assert "client_credentials" in text  # msal's debug output about the grant is there
    scan_for_secrets(text, secrets=[wic.directory.confidential_client_secret])


def test_an_error_and_its_fix_are_in_the_file(wic: WicInstallation) -> None:
    wic.set_params({"WICBOX_MAILCLIENT_CLIENTID": None})
    result = wic.cli("run")
    assert result.exit_code == 2
    [error] = [line for line in log_lines(log_file(wic)) if line["level"] == "ERROR"]
    assert error["message"].startswith("WICBOX_MAILCLIENT_CLIENTID")
    assert "for OAuth2. Fix: copy " in error["message"]  # errors.with_fix: two sentences
    assert log_lines(log_file(wic))[-1]["message"] == "wicbox run ended with exit code 2"
    assert result.output.count("WICBOX_MAILCLIENT_CLIENTID: is required") == 1


def _config_naming(wic: WicInstallation, log_directory: str) -> None:
    text = wic.config.read_text(encoding="utf-8")
    setting = f'<add key="WicBoxLogDirectory" value="{log_directory}"/>'
    assert "</appSettings>" in text  # the test bed's config has its allowed hosts there
    wic.config.write_text(text.replace("</appSettings>", f"{setting}</appSettings>"), encoding="utf-8")


def test_wicboxlogdirectory_moves_the_file(mailroom: Mailroom) -> None:
    wic = mailroom.wic
    _config_naming(wic, "wic-logs")
    mailroom.deliver([make_mail(1)])
    assert wic.cli("run").exit_code == 0
    moved = wic.config.parent / "wic-logs" / "wicbox.log"
    assert len(mail_lines(moved)) == 1
    assert not log_file(wic).exists()


def test_a_log_file_that_cannot_be_opened_warns_once_and_the_run_goes_on(mailroom: Mailroom) -> None:
    wic = mailroom.wic
    (wic.config.parent / "not-a-folder").write_text("a file where a folder was meant\n", encoding="utf-8")
    _config_naming(wic, "not-a-folder/logs")
    mailroom.deliver([make_mail(1), make_mail(2)])
    result = wic.cli("run")
    assert result.exit_code == 0, result.output
    assert "fetched 2, filed 2" in result.output
    expected = wic.config.parent / "not-a-folder" / "logs" / "wicbox.log"
    warnings = [line for line in result.output.splitlines() if "log file" in line]
    assert warnings == [
        f"wicbox: warning: cannot open the log file {expected}: Not a directory; logging to the terminal only"
    ]
    assert "WicBoxLogDirectory" in result.output and "wicbox: fix: " in result.output
    assert "Logging error" not in result.output and "Traceback" not in result.output
