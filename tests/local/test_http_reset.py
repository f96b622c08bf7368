"""``POST /moto-api/reset`` over HTTP: the endpoint as it started, for moto-style suites.

moto's server mode posts it before every test. One endpoint serves this module, reset before
each test as moto would (never the session's shared endpoint: a reset wipes every table), and
each test then checks what the reset must have put back.
"""

from __future__ import annotations

import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from botocore.exceptions import ClientError

from bridge.local import LocalEndpoint
from tests.local.stream_reading import create_table, describe_all, endpoint_clients, put, read_shard

MakeEndpoint = Callable[..., LocalEndpoint]


@pytest.fixture(scope="module")
def endpoint(server_logs: Path) -> Iterator[LocalEndpoint]:
    with LocalEndpoint(log_dir=server_logs, shards=1) as local:
        yield local


@pytest.fixture
def clients(endpoint: LocalEndpoint) -> tuple[Any, Any]:
    endpoint.reset()
    return _clients(endpoint)


def _clients(endpoint: LocalEndpoint) -> tuple[Any, Any]:
    return endpoint_clients(endpoint.endpoint_url)


def error_code(call: Callable[[], object]) -> str:
    with pytest.raises(ClientError) as caught:
        call()
    code: str = caught.value.response["Error"]["Code"]
    return code


def test_a_reset_leaves_no_stream_listed_not_even_a_disabled_one(
    endpoint: LocalEndpoint, clients: tuple[Any, Any]
) -> None:
    ddb, streams = clients
    kept, kept_arn = create_table(ddb, "kept")
    deleted, deleted_arn = create_table(ddb, "deleted")
    ddb.delete_table(TableName=deleted)
    # Before the reset, as on AWS: a deleted table's stream stays listed, DISABLED.
    listed = {s["StreamArn"] for s in streams.list_streams()["Streams"]}
    assert listed == {kept_arn, deleted_arn}
    status = streams.describe_stream(StreamArn=deleted_arn)["StreamDescription"]["StreamStatus"]
    assert status == "DISABLED"

    assert endpoint.reset() == {"status": "ok"}

    assert streams.list_streams()["Streams"] == []
    assert ddb.list_tables()["TableNames"] == []
    for arn in (kept_arn, deleted_arn):
        with pytest.raises(streams.exceptions.ResourceNotFoundException):
            streams.describe_stream(StreamArn=arn)
    assert endpoint.stats()["streams"] == 0
    assert streams.list_streams(TableName=kept)["Streams"] == []


def test_an_iterator_from_before_a_reset_never_reads_the_new_stream(
    endpoint: LocalEndpoint, clients: tuple[Any, Any]
) -> None:
    ddb, streams = clients
    table, arn = create_table(ddb, "again")
    put(ddb, table, "before", 1)
    (shard,) = describe_all(streams, arn)
    old_iterator = streams.get_shard_iterator(
        StreamArn=arn, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
    )["ShardIterator"]
    (old_record,) = read_shard(streams, arn, shard)
    old_sequence = old_record["dynamodb"]["SequenceNumber"]

    endpoint.reset()
    ddb.create_table(  # the same name, and a stream again
        TableName=table,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
    )
    new_arn = ddb.describe_table(TableName=table)["Table"]["LatestStreamArn"]
    put(ddb, table, "after", 2)

    with pytest.raises(ClientError) as caught:
        streams.get_records(ShardIterator=old_iterator)
    assert caught.value.response["Error"]["Code"] == "ValidationException"
    assert "reset" in caught.value.response["Error"]["Message"]
    (new_shard,) = describe_all(streams, new_arn)
    start = new_shard["SequenceNumberRange"]["StartingSequenceNumber"]
    assert int(start) > int(old_sequence)  # numbers keep growing across the reset

    def at_the_old_number() -> object:
        return streams.get_shard_iterator(
            StreamArn=new_arn,
            ShardId=new_shard["ShardId"],
            ShardIteratorType="AT_SEQUENCE_NUMBER",
            SequenceNumber=old_sequence,
        )

    assert error_code(at_the_old_number) == "ValidationException"
    (new_record,) = read_shard(streams, new_arn, new_shard)
    assert new_record["dynamodb"]["Keys"] == {"pk": {"S": "after"}}


def test_a_reset_puts_the_clock_the_counters_and_the_faults_back(
    endpoint: LocalEndpoint, clients: tuple[Any, Any]
) -> None:
    ddb, streams = clients
    table, arn = create_table(ddb, "dirty")
    streams.describe_stream(StreamArn=arn)
    endpoint.advance_clock("2h")
    endpoint.throttle(50)
    endpoint.throttle(50, tables=[], kind="error")
    dirty = endpoint.stats()
    assert dirty["clock"]["offset_seconds"] == 7200 and dirty["DescribeStream"] == 1
    assert dirty["faults"]["burst"] is not None and dirty["table_faults"]["burst"] is not None

    endpoint.reset()

    clean = endpoint.stats()
    assert clean["clock"]["offset_seconds"] == 0
    assert clean["faults"]["burst"] is None and clean["faults"]["injected"] == 0
    assert clean["table_faults"]["burst"] is None and clean["table_faults"]["injected"] == 0
    assert clean["streams"] == 0 and "DescribeStream" not in clean
    table, arn = create_table(ddb, "clean")
    put(ddb, table, "k", 1)  # neither DynamoDB nor Streams fails any more
    assert [s["ShardId"] for s in describe_all(streams, arn)]


def test_moto_tracks_no_item_after_a_reset(
    endpoint: LocalEndpoint, clients: tuple[Any, Any]
) -> None:
    """moto's reset gives each model a fresh list of instances; items must stay untracked,
    or a long run that resets between tests grows by every item it ever wrote."""
    ddb, _ = clients
    table, _ = create_table(ddb, "tracked")
    endpoint.reset()
    table, _ = create_table(ddb, "tracked")
    for n in range(20):
        put(ddb, table, f"k{n}", n)
    with urllib.request.urlopen(f"{endpoint.endpoint_url}/moto-api/data.json") as response:
        dashboard = orjson.loads(response.read())
    assert dashboard["dynamodb"].get("Item", []) == []
    assert [t["name"] for t in dashboard["dynamodb"]["Table"]] == [table]


def test_a_seeded_endpoint_meets_the_same_faults_after_a_reset(
    make_local_endpoint: MakeEndpoint,
) -> None:
    seeded = make_local_endpoint(shards=1, throttle_rate=0.3, error_rate=0.2, seed=11)
    ddb, streams = _clients(seeded)

    def outcomes() -> list[str]:
        _, arn = create_table(ddb, "seeded")
        found = []
        for _ in range(30):
            try:
                streams.describe_stream(StreamArn=arn)
                found.append("ok")
            except ClientError as exc:
                found.append(exc.response["Error"]["Code"])
        return found

    first = outcomes()
    assert {"ok", "LimitExceededException", "InternalServerError"} <= set(first)
    seeded.reset()
    assert outcomes() == first


def test_a_reset_forgets_the_capacity_used(
    endpoint: LocalEndpoint, clients: tuple[Any, Any]
) -> None:
    ddb, _ = clients
    table, _ = create_table(ddb, "metered")
    put(ddb, table, "a", 1)
    assert endpoint.capacity()[table]["PutItem"]["write_units"] == 1.0

    endpoint.reset()

    assert endpoint.capacity() == {}
