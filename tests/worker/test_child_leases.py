"""A shard read to its end leases its children at once, by whichever worker read it."""

from __future__ import annotations

from bridge.local.endpoint import LocalEndpoint
from bridge.streams.client import StreamsClient
from bridge.testing.memory_leases import MemoryLeaseStore
from bridge.testing.memory_stream import MemoryStream
from bridge.worker.shard_syncer import create_child_leases
from tests.support.workload import create_table
from tests.worker.conftest import dynamodb


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
