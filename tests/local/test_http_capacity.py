"""Capacity units at ``bridge local``, as DynamoDB bills them: by bytes read and written.

Each test makes its own table on the session's endpoint and reads that table's line of
``GET /_bridge/capacity``, and the ``ConsumedCapacity`` DynamoDB's answers carry when asked.
"""

from __future__ import annotations

import uuid
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from bridge.local import LocalEndpoint
from tests.local.stream_reading import NO_RETRIES


@pytest.fixture
def ddb(local_endpoint: LocalEndpoint) -> Any:
    return boto3.client(
        "dynamodb",
        endpoint_url=local_endpoint.endpoint_url,
        region_name="us-east-1",
        config=NO_RETRIES,
    )


def make_table(ddb: Any, **extra: Any) -> str:
    name = f"units-{uuid.uuid4().hex[:8]}"
    attributes = [{"AttributeName": "pk", "AttributeType": "S"}]
    attributes += extra.pop("attributes", [])
    ddb.create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=attributes,
        BillingMode="PAY_PER_REQUEST",
        **extra,
    )
    return name


def row(key: str, size: int) -> dict[str, Any]:
    """An item of exactly ``size`` bytes: "pk" + key, "blob" + padding."""
    return {"pk": {"S": key}, "blob": {"S": "x" * (size - 2 - len(key) - 4)}}


def used(endpoint: LocalEndpoint, table: str, operation: str) -> dict[str, float]:
    return endpoint.capacity()[table][operation]


def test_a_scan_costs_the_bytes_it_read_rounded_up_once(
    local_endpoint: LocalEndpoint, ddb: Any
) -> None:
    table = make_table(ddb)
    for i in range(10):
        ddb.put_item(TableName=table, Item=row(f"k{i}", 1000))  # 10,000 bytes: 3 x 4 KB
    strong = ddb.scan(TableName=table, ConsistentRead=True, ReturnConsumedCapacity="TOTAL")
    weak = ddb.scan(TableName=table, ReturnConsumedCapacity="TOTAL")

    assert strong["ConsumedCapacity"] == {
        "TableName": table,
        "CapacityUnits": 3.0,
        "ReadCapacityUnits": 3.0,
    }
    assert weak["ConsumedCapacity"]["CapacityUnits"] == 1.5
    assert used(local_endpoint, table, "Scan") == {
        "calls": 2,
        "read_units": 4.5,
        "write_units": 0.0,
    }


def test_a_filtered_scan_costs_what_it_read_not_what_it_returned(
    local_endpoint: LocalEndpoint, ddb: Any
) -> None:
    table = make_table(ddb)
    for i in range(10):
        ddb.put_item(TableName=table, Item=row(f"k{i}", 1000))
    answer = ddb.scan(
        TableName=table,
        ConsistentRead=True,
        FilterExpression="pk = :k",
        ExpressionAttributeValues={":k": {"S": "k1"}},
        ProjectionExpression="pk",
        ReturnConsumedCapacity="TOTAL",
    )
    assert answer["Count"] == 1
    assert answer["Items"] == [{"pk": {"S": "k1"}}]
    assert answer["ConsumedCapacity"]["CapacityUnits"] == 3.0


def test_writes_cost_the_larger_item_per_kilobyte_failed_conditions_too(
    local_endpoint: LocalEndpoint, ddb: Any
) -> None:
    table = make_table(ddb)
    put = ddb.put_item(TableName=table, Item=row("a", 1500), ReturnConsumedCapacity="TOTAL")
    grown = ddb.update_item(
        TableName=table,
        Key={"pk": {"S": "a"}},
        UpdateExpression="SET more = :m",
        ExpressionAttributeValues={":m": {"S": "y" * 1000}},  # 1,500 + 4 + 1,000 bytes
        ReturnConsumedCapacity="TOTAL",
    )
    with pytest.raises(ClientError, match="ConditionalCheckFailed"):
        ddb.put_item(
            TableName=table,
            Item=row("a", 10),
            ConditionExpression="attribute_not_exists(pk)",
        )
    deleted = ddb.delete_item(
        TableName=table, Key={"pk": {"S": "a"}}, ReturnConsumedCapacity="TOTAL"
    )

    assert put["ConsumedCapacity"]["WriteCapacityUnits"] == 2.0
    assert grown["ConsumedCapacity"]["WriteCapacityUnits"] == 3.0
    assert deleted["ConsumedCapacity"]["WriteCapacityUnits"] == 3.0
    assert used(local_endpoint, table, "PutItem") == {
        "calls": 2,
        "read_units": 0.0,
        "write_units": 2.0 + 3.0,  # the refused put is billed by the item it found
    }


def test_reads_of_single_items_cost_at_least_one_unit_each(
    local_endpoint: LocalEndpoint, ddb: Any
) -> None:
    table = make_table(ddb)
    ddb.put_item(TableName=table, Item=row("big", 9000))  # 3 x 4 KB
    ddb.put_item(TableName=table, Item=row("small", 100))
    missing = ddb.get_item(
        TableName=table, Key={"pk": {"S": "none"}}, ReturnConsumedCapacity="TOTAL"
    )
    big = ddb.get_item(
        TableName=table,
        Key={"pk": {"S": "big"}},
        ConsistentRead=True,
        ProjectionExpression="pk",
        ReturnConsumedCapacity="TOTAL",
    )
    batch = ddb.batch_get_item(
        RequestItems={
            table: {"Keys": [{"pk": {"S": "big"}}, {"pk": {"S": "small"}}], "ConsistentRead": True}
        },
        ReturnConsumedCapacity="TOTAL",
    )

    assert missing["ConsumedCapacity"]["CapacityUnits"] == 0.5
    assert big["ConsumedCapacity"]["CapacityUnits"] == 3.0  # projections read the whole item
    assert batch["ConsumedCapacity"] == [
        {"TableName": table, "CapacityUnits": 4.0, "ReadCapacityUnits": 4.0}
    ]
    assert used(local_endpoint, table, "BatchGetItem")["read_units"] == 4.0


def test_a_global_index_adds_a_write_only_when_its_entry_changes(
    local_endpoint: LocalEndpoint, ddb: Any
) -> None:
    table = make_table(
        ddb,
        attributes=[{"AttributeName": "owner", "AttributeType": "S"}],
        GlobalSecondaryIndexes=[
            {
                "IndexName": "by-owner",
                "KeySchema": [{"AttributeName": "owner", "KeyType": "HASH"}],
                "Projection": {"ProjectionType": "KEYS_ONLY"},
            }
        ],
    )
    ddb.put_item(TableName=table, Item={"pk": {"S": "a"}, "owner": {"S": "w1"}})

    def update(attribute: str, value: str) -> dict[str, Any]:
        answer = ddb.update_item(
            TableName=table,
            Key={"pk": {"S": "a"}},
            UpdateExpression="SET #a = :v",
            ExpressionAttributeNames={"#a": attribute},
            ExpressionAttributeValues={":v": {"S": value}},
            ReturnConsumedCapacity="INDEXES",
        )
        consumed: dict[str, Any] = answer["ConsumedCapacity"]
        return consumed

    unindexed = update("checkpoint", "42")
    moved = update("owner", "w2")

    assert unindexed["CapacityUnits"] == 1.0
    assert "GlobalSecondaryIndexes" not in unindexed
    # The owner changed: the old index entry deleted, a new one written.
    assert moved["GlobalSecondaryIndexes"] == {
        "by-owner": {"CapacityUnits": 2.0, "WriteCapacityUnits": 2.0}
    }
    assert moved["CapacityUnits"] == 3.0
