"""One worker, no faults: every change once, in write order per key, through shard rotations."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import Counter
from collections.abc import Callable

import pytest

from bridge.core.positions import SHARD_END
from bridge.local.endpoint import LocalEndpoint
from bridge.processors.api import EndReason
from tests.support.memory import RecordSink
from tests.support.workload import (
    Writer,
    create_table,
    expected_versions,
    plan_writes,
    versions_by_key,
)
from tests.worker.conftest import dynamodb, running_worker, worker_config


@pytest.mark.parametrize(
    ("writes", "keys"),
    [
        pytest.param(2_000, 200, id="2k"),
        pytest.param(20_000, 1_000, id="20k", marks=pytest.mark.slow),
    ],
)
async def test_every_change_once_in_write_order_per_key(
    make_local_endpoint: Callable[..., LocalEndpoint], writes: int, keys: int
) -> None:
    local = make_local_endpoint(shards=4, rotate_records=500)
    ddb = dynamodb(local.endpoint_url)
    table, _ = create_table(ddb)
    plan = plan_writes(writes, keys)
    writer = Writer(ddb, table, plan)
    sink = RecordSink()
    started = time.monotonic()
    async with running_worker(worker_config(local.endpoint_url, table, sink)) as running:
        await asyncio.to_thread(writer.write)
        written = time.monotonic() - started
        await sink.wait_until(lambda: len(sink.records) >= writes, within=120)
        await running.stop()
        leases = await running.leases()
    elapsed = time.monotonic() - started

    seen = [(r.key, r.version) for r in sink.records]
    assert len(seen) == writes, Counter(seen).most_common(3)
    assert versions_by_key(seen) == expected_versions(plan)
    assert all(r.event == ("INSERT" if r.version == 1 else "MODIFY") for r in sink.records)
    # Within a shard, records arrive in stream order.
    by_shard: dict[str, list[int]] = {}
    for record in sink.records:
        by_shard.setdefault(record.shard, []).append(int(record.seq))
    assert all(seqs == sorted(seqs) for seqs in by_shard.values())
    # bridge local numbers a shard's records consecutively (what makes loss counts exact).
    assert all(b - a == 1 for seqs in by_shard.values() for a, b in itertools.pairwise(seqs))
    assert len(by_shard) > writes // 500  # the reading went through many rotations

    # After the drain: no lease has an owner, and each shard's checkpoint is its last record
    # (or SHARD_END for the closed ones that were read to the end).
    assert leases
    assert all(lease.owner is None for lease in leases.values())
    for shard, seqs in by_shard.items():
        if shard in leases:  # the syncer may already have removed finished ones
            assert leases[shard].checkpoint in {SHARD_END, str(seqs[-1])}
    for shard, reason in sink.ends:
        if reason is EndReason.SHUTDOWN:  # still open: checkpointed at its last record
            last = by_shard.get(shard)
            assert leases[shard].checkpoint == (str(last[-1]) if last else None)
        else:
            assert reason is EndReason.SHARD_END
            assert shard not in leases or leases[shard].checkpoint == SHARD_END
    print(
        f"\n{writes} writes ({written:.1f}s to write) seen once in order in {elapsed:.1f}s "
        f"through {len(by_shard)} shards"
    )
