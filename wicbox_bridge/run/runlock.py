"""The locks of a run: mailbox leases in the database, and a machine-local file lock.

Which process reads which mailbox is decided by leases in the WIC database
(:mod:`wicbox_bridge.store.leases`): :class:`LeaseKeeper` takes a run's leases, renews them in the
background every third of their time on a connection of its own, and releases them at the end.
Runs on several hosts (or several runs on one host) thus share the mailboxes; a mailbox another
live run holds is skipped. A run that dies on another host keeps its leases until they expire; one
that dies on this machine is recognised at once (:class:`OwnerLock`) and its leases taken over by
the next run here, so a scheduled task recovers from a killed run without waiting.

The file lock (``run.lock`` in the configuration's state directory) no longer keeps runs apart:
``wicbox run`` and ``wicbox serve`` take it SHARED, so any number of runs (and serve beside them)
hold it together. What it still protects is
``wicbox schedule stop``, which waits until no run of this configuration is busy on this machine
(:func:`run_is_busy` asks for it exclusively), and ``wicbox send`` (:class:`RunLock` exclusive, on
its own file). The operating system releases it when the process ends in any way (exit, crash,
SIGKILL, TerminateProcess). Who holds it (PID, host, start time) is written next to it for the
message of a process that cannot get it.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import math
import os
import re
import socket
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import portalocker

from wicbox_bridge.config.footprint import (
    default_windows_security,
    make_private_dir,
    touch_private,
    write_private_text,
)
from wicbox_bridge.errors import AlreadyRunning, BridgeError, ConfigurationError, DatabaseError, with_fix
from wicbox_bridge.store.base import Store
from wicbox_bridge.store.leases import (
    DatabaseClock,
    Fence,
    GoneProbe,
    Lease,
    LeaseClock,
    LeaseOwner,
    LeaseTable,
    Refused,
    acquire,
    announce,
    read_owners,
    read_table,
    release,
    renew_owned,
    withdraw,
)
from wicbox_bridge.store.mails import normalized_mailbox

log = logging.getLogger("wicbox.run")

LOCK_FILE_NAME = "run.lock"
HOLDER_FILE_NAME = "run.lock.holder"
OWNERS_DIR_NAME = "lease-owners"
STALE_OWNER_S = 7 * 24 * 3600.0  # far longer than any lease (--lease-seconds is at most an hour)
_OWNER_KEY = re.compile(r"^[0-9a-f-]{1,36}$")


class RunLock:
    """Context manager: ``with RunLock(state_dir):`` or AlreadyRunning (exit code 5).

    ``shared``: any number of shared holders at once (``wicbox run``, ``wicbox serve`` for its whole
    life: the mailbox leases keep them apart), none beside an exclusive one.
    """

    def __init__(self, state_dir: Path, *, shared: bool = False) -> None:
        self.path = state_dir / LOCK_FILE_NAME
        self.holder_path = state_dir / HOLDER_FILE_NAME
        self._lock: portalocker.Lock | None = None
        self._flags = (
            portalocker.LockFlags.SHARED if shared else portalocker.LockFlags.EXCLUSIVE
        ) | portalocker.LockFlags.NON_BLOCKING
        self._shared = shared

    def acquire(self) -> None:
        windows = default_windows_security()
        try:
            make_private_dir(self.path.parent, windows=windows)
        except OSError as exc:
            raise ConfigurationError(
                f"cannot create the state directory {self.path.parent}: {exc.strerror}",
                fix="make the directory writable for the account that runs wicbox, or set WICBOX_HOME",
            ) from exc
        lock = portalocker.Lock(str(self.path), mode="a", timeout=0, fail_when_locked=True, flags=self._flags)
        try:
            touch_private(self.path, windows=windows)  # 0600, never a planted link (LinkRefused)
            lock.acquire()
        except portalocker.exceptions.LockException as exc:
            raise self._busy() from exc
        except OSError as exc:  # e.g. a lock file another account created and this one may not write
            raise ConfigurationError(
                f"cannot open the run lock {self.path}: {exc.strerror or exc}",
                fix=f"give the account that runs wicbox write access to {self.path.parent} (on Windows: "
                "Modify on %ProgramData%\\wicbox-bridge for the task's account), or set WICBOX_HOME",
            ) from exc
        self._lock = lock
        if not self._shared:  # shared holders would overwrite each other's line
            self._write_holder()

    def release(self) -> None:
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    def __enter__(self) -> RunLock:
        self.acquire()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()

    def _write_holder(self) -> None:
        holder = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "started": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        }
        with contextlib.suppress(OSError):  # only used for the message of a second run
            write_private_text(self.holder_path, json.dumps(holder))

    def _holder(self) -> str:
        try:
            holder: Any = json.loads(self.holder_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return "holder unknown"
        if not isinstance(holder, dict) or not holder:
            return "holder unknown"
        return f"process {holder.get('pid')} on {holder.get('host')}, started {holder.get('started')}"

    def _busy(self) -> AlreadyRunning:
        who = self._holder()
        return AlreadyRunning(
            f"another wicbox run for this configuration is still busy ({who})",
            fix="wait for it to finish; a scheduled task should not start runs that overlap",
        )


def run_is_busy(state_dir: Path) -> bool:
    """Whether a ``wicbox run`` of this configuration holds its lock, creating nothing.

    The lock file is opened read-only and let go at once; a missing file means no run has been
    busy. Used by ``wicbox schedule stop``, which an administrator runs: taking the real lock would
    create the lock file as the administrator, and another account may not write it then.
    """
    probe = portalocker.Lock(str(state_dir / LOCK_FILE_NAME), mode="r", timeout=0, fail_when_locked=True)
    try:
        probe.acquire()
    except FileNotFoundError:
        return False
    except portalocker.exceptions.LockException:
        return True
    probe.release()
    return False


class OwnerLock:
    """A lease owner's proof of life on this machine: an exclusive lock on ``<key>.lock`` in the
    configuration's machine-wide ``lease-owners`` directory, held from before the owner's first
    lease until it ends.

    The operating system releases the lock when the process ends in any way (SIGKILL included), so
    a lock file that exists and can be locked belongs to a dead owner: :meth:`gone` (the
    :data:`~wicbox_bridge.store.leases.GoneProbe` of :func:`~wicbox_bridge.store.leases.acquire`)
    then answers True. The key is drawn per process and never reused, so PID reuse cannot make a
    dead owner look alive or a live one dead. A missing file proves nothing (False: the lease then
    waits for its expiry). The files of owners dead for more than a week are removed (a file is
    kept until then so that every later run can still prove its owner dead).
    """

    def __init__(self, state_dir: Path, key: str) -> None:
        if not _OWNER_KEY.match(key):
            raise ValueError("a lease owner's key is a UUID")
        self.directory = state_dir / OWNERS_DIR_NAME
        self.path = self.directory / f"{key}.lock"
        self._lock: portalocker.Lock | None = None

    def acquire(self) -> None:
        """Create and lock this owner's file, and remove the files of owners found dead."""
        windows = default_windows_security()
        make_private_dir(self.directory, windows=windows)
        touch_private(self.path, windows=windows)
        lock = portalocker.Lock(str(self.path), mode="a", timeout=0, fail_when_locked=True)
        lock.acquire()
        self._lock = lock
        self._sweep()

    def _sweep(self) -> None:
        """Remove the files of owners dead for longer than any lease lasts (their leases expired)."""
        cutoff = dt.datetime.now(dt.timezone.utc).timestamp() - STALE_OWNER_S
        for other in self.directory.glob("*.lock"):
            with contextlib.suppress(OSError):
                if other.stat().st_mtime < cutoff and self.gone(other.stem):
                    other.unlink()

    def release(self, *, keep: bool = False) -> None:
        """Unlock; the file is removed unless ``keep`` (leases of this owner are still in the
        database: the file lets the next run here prove this owner gone and take them over)."""
        if self._lock is not None:
            self._lock.release()
            self._lock = None
            if not keep:
                with contextlib.suppress(OSError):
                    self.path.unlink()

    def gone(self, key: str) -> bool:
        """Whether the owner ``key`` of this machine provably ended (its file exists, unlocked)."""
        if not _OWNER_KEY.match(key):
            return False
        path = self.directory / f"{key}.lock"
        if path == self.path:
            return False
        probe = portalocker.Lock(str(path), mode="r", timeout=0, fail_when_locked=True)
        try:
            probe.acquire()
        except (OSError, portalocker.exceptions.LockException):
            return False  # missing (nothing proven) or locked (alive)
        probe.release()
        return True


@dataclass(frozen=True)
class LeaseSettings:
    """How a run holds its mailboxes: for how long, as which owner, by which clock.

    ``state_dir``: the configuration's machine-wide state directory, where the owner's
    :class:`OwnerLock` lives; None: leases of dead runs on this machine also wait for expiry.
    """

    seconds: float = 60.0
    owner: LeaseOwner = field(default_factory=LeaseOwner.this_process)
    clock: LeaseClock = field(default_factory=DatabaseClock)
    state_dir: Path | None = None

    @property
    def renew_every_s(self) -> float:
        """Renewal well before expiry: a third of the lease, so two renewals may fail in a row."""
        return self.seconds / 3


class LeaseKeeper:
    """A run's mailbox leases: taken one by one as the run reaches each mailbox, renewed in the
    background, released at the end.

    Uses a database connection of its own (``open_store``, shared by the worker threads and the
    renewal under a lock), so a renewal never waits for a mailbox's filing. A renewal that finds
    the lease lost (the host stalled past it and another run took it over) drops it; the fence then
    refuses that mailbox's next filing or acknowledgement.

    A renewal round is one transaction for every lease held (:func:`renew_owned`). A round that
    fails, whatever the failure (the database restarting, a locked SQLite file, a driver error of
    a kind nobody expected), is logged once per outage (the error and its fix), the keeper's
    connection is opened anew, and the next round follows on schedule; meanwhile
    :meth:`renewal_failing` tells the holder its leases are at risk (serve starts no pass then).
    Leases that expired during the outage are dropped at the first round that gets through; their
    fences refuse filing, as for a stalled host.

    Fair share: before each new lease the keeper counts the live owners in the lease table (those
    holding an unexpired lease, less provably dead processes of this machine) and takes at most
    ``ceil(mailboxes / live owners)`` leases, itself included. Taking them as the run reaches each
    mailbox (not all at its start) is what lets a second run that starts a little later see the
    first and get its half: the first run stops taking leases once the second holds one. A run
    that sees no other live owner takes every mailbox, so none stays unworked while only one host
    is alive; a mailbox left for the others is reported as skipped (the next scheduled run on any
    host takes what they did not).

    A long-running owner (``wicbox serve``) also keeps a presence row (:meth:`announce_presence`,
    renewed with the leases, removed at :meth:`close`), so it counts as live while it holds no
    lease; it reads the table once per tick (:meth:`survey`) and gives leases back
    (:meth:`give_back`) when it holds more than its share (:mod:`wicbox_bridge.serve.leases`).
    """

    def __init__(self, open_store: Callable[[], Store], settings: LeaseSettings) -> None:
        self._settings = settings
        state_dir = settings.state_dir
        self._owner_lock = None if state_dir is None else OwnerLock(state_dir, settings.owner.key)
        self._gone: GoneProbe | None = None
        if self._owner_lock is not None:
            try:
                self._owner_lock.acquire()
                self._gone = self._owner_lock.gone
            except (OSError, portalocker.exceptions.LockException) as error:
                log.warning("dead runs' leases wait for their expiry (no owner lock here: %s)", error)
        self._open_store = open_store
        self._store: Store | None = open_store()
        self._db = threading.Lock()  # one statement at a time on the keeper's connection
        self._held: dict[str, Lease] = {}  # still held, as last renewed
        self._fences: dict[str, Fence] = {}  # every lease taken, also when lost since
        self._guard = threading.Lock()
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None
        self._present = False
        self._after_renewal: list[Callable[[], None]] = []
        self._outage: _Outage | None = None  # renewal failing since (under self._guard)

    @contextlib.contextmanager
    def _using(self) -> Iterator[Store]:
        """The keeper's connection, under its lock; opened anew after a failure (a connection a
        statement failed on may be dead: the database restarted, the network was cut)."""
        with self._db:
            if self._store is None:
                self._store = self._open_store()
            try:
                yield self._store
            except Exception:
                store, self._store = self._store, None
                with contextlib.suppress(Exception):
                    store.close()
                raise

    def announce_presence(self) -> None:
        """Count as a live owner from now on, holding a lease or not (renewed, removed at close)."""
        with self._using() as store:
            announce(store, self._settings.owner, self._settings.seconds, self._settings.clock)
        self._present = True

    def after_renewal(self, step: Callable[[], None]) -> None:
        """Run ``step`` on the renewal thread after each round of renewals (from the next round on)."""
        self._after_renewal.append(step)

    def survey(self) -> LeaseTable:
        """The live leases and owners now: one read of the lease table."""
        with self._using() as store:
            return read_table(store, self._settings.clock)

    def held(self) -> list[str]:
        """The mailboxes whose leases this keeper holds, as of its last renewal."""
        with self._guard:
            return sorted(self._held)

    def fair_share(self, mailboxes: int, table: LeaseTable) -> tuple[int, int]:
        """This owner's share of ``mailboxes`` by ``table``, and the number of other live owners."""
        me = self._settings.owner
        others = 0
        for key, host in table.owners.items():
            if key == me.key:
                continue
            here = me.knows_its_machine and host == me.host
            others += not (here and self._gone is not None and self._gone(key))
        return math.ceil(mailboxes / (others + 1)), others

    def give_back(self, mailbox: str) -> bool:
        """Release ``mailbox``'s lease for another owner (only between passes: a pass still running
        would be refused by its fence); False when it was not held or the release failed."""
        name = normalized_mailbox(mailbox)
        try:
            with self._using() as store:  # no take_one nor renewal between forgetting and releasing
                with self._guard:
                    lease = self._held.pop(name, None)
                    self._fences.pop(name, None)
                if lease is None:
                    return False
                return release(store, lease, self._settings.clock)
        except DatabaseError as error:
            log.warning("%s: the lease could not be given back (it expires by itself): %s", name, error)
            return False

    def take(self, mailboxes: Iterable[str]) -> dict[str, Refused]:
        """Take the leases of ``mailboxes`` (see :meth:`take_one`); the refused ones, by mailbox."""
        names = list(dict.fromkeys(normalized_mailbox(name) for name in mailboxes))
        refused: dict[str, Refused] = {}
        for mailbox in names:
            result = self.take_one(mailbox, len(names))
            if result is not None:
                refused[mailbox] = result
        return refused

    def take_one(self, mailbox: str, mailboxes: int) -> Refused | None:
        """Take ``mailbox``'s lease (None) when it is free, expired or held by a dead process of
        this machine and this run has not yet its fair share of ``mailboxes``; else why not.
        A mailbox whose lease this run took before is not taken again (the renewal keeps it).

        A long-running owner (presence announced: ``wicbox serve``) takes its leases only through
        :meth:`hold`, when it decides to work a mailbox; its pass then asks here again, and a lease
        lost since that decision (given back, or taken over by another live owner) is refused
        (``left``) instead of being taken anew or run with a fence that would refuse the pass: the
        mailbox is its new holder's, and nothing went wrong."""
        name = normalized_mailbox(mailbox)
        if self._present:
            with self._guard:
                if name in self._held:
                    return None
            return Refused(name, "its lease went to another live owner before the pass", 0.0, left=True)
        with self._using() as store:
            with self._guard:
                if name in self._fences:
                    return None
                taken = len(self._fences)
            return self._take(store, name, mailboxes, taken)

    def hold(self, mailbox: str, mailboxes: int, table: LeaseTable | None = None) -> Refused | None:
        """For a long-running owner (``wicbox serve``): None while this keeper holds ``mailbox``'s
        lease, or when it takes it now within its fair share of ``mailboxes`` (counting only the
        leases it still holds); else why not. A lease lost since (another owner took it over) is
        forgotten here and taken anew, with a new token, once it is free or expired again.

        ``table``: the lease table as last read (:meth:`survey`); the fair share is counted by it
        and a mailbox it shows held by another live owner is refused without a transaction."""
        name = normalized_mailbox(mailbox)
        with self._using() as store:
            with self._guard:
                if name in self._held:
                    return None
                self._fences.pop(name, None)  # lost: a pass still running keeps refusing by its fence
                taken = len(self._held)
            if table is not None:
                other = table.held_by_other(name, self._settings.owner)
                if other is not None and not self._dead_here(other.owner_key, table):
                    return Refused(name, other.holder, other.expires_in_s)
            return self._take(store, name, mailboxes, taken, table)

    def _dead_here(self, key: str, table: LeaseTable) -> bool:
        me = self._settings.owner
        here = me.knows_its_machine and table.owners.get(key) == me.host
        return here and self._gone is not None and self._gone(key)

    def holds(self, mailbox: str) -> bool:
        """Whether this keeper holds ``mailbox``'s lease as of its last renewal."""
        with self._guard:
            return normalized_mailbox(mailbox) in self._held

    def _take(
        self, store: Store, name: str, mailboxes: int, taken: int, table: LeaseTable | None = None
    ) -> Refused | None:
        """Under ``self._db``: acquire ``name``'s lease unless ``taken`` already fills the share."""
        share, others = self.fair_share(mailboxes, table or read_owners(store, self._settings.clock))
        if taken >= share:
            log.info("%s: left for the other live runs (fair share %d)", name, share)
            return Refused(
                name,
                f"left for the {others} other live run(s): this run took its fair share, "
                f"{share} of {mailboxes} mailboxes",
                0.0,
                left=True,
            )
        settings = self._settings
        result = acquire(store, name, settings.owner, settings.seconds, settings.clock, gone=self._gone)
        if isinstance(result, Refused):
            log.info("%s: skipped, %s holds its lease", name, result.holder)
            return result
        with self._guard:
            self._held[name] = result
            self._fences[name] = Fence(result, self._settings.clock)
        return None

    def fence(self, mailbox: str) -> Fence | None:
        """What every filing and acknowledgement of ``mailbox`` checks (also once the lease is
        lost: the check then refuses); None for a mailbox whose lease was never taken."""
        with self._guard:
            return self._fences.get(normalized_mailbox(mailbox))

    def start(self) -> None:
        self._thread = threading.Thread(target=self._renew_loop, name="wicbox-lease", daemon=True)
        self._thread.start()

    def renewal_failing(self) -> bool:
        """Whether the last renewal round failed: the leases held may expire before the next one
        gets through (their fences then refuse filing)."""
        with self._guard:
            return self._outage is not None

    def close(self) -> None:
        """Stop renewing and release every lease still held (a failure only logged: they expire)."""
        self._stopped.set()
        if self._thread is not None:
            self._thread.join()
        with self._guard:
            held, self._held = list(self._held.values()), {}
        released = False
        try:
            with self._using() as store:
                for lease in held:
                    release(store, lease, self._settings.clock)
                if self._present:
                    withdraw(store, self._settings.owner)
            released = True
        except DatabaseError as error:
            log.warning("the mailbox leases could not be released (they expire by themselves): %s", error)
        finally:
            with self._db:
                if self._store is not None:
                    self._store.close()
                    self._store = None
            if self._owner_lock is not None:
                self._owner_lock.release(keep=not released)

    def _renew_loop(self) -> None:
        while not self._stopped.wait(self._settings.renew_every_s):
            self.renew_round()

    def renew_round(self) -> bool:
        """One round: every lease and the presence row renewed, then the steps of
        :meth:`after_renewal`; True when the renewal got through. Never raises: the renewal thread
        must outlive any failure (the next round follows on schedule)."""
        try:
            self._renew_all()
        except Exception as error:  # whatever failed, the next round retries
            self._renewal_failed(error)
            renewed = False
        else:
            self._renewal_worked()
            renewed = True
        for step in self._after_renewal:
            try:
                step()
            except Exception as error:  # a holder's step must not end the renewals
                log.error(
                    "after the lease renewal: %s: %s (retried at the next round)", type(error).__name__, error
                )
        return renewed

    def _renew_all(self) -> None:
        settings = self._settings
        with self._using() as store:
            with self._guard:
                held = dict(self._held)
            renewed = renew_owned(store, settings.owner, held.values(), settings.seconds, settings.clock)
            if self._present and not renewed.present:  # expired during an outage, or never there
                announce(store, settings.owner, settings.seconds, settings.clock)
            with self._guard:
                self._held.update(renewed.leases)
                lost = sorted(name for name in held if name not in renewed.leases)
                for name in lost:
                    self._held.pop(name, None)
                after_outage = self._outage is not None
        if not lost:
            return
        if after_outage:
            log.warning(
                "%d mailbox lease(s) expired while they could not be renewed (%s); their fences refuse "
                "filing, and each is taken anew once it is free",
                len(lost),
                ", ".join(lost[:5]) + (", ..." if len(lost) > 5 else ""),
            )
            return
        for name in lost:
            log.warning("%s: the lease was lost (another run took it over)", name)

    def _renewal_failed(self, error: Exception) -> None:
        with self._guard:
            outage = self._outage
            if outage is None:
                outage = self._outage = _Outage(time.monotonic(), len(self._held))
            outage.rounds += 1
            first = outage.rounds == 1
        if not first:
            log.debug("the mailbox leases could not be renewed again (round %d): %s", outage.rounds, error)
            return
        if isinstance(error, BridgeError):
            cause, fix = error.message, error.fix
        else:
            cause, fix = f"{type(error).__name__}: {error}", None
        log.error(
            "%s",
            with_fix(
                f"the mailbox leases ({outage.held} held) could not be renewed: {cause}; renewal is "
                f"retried every {self._settings.renew_every_s:g} s, and a lease not renewed within "
                f"{self._settings.seconds:g} s expires (its mailbox is then refused filing here)",
                fix
                or "make the WIC database reachable again for this host; nothing else is needed: "
                "the renewal resumes by itself and expired leases are taken anew",
            ),
        )

    def _renewal_worked(self) -> None:
        with self._guard:
            outage, self._outage = self._outage, None
        if outage is not None:
            log.info(
                "the mailbox leases are renewed again, after %d failed round(s) over %.0f s",
                outage.rounds,
                time.monotonic() - outage.since,
            )


@dataclass
class _Outage:
    """Renewal failing: since when (monotonic), how many leases were held then, rounds failed."""

    since: float
    held: int
    rounds: int = 0
