"""Expired iterators and throttling: nothing lost, nothing skipped, per-key order kept."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import structlog

from bridge.local.endpoint import LocalEndpoint
from tests.support.memory import RecordSink
from tests.support.workload import (
    Writer,
    create_table,
    expected_versions,
    plan_writes,
    versions_by_key,
)
from tests.worker.conftest import dynamodb, running_worker, worker_config

WRITES = 3_000
KEYS = 150
EXPIRED = "iterator expired; resuming from the last position"


async def test_expired_iterators_and_throttling_lose_nothing(
    make_local_endpoint: Callable[..., LocalEndpoint],
) -> None:
    local = make_local_endpoint(
        shards=4, rotate_records=500, iterator_ttl="2s", throttle_rate=0.2, seed=11
    )
    ddb = dynamodb(local.endpoint_url)
    table, _ = create_table(ddb)
    plan = plan_writes(WRITES, KEYS)
    writer = Writer(ddb, table, plan)
    # Every 6th batch takes longer than an iterator lives: the iterator that came with the
    # batch has expired by the time the consumer uses it.
    sink = RecordSink(slow_every=6, slow_for=2.5)
    config = worker_config(local.endpoint_url, table, sink)
    with structlog.testing.capture_logs() as logs:
        async with running_worker(config) as running:
            for _ in range(3):
                await asyncio.to_thread(writer.write, WRITES // 3)
                # Iterators of idle shards expire too: move the endpoint's clock past them.
                await asyncio.to_thread(local.advance_clock, "3s")
            await sink.wait_until(lambda: len(sink.records) >= WRITES, within=120)
            await running.stop()
            metrics = running.worker.metrics

    seen = [(r.key, r.version) for r in sink.records]
    assert len(seen) == WRITES
    assert versions_by_key(seen) == expected_versions(plan)
    expired = sum(1 for entry in logs if entry["event"] == EXPIRED)
    assert expired >= 1  # each clock jump expires the iterators in hand
    assert local.stats()["faults"]["injected"] > 0
    assert metrics.value("bridge_errors_transient_total") > 0
    assert metrics.value("bridge_records_lost_total") == 0
    print(
        f"\n{expired} expired iterators, {metrics.value('bridge_errors_transient_total'):.0f} "
        "transient errors"
    )
