"""``filter:`` in bridge.yaml: the processor sees exactly the changes that match, and the
checkpoint still moves past the others, to each shard's end."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from bridge.local.endpoint import LocalEndpoint
from bridge.processors.api import EndReason
from tests.support.memory import RecordSink
from tests.support.workload import create_table
from tests.worker.conftest import dynamodb, running_worker, worker_config


def write(ddb: Any, table: str) -> list[tuple[str, str, int]]:
    """Puts (some PAID, most NEW) and deletes; returns (event, key, version) of each change."""
    exists: set[str] = set()
    changes: list[tuple[str, str, int]] = []
    for n in range(1, 241):
        key = f"k{n % 24:02d}"
        if n % 7 == 0:
            ddb.delete_item(TableName=table, Key={"pk": {"S": key}})
            if key in exists:
                exists.discard(key)
                changes.append(("REMOVE", key, 0))
            continue
        status = "PAID" if n % 3 == 0 else "NEW"
        item = {"pk": {"S": key}, "version": {"N": str(n)}, "status": {"S": status}}
        ddb.put_item(TableName=table, Item=item)
        changes.append(
            ("MODIFY" if key in exists else "INSERT", key, n if status == "PAID" else -n)
        )
        exists.add(key)
    return changes


async def test_the_processor_sees_exactly_the_matching_changes(
    make_local_endpoint: Callable[..., LocalEndpoint],
) -> None:
    local = make_local_endpoint(rotate_records=0)
    ddb = dynamodb(local.endpoint_url)
    table, _ = create_table(ddb)
    sink = RecordSink()
    config = worker_config(
        local.endpoint_url,
        table,
        sink,
        filter={
            "events": ["INSERT", "MODIFY"],
            "where": [{"attribute": "new.status", "equals": "PAID"}],
        },
    )
    changes = await asyncio.to_thread(write, ddb, table)
    wanted = [(event, key, version) for event, key, version in changes if version > 0]
    assert len(wanted) < len(changes) / 2 and any(e == "REMOVE" for e, _, _ in changes)
    async with running_worker(config) as running:
        await sink.wait_until(lambda: len(sink.records) >= len(wanted), within=60)
        parents = set(await running.leases())
        local.rotate()  # close the shards: their readers go on to each one's end
        # Every parent's end, not only the first: the checkpoint is written before the
        # processor hears of the end, so each one's lease says SHARD_END by then.
        await sink.wait_until(
            lambda: {s for s, r in sink.ends if r is EndReason.SHARD_END} >= parents, 60
        )
        leases = await running.leases()
        filtered = running.worker.metrics.value("bridge_records_filtered_total")
        await running.stop()
    seen = sorted((r.event, r.key, r.version) for r in sink.records)
    assert seen == sorted(wanted)
    assert filtered == len(changes) - len(wanted)
    assert parents and all(leases[key].checkpoint == "SHARD_END" for key in parents)
