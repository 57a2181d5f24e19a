"""Fills a :class:`~wicbox_bridge.status.report.StatusReport` from the database alone (no mail server).

The WICMan parameters are read but may be invalid: status still reports runs, mailboxes and
quarantined mails, and says what is wrong with the parameters.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

from wicbox_bridge.auth.accounts import MailboxAccount, plan_accounts
from wicbox_bridge.auth.certificate import load_certificate
from wicbox_bridge.config.endpoints import EndpointPolicy
from wicbox_bridge.config.params import (
    AuthMethod,
    Parameters,
    ParsedParameters,
    PermissionType,
    parse_parameters,
)
from wicbox_bridge.errors import BridgeError, ParameterError
from wicbox_bridge.status.report import (
    CertificateSummary,
    CredentialStatus,
    MailboxStatus,
    Permission,
    QuarantineStatus,
    StatusOptions,
    StatusReport,
)
from wicbox_bridge.store.activity import (
    filed_since,
    last_good_run_finished_at,
    latest_quarantined,
    quarantined_since,
    recent_runs,
)
from wicbox_bridge.store.base import Store
from wicbox_bridge.store.leases import DatabaseClock, list_leases
from wicbox_bridge.store.mailbox_state import ErrorKind, MailboxState, mailbox_states
from wicbox_bridge.store.mails import normalized_mailbox
from wicbox_bridge.store.parameters import read_parameters


@dataclass(frozen=True)
class _Configuration:
    """What the parameters say, as far as they can be read."""

    parameters: Parameters | None
    accounts: tuple[MailboxAccount, ...] | None
    problem: str | None
    warnings: tuple[str, ...]


def _configuration(store: Store, policy: EndpointPolicy | None) -> _Configuration:
    try:
        parsed: ParsedParameters = parse_parameters(read_parameters(store), policy)
    except ParameterError as error:
        return _Configuration(None, None, str(error), ())
    try:
        plan = plan_accounts(parsed.parameters, store)
    except ParameterError as error:
        return _Configuration(parsed.parameters, None, str(error), parsed.warnings)
    return _Configuration(parsed.parameters, plan.accounts, None, parsed.warnings)


def _permission(parameters: Parameters | None) -> Permission:
    if parameters is None:
        return Permission.UNKNOWN
    if parameters.method is AuthMethod.BASIC:
        return Permission.BASIC
    if parameters.permission_type is PermissionType.APPLICATION:
        return Permission.APPLICATION
    return Permission.DELEGATED


def _certificate(parameters: Parameters | None) -> tuple[CertificateSummary | None, str | None]:
    """The configured certificate file read for its dates (a local file; no sign-in)."""
    if parameters is None or parameters.certificate is None:
        return None, None
    try:
        loaded = load_certificate(parameters.certificate, parameters.certificate_password)
    except BridgeError as error:
        return None, str(error)
    return CertificateSummary(str(loaded.path), loaded.sha1_thumbprint, loaded.not_after), None


def _last_authentication_failure(states: Sequence[MailboxState]) -> MailboxState | None:
    failures = [s for s in states if s.error_kind is ErrorKind.AUTHENTICATION and s.last_error_at is not None]
    return max(failures, key=lambda s: s.last_error_at or s.last_attempt_at, default=None)


def mailbox_statuses(
    states: Sequence[MailboxState],
    accounts: Sequence[MailboxAccount] | None,
    folder: str | None,
    filed: dict[str, int],
) -> tuple[MailboxStatus, ...]:
    """The recorded mailboxes, then the configured ones never read yet (configured first)."""
    planned = {} if accounts is None else {normalized_mailbox(a.mailbox): a for a in accounts}
    seen: set[str] = set()
    result: list[MailboxStatus] = []
    for state in states:
        configured = None if accounts is None else state.mailbox in planned and state.folder == folder
        if configured:
            seen.add(state.mailbox)
        result.append(
            MailboxStatus(
                state.label,
                state.mailbox,
                state.folder,
                state.project_code,
                state,
                filed.get(state.mailbox, 0),
                configured,
            )
        )
    for key, account in planned.items():
        if key not in seen:
            result.append(
                MailboxStatus(
                    account.label, key, folder or "", account.project_code, None, filed.get(key, 0), True
                )
            )
    return tuple(sorted(result, key=lambda m: (m.configured is False, m.project_code or "", m.mailbox)))


def gather_status(
    store: Store, *, now: dt.datetime, options: StatusOptions, policy: EndpointPolicy | None = None
) -> StatusReport:
    """Everything ``wicbox status`` shows, read in a few bounded queries."""
    configuration = _configuration(store, policy)
    parameters = configuration.parameters
    states = mailbox_states(store)
    folder = parameters.source_folder if parameters else None
    filed = filed_since(store, now - dt.timedelta(hours=24))
    certificate, certificate_problem = _certificate(parameters)
    return StatusReport(
        now=now,
        database=store.description,
        runs=tuple(recent_runs(store, options.runs)),
        last_good_run_at=last_good_run_finished_at(store),
        mailboxes=mailbox_statuses(states, configuration.accounts, folder, filed),
        quarantine=QuarantineStatus(
            last_7_days=quarantined_since(store, now - dt.timedelta(days=7)),
            latest=tuple(latest_quarantined(store, options.quarantined)),
            failed_folder=parameters.failed_folder if parameters else None,
        ),
        credentials=CredentialStatus(
            permission=_permission(parameters),
            secret_expires=parameters.client_secret_expires if parameters else None,
            last_authentication_failure=_last_authentication_failure(states),
            problem=configuration.problem or certificate_problem,
            certificate=certificate,
        ),
        parameter_warnings=configuration.warnings,
        leases=tuple(row for row in list_leases(store, DatabaseClock()) if row.holder is not None),
    )
