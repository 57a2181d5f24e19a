"""The checks behind ``wicbox check``, in the order an admin fixes things.

Each step yields :class:`~wicbox_bridge.diagnostics.results.CheckResult` lines; a step that cannot
run because an earlier one failed is reported as SKIP with the reason, so the first FAIL is the
thing to fix.
Nothing here prints or exits: the command renders the results.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

from wicbox_bridge.config.dbtarget import SqliteTarget
from wicbox_bridge.config.params import Parameters
from wicbox_bridge.config.wicglobal import GlobalConfig
from wicbox_bridge.diagnostics.permissions import plain_secret_checks
from wicbox_bridge.diagnostics.results import CheckResult, CheckStatus, failed
from wicbox_bridge.errors import BridgeError
from wicbox_bridge.runtime import Runtime
from wicbox_bridge.schedule.pause import read_pause
from wicbox_bridge.store import Store
from wicbox_bridge.store.schema import LATEST_VERSION, schema_version


@dataclass(frozen=True)
class LoadedSettings:
    """What the first checks produced, for the checks that need it."""

    config: GlobalConfig
    parameters: Parameters


AccountChecks = Callable[[LoadedSettings, Store], Iterator[CheckResult]]


def run_checks(
    runtime: Runtime,
    account_checks: AccountChecks | None = None,
    permissions: Callable[[], list[CheckResult]] | None = None,
) -> list[CheckResult]:
    """Configuration, database and parameters, then ``diagnostics.accounts`` (protocol, tokens, logins).

    ``permissions`` (``diagnostics.permissions``) runs after the log file's line: the folders and
    files of the bridge that other accounts could read or change.
    """
    results: list[CheckResult] = []
    config = _check_config(runtime, results)
    log_file = _log_file_line(runtime) if config is not None else None
    results.append(log_file or _skipped("log file", "the configuration file has to be fixed first"))
    if permissions is not None:
        results.extend(permissions())
    paused = _pause_line(runtime)
    if paused is not None:
        results.append(paused)
    if config is None:
        results.append(_skipped("database", "the configuration file has to be fixed first"))
        return results
    missing = _missing_sqlite_file(config)
    if missing is not None:  # read-only probing: check never creates an empty database
        results.append(missing)
        return results
    try:
        store = runtime.open_store()
    except BridgeError as error:
        results.append(failed("database", error))
        return results
    try:
        parameters = _check_database_and_parameters(runtime, store, results)
        if parameters is not None and account_checks is not None:
            results.extend(account_checks(LoadedSettings(config, parameters), store))
    finally:
        store.close()
    return results


def _check_config(runtime: Runtime, results: list[CheckResult]) -> GlobalConfig | None:
    try:
        location = runtime.location
        config = runtime.config
    except BridgeError as error:
        results.append(failed("configuration", error))
        return None
    where = f"{location.path} ({location.source})" if location.path else "none found: embedded defaults"
    results.append(CheckResult("configuration", CheckStatus.OK, f"WicGlobal.config: {where}"))
    results.append(
        CheckResult("mail cap", CheckStatus.OK, f"at most {config.max_mails_per_run} mails per run")
    )
    results.extend(CheckResult("configuration", CheckStatus.WARN, warning) for warning in config.warnings)
    return config


def _log_file_line(runtime: Runtime) -> CheckResult:
    """Where this configuration's log file is (the default or WicBoxLogDirectory), for support."""
    path = runtime.log_file
    if path is None:
        return CheckResult("log file", CheckStatus.OK, "none: no configuration file")
    try:
        with path.open("a", encoding="utf-8"):  # the logging set-up already created it if it could
            pass
    except OSError as exc:
        return CheckResult(
            "log file",
            CheckStatus.WARN,
            f"{path}: cannot be written ({exc.strerror or exc}); runs log to the terminal only",
            fix=f"give this account write access to {path.parent}, or name another folder with "
            "WicBoxLogDirectory in WicGlobal.config",
        )
    return CheckResult("log file", CheckStatus.OK, str(path))


def _pause_line(runtime: Runtime) -> CheckResult | None:
    """A warning while `wicbox schedule stop` holds runs off (they end at once with exit code 0)."""
    try:
        marker = read_pause(runtime.machine_state_dir)
    except BridgeError:  # no configuration file: nothing can be paused
        return None
    if marker is None:
        return None
    return CheckResult(
        "runs",
        CheckStatus.WARN,
        f"paused by `wicbox schedule stop` at {marker.at} by {marker.by}: every `wicbox run` ends at once",
        fix="`wicbox schedule start` resumes them",
    )


def _missing_sqlite_file(config: GlobalConfig) -> CheckResult | None:
    """A SQLite database (the embedded default, or one WicGlobal.config names) that does not exist
    yet: FAIL with the command that creates it, instead of opening (and so creating) an empty file."""
    database = config.database
    if not isinstance(database, SqliteTarget) or database.path.exists():
        return None
    return CheckResult(
        "database",
        CheckStatus.FAIL,
        f"{database.describe()} does not exist yet",
        "run `wicbox db init` (it creates the database with the wicbox-bridge tables), then "
        "`wicbox params set NAME VALUE` for the mailbox's parameters",
        2,
    )


def _check_database_and_parameters(
    runtime: Runtime, store: Store, results: list[CheckResult]
) -> Parameters | None:
    where = runtime.config.database.describe()
    version = schema_version(store)
    if version is None:
        results.append(
            CheckResult(
                "database",
                CheckStatus.FAIL,
                f"{where} is reachable but has no wicbox-bridge schema",
                "run `wicbox db init`",
                2,
            )
        )
        return None
    status = CheckStatus.OK if version == LATEST_VERSION else CheckStatus.WARN
    detail = f"{where}, schema version {version}"
    fix = None if version == LATEST_VERSION else "run `wicbox db upgrade`"
    results.append(CheckResult("database", status, detail, fix))
    results.extend(plain_secret_checks(runtime, store))
    try:
        parsed = runtime.load_parameters(store)
    except BridgeError as error:
        results.append(failed("parameters", error))
        return None
    params = parsed.parameters
    summary = (
        f"account mode {params.account_mode.value}, method {params.method.value}, "
        f"{params.permission_type.value} permissions"
    )
    results.append(CheckResult("parameters", CheckStatus.OK, summary))
    results.extend(CheckResult("parameters", CheckStatus.WARN, warning) for warning in parsed.warnings)
    return params


def _skipped(name: str, reason: str) -> CheckResult:
    return CheckResult(name, CheckStatus.SKIP, f"not checked: {reason}")
