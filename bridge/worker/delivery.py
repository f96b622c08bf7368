"""Hand a batch to the processor: retries with backoff, then stop or dead-letter.

Two kinds of failure. A destination that is unavailable (``is_retriable``: a broker down, a
database unreachable) is waited out: the batch is tried again, with backoff, for as long as it
takes, unless the worker stops or the lease moves on; the checkpoint does not move meanwhile,
and nothing is dead-lettered or halted for an outage, however long. Any other error counts
toward ``max_attempts``.

When a batch keeps failing that way, it is replayed one record at a time (or by halves, with
``bisect_on_error``) to find the record(s) that fail: with ``on_error: stop`` the shard halts
right before the first of them (everything before it is checkpointed); with ``dead_letter``
each failing record goes to the dead-letter file and the rest go through. A processor that
knows which record failed says so (``PartialBatchError``): the records before it are
checkpointed at once and only the rest is tried again. A failing record older than
``max_record_age`` is given up after one try. Replaying may hand the processor records it
already saw in the failed batch: delivery is at-least-once.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import structlog

from bridge.core.backoff import Backoff
from bridge.processors.api import (
    Batch,
    LeaseLostError,
    PartialBatchError,
    Processor,
    SnapshotBatch,
    is_retriable,
)
from bridge.processors.dead_letter import DeadLetters, DeadLetterUnavailableError

if TYPE_CHECKING:
    from bridge.records import ChangeRecord

log = structlog.get_logger("bridge.delivery")


class DeliveryInterruptedError(Exception):
    """The worker is stopping while a batch waits for its destination to come back; the batch
    is not checkpointed (whoever reads the shard next delivers it again)."""


class ProcessingHaltedError(Exception):
    """``on_error: stop``: the shard stops right before ``record``."""

    def __init__(self, record: ChangeRecord, error: BaseException) -> None:
        super().__init__(
            f"processor failed on shard {record.shard_id} at sequence number "
            f"{record.sequence_number}: {type(error).__name__}: {error}"
        )
        self.record = record
        self.error = error


class SnapshotHaltedError(Exception):
    """A page of the table's snapshot keeps failing: the segment stops there."""

    def __init__(self, segment: str, error: BaseException) -> None:
        super().__init__(
            f"processor failed on snapshot segment {segment}: {type(error).__name__}: {error}"
        )
        self.error = error


DeadLetterReason = Literal["max_attempts", "max_record_age", "reported"]
"""Why a record was given up: it failed every attempt, it was older than ``max_record_age``
when it failed, or the processor named it (``PartialBatchError``) as the one at fault."""


@dataclass(frozen=True)
class DeliveryPolicy:
    max_attempts: int
    on_error: Literal["stop", "dead_letter"]
    backoff: Backoff
    bisect: bool = False
    """Find the records at fault by halves rather than one at a time."""
    max_record_age: float | None = None
    """Seconds: a failing record older than this is given up at once."""


class BatchDelivery:
    def __init__(
        self,
        processor: Processor,
        policy: DeliveryPolicy,
        *,
        checkpoint: Callable[[str], Awaitable[None]],
        dead_letter: DeadLetters | None,
        on_dead_letter: Callable[[str], None] = lambda reason: None,
        on_retry: Callable[[], None] = lambda: None,
        stopping: asyncio.Event | None = None,
        ensure_valid: Callable[[], None] = lambda: None,
        rng: random.Random | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.processor = processor
        self.policy = policy
        self.checkpoint = checkpoint
        self.dead_letter = dead_letter
        self.on_dead_letter = on_dead_letter
        """Called with the reason of each record given up (``DeadLetterReason``)."""
        self.on_retry = on_retry
        self.stopping = stopping or asyncio.Event()
        self.ensure_valid = ensure_valid
        """Raises ``LeaseLostError`` once the lease is gone: checked before every retry."""
        self.rng = rng or random.Random()
        self.clock = clock
        """The wall clock, against the records' creation times (``max_record_age``)."""

    async def deliver(self, batch: Batch, *, through: ChangeRecord | None = None) -> None:
        """Process the batch and move the checkpoint past it (or past ``through``, a later
        record read with it that needs no processing), or raise ``ProcessingHaltedError``."""
        shard, records = batch.shard_id, list(batch.records)
        while True:
            error = await self._attempt(Batch(shard, records))
            if error is None:
                last = through or records[-1]
                await self._checkpoint(last.sequence_number)
                return
            done = _failed_at(error, records)
            if done:  # a partial failure: what came before the failed record is applied
                await self._checkpoint(records[done - 1].sequence_number)
                records = records[done:]
            elif done == 0 and len(records) > 1:
                await self._give_up(records[0], error, "reported")  # the processor said which
                records = records[1:]
            else:
                break
        if len(records) == 1:
            await self._give_up(records[0], error, self._reason(records, error))
            return
        how = "by halves" if self.policy.bisect else "record by record"
        log.warning(
            f"batch keeps failing; replaying it {how}",
            shard=shard,
            records=len(records),
            error=repr(error),
        )
        if self.policy.bisect:
            await self._by_halves(shard, records)
        else:
            await self._one_by_one(shard, records)

    async def _by_halves(self, shard_id: str, records: Sequence[ChangeRecord]) -> None:
        """``records`` failed as a batch: try each half, and split again the half that fails,
        down to the record(s) at fault."""
        half = len(records) // 2
        for part in (records[:half], records[half:]):
            error = await self._attempt(Batch(shard_id, part))
            if error is None:
                await self._checkpoint(part[-1].sequence_number)
            elif len(part) == 1:
                await self._give_up(part[0], error, self._reason(part, error))
            else:
                await self._by_halves(shard_id, part)

    async def _one_by_one(self, shard_id: str, records: Sequence[ChangeRecord]) -> None:
        done: str | None = None  # last record through, not yet checkpointed
        for record in records:
            error = await self._attempt(Batch(shard_id, [record]))
            if error is None:
                done = record.sequence_number
                continue
            if done is not None:
                await self._checkpoint(done)
                done = None
            await self._give_up(record, error, self._reason([record], error))
        if done is not None:
            await self._checkpoint(done)

    async def _attempt(self, batch: Batch) -> Exception | None:
        """Up to ``max_attempts`` failures, or one for a batch of records past
        ``max_record_age``; a partial failure after some records ends the attempts at once."""
        old = self._too_old(batch.records)
        return await self._try(
            lambda: self.processor.process(batch),
            shard=batch.shard_id,
            first=batch.records[0].sequence_number,
            tries=1 if old else self.policy.max_attempts,
            ends_early=lambda error: bool(_failed_at(error, batch.records)),
        )

    def _reason(self, records: Sequence[ChangeRecord], error: Exception) -> DeadLetterReason:
        """Why a record that failed its attempts is given up."""
        if _failed_at(error, records) == 0:
            return "reported"
        return "max_record_age" if self._too_old(records) else "max_attempts"

    def _too_old(self, records: Sequence[ChangeRecord]) -> bool:
        limit = self.policy.max_record_age
        if limit is None:
            return False
        now = self.clock()
        return all(now - r.approximate_creation_time.timestamp() > limit for r in records)

    async def deliver_snapshot(self, batch: SnapshotBatch, position: str) -> None:
        """Hand a snapshot page to the processor, then move the segment's checkpoint to
        ``position``; a page that keeps failing halts the segment (``SnapshotHaltedError``):
        no item of a snapshot is skipped."""
        error = await self._try(
            lambda: self.processor.snapshot(batch), shard=batch.segment, first=f"{len(batch)} items"
        )
        if error is not None:
            raise SnapshotHaltedError(batch.segment, error)
        await self.checkpoint(position)

    async def _try(
        self,
        call: Callable[[], Awaitable[None]],
        *,
        shard: str,
        first: str,
        tries: int | None = None,
        ends_early: Callable[[Exception], bool] = lambda error: False,
    ) -> Exception | None:
        """Up to ``max_attempts`` failures of the records' own; outages are waited out and not
        counted. Returns the last such error, or None on success."""
        failures = 0
        outage = 0
        while True:
            try:
                await call()
            except LeaseLostError:
                raise
            except Exception as exc:
                self.on_retry()
                if is_retriable(exc):
                    outage += 1
                    log.warning(
                        "destination unavailable; the batch waits for it",
                        shard=shard,
                        attempt=outage,
                        first_seq=first,
                        error=repr(exc),
                    )
                    await self._pause(outage - 1)
                    continue
                failures += 1
                allowed = tries or self.policy.max_attempts
                log.warning(
                    "processor failed",
                    shard=shard,
                    attempt=failures,
                    of=allowed,
                    first_seq=first,
                    error=repr(exc),
                )
                if failures >= allowed or ends_early(exc):
                    return exc
                await self._pause(failures - 1)
            else:
                return None

    async def _pause(self, attempt: int) -> None:
        """Back off before the next try; give up the batch if the worker stops meanwhile, or
        the lease has moved on (then someone else delivers it)."""
        delay = self.policy.backoff.delay(attempt, self.rng)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.stopping.wait(), delay)
        if self.stopping.is_set():
            raise DeliveryInterruptedError
        self.ensure_valid()

    async def _give_up(
        self, record: ChangeRecord, error: Exception, reason: DeadLetterReason
    ) -> None:
        if self.policy.on_error == "stop" or self.dead_letter is None:
            raise ProcessingHaltedError(record, error)
        outage = 0
        while True:
            try:
                await self.dead_letter.write(record, error, self.policy.max_attempts)
                break
            except DeadLetterUnavailableError as exc:
                # The record may not be skipped unrecorded: the shard waits for its destination.
                self.on_retry()
                log.warning(
                    "dead-letter destination unavailable; the shard waits for it",
                    shard=record.shard_id,
                    seq=record.sequence_number,
                    error=str(exc),
                )
                await self._pause(outage)
                outage += 1
        self.on_dead_letter(reason)
        log.error(
            "record sent to the dead letters",
            shard=record.shard_id,
            seq=record.sequence_number,
            to=self.dead_letter.where,
            reason=reason,
            error=repr(error),
        )
        await self._checkpoint(record.sequence_number)

    async def skip(self, sequence_number: str) -> None:
        """Records up to ``sequence_number`` need no processing: move the checkpoint past them."""
        await self._checkpoint(sequence_number)

    async def _checkpoint(self, sequence_number: str) -> None:
        if self.processor.checkpoint_after_batch:
            await self.checkpoint(sequence_number)


def _failed_at(error: Exception, records: Sequence[ChangeRecord]) -> int | None:
    """The index of the record a ``PartialBatchError`` names as failed (those before it were
    applied); None for any other error, or one naming no record of the batch."""
    if not isinstance(error, PartialBatchError):
        return None
    for index, record in enumerate(records):
        if record.sequence_number == error.first_failed:
            return index
    return None
