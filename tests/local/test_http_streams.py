"""``bridge local`` over HTTP, seen only through real boto3 and aioboto3 clients."""

from __future__ import annotations

import math
import time
from typing import Any

import aioboto3
import boto3
import orjson
import pytest
from botocore.exceptions import ClientError

from bridge.local import LocalEndpoint
from tests.local.stream_reading import (
    NO_RETRIES,
    create_table,
    describe_all,
    parent_first,
    put,
    read_shard,
    read_stream,
    values_by_key,
)


@pytest.fixture
def clients(local_endpoint: LocalEndpoint) -> tuple[Any, Any]:
    url = local_endpoint.endpoint_url
    return (
        boto3.client("dynamodb", endpoint_url=url, region_name="us-east-1"),
        boto3.client(
            "dynamodbstreams", endpoint_url=url, region_name="us-east-1", config=NO_RETRIES
        ),
    )


def test_the_stream_is_described_like_the_real_one(clients: tuple[Any, Any]) -> None:
    ddb, streams = clients
    table, arn = create_table(ddb, view_type="NEW_IMAGE")
    listed = streams.list_streams(TableName=table)["Streams"]
    assert [s["StreamArn"] for s in listed] == [arn]
    description = streams.describe_stream(StreamArn=arn)["StreamDescription"]
    assert description["StreamStatus"] == "ENABLED"
    assert description["StreamViewType"] == "NEW_IMAGE"
    assert description["TableName"] == table
    assert description["KeySchema"] == [{"AttributeName": "pk", "KeyType": "HASH"}]
    assert description["StreamLabel"] == arn.rsplit("/", 1)[1] == listed[0]["StreamLabel"]
    assert len(description["Shards"]) == 4
    assert "LastEvaluatedShardId" not in description


def test_list_streams_pages_with_limit_and_filters_by_table(clients: tuple[Any, Any]) -> None:
    ddb, streams = clients
    ours = {create_table(ddb, "listed")[1] for _ in range(3)}
    listed: list[str] = []
    kwargs: dict[str, Any] = {"Limit": 2}
    while True:
        page = streams.list_streams(**kwargs)
        assert len(page["Streams"]) <= 2
        listed += [s["StreamArn"] for s in page["Streams"]]
        if "LastEvaluatedStreamArn" not in page:
            break
        assert page["LastEvaluatedStreamArn"] == listed[-1]
        kwargs["ExclusiveStartStreamArn"] = page["LastEvaluatedStreamArn"]
    assert len(listed) == len(set(listed))
    assert ours <= set(listed)


def test_rotation_closes_parents_and_children_name_them(
    clients: tuple[Any, Any], local_endpoint: LocalEndpoint
) -> None:
    ddb, streams = clients
    table, arn = create_table(ddb)
    for n in range(12):
        put(ddb, table, f"k{n}", n)
    rotated = local_endpoint.rotate(table)
    assert len(rotated["closed"]) == 4 and len(rotated["opened"]) == 8
    shards = {s["ShardId"]: s for s in describe_all(streams, arn)}
    for parent_id in rotated["closed"]:
        parent = shards[parent_id]
        assert "EndingSequenceNumber" in parent["SequenceNumberRange"]
        children = describe_all(
            streams, arn, ShardFilter={"Type": "CHILD_SHARDS", "ShardId": parent_id}
        )
        assert len(children) == 2
        assert {c["ParentShardId"] for c in children} == {parent_id}
        assert {c["ShardId"] for c in children} <= set(rotated["opened"])
    # read a closed parent to its end: its last page carries no NextShardIterator
    parent = max(
        (shards[p] for p in rotated["closed"]), key=lambda s: len(read_shard(streams, arn, s))
    )
    records = read_shard(streams, arn, parent)
    assert (
        records[-1]["dynamodb"]["SequenceNumber"]
        == (parent["SequenceNumberRange"]["EndingSequenceNumber"])
    )
    iterator = streams.get_shard_iterator(
        StreamArn=arn,
        ShardId=parent["ShardId"],
        ShardIteratorType="AFTER_SEQUENCE_NUMBER",
        SequenceNumber=records[-1]["dynamodb"]["SequenceNumber"],
    )["ShardIterator"]
    end = streams.get_records(ShardIterator=iterator)
    assert end["Records"] == [] and "NextShardIterator" not in end


async def test_per_key_order_holds_across_rotations_through_aioboto3(
    local_endpoint: LocalEndpoint,
) -> None:
    session = aioboto3.Session()
    url = local_endpoint.endpoint_url
    async with (
        session.client("dynamodb", endpoint_url=url, region_name="us-east-1") as ddb,
        session.client("dynamodbstreams", endpoint_url=url, region_name="us-east-1") as streams,
    ):
        table, arn = await _create_table_async(ddb)
        written: dict[str, list[int]] = {}
        for n in range(60):
            key = f"k{n % 7}"
            await ddb.put_item(TableName=table, Item={"pk": {"S": key}, "n": {"N": str(n)}})
            written.setdefault(key, []).append(n)
            if n % 20 == 19:
                local_endpoint.rotate(table)
        shards = await _describe_all_async(streams, arn)
        seen: dict[str, list[int]] = {}
        lineage_of: dict[str, set[str]] = {}
        for shard in parent_first(shards):
            for record in await _read_shard_async(streams, arn, shard):
                image = record["dynamodb"]["NewImage"]
                seen.setdefault(image["pk"]["S"], []).append(int(image["n"]["N"]))
                lineage_of.setdefault(image["pk"]["S"], set()).add(shard["ShardId"])
    assert seen == written
    by_id = {s["ShardId"]: s for s in shards}
    for shard_ids in lineage_of.values():
        # a key's shards form one chain: each (but the first) is a child of another of them
        roots = [i for i in shard_ids if by_id[i].get("ParentShardId") not in shard_ids]
        assert len(roots) == 1


def test_sequence_numbers_are_dense_in_a_shard_and_grow_along_its_lineage(
    clients: tuple[Any, Any], local_endpoint: LocalEndpoint
) -> None:
    ddb, streams = clients
    table, arn = create_table(ddb)
    for n in range(45):
        put(ddb, table, f"k{n % 9}", n)  # 9 keys across 4 shards: shards' writes interleave
        if n % 15 == 14:
            local_endpoint.rotate(table)
    shards = describe_all(streams, arn)
    by_id = {s["ShardId"]: s for s in shards}
    read = 0
    for shard in parent_first(shards):
        numbers = [int(r["dynamodb"]["SequenceNumber"]) for r in read_shard(streams, arn, shard)]
        read += len(numbers)
        span = shard["SequenceNumberRange"]
        start = int(span["StartingSequenceNumber"])
        assert numbers == list(range(start, start + len(numbers)))
        if numbers and "EndingSequenceNumber" in span:
            assert int(span["EndingSequenceNumber"]) == numbers[-1]
        parent = by_id.get(shard.get("ParentShardId", ""))
        if parent is not None:
            assert start > int(parent["SequenceNumberRange"]["EndingSequenceNumber"])
    assert read == 45
    assert len(shards) == 4 + 8 + 8 + 8  # the first rotation splits up to 8 open shards


def test_malformed_and_unknown_iterators_are_400_validation_errors(
    clients: tuple[Any, Any],
) -> None:
    ddb, streams = clients
    table, arn = create_table(ddb)
    put(ddb, table, "a", 1)
    shard = describe_all(streams, arn)[0]
    good = streams.get_shard_iterator(
        StreamArn=arn, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
    )["ShardIterator"]
    raw: list[dict[str, Any]] = []
    streams.meta.events.register(
        "response-received.dynamodb-streams.GetRecords",
        lambda response_dict, **_: raw.append(response_dict),
    )
    for bad in ["not-an-iterator", good[:-4] + "AAAA", good[:40]]:
        with pytest.raises(ClientError) as caught:
            streams.get_records(ShardIterator=bad)
        error = caught.value.response
        assert error["Error"]["Code"] == "ValidationException"
        assert error["ResponseMetadata"]["HTTPStatusCode"] == 400
        assert error["ResponseMetadata"]["HTTPHeaders"]["x-amzn-errortype"] == (
            "ValidationException"
        )
    body = orjson.loads(raw[-1]["body"])
    assert body["__type"] == "com.amazonaws.dynamodb.v20120810#ValidationException"
    assert body["message"]


def test_unknown_shards_and_streams_are_resource_not_found(clients: tuple[Any, Any]) -> None:
    ddb, streams = clients
    _, arn = create_table(ddb)
    for call in (
        lambda: streams.get_shard_iterator(
            StreamArn=arn,
            ShardId="shardId-00000000000000000001-deadbeef",
            ShardIteratorType="LATEST",
        ),
        lambda: streams.describe_stream(StreamArn=arn.replace("/stream/", "/stream/x")),
    ):
        with pytest.raises(ClientError) as caught:
            call()
        assert caught.value.response["Error"]["Code"] == "ResourceNotFoundException"
        assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400


def test_describe_stream_pages_through_more_shards_than_one_page(
    clients: tuple[Any, Any], local_endpoint: LocalEndpoint
) -> None:
    ddb, streams = clients
    table, arn = create_table(ddb)
    for _ in range(15):
        local_endpoint.rotate(table)
    first = streams.describe_stream(StreamArn=arn)["StreamDescription"]
    assert len(first["Shards"]) == 100
    assert first["LastEvaluatedShardId"] == first["Shards"][-1]["ShardId"]
    everything = describe_all(streams, arn)
    assert len(everything) == 4 + 8 + 14 * 8
    assert len({s["ShardId"] for s in everything}) == len(everything)
    assert describe_all(streams, arn, Limit=9) == everything


def test_get_records_honours_limit_and_iterator_types(clients: tuple[Any, Any]) -> None:
    ddb, streams = clients
    table, arn = create_table(ddb)
    for n in range(8):
        put(ddb, table, "same-key", n)
    shard = next(s for s in describe_all(streams, arn) if read_shard(streams, arn, s))
    iterator = streams.get_shard_iterator(
        StreamArn=arn, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
    )["ShardIterator"]
    page = streams.get_records(ShardIterator=iterator, Limit=3)
    assert [int(r["dynamodb"]["NewImage"]["n"]["N"]) for r in page["Records"]] == [0, 1, 2]
    third = page["Records"][2]["dynamodb"]["SequenceNumber"]
    after = streams.get_shard_iterator(
        StreamArn=arn,
        ShardId=shard["ShardId"],
        ShardIteratorType="AFTER_SEQUENCE_NUMBER",
        SequenceNumber=third,
    )["ShardIterator"]
    rest = streams.get_records(ShardIterator=after)["Records"]
    assert [int(r["dynamodb"]["NewImage"]["n"]["N"]) for r in rest] == [3, 4, 5, 6, 7]
    assert [r["eventName"] for r in rest] == ["MODIFY"] * 5
    assert rest[0]["dynamodb"]["OldImage"]["n"] == {"N": "2"}


def test_every_write_kind_is_captured(clients: tuple[Any, Any]) -> None:
    ddb, streams = clients
    table, arn = create_table(ddb)
    put(ddb, table, "a", 1)
    ddb.update_item(
        TableName=table,
        Key={"pk": {"S": "a"}},
        UpdateExpression="SET n = :n",
        ExpressionAttributeValues={":n": {"N": "2"}},
    )
    ddb.batch_write_item(
        RequestItems={
            table: [
                {"PutRequest": {"Item": {"pk": {"S": "b"}, "n": {"N": "3"}}}},
            ]
        }
    )
    ddb.delete_item(TableName=table, Key={"pk": {"S": "a"}})
    events = [
        (r["eventName"], r["dynamodb"]["Keys"]["pk"]["S"]) for _, r in read_stream(streams, arn)
    ]
    assert sorted(events) == sorted(
        [("INSERT", "a"), ("MODIFY", "a"), ("INSERT", "b"), ("REMOVE", "a")]
    )
    a_events = [e for e, key in events if key == "a"]
    assert a_events == ["INSERT", "MODIFY", "REMOVE"]
    assert values_by_key(
        [(s, r) for s, r in read_stream(streams, arn) if r["eventName"] != "REMOVE"]
    ) == {"a": [1, 2], "b": [3]}


def test_creation_times_are_whole_seconds_rounded_down(clients: tuple[Any, Any]) -> None:
    """The API reference: ApproximateCreationDateTime is rounded down to the second."""
    ddb, streams = clients
    table, arn = create_table(ddb)
    before = time.time()
    for n in range(5):
        put(ddb, table, f"k{n}", n)
    after = time.time()
    created = [r["dynamodb"]["ApproximateCreationDateTime"] for _, r in read_stream(streams, arn)]
    assert len(created) == 5
    assert all(at.microsecond == 0 for at in created)
    # One second of slack either side: the endpoint's clock is its own process's.
    assert all(math.floor(before) - 1 <= at.timestamp() <= after + 1 for at in created)


def test_s3_answers_on_the_same_endpoint(local_endpoint: LocalEndpoint) -> None:
    s3 = boto3.client("s3", endpoint_url=local_endpoint.endpoint_url, region_name="us-east-1")
    s3.create_bucket(Bucket="bridge-snapshots")
    s3.put_object(Bucket="bridge-snapshots", Key="snap/1.db", Body=b"sqlite")
    assert s3.get_object(Bucket="bridge-snapshots", Key="snap/1.db")["Body"].read() == b"sqlite"


async def _create_table_async(ddb: Any) -> tuple[str, str]:
    import uuid

    name = f"async-{uuid.uuid4().hex[:8]}"
    await ddb.create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
    )
    described = await ddb.describe_table(TableName=name)
    return name, described["Table"]["LatestStreamArn"]


async def _describe_all_async(streams: Any, arn: str) -> list[dict[str, Any]]:
    shards: list[dict[str, Any]] = []
    kwargs: dict[str, Any] = {}
    while True:
        description = (await streams.describe_stream(StreamArn=arn, **kwargs))["StreamDescription"]
        shards += description["Shards"]
        if "LastEvaluatedShardId" not in description:
            return shards
        kwargs["ExclusiveStartShardId"] = description["LastEvaluatedShardId"]


async def _read_shard_async(streams: Any, arn: str, shard: dict[str, Any]) -> list[Any]:
    iterator = (
        await streams.get_shard_iterator(
            StreamArn=arn, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
        )
    )["ShardIterator"]
    closed = "EndingSequenceNumber" in shard["SequenceNumberRange"]
    found: list[Any] = []
    while iterator:
        answer = await streams.get_records(ShardIterator=iterator)
        found += answer["Records"]
        iterator = answer.get("NextShardIterator")
        if not answer["Records"] and not closed:
            break
    return found
