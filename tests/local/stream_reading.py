"""Reading a whole stream the way a careful consumer does: parents first, each shard to its end.

Only public boto3 calls: these helpers are how the tests see the endpoint from outside.
"""

from __future__ import annotations

import uuid
from typing import Any

import boto3
from botocore.config import Config

NO_RETRIES = Config(retries={"total_max_attempts": 1, "mode": "standard"})


def endpoint_clients(endpoint_url: str) -> tuple[Any, Any]:
    """DynamoDB and Streams clients of one endpoint, without retries: a test sees every answer."""
    return (
        boto3.client(
            "dynamodb", endpoint_url=endpoint_url, region_name="us-east-1", config=NO_RETRIES
        ),
        boto3.client(
            "dynamodbstreams", endpoint_url=endpoint_url, region_name="us-east-1", config=NO_RETRIES
        ),
    )


def create_table(
    ddb: Any, prefix: str = "t", view_type: str = "NEW_AND_OLD_IMAGES"
) -> tuple[str, str]:
    """A fresh table with a stream; returns (table name, stream ARN from DescribeTable)."""
    name = f"{prefix}-{uuid.uuid4().hex[:8]}"
    ddb.create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
        StreamSpecification={"StreamEnabled": True, "StreamViewType": view_type},
    )
    return name, ddb.describe_table(TableName=name)["Table"]["LatestStreamArn"]


def put(ddb: Any, table: str, key: str, n: int) -> None:
    ddb.put_item(TableName=table, Item={"pk": {"S": key}, "n": {"N": str(n)}})


def describe_all(streams: Any, arn: str, **extra: Any) -> list[dict[str, Any]]:
    """Every shard of the stream, following LastEvaluatedShardId."""
    shards: list[dict[str, Any]] = []
    kwargs = dict(extra)
    while True:
        description = streams.describe_stream(StreamArn=arn, **kwargs)["StreamDescription"]
        shards += description["Shards"]
        if "LastEvaluatedShardId" not in description:
            return shards
        kwargs["ExclusiveStartShardId"] = description["LastEvaluatedShardId"]


def read_shard(streams: Any, arn: str, shard: dict[str, Any]) -> list[dict[str, Any]]:
    """All retained records of a shard: to its end if closed, to the head if open."""
    iterator = streams.get_shard_iterator(
        StreamArn=arn, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
    )["ShardIterator"]
    closed = "EndingSequenceNumber" in shard["SequenceNumberRange"]
    records: list[dict[str, Any]] = []
    while iterator:
        answer = streams.get_records(ShardIterator=iterator, Limit=1000)
        records += answer["Records"]
        iterator = answer.get("NextShardIterator")
        if not answer["Records"] and not closed:
            break
    return records


def parent_first(shards: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Shards ordered so that each comes after its parent (when the parent is still listed)."""
    by_id = {shard["ShardId"]: shard for shard in shards}
    ordered: list[dict[str, Any]] = []
    placed: set[str] = set()

    def place(shard: dict[str, Any]) -> None:
        if shard["ShardId"] in placed:
            return
        parent = by_id.get(shard.get("ParentShardId", ""))
        if parent is not None:
            place(parent)
        placed.add(shard["ShardId"])
        ordered.append(shard)

    for shard in shards:
        place(shard)
    return ordered


def read_stream(streams: Any, arn: str) -> list[tuple[str, dict[str, Any]]]:
    """(shard id, record) for every record, parents read before their children."""
    return [
        (shard["ShardId"], record)
        for shard in parent_first(describe_all(streams, arn))
        for record in read_shard(streams, arn, shard)
    ]


def values_by_key(records: list[tuple[str, dict[str, Any]]]) -> dict[str, list[int]]:
    """The ``n`` values each key's records carry, in the order they were read."""
    seen: dict[str, list[int]] = {}
    for _, record in records:
        image = record["dynamodb"]["NewImage"]
        seen.setdefault(image["pk"]["S"], []).append(int(image["n"]["N"]))
    return seen
