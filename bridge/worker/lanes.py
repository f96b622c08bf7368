"""``processor.parallelism: N``: one shard's records handled N at a time, in order per item.

Lambda's ``ParallelizationFactor``, for processors that call slow services: each batch is
split into N lanes by item, so one item's changes stay in one lane, in order, and the lanes
are delivered at once (``process`` is called concurrently, one lane's part of the batch each).
Each lane has its own retries, partial failures and dead letters (``BatchDelivery``); the
shard's checkpoint only ever moves to the last record before which every record of the batch,
in every lane, is done, so it never passes one still in flight or failed. A lost lease or a
stop ends every lane.
"""

from __future__ import annotations

import asyncio
import functools
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from bridge.processors.api import Batch, LeaseLostError
from bridge.records import ChangeRecord
from bridge.worker.delivery import (
    BatchDelivery,
    DeliveryInterruptedError,
    ProcessingHaltedError,
)

MAX_LANES = 10


def split_into_lanes(records: Sequence[ChangeRecord], lanes: int) -> dict[int, list[ChangeRecord]]:
    """A batch's records by lane, each lane in stream order: every change of an item in one
    lane, and the lanes as even as the items allow (the item with the most changes first, to
    the least loaded lane). Any split that keeps an item in one lane keeps its order, since a
    batch's lanes are all done before the next batch starts; an even one ends the batch
    sooner than a hash of the key would (its busiest lane sets the batch's time)."""
    items = [tuple(sorted(record.keys.items())) for record in records]
    load = [0] * lanes
    lane_of_item: dict[tuple[Any, ...], int] = {}
    for item, changes in sorted(Counter(items).items(), key=lambda counted: -counted[1]):
        lane = load.index(min(load))
        lane_of_item[item] = lane
        load[lane] += changes
    parts: dict[int, list[ChangeRecord]] = {}
    for record, item in zip(records, items, strict=True):
        parts.setdefault(lane_of_item[item], []).append(record)
    return parts


class LaneDelivery:
    def __init__(
        self,
        make_lane: Callable[[Callable[[str], Awaitable[None]]], BatchDelivery],
        lanes: int,
        checkpoint: Callable[[str], Awaitable[None]],
        *,
        busy: Any = None,
    ) -> None:
        """``make_lane(report)``: a lane's delivery, whose checkpoints report to this;
        ``busy``: a gauge of the lanes delivering now (``inc``/``dec``)."""
        self.lanes = [make_lane(functools.partial(self._lane_done, i)) for i in range(lanes)]
        self.checkpoint = checkpoint
        self._batch: Sequence[ChangeRecord] = ()
        self._place: dict[str, tuple[int, int]] = {}
        """Each record of the batch: its lane, and its place in that lane."""
        self._done_upto: dict[int, int] = {}
        """Per lane, how many of its records of the batch are done."""
        self._written = -1
        """Index in the batch of the last record the checkpoint passed."""
        self._lock = asyncio.Lock()
        self._busy = busy

    async def deliver(self, batch: Batch, *, through: ChangeRecord | None = None) -> None:
        records = batch.records
        parts = split_into_lanes(records, len(self.lanes))
        self._batch = records
        self._place = {
            record.sequence_number: (lane, place)
            for lane, part in parts.items()
            for place, record in enumerate(part)
        }
        self._done_upto = dict.fromkeys(parts, 0)
        self._written = -1
        try:
            async with asyncio.TaskGroup() as group:
                for lane, part in parts.items():
                    group.create_task(self._run_lane(lane, Batch(batch.shard_id, part)))
        except BaseExceptionGroup as failed:
            raise _first_of(failed) from None
        if through is not None and through is not records[-1]:
            await self.checkpoint(through.sequence_number)

    async def _run_lane(self, lane: int, batch: Batch) -> None:
        if self._busy is not None:
            self._busy.inc()
        try:
            await self.lanes[lane].deliver(batch)
        finally:
            if self._busy is not None:
                self._busy.dec()

    async def skip(self, sequence_number: str) -> None:
        await self.checkpoint(sequence_number)

    async def _lane_done(self, lane: int, sequence_number: str) -> None:
        """A lane's records up to ``sequence_number`` are done: move the shard's checkpoint as
        far as every lane allows."""
        async with self._lock:
            reported = self._place.get(sequence_number)
            if reported is not None and reported[0] == lane:
                self._done_upto[lane] = max(self._done_upto[lane], reported[1] + 1)
            frontier = self._written
            while frontier + 1 < len(self._batch) and self._is_done(frontier + 1):
                frontier += 1
            if frontier > self._written:
                self._written = frontier
                await self.checkpoint(self._batch[frontier].sequence_number)

    def _is_done(self, index: int) -> bool:
        lane, place = self._place[self._batch[index].sequence_number]
        return self._done_upto[lane] > place


def _first_of(failed: BaseExceptionGroup[BaseException]) -> BaseException:
    """What the lanes' failure means for the shard: a lost lease first, then a stop, then a
    record that halted its lane."""
    errors = list(failed.exceptions)
    for kind in (LeaseLostError, DeliveryInterruptedError, ProcessingHaltedError):
        for error in errors:
            if isinstance(error, kind):
                return error
    return errors[0]
