"""StreamsClient against moto's server over HTTP: the whole read path, every attribute type."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import aioboto3
import boto3
import pytest

from bridge.local.processes import MotoServer
from bridge.records import ChangeRecord
from bridge.streams import (
    ShardIterator,
    StreamNotEnabledError,
    StreamNotFoundError,
    StreamReader,
    StreamsClient,
)

ITEM: dict[str, Any] = {
    "pk": {"S": "order#1"},
    "sk": {"N": "7"},
    "count": {"N": "42"},
    "price": {"N": "19.99"},
    "big": {"N": "1E+3"},
    "negative": {"N": "-0.5"},
    "name": {"S": "Zoë"},
    "blob": {"B": b"\x00\xffbinary"},
    "paid": {"BOOL": True},
    "nothing": {"NULL": True},
    "tags": {"SS": ["a", "b"]},
    "scores": {"NS": ["1", "2.5"]},
    "thumbs": {"BS": [b"\x01", b"\x02"]},
    "address": {"M": {"city": {"S": "Lyon"}, "geo": {"L": [{"N": "45.76"}, {"N": "4"}]}}},
    "lines": {"L": [{"M": {"sku": {"S": "x"}, "qty": {"N": "2"}}}, {"S": "note"}]},
}
EXPECTED: dict[str, Any] = {
    "pk": "order#1",
    "sk": 7,
    "count": 42,
    "price": Decimal("19.99"),
    "big": 1000,
    "negative": Decimal("-0.5"),
    "name": "Zoë",
    "blob": b"\x00\xffbinary",
    "paid": True,
    "nothing": None,
    "tags": {"a", "b"},
    "scores": {1, Decimal("2.5")},
    "thumbs": {b"\x01", b"\x02"},
    "address": {"city": "Lyon", "geo": [Decimal("45.76"), 4]},
    "lines": [{"sku": "x", "qty": 2}, "note"],
}


@dataclass
class Table:
    name: str
    ddb: Any


@pytest.fixture
def table(moto_server: MotoServer) -> Iterator[Table]:
    name = f"orders-{uuid.uuid4().hex[:8]}"
    ddb = boto3.client("dynamodb", endpoint_url=moto_server.endpoint_url, region_name="us-east-1")
    ddb.create_table(
        TableName=name,
        KeySchema=[
            {"AttributeName": "pk", "KeyType": "HASH"},
            {"AttributeName": "sk", "KeyType": "RANGE"},
        ],
        AttributeDefinitions=[
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "sk", "AttributeType": "N"},
        ],
        BillingMode="PAY_PER_REQUEST",
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
    )
    yield Table(name, ddb)
    ddb.delete_table(TableName=name)


@pytest.fixture
async def client(moto_server: MotoServer) -> AsyncIterator[StreamsClient]:
    async with StreamsClient("us-east-1", moto_server.endpoint_url) as streams:
        yield streams


async def read_all(client: StreamsClient, iterator: str) -> list[ChangeRecord]:
    records: list[ChangeRecord] = []
    while True:
        page = await client.get_records(iterator, 100)
        records += page.records
        if not page.records or page.next_iterator is None:
            return records
        iterator = page.next_iterator


async def test_insert_modify_remove_read_through_the_fast_path(
    table: Table, client: StreamsClient
) -> None:
    before = datetime.now(UTC)
    key = {"pk": ITEM["pk"], "sk": ITEM["sk"]}
    table.ddb.put_item(TableName=table.name, Item=ITEM)
    table.ddb.update_item(
        TableName=table.name,
        Key=key,
        UpdateExpression="SET #c = :c REMOVE tags",
        ExpressionAttributeNames={"#c": "count"},
        ExpressionAttributeValues={":c": {"N": "43"}},
    )
    table.ddb.delete_item(TableName=table.name, Key=key)

    arn = await client.latest_stream_arn(table.name)
    description = await client.describe_stream(arn)
    shard = description.shards[0]
    iterator = await client.get_shard_iterator(arn, shard.shard_id, "TRIM_HORIZON")
    records = await read_all(client, iterator)

    assert isinstance(client, StreamReader)
    assert description.stream_arn == arn
    assert (description.status, description.table_name) == ("ENABLED", table.name)
    assert description.view_type == "NEW_AND_OLD_IMAGES"
    assert description.key_names == ("pk", "sk")
    assert [k.key_type for k in description.key_schema] == ["HASH", "RANGE"]
    assert len(description.shards) == 1 and not shard.closed and shard.parent_shard_id is None

    insert, modify, remove = records
    assert [r.event for r in records] == ["INSERT", "MODIFY", "REMOVE"]
    assert all(r.keys == {"pk": "order#1", "sk": 7} for r in records)
    assert type(insert.keys["sk"]) is int
    assert insert.new_image == EXPECTED and insert.old_image is None
    assert modify.old_image == EXPECTED
    expected_after = {k: v for k, v in EXPECTED.items() if k != "tags"} | {"count": 43}
    assert modify.new_image == expected_after
    assert remove.new_image is None and remove.old_image == expected_after
    assert _types(insert.new_image) == _types(EXPECTED)

    sequence_numbers = [int(r.sequence_number) for r in records]
    assert sequence_numbers == sorted(sequence_numbers) and len(set(sequence_numbers)) == 3
    assert {r.shard_id for r in records} == {shard.shard_id}
    assert all(r.size_bytes > 0 for r in records)
    created = insert.approximate_creation_time
    assert created.tzinfo is not None and created.utcoffset() == timedelta(0)
    assert before - timedelta(seconds=5) <= created <= datetime.now(UTC) + timedelta(seconds=5)
    # The raw record is DynamoDB JSON exactly as on the wire: binary stays base64 text.
    assert insert.raw["eventName"] == "INSERT"
    assert insert.raw["dynamodb"]["NewImage"]["blob"] == {"B": "AP9iaW5hcnk="}
    assert client.get_records_calls >= 1 and client.describe_stream_calls == 1


def _types(value: Any) -> Any:
    """The exact types of a decoded value, so 7 and Decimal("7") do not compare equal."""
    if isinstance(value, dict):
        return {k: _types(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_types(v) for v in value]
    if isinstance(value, set):
        return sorted(type(v).__name__ for v in value)
    return type(value).__name__


async def test_fast_path_and_botocore_agree_on_the_same_records(
    moto_server: MotoServer, table: Table, client: StreamsClient
) -> None:
    table.ddb.put_item(TableName=table.name, Item=ITEM)
    arn = await client.latest_stream_arn(table.name)
    shard_id = (await client.describe_stream(arn)).shards[0].shard_id

    fast = (
        await client.get_records(await client.get_shard_iterator(arn, shard_id, "TRIM_HORIZON"))
    ).records
    async with aioboto3.Session().client(
        "dynamodbstreams", endpoint_url=moto_server.endpoint_url, region_name="us-east-1"
    ) as streams:
        iterator = (
            await streams.get_shard_iterator(
                StreamArn=arn, ShardId=shard_id, ShardIteratorType="TRIM_HORIZON"
            )
        )["ShardIterator"]
        parsed = (await streams.get_records(ShardIterator=iterator))["Records"]
    slow = [ChangeRecord.from_raw(r, shard_id) for r in parsed]

    assert [(r.keys, r.new_image, r.old_image) for r in fast] == [
        (r.keys, r.new_image, r.old_image) for r in slow
    ]
    assert [r.approximate_creation_time for r in fast] == [
        r.approximate_creation_time for r in slow
    ]


async def test_iterators_at_and_after_a_sequence_number_and_latest(
    table: Table, client: StreamsClient
) -> None:
    for n in range(3):
        table.ddb.put_item(TableName=table.name, Item={"pk": {"S": "p"}, "sk": {"N": str(n)}})
    arn = await client.latest_stream_arn(table.name)
    shard_id = (await client.describe_stream(arn)).shards[0].shard_id
    first = await read_all(client, await client.get_shard_iterator(arn, shard_id, "TRIM_HORIZON"))
    middle = first[1].sequence_number

    at = await client.get_shard_iterator(arn, shard_id, "AT_SEQUENCE_NUMBER", middle)
    after = await client.get_shard_iterator(arn, shard_id, "AFTER_SEQUENCE_NUMBER", middle)
    latest = await client.get_shard_iterator(arn, shard_id, "LATEST")
    assert isinstance(latest, ShardIterator) and latest.shard_id == shard_id
    assert (await client.get_records(latest)).records == []
    table.ddb.put_item(TableName=table.name, Item={"pk": {"S": "p"}, "sk": {"N": "9"}})

    assert [r.keys["sk"] for r in await read_all(client, at)] == [1, 2, 9]
    assert [r.keys["sk"] for r in await read_all(client, after)] == [2, 9]
    assert [r.keys["sk"] for r in await read_all(client, latest)] == [9]


async def test_an_unknown_table_is_a_fatal_error_naming_it(client: StreamsClient) -> None:
    with pytest.raises(StreamNotFoundError) as caught:
        await client.latest_stream_arn("no-such-table")

    assert "no-such-table" in str(caught.value)
    assert caught.value.code == "ResourceNotFoundException"
    assert caught.value.status == 400


async def test_a_table_without_a_stream_is_a_fatal_error_naming_it(
    moto_server: MotoServer, client: StreamsClient
) -> None:
    name = f"plain-{uuid.uuid4().hex[:8]}"
    ddb = boto3.client("dynamodb", endpoint_url=moto_server.endpoint_url, region_name="us-east-1")
    ddb.create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )

    with pytest.raises(StreamNotEnabledError, match=name):
        await client.latest_stream_arn(name)


async def test_an_unknown_stream_is_a_fatal_error_naming_it(
    table: Table, client: StreamsClient
) -> None:
    arn = await client.latest_stream_arn(table.name)
    missing = arn.replace(f"table/{table.name}/", "table/gone-table/")

    with pytest.raises(StreamNotFoundError) as caught:
        await client.describe_stream(missing)
    assert missing in str(caught.value)
