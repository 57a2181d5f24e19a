"""The SMTP part of ``wicbox check``: connect, TLS and AUTH for each sending account, then QUIT.

Nothing is sent. While WIC has never put a mail in the outbox, a failing sign-in is a WARN (the
bridge only reads); once the outbox is in use it is a FAIL with the fix.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

from wicbox_bridge.auth.accounts import MailboxAccount
from wicbox_bridge.diagnostics.results import CheckResult, CheckStatus
from wicbox_bridge.errors import BridgeError

SmtpLoginProbe = Callable[[MailboxAccount], str]
"""Signs ``account`` in to the SMTP server and quits; returns what happened (raises BridgeError)."""

NOT_IN_USE = "WIC has not put mail in WICBOX_OUTBOX yet, so this only matters once it sends mail"


def smtp_checks(
    accounts: Iterable[MailboxAccount], probe: SmtpLoginProbe, *, sending_in_use: bool
) -> Iterator[CheckResult]:
    """One ``smtp (<account>)`` line per account that may send."""
    seen: set[str] = set()
    for account in accounts:
        if account.mailbox.casefold() in seen:
            continue
        seen.add(account.mailbox.casefold())
        name = f"smtp ({account.label})"
        try:
            detail = probe(account)
        except BridgeError as error:
            yield _refused(name, error, sending_in_use)
            continue
        yield CheckResult(name, CheckStatus.OK, detail)


def _refused(name: str, error: BridgeError, sending_in_use: bool) -> CheckResult:
    if sending_in_use:
        return CheckResult(name, CheckStatus.FAIL, error.message, error.fix, int(error.exit_code))
    return CheckResult(
        name, CheckStatus.WARN, f"{error.message} ({NOT_IN_USE})", error.fix, int(error.exit_code)
    )
