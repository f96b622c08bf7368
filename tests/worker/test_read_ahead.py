"""Read-ahead: a shard's next GetRecords runs while the processor handles the page before it,
one page ahead at most; the page read ahead reaches the processor only after the one before,
only while the lease is ours, and a stop does not wait for the pause before it."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

from bridge.config.models import PollingConfig
from bridge.local.endpoint import LocalEndpoint
from bridge.metrics import Metrics
from bridge.processors.api import Batch, EndReason, Processor, ShardContext
from tests.support.memory import RecordSink
from tests.support.workload import create_table
from tests.worker.conftest import dynamodb, running_worker, worker_config

READS = "bridge_getrecords_calls_total"


@dataclass
class Gate:
    """What the held processor saw, and the switch that lets its first call finish."""

    metrics: Metrics | None = None
    open: asyncio.Event = field(default_factory=asyncio.Event)
    holding: asyncio.Event = field(default_factory=asyncio.Event)
    reads_while_held: list[float] = field(default_factory=list)
    calls: list[list[str]] = field(default_factory=list)
    ends: list[EndReason] = field(default_factory=list)


class Held(Processor):
    """Its first call waits for the gate; every call records its sequence numbers."""

    def __init__(self, gate: Gate) -> None:
        self.gate = gate

    async def start(self, context: ShardContext) -> str | None:
        return None

    async def process(self, batch: Batch) -> None:
        gate = self.gate
        gate.calls.append([r.sequence_number for r in batch.records])
        if len(gate.calls) == 1:
            gate.holding.set()
            await gate.open.wait()

    async def end(self, reason: EndReason) -> None:
        self.gate.ends.append(reason)


def reads(gate: Gate) -> float:
    assert gate.metrics is not None
    return gate.metrics.value(READS)


async def until(condition: Callable[[], bool], within: float, what: str) -> None:
    deadline = time.monotonic() + within
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {within}s: {what}")
        await asyncio.sleep(0.01)


def held_config(local: LocalEndpoint, table: str, gate: Gate, **polling: Any) -> Any:
    config = worker_config(
        local.endpoint_url,
        table,
        RecordSink(),
        processor={"kind": f"{__name__}:Held", "options": {"gate": gate}},
    )
    tuned = PollingConfig.model_validate({**config.polling.model_dump(), **polling})
    return config.model_copy(update={"polling": tuned})


def write(ddb: Any, table: str, count: int) -> None:
    for n in range(1, count + 1):
        ddb.put_item(TableName=table, Item={"pk": {"S": f"k{n}"}, "version": {"N": str(n)}})


@contextlib.asynccontextmanager
async def holding_the_first_page(
    make_local_endpoint: Callable[..., LocalEndpoint],
) -> AsyncIterator[tuple[Any, Gate, float]]:
    """A worker on one shard of six records, read two at a time, whose processor holds the
    first page: the running worker, the gate, and the reads made until then."""
    local = make_local_endpoint(shards=1)
    ddb = dynamodb(local.endpoint_url)
    table, _ = create_table(ddb)
    await asyncio.to_thread(write, ddb, table, 6)
    gate = Gate()
    async with running_worker(held_config(local, table, gate, max_records=2)) as running:
        gate.metrics = running.worker.metrics
        await asyncio.wait_for(gate.holding.wait(), 30)
        yield running, gate, reads(gate)


async def test_the_next_page_is_read_while_the_processor_holds_this_one(
    make_local_endpoint: Callable[..., LocalEndpoint],
) -> None:
    async with holding_the_first_page(make_local_endpoint) as (running, gate, before):
        # The first page was full: the shard is behind, and its next page is read at once,
        # while the processor still holds the first.
        await until(lambda: reads(gate) > before, 10, "a read while the processor holds a page")
        await asyncio.sleep(0.3)  # a window for a second read ahead to show, were there one
        assert reads(gate) == before + 1
        gate.open.set()
        await until(lambda: sum(map(len, gate.calls)) >= 6, 30, "every record")
        await running.stop()
    delivered = [seq for call in gate.calls for seq in call]
    assert delivered == sorted(delivered, key=int) and len(set(delivered)) == 6


async def test_a_page_read_ahead_is_not_handed_over_once_the_lease_is_lost(
    make_local_endpoint: Callable[..., LocalEndpoint],
) -> None:
    async with holding_the_first_page(make_local_endpoint) as (running, gate, before):
        await until(lambda: reads(gate) > before, 10, "the next page read ahead")
        (lease,) = (await running.leases()).values()
        await running.worker.store.take(lease, "thief")  # another worker took the shard
        gate.open.set()
        await until(lambda: EndReason.LEASE_LOST in gate.ends, 30, "the lease loss noticed")
        await running.stop()
    assert len(gate.calls) == 1  # the page read ahead never reached the processor


async def test_a_stop_does_not_wait_for_the_pause_before_the_next_read(
    make_local_endpoint: Callable[..., LocalEndpoint],
) -> None:
    local = make_local_endpoint(shards=1)
    ddb = dynamodb(local.endpoint_url)
    table, _ = create_table(ddb)
    await asyncio.to_thread(write, ddb, table, 1)
    gate = Gate()
    gate.open.set()
    config = held_config(local, table, gate, interval="30s", idle_interval="60s")
    async with running_worker(config) as running:
        gate.metrics = running.worker.metrics
        await until(lambda: bool(gate.calls), 30, "the first record")
        # Caught up: the next read waits 30 s, read ahead while the page is handled.
        async with asyncio.timeout(10):
            await running.stop()
    assert gate.ends == [EndReason.SHUTDOWN]
