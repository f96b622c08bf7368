"""Retrying lease-table calls that failed for a passing reason, with renewals first.

A lease table is throttled exactly when a cluster is busiest: many checkpoints, a take scan or
two, every worker's heartbeat. If a throttled call failed for good, one throttled checkpoint
would stop a shard, and one throttled renewal would wait a whole renew interval for its next
chance, so a few in a row would cost the lease and move it: more takes, more throttling, a
cascade of expiries. So passing failures (throttling, 5xx, timeouts, broken connections) are
retried here, with full jitter; renewals and heartbeats on a short schedule, checkpoints on a
longer one and without holding the lease's lock while they wait, so a renewal always goes
first. botocore's own retry loop is off for this client (it would sleep holding the lock).
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from typing import TypeVar

from bridge.core.backoff import Backoff
from bridge.streams.errors import TransientStreamError, from_exception

T = TypeVar("T")


def is_transient(exc: BaseException) -> bool:
    """Throttling, a server error, a timeout or a lost connection: the call may succeed again."""
    return isinstance(from_exception(exc), TransientStreamError)


def renewal_backoff(lease_duration: float) -> Backoff:
    """Renewals and heartbeats retry at once and often: several tries fit in a lease."""
    return Backoff(base=min(0.05, lease_duration / 20), cap=max(0.05, lease_duration / 10))


def checkpoint_backoff(lease_duration: float) -> Backoff:
    """Checkpoints wait longer between tries, leaving the table's capacity to renewals; a later
    checkpoint supersedes this one, so nothing is gained by pressing."""
    return Backoff(base=min(0.1, lease_duration / 10), cap=max(0.1, lease_duration / 4))


async def retry_passing(
    call: Callable[[], Awaitable[T]],
    *,
    failed: Callable[[int, BaseException, bool], None],
    backoff: Backoff,
    rng: random.Random,
    may_retry: Callable[[], bool],
    tries: int | None = None,
    pause: Callable[[float], Awaitable[object]] = asyncio.sleep,
) -> T | None:
    """``call()``, tried again after passing failures while ``may_retry()`` holds (before and
    after each pause) and ``tries`` are left; None once it failed for good. ``failed(attempt,
    error, retrying)`` hears of every failure (to log and count it)."""
    attempt = 0
    while True:
        try:
            return await call()
        except Exception as exc:
            attempt += 1
            retry = is_transient(exc) and may_retry() and (tries is None or attempt < tries)
            failed(attempt, exc, retry)
            if not retry:
                return None
        await pause(backoff.delay(attempt - 1, rng))
        if not may_retry():
            return None
