"""A lease this worker holds: its renewer and its one checkpointer.

Every checkpoint of the shard goes through here, whoever asks: the delivery after a batch, the
consumer at the shard's end, a processor that checkpoints itself (``ShardContext.checkpointer``
is this object). It is the only writer of the lease's row and of ``lease``, the value this
worker believes the row holds, lag reading included. Renewals and checkpoints are both
conditional on the counter, so they must not race each other: one lock per lease serialises
them and keeps the counter we hold current. The holder also keeps
its own deadline (when the last successful renewal was *sent*, plus ``lease_duration`` less the
observation slack, ``ExpiryTracker``): another
worker can only see that renewal later, so once the deadline passes this worker must assume the
lease is gone, even if it could not hear so from DynamoDB.

Throttled or failed calls are retried until our deadline (``lease_table_retry``); a waiting
checkpoint lets go of the lock between tries, so a renewal is never queued behind it.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from dataclasses import replace
from typing import Any, TypeVar

import structlog

from bridge.core.leasing import LagReading, Lease
from bridge.errors import LeaseLostError
from bridge.leases.store import LeaseConflictError, LeaseStore
from bridge.worker.lease_table_retry import checkpoint_backoff, is_transient, renewal_backoff

log = structlog.get_logger("bridge.lease")

T = TypeVar("T")


class LeaseHolder:
    def __init__(
        self,
        store: LeaseStore,
        lease: Lease,
        lease_duration: float,
        *,
        taken_at: float,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
        on_checkpoint: Callable[[], None] = lambda: None,
        slack: float = 0.0,
    ) -> None:
        """``slack``: of each lease duration, the part given up so that the others may credit
        a renewal they read to their read before (``ExpiryTracker``)."""
        self.store = store
        self.lease = lease
        self.on_checkpoint = on_checkpoint
        """Called after each checkpoint written (``bridge_checkpoint_writes_total``)."""
        self._lag: LagReading | None = None
        self.lease_duration = lease_duration
        self.validity = lease_duration - slack
        """How long a write we sent keeps the lease ours, as the others will judge it."""
        self.clock = clock
        self.valid_until = taken_at + self.validity
        self.lost = asyncio.Event()
        self._lock = asyncio.Lock()
        self._rng = rng or random.Random()
        self._renewal_backoff = renewal_backoff(lease_duration)
        self._checkpoint_backoff = checkpoint_backoff(lease_duration)
        self.checkpoint_writes = 0
        self.retries = 0

    @property
    def key(self) -> str:
        return self.lease.key

    def is_valid(self) -> bool:
        if not self.lost.is_set() and self.clock() >= self.valid_until:
            self._mark_lost("lease deadline passed without a successful renewal")
        return not self.lost.is_set()

    def report_lag(self, reading: LagReading) -> None:
        """The owner's latest lag reading: the next renewal or checkpoint writes it to the row
        (no write of its own), where ``bridge status`` reads it from any machine."""
        self._lag = reading

    def _outgoing(self) -> Lease:
        """The lease as the next write should leave it (called under the lock)."""
        if self._lag is not None and self._lag != self.lease.lag:
            self.lease = replace(self.lease, lag=self._lag)
        return self.lease

    def ensure_valid(self) -> None:
        if not self.is_valid():
            raise LeaseLostError(f"lease {self.key} is no longer ours")

    async def wait_lost(self) -> None:
        """Return once the lease is lost: refused by DynamoDB, given up, or our own deadline
        passed. The deadline is watched on its own because nothing else may report it in
        time: a renewal stuck on a silent connection neither succeeds nor fails until its
        socket times out, long after another worker may have taken the lease."""
        while not self.lost.is_set():
            remaining = self.valid_until - self.clock()
            if remaining <= 0:
                self._mark_lost("lease deadline passed without a successful renewal")
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.lost.wait(), remaining)

    async def renew(self, give_up_at: float | None = None) -> bool:
        """Renew; False when the lease is lost (refused, or our deadline passed). A call that
        failed for a passing reason is tried again at once, until ``give_up_at`` (the next
        renewal round) or our deadline, rather than a renew interval later: a few throttled
        renewals in a row must not cost the lease."""
        attempt = 0
        while True:
            async with self._lock:
                if not self.is_valid():
                    return False
                sent = self.clock()
                try:
                    self.lease = await self.store.renew(self._outgoing())
                except LeaseLostError:
                    self._mark_lost("renewal refused: another worker holds the lease")
                    return False
                except Exception as exc:
                    log.warning(
                        "lease renewal failed",
                        shard=self.key,
                        attempt=attempt + 1,
                        took_s=round(self.clock() - sent, 3),
                        error=repr(exc),
                    )
                    if not is_transient(exc):  # a human must act; the deadline decides
                        return self.is_valid()
                else:
                    self.valid_until = sent + self.validity
                    return True
            delay = self._renewal_backoff.delay(attempt, self._rng)
            if give_up_at is not None and self.clock() + delay >= give_up_at:
                return self.is_valid()  # the next round tries again
            await self._retry_wait(delay)
            attempt += 1

    async def checkpoint(self, sequence_number: str) -> None:
        """Write the checkpoint, trying again after passing failures for as long as the lease
        is ours. Raises ``LeaseLostError`` once it is not."""
        await self._write_as_owner(
            "checkpoint", lambda lease: self.store.checkpoint(lease, sequence_number)
        )
        self.checkpoint_writes += 1
        self.on_checkpoint()

    async def want_snapshot(self, at_ms: int) -> None:
        """Ask the leader for a fresh snapshot of the table (``on_trimmed: rebootstrap``),
        written on this lease's row the way a checkpoint is."""
        await self._write_as_owner(
            "snapshot request", lambda lease: self.store.want_snapshot(lease, at_ms)
        )

    async def pause(self, cutoff_ms: int) -> None:
        """Say that nothing more is read of this shard until the snapshot of ``cutoff_ms`` is
        through: its scan waits for every reader to say so."""
        if (self.lease.paused_for_ms or 0) >= cutoff_ms:
            return
        await self._write_as_owner("pause", lambda lease: self.store.pause(lease, cutoff_ms))

    def adopt_parents(self, parents: frozenset[str]) -> None:
        """The lease gained parents (a fresh snapshot's segments, added by the leader)."""
        self.lease = replace(self.lease, parents=self.lease.parents | parents)

    async def _write_as_owner(self, what: str, write: Callable[[Lease], Awaitable[Lease]]) -> None:
        """One write conditional on our ownership, tried again after passing failures for as
        long as the lease is ours; ``LeaseLostError`` once it is not."""
        attempt = 0
        while True:
            async with self._lock:
                self.ensure_valid()
                sent = self.clock()
                try:
                    self.lease = await write(self._outgoing())
                    return
                except LeaseLostError:
                    self._mark_lost(f"{what} refused: another worker holds the lease")
                    raise
                except Exception as exc:
                    if not is_transient(exc):
                        raise
                    log.warning(
                        f"{what} failed; trying again",
                        shard=self.key,
                        attempt=attempt + 1,
                        took_s=round(self.clock() - sent, 3),
                        error=repr(exc),
                    )
            await self._retry_wait(self._checkpoint_backoff.delay(attempt, self._rng))
            attempt += 1

    async def _retry_wait(self, delay: float) -> None:
        """Sleep before the next try, no later than our deadline (then ``is_valid`` says so)."""
        self.retries += 1
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(
                self.lost.wait(), max(0.0, min(delay, self.valid_until - self.clock()))
            )

    def vouch(self, sent: float) -> None:
        """Heartbeat liveness: our heartbeat, sent at ``sent``, went through, and the others
        judge this lease by it; the deadline moves as a renewal sent then would move it."""
        if not self.lost.is_set():
            self.valid_until = max(self.valid_until, sent + self.validity)

    def observe(self, row: Lease) -> None:
        """The lease's row as read outside our own writes (heartbeat liveness reads instead of
        renewing; a leaving worker polls): a handoff asked for is heard, and a counter moved
        past ours means the lease is gone. A read older than our last write is ignored: the
        counter only ever grows."""
        if row.counter < self.lease.counter or self.lost.is_set():
            return
        if row.owner != self.lease.owner or row.counter != self.lease.counter:
            self._mark_lost("the lease row moved on: another worker holds the lease")
        else:
            self.lease = replace(self.lease, handoff_to=row.handoff_to)

    @property
    def asked_for_by(self) -> str | None:
        """The worker that asked for this lease (``request_handoff``), if one did."""
        asked = self.lease.handoff_to
        return asked if asked not in (None, self.lease.owner) else None

    async def hand_over(self, to: str) -> str | None:
        """Give the lease, as checkpointed, to ``to`` (which starts reading at once). Returns
        None once given, or when it was no longer ours to give (``lost`` says which); else
        the worker asking now instead (another replaced ``to``'s request), or "" when nobody
        asks any more (the asker withdrew): the lease is still ours."""
        async with self._lock:
            if not self.is_valid():
                return None
            try:
                await self.store.hand_over(self._outgoing(), to)
            except LeaseConflictError:
                return await self._why_not_handed(to)
            except Exception as exc:
                log.warning("handoff failed", shard=self.key, to=to, error=repr(exc))
                return ""
            log.info("lease handed over", shard=self.key, to=to, counter=self.lease.counter + 1)
            self.lost.set()
            return None

    async def _why_not_handed(self, to: str) -> str | None:
        rows = await self.store.get_leases([self.key])
        if not rows:
            self._mark_lost("the lease row is gone")
            return None
        self.observe(rows[0])
        if self.lost.is_set():
            return None
        return self.lease.handoff_to or ""

    async def release(self) -> None:
        """Give the lease up so another worker can take it at once instead of waiting for expiry."""
        async with self._lock:
            if not self.is_valid():
                return
            try:
                await self.store.release(self.lease)
            except LeaseLostError:
                pass
            except Exception as exc:
                log.warning("lease release failed; it will expire", shard=self.key, error=repr(exc))
            self.lost.set()

    def _mark_lost(self, why: str) -> None:
        if not self.lost.is_set():
            log.warning("lease lost", shard=self.key, counter=self.lease.counter, reason=why)
            self.lost.set()


async def observe_rows(store: LeaseStore, holders: Iterable[LeaseHolder]) -> None:
    """Read the rows of the leases still held, in one batched read, and let each holder
    observe its own (``LeaseHolder.observe``): handoff requests heard, leases taken seen."""
    held = {holder.key: holder for holder in holders if not holder.lost.is_set()}
    if held:
        for row in await store.get_leases(sorted(held)):
            held[row.key].observe(row)


async def while_owned(holder: LeaseHolder, work: Coroutine[Any, Any, T], *, name: str) -> T:
    """``work``, cut short the moment the lease is lost, wherever it is: in a read, in the
    processor, or waiting to poll. Checking the lease between steps is not enough when a step
    hangs (a network partition): by the time it returns, another worker may have been reading
    the shard for a while. Raises ``LeaseLostError`` when cut short."""
    task = asyncio.create_task(work, name=f"consume-{name}")
    watch = asyncio.create_task(holder.wait_lost(), name=f"lease-{name}")
    try:
        await asyncio.wait({task, watch}, return_when=asyncio.FIRST_COMPLETED)
        if task.done():
            return task.result()
        raise LeaseLostError(f"lease {name} lost while its records were handled")
    finally:
        # Whatever the work was doing is moot once the lease is gone: stop it, and wait
        # until it has stopped before the shard's end is reported.
        for running in (watch, task):
            running.cancel()
        await asyncio.gather(watch, task, return_exceptions=True)
