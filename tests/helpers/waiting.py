"""Waiting in tests: on a condition that a real server or process makes true, or for a random
moment at which a crash test kills a process. These are the suite's only sleeps."""

from __future__ import annotations

import random
import time
from collections.abc import Callable

POLL_S = 0.005


def wait_until(condition: Callable[[], bool], what: str, timeout_s: float = 30.0) -> None:
    """Return once ``condition()`` is true; fail naming ``what`` after ``timeout_s``.

    For what has no event to wait on: a row another process commits, a line a process writes, a
    server noticing a closed connection. The timeout only ends a test that would otherwise hang.
    """
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout_s} s: {what}")
        time.sleep(POLL_S)  # polls a real server's or process's state; there is no event to wait on


def random_moment(rng: random.Random, longest_s: float) -> None:
    """Let a real process run for a random part of ``longest_s`` (from the test's seeded ``rng``)
    before a crash test kills it: where the kill lands is the point of the test."""
    time.sleep(rng.uniform(0.0, max(0.0, longest_s)))  # the kill's moment, chosen by the seeded rng
