"""One task per owned shard: read in order, hand batches to the processor, checkpoint.

The decisions (where to start, how long to wait, what an error means) live in the pure core;
this module is the loop that carries them out against a ``StreamReader`` and a lease.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import structlog

from bridge.core.backoff import Backoff, PollPacer
from bridge.core.leasing import LagReading
from bridge.core.positions import (
    SHARD_END,
    InitialPosition,
    IteratorRequest,
    OnTrimmed,
    UnknownCheckpointError,
    resume_after_expiry,
    start_position,
)
from bridge.filters import KEEP_ALL, ChangeFilter
from bridge.metrics import Metrics
from bridge.processors.api import Batch, EndReason, LeaseLostError, Processor, ShardContext
from bridge.streams.errors import (
    ExpiredIteratorError,
    FatalStreamError,
    StreamNotFoundError,
    TransientStreamError,
    TrimmedDataError,
)
from bridge.streams.model import RecordsPage
from bridge.streams.reader import StreamReader
from bridge.worker.delivery import BatchDelivery, DeliveryInterruptedError, ProcessingHaltedError
from bridge.worker.lanes import LaneDelivery
from bridge.worker.lease_holder import LeaseHolder, while_owned
from bridge.worker.retention_gaps import RetentionGaps

if TYPE_CHECKING:
    from bridge.records import ChangeRecord

log = structlog.get_logger("bridge.shard")


# A read whose newest record is younger than this has caught up with the writes: the next
# records do not exist yet, and reading again at once would only spend calls.
_CAUGHT_UP_MS = 1000.0


class _Stopping(Exception):
    """Shutdown was requested while waiting to retry; there is no batch in hand."""


@dataclass(frozen=True)
class ConsumerSettings:
    initial: InitialPosition
    max_records: int
    interval: float
    idle_interval: float
    on_trimmed: OnTrimmed
    roundtrip_attribute: str | None = None
    retention_s: float = 86_400.0
    """The stream's retention: a snapshot whose cut-off is younger holds every record it
    trimmed (``source.retention``)."""
    keep: ChangeFilter = KEEP_ALL
    """Which changes reach the processor (``filter:``)."""


class ShardConsumer:
    def __init__(
        self,
        *,
        context: ShardContext,
        reader: StreamReader,
        holder: LeaseHolder,
        processor: Processor,
        delivery: BatchDelivery | LaneDelivery,
        settings: ConsumerSettings,
        metrics: Metrics,
        stop: asyncio.Event,
        hand_off: asyncio.Event | None = None,
        rng: random.Random | None = None,
        before_shard_end: Callable[[], Awaitable[None]] | None = None,
        skip_before_ms: int | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        """``clock`` is the worker's monotonic clock (when the shard was last read, for
        readiness); ``wall_clock`` is compared with the records' creation times (lag)."""
        self.context = context
        self.before_shard_end = before_shard_end
        self.shard_id = context.shard_id
        self.reader = reader
        self.holder = holder
        self.processor = processor
        self.delivery = delivery
        self.settings = settings
        self.metrics = metrics
        self.stop = stop
        self.hand_off = hand_off or asyncio.Event()
        """Stop after the next read is delivered and checkpointed (the lease is being handed
        over): the next owner's first read then follows this one's last without a pause."""
        self.rng = rng or random.Random()
        self.pacer = PollPacer(settings.interval, settings.idle_interval)
        self.backoff = Backoff(base=max(settings.interval, 0.05), cap=60.0)
        self.skip_before_ms = skip_before_ms
        """The cut-off of the snapshot this shard's reading follows: older changes are in
        it, and are passed over (the checkpoint still moves past them)."""
        self.clock = clock
        self.wall_clock = wall_clock
        self.started_from: str | None = None
        """The checkpoint reading started from: the processor's own, or the lease's."""
        self.last_sequence: str | None = None
        """The last record handed to the processor and done."""
        self.lag_ms = 0.0
        self.last_read_at = clock()
        self.end_reason: EndReason | None = None
        self.backoff_attempt = 0
        self.gaps = RetentionGaps(
            reader=reader,
            context=context,
            holder=holder,
            on_trimmed=settings.on_trimmed,
            retention_s=settings.retention_s,
            metrics=metrics,
            log=log.bind(table=context.table, shard=context.shard_id),
            wall_clock=wall_clock,
        )
        self._log = log.bind(table=context.table, shard=self.shard_id)
        self._read_started = clock()
        self._ahead: tuple[str, asyncio.Task[RecordsPage]] | None = None
        """The next page, being read while this one is processed: (its iterator, the read)."""

    async def run(self) -> EndReason:
        reason = EndReason.FAILED
        try:
            reason = await self._consume_while_owned()
        except (_Stopping, DeliveryInterruptedError):
            reason = EndReason.SHUTDOWN
        except asyncio.CancelledError:  # the drain timed out: the batch in hand is abandoned
            reason = EndReason.SHUTDOWN
            raise
        except LeaseLostError:
            reason = EndReason.LEASE_LOST
            self.metrics.lease_losses.inc()
            self._log.warning("stopped: lease lost; nothing more is written for this shard")
        except ProcessingHaltedError as exc:
            self.metrics.errors_fatal.inc()
            self._log.error("stopped: processor keeps failing", error=str(exc))
        except UnknownCheckpointError as exc:
            # The lease is kept, so that no other worker starts the shard at a guess either.
            self.metrics.errors_fatal.inc()
            self._log.error(
                f"stopped: shard {self.shard_id}: {exc}; set the lease's checkpoint to one of "
                "those, or delete the lease to start the shard over"
            )
        except FatalStreamError as exc:
            self.metrics.errors_fatal.inc()
            self._log.error("stopped: stream error", error=str(exc))
            raise
        finally:
            self.end_reason = reason
            await self._end(reason)
        return reason

    async def _consume_while_owned(self) -> EndReason:
        return await while_owned(self.holder, self._consume(), name=self.shard_id)

    async def _at_tip(self) -> None:
        try:
            await self.processor.at_tip()
        except Exception as exc:  # a freshness hook must not stop the shard
            self._log.warning("processor at_tip hook failed", error=repr(exc))

    async def _end(self, reason: EndReason) -> None:
        try:
            await self.processor.end(reason)
        except Exception as exc:
            self._log.error("processor end hook failed", reason=str(reason), error=repr(exc))

    async def _consume(self) -> EndReason:
        own = await self.processor.start(self.context)
        self.started_from = own if own is not None else self.holder.lease.checkpoint
        request = start_position(
            self.started_from, self.settings.initial, bool(self.context.parent_shard_ids)
        )
        if request is None:
            return EndReason.SHARD_END
        self._log.info("shard started", checkpoint=self.started_from, start=request.kind)
        iterator = await self._iterator(request)
        try:
            while iterator is not None:
                if self.stop.is_set():
                    return EndReason.SHUTDOWN
                if self.holder.lease.parents - self.context.parent_shard_ids:
                    # A fresh snapshot of the table: nothing more is published until it is
                    # through.
                    self._log.info("paused for a fresh snapshot of the table")
                    return EndReason.PAUSED
                self.holder.ensure_valid()
                iterator = await self._poll(iterator)
                if self.hand_off.is_set() and iterator is not None:
                    return EndReason.SHUTDOWN
        finally:
            self._drop_read_ahead()
        if self.before_shard_end is not None:
            await self.before_shard_end()  # the children's leases, while the parent is unfinished
        await self.holder.checkpoint(SHARD_END)
        self.gaps.report_loss()
        self._log.info("shard end reached", last_seq=self.last_sequence)
        return EndReason.SHARD_END

    async def _poll(self, iterator: str) -> str | None:
        """One GetRecords round; returns the next iterator, None at the shard's end."""
        try:
            page = await self._page(iterator)
        except ExpiredIteratorError:
            self._log.info("iterator expired; resuming from the last position")
            return await self._iterator(self._resume_request())
        except TrimmedDataError as exc:
            return await self._after_trim(exc)
        except TransientStreamError as exc:
            await self._transient(exc)
            return iterator
        self.backoff_attempt = 0
        self.last_read_at = self.clock()
        if page.next_iterator is not None:
            self._read_ahead(page.next_iterator, page.records)
        if page.records:
            await self._handle(page.records)
        else:
            self.lag_ms = 0.0
            await self._at_tip()
        self._report_lag()
        if page.next_iterator is None and self.gaps.losses.measuring:
            await self.gaps.count_lost_to_shard_end()
        return page.next_iterator

    def _read_ahead(self, iterator: str, records: list[ChangeRecord]) -> None:
        """Start the next read now, after the pause the pacer asks for, so that it runs while
        the processor handles this page: a busy shard's latency is then the longer of the
        read and the processing, not their sum. One page ahead at most; its records reach
        the processor only after this page's, and only while the lease is still ours."""
        behind = len(records) >= self.settings.max_records or (
            bool(records) and self._lag_of(records[-1]) > _CAUGHT_UP_MS
        )
        # Paced from the start of the read just done: a shard that keeps up is read every
        # ``interval``, not every interval plus a read.
        pause = self.pacer.after_read(len(records), behind=behind)
        delay = max(0.0, pause - (self.clock() - self._read_started))
        self._ahead = (iterator, asyncio.create_task(self._read(iterator, delay)))

    async def _page(self, iterator: str) -> RecordsPage:
        """The page at ``iterator``: the one read ahead, or a read now."""
        ahead, self._ahead = self._ahead, None
        if ahead is None or ahead[0] != iterator:
            if ahead is not None:
                _discard(ahead[1])
            return await self._read(iterator, 0.0)
        stopping = asyncio.ensure_future(self.stop.wait())
        try:
            await asyncio.wait({ahead[1], stopping}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopping.cancel()
        if not ahead[1].done():  # asked to stop during the pause before the read
            _discard(ahead[1])
            raise _Stopping
        return ahead[1].result()

    async def _read(self, iterator: str, delay: float) -> RecordsPage:
        if delay > 0:
            await asyncio.sleep(delay)
        self._read_started = self.clock()
        try:
            return await self.reader.get_records(iterator, self.settings.max_records)
        finally:
            self.metrics.getrecords_calls.inc()

    def _drop_read_ahead(self) -> None:
        ahead, self._ahead = self._ahead, None
        if ahead is not None:
            _discard(ahead[1])

    def _lag_of(self, record: ChangeRecord) -> float:
        """Milliseconds between a record's creation and now (the shard's lag once it is done)."""
        return max(0.0, (self.wall_clock() - record.approximate_creation_time.timestamp()) * 1000)

    async def _handle(self, records: list[ChangeRecord]) -> None:
        self.metrics.records_consumed.inc(len(records))
        if self.gaps.losses.measuring:
            self.gaps.losses.first_available(records[0].sequence_number)  # reported once past it
        # The read may have taken long (a stalled network, or this process frozen): if the
        # lease ran out meanwhile, another worker may be reading these very records. Hand them
        # to the processor only while the lease is still ours.
        self.holder.ensure_valid()
        fresh = self._kept(self._after_snapshot(records))
        if fresh:
            await self.delivery.deliver(Batch(self.shard_id, fresh), through=records[-1])
        else:  # all in the snapshot already, or filtered out: only the position moves
            await self.delivery.skip(records[-1].sequence_number)
        self.gaps.report_loss()
        self.last_sequence = records[-1].sequence_number
        self.metrics.records_processed.inc(len(records))
        self.lag_ms = self._lag_of(records[-1])
        if self.settings.roundtrip_attribute:
            self._observe_roundtrip(records, self.wall_clock())

    def _kept(self, records: list[ChangeRecord]) -> list[ChangeRecord]:
        """The records the filter lets through (``filter:``); the others are counted."""
        keep = self.settings.keep
        if keep.keeps_all:
            return records
        kept = [r for r in records if keep.keeps(r.event, r.keys, r.new_image, r.old_image)]
        self.metrics.records_filtered.inc(len(records) - len(kept))
        return kept

    def _after_snapshot(self, records: list[ChangeRecord]) -> list[ChangeRecord]:
        """The records the snapshot does not hold: those from its cut-off on. A shard's
        records come in write order, so once one is past the cut-off every later one is."""
        cutoff = self.skip_before_ms
        if cutoff is None:
            return records
        for index, record in enumerate(records):
            if record.approximate_creation_time.timestamp() * 1000 >= cutoff:
                self.skip_before_ms = None
                return records[index:]
        return []

    def _report_lag(self) -> None:
        measured_at_ms = round(self.wall_clock() * 1000)
        self.holder.report_lag(LagReading(lag_ms=round(self.lag_ms), measured_at_ms=measured_at_ms))

    def _observe_roundtrip(self, records: list[ChangeRecord], now: float) -> None:
        attribute = self.settings.roundtrip_attribute
        for record in records:
            written = (record.new_image or {}).get(attribute) if attribute else None
            if isinstance(written, int | float):
                self.metrics.roundtrip.observe(max(0.0, now - float(written) / 1000))

    def _resume_request(self) -> IteratorRequest:
        return resume_after_expiry(
            self.last_sequence,
            self.started_from,
            self.settings.initial,
            bool(self.context.parent_shard_ids),
        )

    async def _iterator(self, request: IteratorRequest) -> str | None:
        """An iterator for ``request``; None when the shard has nothing left to read."""
        attempt = 0
        while True:
            try:
                return await self._open_iterator(request)
            except TrimmedDataError as exc:
                return await self._after_trim(exc)
            except TransientStreamError as exc:
                self.backoff_attempt = attempt
                await self._transient(exc)
                attempt += 1
                if self.stop.is_set():
                    raise _Stopping from None

    async def _open_iterator(self, request: IteratorRequest) -> str | None:
        try:
            return await self.reader.get_shard_iterator(
                self.context.stream_arn, self.shard_id, request.kind, request.sequence_number
            )
        except StreamNotFoundError as exc:
            if not await self.gaps.trimmed_away():
                raise
            await self.gaps.after_shard_trimmed_away(self.last_sequence or self.started_from, exc)
            return None

    async def _after_trim(self, exc: TrimmedDataError) -> str | None:
        outcome = await self.gaps.after_trim(self.last_sequence or self.started_from, exc)
        if outcome.skip_before_ms is not None:
            self.skip_before_ms = outcome.skip_before_ms
        return await self._iterator(outcome.retry_from)

    async def _transient(self, exc: TransientStreamError) -> None:
        self.metrics.errors_transient.inc()
        delay = self.backoff.delay(self.backoff_attempt, self.rng)
        self.backoff_attempt += 1
        self._log.warning("transient stream error; backing off", error=str(exc), delay_s=delay)
        await self._wait(delay)

    async def _wait(self, delay: float) -> None:
        if delay > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stop.wait(), delay)


def _discard(read: asyncio.Task[RecordsPage]) -> None:
    """A read ahead no longer wanted: cancelled, or its outcome taken so none is reported."""
    if read.done():
        if not read.cancelled():
            read.exception()
    else:
        read.cancel()
