"""``wicbox check``'s permission lines: the bridge's folders and files closed to other accounts.

Checked: the per-account folder, the key file of the sealed secrets, the embedded database, the
state folders (token cache; run lock and pause marker), the record of runs that failed before the
database (``failed-runs.json``), the token cache, the log folder and the log file. POSIX: a mode
that lets others read or change one, or another owner, with the ``chmod``/``chown`` that fixes
it. Windows: a folder's access list that inherits or grants Users (or Everyone, ...), with the
``icacls`` command that closes it. Everywhere: a link or junction in
their place. ``wicbox check --fix-permissions`` applies the fixes it can (mode and access list).
Also: a password or client secret that an older version left in plain text in the embedded
database.
"""

from __future__ import annotations

from collections.abc import Sequence

from wicbox_bridge.config.dbtarget import SqliteTarget
from wicbox_bridge.config.footprint import Finding, FootprintItem, footprint_findings
from wicbox_bridge.config.params import is_secret_parameter
from wicbox_bridge.config.paths import user_data_dir
from wicbox_bridge.config.sealed import KEY_FILE_NAME, is_sealed
from wicbox_bridge.config.winacl import WindowsSecurity
from wicbox_bridge.diagnostics.results import CheckResult, CheckStatus
from wicbox_bridge.errors import BridgeError
from wicbox_bridge.runtime import Runtime
from wicbox_bridge.status.failed_starts import FILE_NAME as FAILED_RUNS
from wicbox_bridge.store import Store
from wicbox_bridge.store.parameters import read_parameters

NAME = "permissions"


def footprint_items(runtime: Runtime, extra: Sequence[FootprintItem] = ()) -> list[FootprintItem]:
    """The folders and files of this configuration that must stay closed (present or not)."""
    base = user_data_dir(runtime.invocation.env)
    items = [FootprintItem("the per-account folder", base, folder=True)]
    items.append(FootprintItem("the key file of the sealed secrets", base / KEY_FILE_NAME, folder=False))
    try:
        state, machine = runtime.state_dir, runtime.machine_state_dir
    except BridgeError:  # no configuration file: its folders do not exist either
        return items
    items += [
        FootprintItem("the state folder", state, folder=True),
        FootprintItem("the machine-wide state folder (run lock, pause)", machine, folder=True),
        FootprintItem(
            "the record of runs that failed before the database", machine / FAILED_RUNS, folder=False
        ),
    ]
    log_file = runtime.log_file
    if log_file is not None:
        items += [
            FootprintItem("the log folder", log_file.parent, folder=True),
            FootprintItem("the log file", log_file, folder=False),
        ]
    try:
        database = runtime.config.database
    except BridgeError:
        database = None
    if isinstance(database, SqliteTarget):
        items += [
            FootprintItem("the database's folder", database.path.parent, folder=True),
            FootprintItem("the database", database.path, folder=False),
        ]
    unique: dict[object, FootprintItem] = {}
    for item in (*items, *extra):
        unique.setdefault(item.path, item)
    return list(unique.values())


def permission_checks(
    runtime: Runtime,
    *,
    fix: bool,
    windows: WindowsSecurity | None,
    extra: Sequence[FootprintItem] = (),
) -> list[CheckResult]:
    """One WARN per finding (with the command that fixes it), or one OK line; ``fix`` repairs.
    ``extra``: the token cache, whose name only the command layer knows."""
    items = footprint_items(runtime, extra)
    findings = footprint_findings(items, windows=windows)
    if not findings:
        return [
            CheckResult(NAME, CheckStatus.OK, f"{len(items)} folders and files are closed to other accounts")
        ]
    return [_result(finding, fix=fix) for finding in findings]


def _result(finding: Finding, *, fix: bool) -> CheckResult:
    if fix and finding.repair is not None:
        try:
            finding.repair()
        except (OSError, BridgeError) as exc:
            reason = exc.message if isinstance(exc, BridgeError) else exc.strerror or str(exc)
            return CheckResult(
                NAME, CheckStatus.WARN, f"{finding.line()}; the fix failed: {reason}", finding.fix
            )
        return CheckResult(NAME, CheckStatus.OK, f"{finding.line()}: fixed ({finding.fix})")
    how = "" if finding.repair is None else " (or `wicbox check --fix-permissions`)"
    return CheckResult(NAME, CheckStatus.WARN, finding.line(), f"{finding.fix}{how}")


def plain_secret_checks(runtime: Runtime, store: Store) -> list[CheckResult]:
    """A WARN per secret parameter stored in plain text in the embedded database."""
    if not runtime.seals_secrets:
        return []
    plain = sorted(
        name
        for name, value in read_parameters(store).items()
        if is_secret_parameter(name) and (value or "").strip() and not is_sealed(value)
    )
    return [
        CheckResult(
            NAME,
            CheckStatus.WARN,
            f"{name} is stored in plain text in the embedded database",
            f"store it sealed: `wicbox params set {name} --prompt`",
        )
        for name in plain
    ]
