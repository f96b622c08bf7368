"""A shard read to its end leases its children at once, by whichever worker read it."""

from __future__ import annotations

import asyncio

from bridge.config import BridgeConfig
from bridge.local.endpoint import LocalEndpoint
from bridge.processors.loader import load_factory
from bridge.streams.client import StreamsClient
from bridge.testing.memory_leases import MemoryLeaseStore
from bridge.testing.memory_stream import MemoryStream
from bridge.worker.shard_syncer import create_child_leases
from bridge.worker.worker import Worker
from tests.support.memory import RecordSink
from tests.support.workload import create_table
from tests.worker.conftest import SINK_PROCESSOR, dynamodb


async def test_children_of_an_ended_shard_get_leases_naming_their_parent() -> None:
    stream = MemoryStream()
    parent = stream.add_shard()
    other = stream.add_shard()
    store = MemoryLeaseStore()
    await store.create_lease(parent, frozenset())
    await store.create_lease(other, frozenset())
    children = stream.split(parent)

    calls = stream.describe_stream_calls
    created = await create_child_leases(stream, store, stream.stream_arn, parent)
    assert sorted(created) == sorted(children)
    assert stream.describe_stream_calls == calls + 1  # one filtered call, not a full listing
    leases = {lease.key: lease for lease in await store.list_leases()}
    assert {key: leases[key].parents for key in children} == {
        key: frozenset([parent]) for key in children
    }
    assert leases[parent].children == frozenset(children)

    # the leader's sync, or a second worker, finding them again changes nothing
    assert await create_child_leases(stream, store, stream.stream_arn, parent) == []
    assert await create_child_leases(stream, store, stream.stream_arn, other) == []
    assert len(await store.list_leases()) == 4


async def test_child_shards_over_http_with_the_child_shards_filter(
    local_endpoint: LocalEndpoint,
) -> None:
    ddb = dynamodb(local_endpoint.endpoint_url)
    table, arn = create_table(ddb, prefix="kids")
    ddb.put_item(TableName=table, Item={"pk": {"S": "a"}, "version": {"N": "1"}})
    async with StreamsClient("us-east-1", local_endpoint.endpoint_url) as streams:
        before = await streams.describe_stream(arn)
        open_shard = before.shards[0].shard_id
        assert await streams.child_shards(arn, open_shard) == []
        local_endpoint.rotate(table)
        after = await streams.describe_stream(arn)
        expected = {s.shard_id for s in after.shards if s.parent_shard_id == open_shard}
        children = await streams.child_shards(arn, open_shard)
    assert expected and {child.shard_id for child in children} == expected
    assert {child.parent_shard_id for child in children} == {open_shard}


async def test_the_reader_of_a_parent_takes_its_child_when_the_leader_leased_it_first() -> None:
    """The lineage stays with the worker that read it, whoever created the child's lease: with
    take cycles an hour apart, only the reader's own take can start the child."""
    stream = MemoryStream()
    parent = stream.add_shard()
    store = MemoryLeaseStore()
    await store.create_lease(parent, frozenset())
    stream.put(parent, new_image={"pk": "a", "version": 1})
    sink = RecordSink()
    config = BridgeConfig.model_validate(
        {
            "app": "kids",
            "source": {"table": "table"},
            "coordination": {"lease_duration": "6s", "take_interval": "1h"},
            "polling": {"interval": "10ms", "idle_interval": "50ms"},
            "processor": {"kind": SINK_PROCESSOR, "options": {"sink": sink}},
            "metrics": {"enabled": False},
        }
    )
    worker = Worker(
        config,
        worker_id="reader",
        reader=stream,
        store=store,
        factory=load_factory(SINK_PROCESSOR, {"sink": sink}),
    )
    running = asyncio.create_task(worker.run(stream.stream_arn))
    try:
        await sink.wait_until(lambda: len(sink.records) == 1, within=10)
        children = stream.split(parent)
        for child in children:  # the leader's sync got there first
            await store.create_lease(child, frozenset([parent]))
        stream.put(children[0], new_image={"pk": "a", "version": 2})
        await sink.wait_until(lambda: len(sink.records) == 2, within=10)
        leases = {lease.key: lease for lease in await store.list_leases()}
        assert leases[children[0]].owner == "reader"
        assert [seen.shard for seen in sink.records] == [parent, children[0]]
    finally:
        worker.request_stop()
        await asyncio.wait_for(running, 30)
