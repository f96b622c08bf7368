"""One segment of the table's snapshot: scan it page by page into the processor, checkpointed.

The segment's lease is held like a shard's (renewed, fenced by its counter, stolen, taken over
after a crash), and its checkpoint is the scan position after the last page the processor
finished: a worker that takes a segment over resumes from that page, never from the first.
The segment's last page carries ``last`` so that the processor can tell the snapshot's end.
A scan that could outlive the stream's retention is refused: the changes made since the
cut-off would be trimmed before the stream could bring the snapshot up to date.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any

import structlog

from bridge.core.backoff import Backoff
from bridge.core.positions import SHARD_END, TRIM_HORIZON
from bridge.core.snapshot_plan import RetentionVerdict, Segment, retention_verdict
from bridge.errors import LeaseLostError
from bridge.metrics import Metrics
from bridge.processors.api import EndReason, Processor, ShardContext, SnapshotBatch
from bridge.streams.errors import FatalStreamError, from_exception
from bridge.table_scan import Page, Position, dump_position, key_names, load_position, scan_page
from bridge.worker.delivery import BatchDelivery, DeliveryInterruptedError, SnapshotHaltedError
from bridge.worker.lease_holder import LeaseHolder, while_owned
from bridge.worker.lease_table_retry import is_transient

log = structlog.get_logger("bridge.snapshot")

DynamoClient = Callable[[], AbstractAsyncContextManager[Any]]
"""Opens an aiobotocore DynamoDB client for the scan."""


class SnapshotTooSlowError(FatalStreamError):
    """The scan has run so long since its cut-off that the stream will have trimmed changes
    it needs before they can be read (``source.retention``)."""


@dataclass(frozen=True)
class ScanSettings:
    table: str
    page_items: int | None
    retention: float


class SegmentScanner:
    def __init__(
        self,
        *,
        context: ShardContext,
        segment: Segment,
        holder: LeaseHolder,
        processor: Processor,
        delivery: BatchDelivery,
        settings: ScanSettings,
        dynamodb: DynamoClient,
        metrics: Metrics,
        stop: asyncio.Event,
        on_items: Callable[[int], None] = lambda count: None,
        readers_paused: Callable[[int], Awaitable[None]] | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
    ) -> None:
        self.context = context
        self.segment = segment
        self.holder = holder
        self.processor = processor
        self.delivery = delivery
        self.settings = settings
        self.dynamodb = dynamodb
        self.metrics = metrics
        self.stop = stop
        self.on_items = on_items
        """Told how many items each page brought (the worker's progress line)."""
        self.readers_paused = readers_paused
        """Returns once no shard's reader can publish during the scan of a cut-off."""
        self.clock = clock
        self.wall_clock = wall_clock
        self.rng = rng or random.Random()
        self.backoff = Backoff(base=0.2, cap=30.0)
        self.lag_ms = 0.0
        self.last_read_at = clock()
        self._warned = False
        self._log = log.bind(table=context.table, segment=context.shard_id)

    async def run(self) -> EndReason:
        reason = EndReason.FAILED
        try:
            reason = await while_owned(self.holder, self._scan(), name=self.context.shard_id)
        except DeliveryInterruptedError:
            reason = EndReason.SHUTDOWN
        except asyncio.CancelledError:
            reason = EndReason.SHUTDOWN
            raise
        except LeaseLostError:
            reason = EndReason.LEASE_LOST
            self.metrics.lease_losses.inc()
            self._log.warning("stopped: lease lost; the segment's next owner resumes it")
        except SnapshotHaltedError as exc:
            self.metrics.errors_fatal.inc()
            self._log.error("stopped: processor keeps failing on a snapshot page", error=str(exc))
        finally:
            with contextlib.suppress(Exception):
                await self.processor.end(reason)
        return reason

    async def _scan(self) -> EndReason:
        await self.processor.start(self.context)
        checkpoint = self.holder.lease.checkpoint
        if checkpoint == SHARD_END:
            return EndReason.SHARD_END
        position = None if checkpoint in (None, TRIM_HORIZON) else load_position(checkpoint)
        if self.readers_paused is not None:
            await self.readers_paused(self.segment.cutoff_ms)
        async with self.dynamodb() as client:
            described = await self._call(client.describe_table, TableName=self.settings.table)
            keys = key_names(described["Table"])
            self._log.info("snapshot segment started", resumed=position is not None)
            ahead = asyncio.create_task(self._read(client, position))
            try:
                while True:
                    page = await ahead
                    if page.next is not None:
                        # Read ahead: the next page is fetched while this one is published and
                        # checkpointed (one page per segment in memory at most).
                        ahead = asyncio.create_task(self._read(client, page.next))
                    if await self._hand_over(page, keys):
                        self._log.info("snapshot segment done")
                        return EndReason.SHARD_END
            finally:
                ahead.cancel()
                await asyncio.gather(ahead, return_exceptions=True)

    async def _read(self, client: Any, position: Position | None) -> Page:
        if self.stop.is_set():
            raise DeliveryInterruptedError
        self._check_retention()
        self.holder.ensure_valid()
        page: Page = await self._call(
            scan_page,
            client,
            self.settings.table,
            segment=self.segment.index,
            segments=self.segment.total,
            start=position,
            limit=self.settings.page_items,
        )
        self.last_read_at = self.clock()
        return page

    async def _hand_over(self, page: Page, keys: list[str]) -> bool:
        """Give the page to the processor and checkpoint past it; True after the last."""
        batch = SnapshotBatch(
            segment=self.context.shard_id,
            index=self.segment.index,
            total=self.segment.total,
            cutoff_ms=self.segment.cutoff_ms,
            key_names=keys,
            items=page.items,
            scanned_at_ms=round(self.wall_clock() * 1000),
            last=page.next is None,
        )
        self.holder.ensure_valid()  # the page may have taken long: still ours?
        done = SHARD_END if page.next is None else dump_position(page.next)
        await self.delivery.deliver_snapshot(batch, done)
        self.metrics.records_processed.inc(len(batch))
        self.on_items(len(batch))
        return page.next is None

    async def _call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """A DynamoDB call, tried again with backoff after passing failures (throttling, 5xx,
        a broken connection) for as long as the segment is ours."""
        attempt = 0
        while True:
            try:
                return await fn(*args, **kwargs)
            except Exception as exc:
                if not is_transient(exc):
                    raise from_exception(exc, context=f"table {self.settings.table}") from exc
                self.metrics.errors_transient.inc()
                delay = self.backoff.delay(attempt, self.rng)
                self._log.warning("scan failed; trying again", error=repr(exc), delay_s=delay)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stop.wait(), delay)
            if self.stop.is_set():
                raise DeliveryInterruptedError
            self.holder.ensure_valid()
            attempt += 1

    def _check_retention(self) -> None:
        age = self.wall_clock() - self.segment.cutoff_ms / 1000
        retention = self.settings.retention
        verdict = retention_verdict(age, retention)
        if verdict is RetentionVerdict.REFUSE:
            raise SnapshotTooSlowError(
                f"the snapshot scan of {self.settings.table} has run {age / 3600:.1f} h, close "
                f"to the stream's retention of {retention / 3600:.1f} h (source.retention): "
                "changes made early in the scan will be trimmed before they can be read. Use "
                "more segments (source.bootstrap.segments) or more workers, and start again",
                code="SnapshotTooSlow",
                context=f"segment {self.context.shard_id}",
            )
        if verdict is RetentionVerdict.WARN and not self._warned:
            self._warned = True
            self._log.warning(
                "snapshot scan is slow: half the stream's retention used",
                hours=round(age / 3600, 1),
            )
