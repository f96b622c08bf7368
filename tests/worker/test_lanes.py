"""``processor.parallelism``: lanes in flight at once, order kept per item, and a checkpoint
that never passes a record still in flight or failed in any lane. Pure."""

from __future__ import annotations

import asyncio
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bridge.core.backoff import Backoff
from bridge.metrics import Metrics
from bridge.processors.api import Batch, Processor
from bridge.worker.delivery import BatchDelivery, DeliveryPolicy, ProcessingHaltedError
from bridge.worker.lanes import LaneDelivery, split_into_lanes
from tests.sqlite.records import batch, change

QUICK = Backoff(base=0.001, cap=0.004)


def changes(count: int, keys: int) -> Batch:
    return batch(
        *(
            change("MODIFY", seq, {"pk": f"k{seq % keys}"}, {"v": seq})
            for seq in range(1, count + 1)
        )
    )


class Slow(Processor):
    """Takes a while per record, more for some lanes; records what it applied, and when."""

    def __init__(self, *, fail: str | None = None) -> None:
        self.fail = fail
        self.applied: list[tuple[str, int]] = []  # (key, seq)
        self.in_flight = 0
        self.most_in_flight = 0

    async def process(self, batch: Batch) -> None:
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            for record in batch.records:
                if record.sequence_number == self.fail:
                    raise ValueError("cannot apply it")
                await asyncio.sleep(0.001 * (1 + int(record.sequence_number) % 3))
                self.applied.append((str(record.keys["pk"]), int(record.sequence_number)))
        finally:
            self.in_flight -= 1


def lanes_over(
    processor: Slow,
    checkpoints: list[tuple[str, frozenset[int]]],
    lanes: int,
    busy: object = None,
) -> LaneDelivery:
    async def checkpoint(sequence_number: str) -> None:
        # What was applied when the checkpoint was written: it must cover every record up to it.
        checkpoints.append((sequence_number, frozenset(seq for _, seq in processor.applied)))

    def lane(report: Callable[[str], Awaitable[None]]) -> BatchDelivery:
        policy = DeliveryPolicy(max_attempts=2, on_error="stop", backoff=QUICK)
        return BatchDelivery(processor, policy, checkpoint=report, dead_letter=None)

    return LaneDelivery(lane, lanes, checkpoint, busy=busy)


async def test_lanes_run_at_once_keep_each_items_order_and_checkpoint_only_what_is_done() -> None:
    processor = Slow()
    checkpoints: list[tuple[str, frozenset[int]]] = []
    work = changes(60, keys=12)
    await lanes_over(processor, checkpoints, 4).deliver(work)
    assert processor.most_in_flight > 1
    per_key: dict[str, list[int]] = defaultdict(list)
    for key, seq in processor.applied:
        per_key[key].append(seq)
    assert all(seqs == sorted(seqs) for seqs in per_key.values())
    assert len(processor.applied) == 60
    # Every checkpoint was written when every record up to it had been applied.
    order = [int(r.sequence_number) for r in work.records]
    for sequence_number, applied_then in checkpoints:
        upto = order[: order.index(int(sequence_number)) + 1]
        assert set(upto) <= applied_then, f"checkpoint {sequence_number} passed a record in flight"
    assert [int(s) for s, _ in checkpoints] == sorted(int(s) for s, _ in checkpoints)
    assert checkpoints[-1][0] == "60"


async def test_a_lane_that_halts_keeps_the_checkpoint_before_its_failed_record() -> None:
    processor = Slow(fail="23")
    checkpoints: list[tuple[str, frozenset[int]]] = []
    with pytest.raises(ProcessingHaltedError):
        await lanes_over(processor, checkpoints, 3).deliver(changes(40, keys=9))
    assert all(int(s) < 23 for s, _ in checkpoints)


async def test_lanes_busy_counts_the_lanes_delivering_now() -> None:
    metrics = Metrics("app", "t")
    seen: list[tuple[int, float]] = []

    class Watched(Slow):
        async def process(self, batch: Batch) -> None:
            await asyncio.sleep(0)  # let every lane start
            seen.append((self.in_flight + 1, metrics.value("bridge_lanes_busy")))
            await super().process(batch)

    processor = Watched()
    await lanes_over(processor, [], 4, busy=metrics.lanes_busy).deliver(changes(40, keys=8))
    assert max(busy for _, busy in seen) > 1
    assert all(busy >= in_flight for in_flight, busy in seen)
    assert metrics.value("bridge_lanes_busy") == 0


@settings(max_examples=200, deadline=None)
@given(
    keys=st.lists(st.integers(min_value=0, max_value=30), min_size=1, max_size=200),
    lanes=st.integers(min_value=1, max_value=10),
)
def test_a_split_keeps_each_item_in_one_lane_in_order_and_the_lanes_even(
    keys: list[int], lanes: int
) -> None:
    records = [
        change("MODIFY", seq, {"pk": f"k{key}"}, {"v": seq}) for seq, key in enumerate(keys, 1)
    ]
    parts = split_into_lanes(records, lanes)
    assert set(parts) <= set(range(lanes))
    assert sorted(r.sequence_number for p in parts.values() for r in p) == sorted(
        r.sequence_number for r in records
    )
    used: dict[str, set[int]] = defaultdict(set)
    for lane, part in parts.items():
        assert [int(r.sequence_number) for r in part] == sorted(
            int(r.sequence_number) for r in part
        )
        for record in part:
            used[str(record.keys["pk"])].add(lane)
    assert all(len(lanes_used) == 1 for lanes_used in used.values())
    # Greedy by size: no lane holds more than an even share plus the largest item's changes.
    largest = max(Counter(keys).values())
    assert max(len(part) for part in parts.values()) <= len(records) / lanes + largest
