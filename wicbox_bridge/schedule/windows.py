"""The Windows Task Scheduler task: its XML (schema 1.2) and the schtasks command lines (pure).

The task runs whether anyone is logged on or not (LogonType Password with the account's password
given to schtasks, S4U without a stored password, or SYSTEM), never starts a second instance while
one is busy (IgnoreNew), ends a run after the time limit, runs on batteries, and catches up a start
missed while the computer was off (StartWhenAvailable).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

from wicbox_bridge.schedule.commandline import CommandLine
from wicbox_bridge.schedule.spec import Logon, ScheduleSpec
from wicbox_bridge.schedule.timing import iso_duration
from wicbox_bridge.secret import Secret

TASK_NAMESPACE = "http://schemas.microsoft.com/windows/2004/02/mit/task"
SYSTEM_SID = "S-1-5-18"
_PRINCIPAL_ID = "Author"


def windows_quote(argument: str, *, always: bool = False) -> str:
    """One argument as the Microsoft C runtime splits command lines (CommandLineToArgvW).

    Quoted when it holds a space, a tab or a quote (or ``always``); backslashes are doubled only
    where they precede a quote, as the runtime expects.
    """
    if not always and argument and not any(ch in argument for ch in ' \t"'):
        return argument
    quoted, backslashes = ['"'], 0
    for ch in argument:
        if ch == "\\":
            backslashes += 1
            continue
        if ch == '"':
            quoted.append("\\" * (2 * backslashes + 1) + '"')
        else:
            quoted.append("\\" * backslashes + ch)
        backslashes = 0
    quoted.append("\\" * (2 * backslashes) + '"')
    return "".join(quoted)


def task_arguments(spec: ScheduleSpec) -> str:
    """The Exec action's Arguments: the configuration's path always in quotes."""
    leading = [windows_quote(arg) for arg in spec.program.leading_args]
    return " ".join([*leading, "--config", windows_quote(spec.config_path, always=True), "run"])


def task_xml(spec: ScheduleSpec) -> str:
    """The task definition as text (``task_xml_bytes`` gives it as schtasks reads it)."""
    task = ET.Element("Task", {"version": "1.2", "xmlns": TASK_NAMESPACE})
    _registration_info(ET.SubElement(task, "RegistrationInfo"), spec)
    _triggers(ET.SubElement(task, "Triggers"), spec)
    _principals(ET.SubElement(task, "Principals"), spec)
    _settings(ET.SubElement(task, "Settings"), spec)
    _actions(ET.SubElement(task, "Actions", {"Context": _PRINCIPAL_ID}), spec)
    ET.indent(task, space="  ")
    return '<?xml version="1.0" encoding="UTF-16"?>\n' + ET.tostring(task, encoding="unicode") + "\n"


def task_xml_bytes(spec: ScheduleSpec) -> bytes:
    """UTF-16 little-endian with a byte-order mark, as ``schtasks /Create /XML`` expects."""
    return "\ufeff".encode("utf-16-le") + task_xml(spec).replace("\n", "\r\n").encode("utf-16-le")


def _text(parent: ET.Element, tag: str, text: str) -> ET.Element:
    element = ET.SubElement(parent, tag)
    element.text = text
    return element


def _registration_info(info: ET.Element, spec: ScheduleSpec) -> None:
    _text(info, "Author", spec.author)
    _text(
        info,
        "Description",
        f"wicbox-bridge: files the mailboxes of {spec.config_path} into the WIC database every "
        f"{spec.every_minutes} minutes. Installed by `wicbox schedule install`; for an upgrade use "
        "`wicbox schedule stop` and `wicbox schedule start`.",
    )
    _text(info, "URI", "\\" + spec.name)


def _triggers(triggers: ET.Element, spec: ScheduleSpec) -> None:
    trigger = ET.SubElement(triggers, "TimeTrigger")  # schema order: Enabled, StartBoundary, Repetition
    _text(trigger, "Enabled", "true")
    _text(trigger, "StartBoundary", spec.start_boundary.replace(microsecond=0).isoformat())
    repetition = ET.SubElement(trigger, "Repetition")  # no Duration: repeats indefinitely
    _text(repetition, "Interval", iso_duration(spec.every_minutes))
    _text(repetition, "StopAtDurationEnd", "false")


def _principals(principals: ET.Element, spec: ScheduleSpec) -> None:
    principal = ET.SubElement(principals, "Principal", {"id": _PRINCIPAL_ID})
    if spec.logon is Logon.SYSTEM:
        _text(principal, "UserId", SYSTEM_SID)
        _text(principal, "RunLevel", "HighestAvailable")
        return
    _text(principal, "UserId", spec.run_as or "")
    _text(principal, "LogonType", "Password" if spec.logon is Logon.PASSWORD else "S4U")
    _text(principal, "RunLevel", "HighestAvailable" if spec.highest else "LeastPrivilege")


_SETTINGS = (
    ("MultipleInstancesPolicy", "IgnoreNew"),
    ("DisallowStartIfOnBatteries", "false"),
    ("StopIfGoingOnBatteries", "false"),
    ("AllowHardTerminate", "true"),
    ("StartWhenAvailable", "true"),
    ("RunOnlyIfNetworkAvailable", "false"),
    ("AllowStartOnDemand", "true"),
    ("Enabled", "true"),
    ("Hidden", "false"),
    ("RunOnlyIfIdle", "false"),
    ("WakeToRun", "false"),
)


def _settings(settings: ET.Element, spec: ScheduleSpec) -> None:
    for tag, value in _SETTINGS:
        _text(settings, tag, value)
    idle = ET.SubElement(settings, "IdleSettings")
    _text(idle, "StopOnIdleEnd", "false")
    _text(idle, "RestartOnIdle", "false")
    _text(settings, "ExecutionTimeLimit", iso_duration(spec.time_limit_minutes))
    _text(settings, "Priority", "7")


def _actions(actions: ET.Element, spec: ScheduleSpec) -> None:
    execute = ET.SubElement(actions, "Exec")
    _text(execute, "Command", spec.program.executable)
    _text(execute, "Arguments", task_arguments(spec))
    _text(execute, "WorkingDirectory", spec.working_dir)


# --------------------------------------------------------------------------- schtasks


def schtasks_query(name: str) -> CommandLine:
    return CommandLine(("schtasks", "/Query", "/TN", name))


def schtasks_create(
    spec: ScheduleSpec, xml_file: str, password: Secret | None, *, force: bool
) -> CommandLine:
    """Registers the task from its XML; with LogonType Password, as ``/RU`` without ``/RP``: schtasks
    then asks for the password, which it reads from its standard input (never from its arguments)."""
    argv: list[str | Secret] = ["schtasks", "/Create", "/TN", spec.name, "/XML", xml_file]
    if spec.logon is Logon.PASSWORD:
        argv += ["/RU", spec.run_as or ""]
    if force:
        argv.append("/F")
    stdin = (password or Secret("")) if spec.logon is Logon.PASSWORD else None
    return CommandLine(tuple(argv), stdin=stdin)


def icacls_grant(directory: str, account: str) -> CommandLine:
    """Gives the task's account Modify on the configuration's machine-wide directory, inherited by
    what is created in it later and applied to what is there (``/T``). Under %ProgramData% a file
    belongs to the account that created it, so without this an administrator's earlier `wicbox
    check` (the log file) or `schedule stop` (the run lock) would lock the task's account out."""
    return CommandLine(("icacls", directory, "/grant", f"{account}:(OI)(CI)M", "/T", "/Q"))


def schtasks_delete(name: str) -> CommandLine:
    return CommandLine(("schtasks", "/Delete", "/TN", name, "/F"))


def schtasks_disable(name: str) -> CommandLine:
    return CommandLine(("schtasks", "/Change", "/TN", name, "/DISABLE"))


def schtasks_enable(name: str) -> CommandLine:
    return CommandLine(("schtasks", "/Change", "/TN", name, "/ENABLE"))


def schtasks_end(name: str) -> CommandLine:
    """Ends the task's busy run (the fix when ``stop`` times out)."""
    return CommandLine(("schtasks", "/End", "/TN", name))
