"""Least privilege for the scheduled task: warnings when it would run as SYSTEM, an administrator
or root (pure).

wicbox needs no administrator's rights: it reads the configuration, writes its own folders and
reaches the database and the mail servers. A task that runs as SYSTEM or an administrator turns
any flaw in the bridge (or in a library it uses) into a flaw with the server's rights. The guide
recommends a dedicated account: a group managed service account (gMSA, ``DOMAIN\\wicbox$``) or a
plain domain account on Windows, a system account without login (``useradd --system``) on Linux.
"""

from __future__ import annotations

from wicbox_bridge.schedule.spec import Logon, Platform, ScheduleSpec

# LocalSystem and the accounts that are administrators on every Windows computer.
_WINDOWS_SYSTEM = frozenset({"system", "localsystem", "nt authority\\system", ".\\localsystem", "s-1-5-18"})
_WINDOWS_ADMIN = frozenset({"administrator", "builtin\\administrators", "administrators", "s-1-5-32-544"})
_POSIX_ROOT = frozenset({"root", "0"})


def _account_name(account: str) -> str:
    """``DOMAIN\\Administrator`` -> ``administrator`` (the local part, lower case)."""
    return account.rsplit("\\", 1)[-1].strip().lower()


def privilege_warnings(
    spec: ScheduleSpec, platform: Platform, *, user_units: bool = False, account_is_admin: bool = False
) -> tuple[str, ...]:
    """Why the task's account has more rights than wicbox needs, with the fix; empty when it has not.

    ``account_is_admin``: the task's account is known to be in BUILTIN\\Administrators (the command
    knows it only for the account that runs it).
    """
    if platform is Platform.WINDOWS:
        return _windows_warnings(spec, account_is_admin=account_is_admin)
    if (
        platform is Platform.SYSTEMD
        and not user_units
        and (spec.run_as is None or spec.run_as in _POSIX_ROOT)
    ):
        fix = _EMBEDDED_FIX if spec.config_path is None else "install with `--run-as wicbox`"
        return (
            "the service runs as root, which wicbox does not need; create a dedicated account "
            f"(`useradd --system --no-create-home --shell /usr/sbin/nologin wicbox`) and {fix}",
        )
    return ()


# The embedded default is the database of the account that schedules it: another account is
# chosen by scheduling from that account (or by giving the runs a WicGlobal.config), not --run-as.
_EMBEDDED_FIX = (
    "schedule the embedded default as that account (its own data folder), or give the runs a "
    "WicGlobal.config and install with `--config <WIC folder>/WicGlobal.config --run-as <account>`"
)


def _windows_warnings(spec: ScheduleSpec, *, account_is_admin: bool) -> tuple[str, ...]:
    fix = (
        "run it as a dedicated account: a gMSA (`--run-as DOMAIN\\wicbox$`) or a domain account that is "
        "no administrator (`--run-as DOMAIN\\svc-wicbox`), see the guide's section on the task's account"
    )
    if spec.config_path is None:
        fix = f"use a dedicated account that is no administrator: {_EMBEDDED_FIX}"
    account = (spec.run_as or "").strip().lower()
    if spec.logon is Logon.SYSTEM or account in _WINDOWS_SYSTEM:
        return (f"the task runs as SYSTEM (LocalSystem), with every right on this server; {fix}",)
    warnings: tuple[str, ...] = ()
    if account in _WINDOWS_ADMIN or _account_name(account) == "administrator" or account_is_admin:
        warnings += (f"the task runs as {spec.run_as}, an administrator of this server; {fix}",)
    if spec.highest:
        warnings += (
            "--highest runs the task with the account's highest privileges, which wicbox does not need",
        )
    return warnings
