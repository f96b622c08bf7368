"""The follow loop: read a batch, apply it (data and offsets in one transaction), again; and
whenever the assigner's check is due, let it ask the broker first.

A message that is not a bridge envelope is skipped and counted, its offset still applied, so
one bad message never stops the replica nor comes back. A partition's end is noted only once
what came before it is committed, so readiness never runs ahead of the file. A fetch position
the broker refuses ends the loop with a gap (``_gaps``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass

from prometheus_client import Counter
from structlog.typing import FilteringBoundLogger

from bridge.metrics import Metrics
from bridge.replica._assigner import PartitionAssigner
from bridge.replica._filter import ItemFilter
from bridge.replica._gaps import refused_gap
from bridge.replica._handles import KafkaLink, ReplicaFile
from bridge.replica._messages import (
    BadMessageError,
    Change,
    Fetched,
    OutOfRange,
    PartitionEnd,
    change_of,
)
from bridge.replica._readiness import FollowerReadiness
from bridge.replica._snapshot_progress import mark_row
from bridge.replica._store import Entry

POLL_TIMEOUT = 0.2
"""How long one read waits for messages: also how soon a stop request is noticed."""


@dataclass(eq=False, kw_only=True)
class FollowLoop:
    max_batch: int
    keep: ItemFilter
    kafka: KafkaLink
    file: ReplicaFile
    assigner: PartitionAssigner
    readiness: FollowerReadiness
    metrics: Metrics
    skipped: Counter
    clock: Callable[[], float]
    stopping: asyncio.Event
    log: FilteringBoundLogger

    async def run(self) -> None:
        """Until a stop is requested; an ``OffsetGapError`` ends it early."""
        while not self.stopping.is_set():
            if self.assigner.check_due():
                await self.assigner.check()
            if not self.assigner.assigned:
                await self.assigner.wait_for_check()
                continue
            fetched = await self.kafka.consume(self.max_batch, POLL_TIMEOUT)
            if fetched:
                await self.apply(fetched)

    async def apply(self, fetched: list[Fetched | PartitionEnd | OutOfRange]) -> None:
        entries: list[Entry] = []
        ends: list[PartitionEnd] = []
        out_of_range: list[OutOfRange] = []
        for item in fetched:
            if isinstance(item, PartitionEnd):
                ends.append(item)
            elif isinstance(item, OutOfRange):
                out_of_range.append(item)
            else:
                entries.append(self._entry_of(item))
        self.readiness.broker_answered(self.clock())
        if entries:
            self.metrics.records_consumed.inc(len(entries))
            applied = await self.file.apply(entries)
            self.metrics.records_processed.inc(applied)
            for entry in entries:
                self.readiness.applied(entry.partition, entry.offset, entry.message_ms)
                if (mark := mark_row(entry.partition, entry.change)) is not None:
                    self.readiness.snapshots.add(mark)
        for end in ends:  # only once what came before the end is committed
            self.readiness.reached_end(end.partition, end.offset)
        if out_of_range:
            raise await refused_gap(out_of_range, self.readiness, self.kafka)

    def _entry_of(self, message: Fetched) -> Entry:
        try:
            change: Change | None = change_of(message, self.keep)
        except BadMessageError as exc:
            self.log.error("skipping a message that is not a bridge envelope", error=str(exc))
            self.skipped.inc()
            change = None
        return Entry(message.partition, message.offset, message.timestamp_ms, change)
