"""``POST /_bridge/append``: synthetic changes straight onto a stream, for throughput runs."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from bridge.local import LocalEndpoint
from bridge.local.endpoint import ControlApiError
from tests.local.stream_reading import create_table, describe_all, endpoint_clients, read_shard


@pytest.fixture
def clients(local_endpoint: LocalEndpoint) -> tuple[Any, Any]:
    return endpoint_clients(local_endpoint.endpoint_url)


def test_appended_changes_are_inserts_of_distinct_items_spread_over_the_shards(
    local_endpoint: LocalEndpoint, clients: tuple[Any, Any]
) -> None:
    ddb, streams = clients
    table, arn = create_table(ddb, "append")

    answer = local_endpoint.append(table, 2_000, size=300, start=10)

    assert answer == {"appended": 2_000, "stream": arn}
    shards = describe_all(streams, arn)
    per_shard = [read_shard(streams, arn, shard) for shard in shards]
    records = [record for records in per_shard for record in records]
    assert len(records) == 2_000
    assert sum(1 for records in per_shard if records) == len(shards) > 1
    assert {record["eventName"] for record in records} == {"INSERT"}
    keys = {record["dynamodb"]["Keys"]["pk"]["S"] for record in records}
    assert keys == {f"item-{n}" for n in range(10, 2_010)}
    image = records[0]["dynamodb"]["NewImage"]
    assert image["payload"] == {"S": "x" * 300}
    assert ddb.scan(TableName=table)["Count"] == 0  # the stream only, never the table


def test_number_keys_get_numbers(local_endpoint: LocalEndpoint, clients: tuple[Any, Any]) -> None:
    ddb, streams = clients
    table = f"append-n-{uuid.uuid4().hex[:6]}"
    ddb.create_table(
        TableName=table,
        KeySchema=[
            {"AttributeName": "id", "KeyType": "HASH"},
            {"AttributeName": "at", "KeyType": "RANGE"},
        ],
        AttributeDefinitions=[
            {"AttributeName": "id", "AttributeType": "N"},
            {"AttributeName": "at", "AttributeType": "S"},
        ],
        BillingMode="PAY_PER_REQUEST",
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "KEYS_ONLY"},
    )
    arn = local_endpoint.append(table, 5)["stream"]
    records = [r for shard in describe_all(streams, arn) for r in read_shard(streams, arn, shard)]
    assert sorted(r["dynamodb"]["Keys"]["id"]["N"] for r in records) == ["0", "1", "2", "3", "4"]
    assert all("NewImage" not in r["dynamodb"] for r in records)  # the view type still applies


def test_a_table_without_a_stream_or_a_bad_count_is_refused_by_name(
    local_endpoint: LocalEndpoint, clients: tuple[Any, Any]
) -> None:
    with pytest.raises(ControlApiError, match="table nowhere has no stream enabled"):
        local_endpoint.append("nowhere", 10)
    ddb, _ = clients
    table, _ = create_table(ddb, "append-bad")
    with pytest.raises(ControlApiError, match="records must be an integer from 0 to 1000000"):
        local_endpoint.append(table, -1)
