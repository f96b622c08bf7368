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
from bridge.replica._store import Entry

POLL_TIMEOUT = 0.2
"""How long one read waits for messages: also how soon a stop request is noticed."""


class FollowLoop:
    def __init__(
        self,
        *,
        max_batch: int,
        keep: ItemFilter,
        kafka: KafkaLink,
        file: ReplicaFile,
        assigner: PartitionAssigner,
        readiness: FollowerReadiness,
        metrics: Metrics,
        skipped: Counter,
        clock: Callable[[], float],
        stopping: asyncio.Event,
        log: FilteringBoundLogger,
    ) -> None:
        self._max_batch = max_batch
        self._keep = keep
        self._kafka = kafka
        self._file = file
        self._assigner = assigner
        self._readiness = readiness
        self._metrics = metrics
        self._skipped = skipped
        self._clock = clock
        self._stopping = stopping
        self._log = log

    async def run(self) -> None:
        """Until a stop is requested; an ``OffsetGapError`` ends it early."""
        while not self._stopping.is_set():
            if self._assigner.check_due():
                await self._assigner.check()
            if not self._assigner.assigned:
                await self._assigner.wait_for_check()
                continue
            fetched = await self._kafka.consume(self._max_batch, POLL_TIMEOUT)
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
        self._readiness.broker_answered(self._clock())
        if entries:
            self._metrics.records_consumed.inc(len(entries))
            applied = await self._file.apply(entries)
            self._metrics.records_processed.inc(applied)
            for entry in entries:
                self._readiness.applied(entry.partition, entry.offset, entry.message_ms)
        for end in ends:  # only once what came before the end is committed
            self._readiness.reached_end(end.partition, end.offset)
        if out_of_range:
            raise await refused_gap(out_of_range, self._readiness, self._kafka)

    def _entry_of(self, message: Fetched) -> Entry:
        try:
            change: Change | None = change_of(message, self._keep)
        except BadMessageError as exc:
            self._log.error("skipping a message that is not a bridge envelope", error=str(exc))
            self._skipped.inc()
            change = None
        return Entry(message.partition, message.offset, message.timestamp_ms, change)
