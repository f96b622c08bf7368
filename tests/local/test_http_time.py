"""Iterator expiry, retention and age-based rotation over HTTP, on the endpoint's own clock.

Each test owns an endpoint and moves its clock through the control API: a day passes in one
request, so nothing here sleeps.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from bridge.core.positions import records_lost
from bridge.local import LocalEndpoint
from tests.local.stream_reading import NO_RETRIES, create_table, describe_all, put, read_shard

MakeEndpoint = Callable[..., LocalEndpoint]


def clients(endpoint: LocalEndpoint) -> tuple[Any, Any]:
    url = endpoint.endpoint_url
    return (
        boto3.client("dynamodb", endpoint_url=url, region_name="us-east-1"),
        boto3.client(
            "dynamodbstreams", endpoint_url=url, region_name="us-east-1", config=NO_RETRIES
        ),
    )


def error_of(call: Callable[[], object]) -> tuple[str, int]:
    """The error code and HTTP status of a failing call, after checking the error's shape:
    botocore found the code in the body's ``__type``, a message, and the same code in the
    ``x-amzn-ErrorType`` header, as AWS sends them."""
    with pytest.raises(ClientError) as caught:
        call()
    response = caught.value.response
    code = response["Error"]["Code"]
    assert response["Error"]["Message"]
    assert response["ResponseMetadata"]["HTTPHeaders"]["x-amzn-errortype"] == code
    return code, response["ResponseMetadata"]["HTTPStatusCode"]


def test_an_iterator_expires_after_its_ttl(make_local_endpoint: MakeEndpoint) -> None:
    endpoint = make_local_endpoint(iterator_ttl="15m")
    ddb, streams = clients(endpoint)
    table, arn = create_table(ddb)
    put(ddb, table, "a", 1)
    shard_id = describe_all(streams, arn)[0]["ShardId"]
    iterator = streams.get_shard_iterator(
        StreamArn=arn, ShardId=shard_id, ShardIteratorType="TRIM_HORIZON"
    )["ShardIterator"]
    endpoint.advance_clock("14m")
    following = streams.get_records(ShardIterator=iterator)["NextShardIterator"]
    endpoint.advance_clock("2m")  # 16 minutes after the first iterator, 2 after the second
    assert error_of(lambda: streams.get_records(ShardIterator=iterator)) == (
        "ExpiredIteratorException",
        400,
    )
    streams.get_records(ShardIterator=following)


def test_retention_trims_records_and_moves_trim_horizon(make_local_endpoint: MakeEndpoint) -> None:
    endpoint = make_local_endpoint(shards=1, max_open_shards=1, retention="1h", iterator_ttl="3h")
    ddb, streams = clients(endpoint)
    table, arn = create_table(ddb)
    for n in range(3):
        put(ddb, table, f"old-{n}", n)
    shard = describe_all(streams, arn)[0]
    old = read_shard(streams, arn, shard)
    horizon = streams.get_shard_iterator(
        StreamArn=arn, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
    )["ShardIterator"]
    endpoint.advance_clock("40m")
    for n in range(3, 5):
        put(ddb, table, f"new-{n}", n)
    trimmed = endpoint.trim(advance="30m")  # old records are 70 minutes old, new ones 30
    assert trimmed["records"] == 3

    kept = read_shard(streams, arn, describe_all(streams, arn)[0])
    assert [r["dynamodb"]["Keys"]["pk"]["S"] for r in kept] == ["new-3", "new-4"]
    assert error_of(lambda: streams.get_records(ShardIterator=horizon)) == (
        "TrimmedDataAccessException",
        400,
    )
    for kind in ("AT_SEQUENCE_NUMBER", "AFTER_SEQUENCE_NUMBER"):
        assert error_of(
            lambda kind=kind: streams.get_shard_iterator(
                StreamArn=arn,
                ShardId=shard["ShardId"],
                ShardIteratorType=kind,
                SequenceNumber=old[0]["dynamodb"]["SequenceNumber"],
            )
        ) == ("TrimmedDataAccessException", 400)

    stats = endpoint.stats()
    assert stats["records_retained"] == 2 and stats["records_trimmed"] == 3


def test_a_consumer_counts_records_lost_to_trimming_by_the_sequence_gap(
    make_local_endpoint: MakeEndpoint,
) -> None:
    endpoint = make_local_endpoint(shards=1, max_open_shards=1, retention="1h", iterator_ttl="3h")
    ddb, streams = clients(endpoint)
    table, arn = create_table(ddb)
    for n in range(6):
        put(ddb, table, f"early-{n}", n)
    shard_id = describe_all(streams, arn)[0]["ShardId"]
    iterator = streams.get_shard_iterator(
        StreamArn=arn, ShardId=shard_id, ShardIteratorType="TRIM_HORIZON"
    )["ShardIterator"]
    page = streams.get_records(ShardIterator=iterator, Limit=2)
    last_read = page["Records"][-1]["dynamodb"]["SequenceNumber"]
    endpoint.advance_clock("40m")
    for n in range(6, 9):
        put(ddb, table, f"late-{n}", n)
    assert endpoint.trim(advance="30m")["records"] == 6  # 4 of them were never read

    assert error_of(lambda: streams.get_records(ShardIterator=page["NextShardIterator"])) == (
        "TrimmedDataAccessException",
        400,
    )
    horizon = streams.get_shard_iterator(
        StreamArn=arn, ShardId=shard_id, ShardIteratorType="TRIM_HORIZON"
    )["ShardIterator"]
    available = streams.get_records(ShardIterator=horizon)["Records"]
    assert [r["dynamodb"]["Keys"]["pk"]["S"] for r in available] == ["late-6", "late-7", "late-8"]
    assert records_lost(last_read, available[0]["dynamodb"]["SequenceNumber"]) == 4


def test_closed_shards_leave_describe_stream_after_retention(
    make_local_endpoint: MakeEndpoint,
) -> None:
    endpoint = make_local_endpoint(shards=2, retention="1h")
    ddb, streams = clients(endpoint)
    table, arn = create_table(ddb)
    for n in range(6):
        put(ddb, table, f"k{n}", n)
    closed = set(endpoint.rotate(table)["closed"])
    assert closed <= {s["ShardId"] for s in describe_all(streams, arn)}
    endpoint.advance_clock("61m")
    remaining = describe_all(streams, arn)
    assert not closed & {s["ShardId"] for s in remaining}
    assert {s["ParentShardId"] for s in remaining} == closed
    assert endpoint.stats()["shards_removed"] == 2


def test_shards_rotate_when_they_reach_their_age(make_local_endpoint: MakeEndpoint) -> None:
    endpoint = make_local_endpoint(shards=2, rotate_seconds="10m")
    ddb, streams = clients(endpoint)
    _, arn = create_table(ddb)
    assert len(describe_all(streams, arn)) == 2
    endpoint.advance_clock("10m")
    shards = describe_all(streams, arn)
    closed = [s for s in shards if "EndingSequenceNumber" in s["SequenceNumberRange"]]
    assert len(closed) == 2
    assert {s.get("ParentShardId") for s in shards} >= {s["ShardId"] for s in closed}
