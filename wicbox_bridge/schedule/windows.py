"""The Windows Task Scheduler task: its XML (schema 1.2) and the schtasks command lines (pure).

The task runs whether anyone is logged on or not (LogonType Password with the account's password
given to schtasks, S4U without a stored password, or SYSTEM), never starts a second instance while
one is busy (IgnoreNew), ends a run after the time limit, runs on batteries, and catches up a start
missed while the computer was off (StartWhenAvailable).

The relay's task (``--relay``) runs as the same account, starts at boot, has no time limit and is
restarted when it fails (RestartOnFailure). Task Scheduler counts a failure to start there, not
reliably a program that ends with an error code, so a trigger every few minutes also starts it
again; IgnoreNew makes that a no-op while the relay runs.
"""

from __future__ import annotations

import itertools
import xml.etree.ElementTree as ET
from dataclasses import dataclass

from wicbox_bridge.schedule.commandline import CommandLine
from wicbox_bridge.schedule.relay import RelaySpec, relay_task_name
from wicbox_bridge.schedule.serve import ServeSpec
from wicbox_bridge.schedule.spec import Logon, ScheduleSpec
from wicbox_bridge.schedule.timing import iso_duration
from wicbox_bridge.secret import Secret

Service = RelaySpec | ServeSpec  # a long-running entry: started at boot, again when it fails
TASK_NAMESPACE = "http://schemas.microsoft.com/windows/2004/02/mit/task"
SYSTEM_SID = "S-1-5-18"
_NS = {"t": TASK_NAMESPACE}
_PRINCIPAL_ID = "Author"
_PATH_OPTIONS = frozenset({"--config", "--tls-cert", "--tls-key", "--relay-tls-cert", "--relay-tls-key"})
RELAY_RESTART_INTERVAL = "PT1M"
RELAY_RESTART_COUNT = 255  # the schema's Count is an unsignedByte
RELAY_WATCH_MINUTES = 5


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


def task_arguments(spec: ScheduleSpec, relay: Service | None = None) -> str:
    """The Exec action's Arguments: the paths (configuration, TLS files) always in quotes."""
    words = spec.program.argv(spec.config_path, relay.arguments if relay else spec.run_arguments)[1:]
    pairs = itertools.pairwise(("", *words))  # each word with the one before it
    return " ".join(windows_quote(word, always=before in _PATH_OPTIONS) for before, word in pairs)


def task_xml(spec: ScheduleSpec, relay: Service | None = None) -> str:
    """The task definition as text (``task_xml_bytes`` gives it as schtasks reads it); with
    ``relay``, the relay's task."""
    task = ET.Element("Task", {"version": "1.2", "xmlns": TASK_NAMESPACE})
    _registration_info(ET.SubElement(task, "RegistrationInfo"), spec, relay)
    triggers = ET.SubElement(task, "Triggers")
    if relay is None:
        _time_trigger(triggers, spec, spec.every_minutes)
    else:
        _text(ET.SubElement(triggers, "BootTrigger"), "Enabled", "true")
        _time_trigger(triggers, spec, RELAY_WATCH_MINUTES)
    _principals(ET.SubElement(task, "Principals"), spec)
    _settings(ET.SubElement(task, "Settings"), spec, relay)
    _actions(ET.SubElement(task, "Actions", {"Context": _PRINCIPAL_ID}), spec, relay)
    ET.indent(task, space="  ")
    return '<?xml version="1.0" encoding="UTF-16"?>\n' + ET.tostring(task, encoding="unicode") + "\n"


def task_xml_bytes(spec: ScheduleSpec, relay: Service | None = None) -> bytes:
    """UTF-16 little-endian with a byte-order mark, as ``schtasks /Create /XML`` expects."""
    text = task_xml(spec, relay).replace("\n", "\r\n")
    return "\ufeff".encode("utf-16-le") + text.encode("utf-16-le")


def _text(parent: ET.Element, tag: str, text: str) -> ET.Element:
    element = ET.SubElement(parent, tag)
    element.text = text
    return element


def _registration_info(info: ET.Element, spec: ScheduleSpec, relay: Service | None) -> None:
    _text(info, "Author", spec.author)
    if relay is None:
        what = (
            f"files the mailboxes of {spec.describe} into the WIC database every "
            f"{spec.every_minutes} minutes. Installed by `wicbox schedule install`"
        )
    elif isinstance(relay, ServeSpec):
        what = (
            f"{relay.about(spec.describe)}, started at boot and again when it ends. "
            "Installed by `wicbox schedule install --serve`"
        )
    else:
        what = (
            f"the SMTP relay for WIC of {spec.describe} on {relay.listen}, started at boot and "
            "again when it ends. Installed by `wicbox schedule install --relay`"
        )
    upgrade = "; for an upgrade use `wicbox schedule stop` and `wicbox schedule start`."
    _text(info, "Description", f"wicbox-bridge: {what}{upgrade}")
    _text(info, "URI", "\\" + (relay_task_name(spec.name) if isinstance(relay, RelaySpec) else spec.name))


def _time_trigger(triggers: ET.Element, spec: ScheduleSpec, every_minutes: int) -> None:
    trigger = ET.SubElement(triggers, "TimeTrigger")  # schema order: Enabled, StartBoundary, Repetition
    _text(trigger, "Enabled", "true")
    _text(trigger, "StartBoundary", spec.start_boundary.replace(microsecond=0).isoformat())
    repetition = ET.SubElement(trigger, "Repetition")  # no Duration: repeats indefinitely
    _text(repetition, "Interval", iso_duration(every_minutes))
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


def _settings(settings: ET.Element, spec: ScheduleSpec, relay: Service | None) -> None:
    for tag, value in _SETTINGS:
        _text(settings, tag, value)
    idle = ET.SubElement(settings, "IdleSettings")
    _text(idle, "StopOnIdleEnd", "false")
    _text(idle, "RestartOnIdle", "false")
    _text(settings, "ExecutionTimeLimit", "PT0S" if relay else iso_duration(spec.time_limit_minutes))
    _text(settings, "Priority", "7")
    if relay is not None:
        restart = ET.SubElement(settings, "RestartOnFailure")
        _text(restart, "Interval", RELAY_RESTART_INTERVAL)
        _text(restart, "Count", str(RELAY_RESTART_COUNT))


def _actions(actions: ET.Element, spec: ScheduleSpec, relay: Service | None) -> None:
    execute = ET.SubElement(actions, "Exec")
    _text(execute, "Command", spec.program.executable)
    _text(execute, "Arguments", task_arguments(spec, relay))
    _text(execute, "WorkingDirectory", spec.working_dir)


@dataclass(frozen=True)
class InstalledTask:
    """What ``show`` tells of an installed task: its command line and whether it is enabled."""

    command: str
    enabled: bool


def installed_task(xml_text: str) -> InstalledTask | None:
    """The task as ``schtasks /Query /XML`` prints it, or None when that is not a task with a program."""
    start = xml_text.find("<Task")  # after the declaration of an encoding the text no longer has
    try:
        root = ET.fromstring(xml_text[start:] if start >= 0 else xml_text)  # noqa: S314 - Task Scheduler's own
    except ET.ParseError:
        return None
    execute = root.find("t:Actions/t:Exec", _NS)
    if execute is None:
        return None
    command = windows_quote(execute.findtext("t:Command", "", _NS))
    arguments = execute.findtext("t:Arguments", "", _NS)
    enabled = root.findtext("t:Settings/t:Enabled", "true", _NS).strip().lower() != "false"
    return InstalledTask(f"{command} {arguments}".strip(), enabled)


# --------------------------------------------------------------------------- schtasks


def schtasks_query(name: str) -> CommandLine:
    return CommandLine(("schtasks", "/Query", "/TN", name))


def schtasks_create(
    spec: ScheduleSpec, xml_file: str, password: Secret | None, *, force: bool, name: str | None = None
) -> CommandLine:
    """Registers the task (``name``: another task of the same account, the relay's) from its XML;
    with LogonType Password, as ``/RU`` without ``/RP``: schtasks then asks for the password, which it
    reads from its standard input (never from its arguments)."""
    argv: list[str | Secret] = ["schtasks", "/Create", "/TN", name or spec.name, "/XML", xml_file]
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
    """Ends the task's busy run (the fix when ``stop`` times out; the relay at ``stop``)."""
    return CommandLine(("schtasks", "/End", "/TN", name))


def schtasks_run(name: str) -> CommandLine:
    """Starts the task now (the relay, after install and start)."""
    return CommandLine(("schtasks", "/Run", "/TN", name))


def schtasks_query_xml(name: str) -> CommandLine:
    """The installed task's definition (its XML is the same in every language of Windows)."""
    return CommandLine(("schtasks", "/Query", "/TN", name, "/XML"))
