"""Throttling, server errors and latency as a client meets them over HTTP."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from bridge.local import ControlApiError, LocalEndpoint
from tests.local.stream_reading import NO_RETRIES, create_table, describe_all

MakeEndpoint = Callable[..., LocalEndpoint]


def streams_client(endpoint: LocalEndpoint, config: Config = NO_RETRIES) -> Any:
    return boto3.client(
        "dynamodbstreams",
        endpoint_url=endpoint.endpoint_url,
        region_name="us-east-1",
        config=config,
    )


def outcome(call: Callable[[], object]) -> tuple[str, int]:
    try:
        call()
    except ClientError as exc:
        return exc.response["Error"]["Code"], exc.response["ResponseMetadata"]["HTTPStatusCode"]
    return "ok", 200


def test_a_throttle_burst_fails_the_next_calls_then_clears(
    make_local_endpoint: MakeEndpoint,
) -> None:
    endpoint = make_local_endpoint()
    ddb = boto3.client("dynamodb", endpoint_url=endpoint.endpoint_url, region_name="us-east-1")
    streams = streams_client(endpoint)
    _, arn = create_table(ddb)
    endpoint.throttle(3)
    results = [outcome(lambda: streams.describe_stream(StreamArn=arn)) for _ in range(5)]
    assert results == [("LimitExceededException", 400)] * 3 + [("ok", 200)] * 2

    endpoint.throttle(2, kind="error")
    errors = [outcome(lambda: streams.describe_stream(StreamArn=arn)) for _ in range(2)]
    assert all(code == "InternalServerError" and status in (500, 503) for code, status in errors)

    # botocore's own retries ride through a short burst, as they would against AWS
    patient = streams_client(endpoint, Config(retries={"mode": "standard", "max_attempts": 5}))
    endpoint.throttle(2)
    answer = patient.describe_stream(StreamArn=arn)
    assert answer["ResponseMetadata"]["RetryAttempts"] == 2
    assert endpoint.stats()["faults"]["injected"] == 7


def test_configured_rates_hit_only_reads_and_describes(make_local_endpoint: MakeEndpoint) -> None:
    endpoint = make_local_endpoint(throttle_rate=0.3, error_rate=0.2, seed=11)
    ddb = boto3.client("dynamodb", endpoint_url=endpoint.endpoint_url, region_name="us-east-1")
    streams = streams_client(endpoint)
    _, arn = create_table(ddb)
    shard_id = describe_until_ok(streams, arn)[0]["ShardId"]
    for _ in range(10):  # GetShardIterator is never faulted
        streams.get_shard_iterator(StreamArn=arn, ShardId=shard_id, ShardIteratorType="LATEST")
    results = [outcome(lambda: streams.describe_stream(StreamArn=arn)) for _ in range(60)]
    codes = {code for code, _ in results}
    assert codes == {"ok", "LimitExceededException", "InternalServerError"}
    assert 10 <= sum(code != "ok" for code, _ in results) <= 50


def test_latency_delays_every_streams_call(make_local_endpoint: MakeEndpoint) -> None:
    endpoint = make_local_endpoint(latency="300ms")
    streams = streams_client(endpoint)
    started = time.monotonic()
    streams.list_streams()
    assert time.monotonic() - started >= 0.3


def test_a_table_burst_throttles_only_the_named_tables_item_calls(
    make_local_endpoint: MakeEndpoint,
) -> None:
    endpoint = make_local_endpoint()
    ddb = boto3.client(
        "dynamodb", endpoint_url=endpoint.endpoint_url, region_name="us-east-1", config=NO_RETRIES
    )
    leases, _ = create_table(ddb, "leases")
    data, _ = create_table(ddb, "data")
    endpoint.throttle(4, tables=[leases])
    assert outcome(lambda: ddb.put_item(TableName=data, Item={"pk": {"S": "a"}})) == ("ok", 200)
    assert outcome(lambda: ddb.describe_table(TableName=leases)) == ("ok", 200)
    calls = [
        lambda: ddb.put_item(TableName=leases, Item={"pk": {"S": "a"}}),
        lambda: ddb.update_item(
            TableName=leases, Key={"pk": {"S": "a"}}, UpdateExpression="SET n = :n",
            ExpressionAttributeValues={":n": {"N": "1"}},
        ),
        lambda: ddb.scan(TableName=leases),
        lambda: ddb.batch_write_item(
            RequestItems={leases: [{"PutRequest": {"Item": {"pk": {"S": "b"}}}}]}
        ),
    ]  # fmt: skip
    throttled = ("ProvisionedThroughputExceededException", 400)
    assert [outcome(call) for call in calls] == [throttled] * 4
    # the failed calls changed nothing; the burst is spent and the table answers again
    assert ddb.scan(TableName=leases)["Items"] == []
    assert outcome(calls[0]) == ("ok", 200)
    assert ddb.get_item(TableName=leases, Key={"pk": {"S": "a"}})["Item"] == {"pk": {"S": "a"}}

    endpoint.throttle(2, kind="error", tables=[])  # every table
    errors = [outcome(lambda t=t: ddb.scan(TableName=t)) for t in (data, leases)]
    assert all(code == "InternalServerError" and status in (500, 503) for code, status in errors)
    assert endpoint.stats()["table_faults"]["injected"] == 6
    # the Streams API was never touched
    assert endpoint.stats()["faults"]["injected"] == 0


def test_the_control_api_rejects_nonsense(local_endpoint: LocalEndpoint) -> None:
    with pytest.raises(ControlApiError, match="kind"):
        local_endpoint.throttle(1, kind="sometimes")
    with pytest.raises(ControlApiError, match="either count or seconds"):
        local_endpoint.throttle(0)
    with pytest.raises(ControlApiError, match="duration"):
        local_endpoint.advance_clock("soon")


def describe_until_ok(streams: Any, arn: str) -> list[dict[str, Any]]:
    deadline = time.monotonic() + 10
    while True:
        try:
            return describe_all(streams, arn)
        except ClientError:
            if time.monotonic() > deadline:
                raise
