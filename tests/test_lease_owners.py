"""A killed run's leases on the same machine are taken over at once (SQLite and PostgreSQL, an
injected clock): its owner lock (a file it holds locked while it lives) proves it dead, and PID
reuse cannot fool it; leases of other machines, or of a live owner, still wait for expiry."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from wicbox_bridge.run.runlock import OWNERS_DIR_NAME, OwnerLock
from wicbox_bridge.store import DbApiStore
from wicbox_bridge.store.base import Store
from wicbox_bridge.store.leases import Lease, LeaseOwner, Refused, acquire, machine_host

START = dt.datetime(2026, 3, 1, 8, 0, 0)
HERE = machine_host("vm", "machine-one")
TWIN = machine_host("vm", "machine-two")  # another machine with the same host name

_HOLD = """
import sys
from pathlib import Path
from wicbox_bridge.run.runlock import OwnerLock
OwnerLock(Path(sys.argv[1]), sys.argv[2]).acquire()
print("locked", flush=True)
sys.stdin.read()
"""


class FixedClock:
    def now(self, store: Store) -> dt.datetime:
        return START


def _owner(host: str, pid: int) -> LeaseOwner:
    return LeaseOwner(str(uuid.uuid4()), host, pid)


def _killed_owner(state_dir: Path, owner: LeaseOwner) -> None:
    """A real process that holds ``owner``'s lock, then is killed (SIGKILL / TerminateProcess)."""
    process = subprocess.Popen(
        [sys.executable, "-c", _HOLD, str(state_dir), owner.key],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    assert process.stdout.readline().strip() == "locked"
    process.kill()
    process.wait()


def test_the_machine_identity_includes_a_hash_of_the_machine_id_never_the_id() -> None:
    assert HERE != TWIN
    assert "machine-one" not in HERE
    assert LeaseOwner("k", HERE, 1).knows_its_machine
    assert not LeaseOwner("k", "vm", 1).knows_its_machine


def test_a_dead_owner_on_this_machine_is_taken_over_at_once_with_a_new_token(
    wic_store: DbApiStore, tmp_path: Path
) -> None:
    dead, successor = _owner(HERE, 4242), _owner(HERE, 4242)  # the same PID: reused
    _killed_owner(tmp_path, dead)
    first = acquire(wic_store, "info@example.be", dead, 60, FixedClock())
    assert isinstance(first, Lease)
    lock = OwnerLock(tmp_path, successor.key)
    lock.acquire()
    try:
        taken = acquire(wic_store, "info@example.be", successor, 60, FixedClock(), gone=lock.gone)
    finally:
        lock.release()
    assert isinstance(taken, Lease), taken
    assert taken.token == first.token + 1
    assert (tmp_path / OWNERS_DIR_NAME / f"{dead.key}.lock").exists()  # later runs can still prove it


def test_a_live_owner_on_this_machine_keeps_its_lease(wic_store: DbApiStore, tmp_path: Path) -> None:
    live, other = _owner(HERE, 1), _owner(HERE, 2)
    live_lock, other_lock = OwnerLock(tmp_path, live.key), OwnerLock(tmp_path, other.key)
    live_lock.acquire()
    other_lock.acquire()
    try:
        assert isinstance(acquire(wic_store, "info@example.be", live, 60, FixedClock()), Lease)
        refused = acquire(wic_store, "info@example.be", other, 60, FixedClock(), gone=other_lock.gone)
    finally:
        other_lock.release()
        live_lock.release()
    assert isinstance(refused, Refused), refused


@pytest.mark.parametrize("holder_host", [TWIN, "elsewhere", "vm"])
def test_leases_of_other_machines_wait_for_expiry_even_when_their_owner_looks_gone(
    wic_store: DbApiStore, tmp_path: Path, holder_host: str
) -> None:
    holder = _owner(holder_host, 7)
    _killed_owner(tmp_path, holder)  # a lock file as a dead owner's here would leave
    assert isinstance(acquire(wic_store, "info@example.be", holder, 60, FixedClock()), Lease)
    successor = _owner(HERE, 8)
    lock = OwnerLock(tmp_path, successor.key)
    refused = acquire(wic_store, "info@example.be", successor, 60, FixedClock(), gone=lock.gone)
    assert isinstance(refused, Refused), refused


def test_without_a_lock_file_nothing_is_proven(tmp_path: Path) -> None:
    lock = OwnerLock(tmp_path, str(uuid.uuid4()))
    assert not lock.gone(str(uuid.uuid4()))
    assert not lock.gone("../../etc/passwd")
