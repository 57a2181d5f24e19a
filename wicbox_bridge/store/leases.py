"""Leases: which process works which mailbox, so several hosts share one database safely.

WICBOX_LEASE has one row per mailbox (lower case): the owner (a key drawn per process, its host
and process id), when the lease expires and a fencing token that grows by one with every new
owner. A process works a mailbox only while it holds the lease:

* :func:`acquire` takes a lease that is free or expired (or extends one this owner still holds),
  or, at once, a live one whose owner ran on this same machine and is provably gone (see below);
* :func:`renew` extends it, only while this owner still holds it and it has not expired;
  :func:`renew_owned` extends every live lease (and the presence row) of an owner at once, in one
  UPDATE: a renewal round costs the same few statements for 1 or 500 mailboxes;
* :func:`release` frees it at the end of a run;
* :func:`check_fence` (inside the caller's transaction) refuses with
  :class:`~wicbox_bridge.errors.LeaseLost` when the lease's token is no longer the row's, or the
  lease expired: every filing and every marking of an acknowledgement runs it first, in its own
  transaction (:func:`fenced`), so a host that stalled past its lease files and marks nothing after;
* :func:`held_condition` is the same check as a condition another statement folds in (PostgreSQL
  and SQL Server: the batch's first statement locks the lease row and files nothing unless the
  lease holds it, without a round trip of its own);
* :func:`confirm_fence` checks the lease before a server action (moving a chunk of filed mails),
  in a short transaction of its own: no write lock is held across the network round trip.

Expiry is judged by ONE clock, the database's (:class:`DatabaseClock`; tests inject their own),
never by comparing two hosts' clocks. Each read-decide-write happens under the row's lock:
SQLite's write lock (its transactions start with ``BEGIN IMMEDIATE``), PostgreSQL's
``INSERT ... ON CONFLICT DO NOTHING`` then ``SELECT ... FOR UPDATE``, SQL Server's
``UPDLOCK, HOLDLOCK`` hints (a key-range lock, so two first acquisitions of one mailbox cannot both
insert). The fence check locks the row too: a take-over waits until a filing transaction that
passed the check has committed, and a filing that starts after the take-over finds the new token.

A process killed on this machine (SIGKILL, a crash, TerminateProcess) would keep its leases until
they expire, and the next scheduled run on the same machine would skip its mailboxes for up to
the lease time. So :func:`acquire` takes a live lease over at once (a new token, as after expiry)
when its owner is *this machine* and *provably gone*: the owner's host identity is this process's
(the host name together with a hash of the operating system's machine id, so two machines with one
name never match), and the caller's ``gone`` predicate, asked with the owner's key, proves that
the owner process no longer exists (:class:`~wicbox_bridge.run.runlock.OwnerLock`: every owner
holds a lock file named after its key while it lives; the operating system releases it when the
process ends in any way, and the key is never reused, so PID reuse cannot fool it). Leases of other
hosts, and leases of this host that cannot be proven dead, still wait for their expiry.

Presence: a long-running owner (``wicbox serve``) that holds no lease would be invisible to the
others' fair share, so it also keeps a *presence row* in the same table (:func:`announce`,
MAILBOX ``(owner) <its key>``, token 0, renewed and expiring like a lease, removed by
:func:`withdraw` at its end; expired presence rows are swept by the next :func:`announce`). The
live owners (:func:`live_owners`, :func:`read_table`) are the distinct owners of an unexpired lease
or presence row; presence rows are never a mailbox (:func:`list_leases` leaves them out).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import socket
import sys
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Protocol

from wicbox_bridge.errors import LeaseLost
from wicbox_bridge.store.base import Dialect, Store, atomic
from wicbox_bridge.store.mails import normalized_mailbox
from wicbox_bridge.store.times import as_utc

__all__ = [
    "PRESENCE_PREFIX",
    "DatabaseClock",
    "Fence",
    "GoneProbe",
    "Lease",
    "LeaseClock",
    "LeaseOwner",
    "LeaseRow",
    "LeaseTable",
    "Refused",
    "Renewed",
    "acquire",
    "announce",
    "check_fence",
    "confirm_fence",
    "fenced",
    "held_condition",
    "lease_lost",
    "list_leases",
    "live_owners",
    "machine_host",
    "read_owners",
    "read_table",
    "release",
    "renew",
    "renew_owned",
    "withdraw",
]

PRESENCE_PREFIX: Final = "(owner) "
"""The MAILBOX of an owner's presence row: this prefix and the owner's key (never a mail address)."""


def is_presence(mailbox: str) -> bool:
    return mailbox.startswith(PRESENCE_PREFIX)


class LeaseClock(Protocol):
    """The one clock leases are judged by (naive UTC)."""

    def now(self, store: Store) -> dt.datetime: ...


_DB_NOW: Final[dict[Dialect, str]] = {
    "sqlite": "SELECT strftime('%Y-%m-%d %H:%M:%f', 'now')",
    "postgresql": "SELECT CAST(clock_timestamp() AT TIME ZONE 'UTC' AS TIMESTAMP)",
    "mssql": "SELECT SYSUTCDATETIME()",
}


# The database's clock inside a statement, and the time of an injected clock as a parameter, for a
# fence folded into another statement (held_condition).
_NOW_IN_STATEMENT: Final[dict[Dialect, tuple[str, str]]] = {
    "postgresql": ("CAST(clock_timestamp() AT TIME ZONE 'UTC' AS TIMESTAMP)", "CAST(? AS TIMESTAMP)"),
    "mssql": ("SYSUTCDATETIME()", "CAST(? AS DATETIME2)"),
}


class DatabaseClock:
    """The database server's clock: the same for every host that shares the database."""

    def now(self, store: Store) -> dt.datetime:
        row = store.query_one(_DB_NOW[store.dialect])
        moment = None if row is None else as_utc(row[0])
        if moment is None:  # pragma: no cover - every database answers these
            raise RuntimeError("the database did not tell its time")
        return moment.replace(tzinfo=None)


GoneProbe = Callable[[str], bool]
"""Asked with the key of a live lease's owner on this machine: True only when that owner is
provably gone (its process no longer exists)."""

_MACHINE_ID_FILES: Final = (Path("/etc/machine-id"), Path("/var/lib/dbus/machine-id"))


def _machine_id() -> str | None:
    """The operating system's id of this machine installation, or None when it has none."""
    if sys.platform == "win32":
        import winreg  # noqa: PLC0415 - Windows only

        try:
            with winreg.OpenKey(winreg.HKEY_LOCAL_MACHINE, r"SOFTWARE\Microsoft\Cryptography") as key:
                value, _ = winreg.QueryValueEx(key, "MachineGuid")
        except OSError:
            return None
        return str(value).strip() or None
    for path in _MACHINE_ID_FILES:
        try:
            text = path.read_text(encoding="ascii").strip()
        except (OSError, UnicodeDecodeError):
            continue
        if text:
            return text
    return None


def machine_host(host_name: str | None = None, machine_id: str | None = None) -> str:
    """This machine's identity for a lease: the host name and a short hash of the machine id
    (never the id itself); the bare host name where the system has no machine id."""
    name = (host_name if host_name is not None else socket.gethostname())[:200]
    ident = machine_id if machine_id is not None else _machine_id()
    if not ident:
        return name
    digest = hashlib.sha256(ident.encode("utf-8")).hexdigest()[:12]
    return f"{name} (machine {digest})"


@dataclass(frozen=True)
class LeaseOwner:
    """One process that may hold leases: a key of its own, its host identity and process id."""

    key: str
    host: str
    pid: int

    @classmethod
    def this_process(cls) -> LeaseOwner:
        return cls(str(uuid.uuid4()), machine_host(), os.getpid())

    @property
    def knows_its_machine(self) -> bool:
        """Whether ``host`` includes a machine id (only then is "the same machine" provable)."""
        return self.host.endswith(")") and " (machine " in self.host

    def describe(self) -> str:
        return f"process {self.pid} on {self.host}"


@dataclass(frozen=True)
class Lease:
    """A lease this process holds: until ``expires_at`` (database clock), with its fencing token."""

    mailbox: str
    owner: LeaseOwner
    token: int
    expires_at: dt.datetime


@dataclass(frozen=True)
class Refused:
    """A lease another live owner holds (or, ``left``, one this run left free for the others)."""

    mailbox: str
    holder: str
    expires_in_s: float
    left: bool = False


@dataclass(frozen=True)
class LiveOwner:
    """An owner that holds at least one unexpired lease, with the mailboxes it holds."""

    key: str
    host: str | None
    mailboxes: frozenset[str]


@dataclass(frozen=True)
class LiveLease:
    """An unexpired lease of the table as :func:`read_table` saw it."""

    owner_key: str
    holder: str
    expires_in_s: float


@dataclass(frozen=True)
class LeaseTable:
    """The live part of WICBOX_LEASE, read in one SELECT: the held mailboxes and the live owners
    (key: host), presence rows included among the owners."""

    leases: dict[str, LiveLease]
    owners: dict[str, str | None]

    def held_by_other(self, mailbox: str, owner: LeaseOwner) -> LiveLease | None:
        """The live lease of ``mailbox`` when someone other than ``owner`` holds it."""
        lease = self.leases.get(normalized_mailbox(mailbox))
        return None if lease is None or lease.owner_key == owner.key else lease


@dataclass(frozen=True)
class LeaseRow:
    """A row of WICBOX_LEASE as ``wicbox status`` shows it."""

    mailbox: str
    holder: str | None  # None: free (released)
    token: int
    expires_in_s: float  # negative: expired that long ago


@dataclass(frozen=True)
class Fence:
    """What every filing and acknowledgement of a mailbox checks: its lease's owner and token."""

    lease: Lease
    clock: LeaseClock


_ENSURE_ROW: Final[dict[Dialect, str]] = {
    "sqlite": "INSERT OR IGNORE INTO WICBOX_LEASE (MAILBOX, TOKEN, EXPIRES_AT) VALUES (?, 0, ?)",
    "postgresql": (
        "INSERT INTO WICBOX_LEASE (MAILBOX, TOKEN, EXPIRES_AT) VALUES (?, 0, ?) "
        "ON CONFLICT (MAILBOX) DO NOTHING"
    ),
    "mssql": (
        "INSERT INTO WICBOX_LEASE (MAILBOX, TOKEN, EXPIRES_AT) SELECT ?, 0, ? "
        "WHERE NOT EXISTS (SELECT 1 FROM WICBOX_LEASE WITH (UPDLOCK, HOLDLOCK) WHERE MAILBOX = ?)"
    ),
}
_LOCK_ROW: Final[dict[Dialect, str]] = {
    # BEGIN IMMEDIATE (SqliteStore.transaction) already holds the database's one write lock.
    "sqlite": "SELECT OWNER_KEY, OWNER_HOST, OWNER_PID, TOKEN, EXPIRES_AT FROM WICBOX_LEASE "
    "WHERE MAILBOX = ?",
    "postgresql": "SELECT OWNER_KEY, OWNER_HOST, OWNER_PID, TOKEN, EXPIRES_AT FROM WICBOX_LEASE "
    "WHERE MAILBOX = ? FOR UPDATE",
    "mssql": "SELECT OWNER_KEY, OWNER_HOST, OWNER_PID, TOKEN, EXPIRES_AT FROM WICBOX_LEASE "
    "WITH (UPDLOCK, HOLDLOCK) WHERE MAILBOX = ?",
}
_TAKE: Final = (
    "UPDATE WICBOX_LEASE SET OWNER_KEY = ?, OWNER_HOST = ?, OWNER_PID = ?, TOKEN = ?, ACQUIRED_AT = ?, "
    "EXPIRES_AT = ? WHERE MAILBOX = ?"
)
_EXTEND: Final = "UPDATE WICBOX_LEASE SET EXPIRES_AT = ? WHERE MAILBOX = ? AND TOKEN = ?"
_FREE: Final = "UPDATE WICBOX_LEASE SET OWNER_KEY = NULL, EXPIRES_AT = ? WHERE MAILBOX = ? AND TOKEN = ?"
_LIVE: Final = (
    "SELECT MAILBOX, OWNER_KEY, OWNER_HOST, OWNER_PID, EXPIRES_AT FROM WICBOX_LEASE "
    "WHERE OWNER_KEY IS NOT NULL AND EXPIRES_AT > ?"
)
_LIVE_OWNERS: Final = (
    "SELECT DISTINCT OWNER_KEY, OWNER_HOST FROM WICBOX_LEASE WHERE OWNER_KEY IS NOT NULL AND EXPIRES_AT > ?"
)
_EXTEND_OWNED: Final = "UPDATE WICBOX_LEASE SET EXPIRES_AT = ? WHERE OWNER_KEY = ? AND EXPIRES_AT > ?"
_OWNED: Final = "SELECT MAILBOX, TOKEN FROM WICBOX_LEASE WHERE OWNER_KEY = ? AND EXPIRES_AT > ?"
_SWEEP_PRESENCE: Final = "DELETE FROM WICBOX_LEASE WHERE MAILBOX LIKE ? AND EXPIRES_AT <= ?"
_PRESENT: Final = (
    "UPDATE WICBOX_LEASE SET OWNER_KEY = ?, OWNER_HOST = ?, OWNER_PID = ?, ACQUIRED_AT = ?, EXPIRES_AT = ? "
    "WHERE MAILBOX = ?"
)
_WITHDRAW: Final = "DELETE FROM WICBOX_LEASE WHERE MAILBOX = ? AND OWNER_KEY = ?"
_LIST: Final = (
    "SELECT MAILBOX, OWNER_KEY, OWNER_HOST, OWNER_PID, TOKEN, EXPIRES_AT FROM WICBOX_LEASE ORDER BY MAILBOX"
)


@dataclass(frozen=True)
class _Row:
    owner_key: str | None
    holder: str
    token: int
    expires_at: dt.datetime
    host: str | None = None

    def held_by(self, lease: Lease, now: dt.datetime) -> bool:
        """Whether ``lease`` is still this row's live lease."""
        return self.owner_key == lease.owner.key and self.token == lease.token and self.expires_at > now


def _stored_time(value: object) -> dt.datetime:
    moment = as_utc(value)
    if moment is None:  # pragma: no cover - EXPIRES_AT is NOT NULL
        raise RuntimeError("a lease without an expiry")
    return moment.replace(tzinfo=None)


def _holder(host: object, pid: object) -> str:
    return f"process {pid} on {host}"


def _locked_row(store: Store, mailbox: str) -> _Row | None:
    row = store.query_one(_LOCK_ROW[store.dialect], (mailbox,))
    if row is None:
        return None
    key, host, pid, token, expires = row
    owner_key = None if key is None else str(key).strip()
    stored_host = None if host is None else str(host).strip()
    return _Row(owner_key, _holder(host, pid), int(token), _stored_time(expires), stored_host)


def _ensure_row(store: Store, mailbox: str, now: dt.datetime) -> None:
    params: tuple[object, ...] = (mailbox, now, mailbox) if store.dialect == "mssql" else (mailbox, now)
    store.execute(_ENSURE_ROW[store.dialect], params)


def _dead_here(row: _Row, owner: LeaseOwner, gone: GoneProbe | None) -> bool:
    """Whether ``row``'s owner ran on this machine (same host identity, machine id included) and
    ``gone`` proves it no longer exists."""
    if gone is None or row.owner_key is None or not owner.knows_its_machine:
        return False
    return row.host == owner.host and gone(row.owner_key)


def acquire(
    store: Store,
    mailbox: str,
    owner: LeaseOwner,
    seconds: float,
    clock: LeaseClock,
    *,
    gone: GoneProbe | None = None,
) -> Lease | Refused:
    """Take ``mailbox``'s lease for ``seconds`` if it is free or expired (a new token), or held by
    a provably dead owner on this machine (``gone``, see the module docstring; a new token), or
    extend it if ``owner`` holds it still (same token); else who holds it."""
    name = normalized_mailbox(mailbox)
    with store.transaction():
        now = clock.now(store)
        _ensure_row(store, name, now)
        row = _locked_row(store, name)
        assert row is not None  # just ensured, and locked since
        live = row.owner_key is not None and row.expires_at > now
        if live and row.owner_key != owner.key:
            if not _dead_here(row, owner, gone):
                return Refused(name, row.holder, (row.expires_at - now).total_seconds())
            live = False  # its owner is dead: taken over at once, with a new token
        token = row.token if live else row.token + 1
        expires = now + dt.timedelta(seconds=seconds)
        store.execute(_TAKE, (owner.key, owner.host, owner.pid, token, now, expires, name))
    return Lease(name, owner, token, expires)


def renew(store: Store, lease: Lease, seconds: float, clock: LeaseClock) -> Lease | None:
    """``lease`` extended to ``seconds`` from now; None when it was lost (expired or taken over)."""
    with store.transaction():
        now = clock.now(store)
        row = _locked_row(store, lease.mailbox)
        if row is None or not row.held_by(lease, now):
            return None
        expires = now + dt.timedelta(seconds=seconds)
        store.execute(_EXTEND, (expires, lease.mailbox, lease.token))
    return Lease(lease.mailbox, lease.owner, lease.token, expires)


@dataclass(frozen=True)
class Renewed:
    """What :func:`renew_owned` extended: the leases still held, and whether the presence row was."""

    leases: dict[str, Lease]
    present: bool


def renew_owned(
    store: Store, owner: LeaseOwner, leases: Iterable[Lease], seconds: float, clock: LeaseClock
) -> Renewed:
    """Every unexpired lease and presence row of ``owner`` extended to ``seconds`` from now in one
    UPDATE (a transaction: the clock, the UPDATE, one SELECT of what it extended).

    The same rule as :func:`renew`, row by row: a row is extended only while ``owner`` holds it
    (its key) and it has not expired; a row another owner took over carries that owner's key, an
    expired one is left to expire. Of ``leases`` (those the caller believes it holds) the result
    keeps the ones whose row was extended with the same token; the others were lost.

    Locking: the UPDATE locks each row it changes (SQLite: the transaction's write lock), so it
    waits for a filing transaction that holds the row's fence lock, and a take-over that committed
    first has changed the row's key and is not undone."""
    with store.transaction():
        now = clock.now(store)
        expires = now + dt.timedelta(seconds=seconds)
        store.execute(_EXTEND_OWNED, (expires, owner.key, now))
        rows = store.query(_OWNED, (owner.key, now))
    extended = {(str(mailbox).strip(), int(token)) for mailbox, token in rows}
    kept = {
        lease.mailbox: Lease(lease.mailbox, lease.owner, lease.token, expires)
        for lease in leases
        if (lease.mailbox, lease.token) in extended
    }
    present = any(mailbox == PRESENCE_PREFIX + owner.key for mailbox, _ in extended)
    return Renewed(kept, present)


def release(store: Store, lease: Lease, clock: LeaseClock) -> bool:
    """Free ``lease`` for the next owner; False when it was no longer held (nothing changed)."""
    with store.transaction():
        now = clock.now(store)
        row = _locked_row(store, lease.mailbox)
        if row is None or row.owner_key != lease.owner.key or row.token != lease.token:
            return False
        store.execute(_FREE, (now, lease.mailbox, lease.token))
    return True


def check_fence(store: Store, fence: Fence) -> None:
    """Inside the caller's transaction: LeaseLost unless ``fence``'s lease is still live, and the
    lease row locked until that transaction ends (a take-over waits for it)."""
    if not store.in_transaction:
        raise RuntimeError("the fence is checked inside the transaction it protects")
    lease = fence.lease
    now = fence.clock.now(store)
    row = _locked_row(store, lease.mailbox)
    if row is None or not row.held_by(lease, now):
        raise lease_lost(lease)


def lease_lost(lease: Lease) -> LeaseLost:
    """What a process that lost ``lease`` is told when it would file or acknowledge."""
    return LeaseLost(
        f"mailbox {lease.mailbox}: this run ({lease.owner.describe()}) lost its lease "
        f"(token {lease.token}); nothing more is filed or acknowledged by it",
        fix="none needed: the mailbox's new owner continues (the mail stays on the server until "
        "it is filed); if this happens often, the host stalls for longer than --lease-seconds: "
        "raise it, or find what stalls the host",
    )


def held_condition(store: Store, fence: Fence) -> tuple[str, tuple[object, ...]]:
    """:func:`check_fence` as a condition on WICBOX_LEASE, with its parameters: true for the lease's
    row only while ``fence``'s lease holds it (its owner, its token, not expired). The statement
    that folds it in locks the row it selects (FOR UPDATE; UPDLOCK, HOLDLOCK) and writes nothing
    unless the row was found, so the caller raises :func:`lease_lost` and rolls back. By the
    database's clock in the statement itself; an injected clock's time is a parameter.
    PostgreSQL and SQL Server only (SQLite's transaction holds its one write lock from its start, and
    its statements make no round trip: it keeps :func:`check_fence`)."""
    lease = fence.lease
    in_statement, as_parameter = _NOW_IN_STATEMENT[store.dialect]
    now, moment = (
        (in_statement, ())
        if isinstance(fence.clock, DatabaseClock)
        else (as_parameter, (fence.clock.now(store),))
    )
    condition = f"MAILBOX = ? AND OWNER_KEY = ? AND TOKEN = ? AND EXPIRES_AT > {now}"
    return condition, (lease.mailbox, lease.owner.key, lease.token, *moment)


def confirm_fence(store: Store, fence: Fence | None) -> None:
    """Before the server action of a chunk of mails (move, delete, flag, quarantine): LeaseLost
    unless ``fence``'s lease is still live, checked in a transaction of its own that ends at once.

    The server action itself runs outside any transaction: on SQLite a transaction holds the
    database's one write lock, and a move of up to 500 mails over IMAP or Graph would block every
    other writer (the relay's outbox, ``wicbox status``, the other runs' filings) for its duration.
    The guarantee still holds, because it never depended on the action being inside the fence:

    * *a host that lost its lease files nothing*: filing stays fenced in the filing's own
      transaction (:func:`fenced`), and so does every marking after the server action;
    * the server action only ever concerns mails that are already filed (committed before, the
      rows exist as PENDING_ACK / QUARANTINE_PENDING), and it is idempotent: moving a filed mail
      to the processed folder, or a refused one to quarantine, is a fact the database already
      records, however often and by whichever host it is done. If this host stalls between the
      check and the action and the lease is taken over meanwhile, the new owner either still lists
      those mails (same bytes: KNOWN, it only acknowledges them again) or no longer finds them (the
      rows stay pending, its reconciliation re-issues the action, a no-op, and marks them). No
      mail is lost and none is filed twice; the late host's marking is then refused by the fence.

    Without a fence (no leases) nothing is checked.
    """
    if fence is not None:
        with fenced(store, fence):
            pass


@contextmanager
def fenced(store: Store, fence: Fence | None) -> Iterator[None]:
    """A transaction that first checks ``fence`` (without a fence: the caller's, or a new one)."""
    if fence is None:
        with atomic(store):
            yield
        return
    if store.in_transaction:
        check_fence(store, fence)
        yield
        return
    with store.transaction():
        check_fence(store, fence)
        yield


def read_table(store: Store, clock: LeaseClock) -> LeaseTable:
    """The live leases and owners now (by ``clock``): one SELECT besides the clock's."""
    now = clock.now(store)
    leases: dict[str, LiveLease] = {}
    owners: dict[str, str | None] = {}
    for mailbox, key, host, pid, expires in store.query(_LIVE, (now,)):
        owner_key = str(key).strip()
        owners[owner_key] = None if host is None else str(host).strip()
        name = str(mailbox).strip()
        if not is_presence(name):
            remaining = (_stored_time(expires) - now).total_seconds()
            leases[name] = LiveLease(owner_key, _holder(host, pid), remaining)
    return LeaseTable(leases, owners)


def read_owners(store: Store, clock: LeaseClock) -> LeaseTable:
    """The live owners now (by ``clock``) without their leases: all a fair share needs. One row
    per owner instead of one per held mailbox (a run taking 500 leases one by one read 125,000
    rows with :func:`read_table`; docs/performance.md, Part 3 second round)."""
    now = clock.now(store)
    owners = {
        str(key).strip(): None if host is None else str(host).strip()
        for key, host in store.query(_LIVE_OWNERS, (now,))
    }
    return LeaseTable({}, owners)


def live_owners(store: Store, clock: LeaseClock) -> list[LiveOwner]:
    """Every owner holding an unexpired lease or presence row now (by ``clock``), with its
    mailboxes (none for an owner that is only present)."""
    table = read_table(store, clock)
    held: dict[str, set[str]] = {key: set() for key in table.owners}
    for mailbox, lease in table.leases.items():
        held[lease.owner_key].add(mailbox)
    return [LiveOwner(key, table.owners[key], frozenset(names)) for key, names in held.items()]


def announce(store: Store, owner: LeaseOwner, seconds: float, clock: LeaseClock) -> None:
    """``owner``'s presence row, taken or extended to ``seconds`` from now (expired presence rows
    of other owners are removed on the way)."""
    name = PRESENCE_PREFIX + owner.key
    with store.transaction():
        now = clock.now(store)
        store.execute(_SWEEP_PRESENCE, (PRESENCE_PREFIX + "%", now))
        _ensure_row(store, name, now)
        expires = now + dt.timedelta(seconds=seconds)
        store.execute(_PRESENT, (owner.key, owner.host, owner.pid, now, expires, name))


def withdraw(store: Store, owner: LeaseOwner) -> None:
    """``owner``'s presence row removed (at its end: no longer a live owner)."""
    with store.transaction():
        store.execute(_WITHDRAW, (PRESENCE_PREFIX + owner.key, owner.key))


def list_leases(store: Store, clock: LeaseClock) -> list[LeaseRow]:
    """Every lease row with its holder and how long until it expires (by ``clock``)."""
    now = clock.now(store)
    rows = []
    for mailbox, key, host, pid, token, expires in store.query(_LIST):
        if is_presence(str(mailbox)):
            continue
        remaining = (_stored_time(expires) - now).total_seconds()
        holder = None if key is None else _holder(host, pid)
        rows.append(LeaseRow(str(mailbox), holder, int(token), remaining))
    return rows
