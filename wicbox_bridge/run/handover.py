"""The hand-over between the thread that fetches and parses mail and the thread that files it.

One slot: the fetching side puts a batch and, before it fetches the next one, waits until the
filing side has taken it. So at most two batches are held at once — the one being filed and the
next one, fetched and parsed — whatever the speed of either side. Before it fetches a batch that
would not fit into memory beside the one being filed, the fetching side can also wait until the
filing side is idle (done with its batch and waiting for the next one): then only one batch is
held. Either side can close the hand-over; a closed one refuses puts and wakes every waiter.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class Item(Generic[T]):
    """What travels: a batch, the error that ended the fetching, or the end (both None)."""

    batch: T | None = None
    error: BaseException | None = None


class Handover(Generic[T]):
    """A one-slot hand-over of :class:`Item` values between two threads."""

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._slot: Item[T] | None = None
        self._closed = False
        self._idle = False  # the taking side waits in take() with nothing left of its last item

    @property
    def closed(self) -> bool:
        return self._closed

    def put(self, item: Item[T]) -> bool:
        """Wait for the slot to be free, then fill it; False (nothing put) once closed."""
        with self._changed:
            while self._slot is not None and not self._closed:
                self._changed.wait()
            if self._closed:
                return False
            self._slot = item
            self._changed.notify_all()
            return True

    def wait_taken(self) -> bool:
        """Wait until the slot is empty; False once closed."""
        with self._changed:
            while self._slot is not None and not self._closed:
                self._changed.wait()
            return not self._closed

    def wait_idle(self) -> bool:
        """Wait until the slot is empty and the taking side waits for the next item; False once closed."""
        with self._changed:
            while not (self._idle and self._slot is None) and not self._closed:
                self._changed.wait()
            return not self._closed

    def take(self) -> Item[T]:
        """Wait for an item and empty the slot; an end item once closed with the slot empty."""
        with self._changed:
            while self._slot is None and not self._closed:
                if not self._idle:
                    self._idle = True
                    self._changed.notify_all()
                self._changed.wait()
            self._idle = False
            item, self._slot = self._slot, None
            self._changed.notify_all()
            return item if item is not None else Item()

    def close(self) -> None:
        with self._changed:
            self._closed = True
            self._changed.notify_all()
