"""Attacks by a local user or a database writer on configuration, logs and the outbox; each must fail."""

from __future__ import annotations

import io
import logging
import threading
from pathlib import Path

import pytest

from tests.clihelp import WicboxCli, write_config
from tests.plugins.wic import WicInstallation
from wicbox_bridge.adapters.base import refuse_unsafe_message_id
from wicbox_bridge.adapters.graph_sent import message_id_filters
from wicbox_bridge.cli import report_unexpected
from wicbox_bridge.config.paths import machine_state_dir_for
from wicbox_bridge.errors import ExitCode, SendError
from wicbox_bridge.logs.escape import EscapingFormatter, escape_controls
from wicbox_bridge.logs.redact import Redactor
from wicbox_bridge.logs.setup import LogSettings, configure_logging, install_exception_hooks
from wicbox_bridge.run.trace import field_value
from wicbox_bridge.store.parameters import read_parameters

TYPO_SECRET = "Sup3rS3cret!"
HOSTILE = "Re: offer\x1b[2J\x07\r\n2026-01-01 ERROR wicbox: forged line\u202eexe.pdf\x85"


@pytest.fixture
def wicbox(tmp_path: Path) -> WicboxCli:
    (tmp_path / "home").mkdir()
    (tmp_path / "work").mkdir()
    return WicboxCli(home=tmp_path / "home", cwd=tmp_path / "work")


@pytest.mark.parametrize("args", [["-vvv", "check"], ["-vvv", "run"], ["-vvv", "status", "--json"]])
def test_a_misspelt_password_keyword_never_reaches_output_or_log(
    wicbox: WicboxCli, tmp_path: Path, args: list[str]
) -> None:
    config = write_config(
        tmp_path / "WicGlobal.config", f"Data Source=sql01;User ID=wic;Pasword={TYPO_SECRET};Encrypt=yes"
    )
    result = wicbox(*args, config=config)
    assert result.exit_code == ExitCode.CONFIGURATION, result.output
    assert "'Pasword'" in result.output
    log = machine_state_dir_for(config, env={"WICBOX_HOME": str(wicbox.home)}) / "logs" / "wicbox.log"
    for text in (result.output, log.read_text(encoding="utf-8")):
        assert TYPO_SECRET not in text and "S3cret" not in text


def test_a_named_config_without_wic_is_exit_2_and_fills_no_embedded_database(
    wicbox: WicboxCli, tmp_path: Path
) -> None:
    config = write_config(tmp_path / "WicGlobal.config", None, max_mails="5")
    result = wicbox("run", config=config)
    assert result.exit_code == ExitCode.CONFIGURATION, result.output
    assert 'no connection string named "WIC"' in result.output
    assert not list(wicbox.home.rglob("*.db"))


@pytest.mark.parametrize(
    "name", ["WICBOX_MAILCLIENT_PASSWORD", "wicbox_mailclient_clientsecret", "WICBOXPassword"]
)
def test_params_set_refuses_a_secret_on_the_command_line(wic: WicInstallation, name: str) -> None:
    result = wic.cli("params", "set", name, TYPO_SECRET)
    assert result.exit_code == ExitCode.CONFIGURATION, result.output
    assert "--prompt" in result.output and "--stdin" in result.output
    assert TYPO_SECRET not in result.output
    with wic.store() as store:
        assert TYPO_SECRET not in set(read_parameters(store).values())


def test_params_set_reads_a_secret_from_stdin(wic: WicInstallation) -> None:
    result = wic.cli("params", "set", "WICBOX_MAILCLIENT_PASSWORD", "--stdin", input=f"{TYPO_SECRET}\n")
    assert result.exit_code == 0, result.output
    assert TYPO_SECRET not in result.output
    with wic.store() as store:
        assert read_parameters(store)["WICBOX_MAILCLIENT_PASSWORD"] == TYPO_SECRET


def test_control_characters_from_a_mail_are_escaped_in_every_log_line(tmp_path: Path) -> None:
    log_path = tmp_path / "logs" / "wicbox.log"
    stderr = io.StringIO()
    setup = configure_logging(LogSettings(verbosity=1, file_path=log_path), Redactor())
    try:
        for handler in setup.handlers[:1]:
            assert isinstance(handler, logging.StreamHandler)
            handler.setStream(stderr)
        logging.getLogger("wicbox.mail").warning("subject=%s", HOSTILE)
    finally:
        setup.close()
    for text in (stderr.getvalue(), log_path.read_text(encoding="utf-8")):
        assert text.count("\n") == 1, text  # one record, one line: no forged second line
        for raw in ("\x1b", "\x07", "\r", "\u202e", "\x85"):
            assert raw not in text
        assert "\\x1b[2J\\x07\\r\\n2026-01-01 ERROR" in text and "\\u202e" in text


def test_the_trace_line_escapes_control_characters() -> None:
    value = field_value("<id\x1b]0;title\x07@evil>")
    assert "\x1b" not in value and "\x07" not in value and "\\u001b" in value


def test_escape_keeps_a_tracebacks_lines_only_when_asked() -> None:
    assert escape_controls("a\nb\tc") == "a\\nb\\x09c"
    assert escape_controls("a\nb\r", keep_newlines=True) == "a\nb\\r"
    record = logging.LogRecord("wicbox", logging.ERROR, __file__, 1, "x%s", ("\n\x1b",), None)
    assert EscapingFormatter("%(message)s").format(record) == "x\\n\\x1b"


def test_an_unexpected_error_shows_only_a_redacted_traceback(capsys: pytest.CaptureFixture[str]) -> None:
    redactor = Redactor()
    redactor.register([TYPO_SECRET])
    try:
        raise RuntimeError(f"driver said: login failed for password {TYPO_SECRET}\x1b[2J")
    except RuntimeError as error:
        report_unexpected(error, redactor)
    shown = capsys.readouterr().err
    assert "Traceback" in shown and "RuntimeError" in shown
    assert TYPO_SECRET not in shown and "\x1b" not in shown
    assert "unexpected error" in shown


def test_an_exception_in_a_thread_is_logged_redacted(tmp_path: Path) -> None:
    log_path = tmp_path / "logs" / "wicbox.log"
    redactor = Redactor()
    redactor.register([TYPO_SECRET])
    setup = configure_logging(LogSettings(file_path=log_path), redactor)
    undo = install_exception_hooks()
    try:
        stderr = io.StringIO()
        assert isinstance(setup.handlers[0], logging.StreamHandler)
        setup.handlers[0].setStream(stderr)

        def deliver() -> None:
            raise ConnectionError(f"relay lost the link, token {TYPO_SECRET}")

        thread = threading.Thread(target=deliver, name="relay-delivery")
        thread.start()
        thread.join()
    finally:
        undo()
        setup.close()
    logged = log_path.read_text(encoding="utf-8")
    assert "relay-delivery stopped on an unexpected error" in logged and "ConnectionError" in logged
    for text in (logged, stderr.getvalue()):
        assert TYPO_SECRET not in text


@pytest.mark.parametrize(
    "message_id",
    ["<a@b>\r\nA1 LOGOUT", "<a@b>\n", "<a@b>\x00", "<a@b> OR ALL", "<a@b>\x85", "<a@b>\u2028"],
)
def test_an_outbox_message_id_with_control_characters_is_refused(message_id: str) -> None:
    # Attack: a writer of WICBOX_OUTBOX smuggles an IMAP command or a Graph filter into the look-up.
    with pytest.raises(SendError) as caught:
        refuse_unsafe_message_id(message_id)
    assert caught.value.permanent
    with pytest.raises(SendError):
        message_id_filters(message_id)


def test_a_plain_message_id_is_accepted() -> None:
    refuse_unsafe_message_id("<wicbox.812.20260101@klant.example>")
    assert "internetMessageId eq '<it''s@x>'" in message_id_filters("<it's@x>")[0]
