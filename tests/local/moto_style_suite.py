"""A small DynamoDB Streams suite written the way moto's own tests are, for moto's server mode.

Not collected by the suite (the name does not start with ``test_``):
``test_moto_style_suite.py`` runs it in a child pytest with ``TEST_SERVER_MODE=true`` against
one ``bridge local --shards 1``, twice. Every test starts with ``mock_aws().start()``, which in
server mode is a ``POST /moto-api/reset``, and the tests assume nothing else: each one would
fail if an earlier one (or the first pass) had left a stream, a moved clock or a fault behind,
and the first tests below leave all three on purpose. Expectations are AWS's, not moto's.
"""

from __future__ import annotations

import os
import urllib.request
from typing import Any

import boto3
import orjson
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from moto import mock_aws, settings

pytestmark = pytest.mark.skipif(
    not settings.TEST_SERVER_MODE, reason="runs against a server: TEST_SERVER_MODE=true"
)

TABLE = "moto-style"
ONE_TRY = Config(retries={"total_max_attempts": 1, "mode": "standard"})


def client(service: str) -> Any:
    # In server mode, moto points every boto3 client at TEST_SERVER_MODE_ENDPOINT.
    return boto3.client(service, region_name="us-east-1", config=ONE_TRY)


def control(method: str, name: str, body: dict[str, object] | None = None) -> Any:
    request = urllib.request.Request(
        f"{os.environ['TEST_SERVER_MODE_ENDPOINT']}/_bridge/{name}",
        data=None if body is None else orjson.dumps(body),
        method=method,
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as answer:
        return orjson.loads(answer.read())


def create_table(view_type: str | None = "NEW_AND_OLD_IMAGES", range_key: bool = False) -> Any:
    keys = [{"AttributeName": "id", "KeyType": "HASH"}]
    attributes = [{"AttributeName": "id", "AttributeType": "S"}]
    if range_key:
        keys.append({"AttributeName": "color", "KeyType": "RANGE"})
        attributes.append({"AttributeName": "color", "AttributeType": "S"})
    extra: dict[str, Any] = {}
    if view_type is not None:
        extra["StreamSpecification"] = {"StreamEnabled": True, "StreamViewType": view_type}
    return client("dynamodb").create_table(
        TableName=TABLE,
        KeySchema=keys,
        AttributeDefinitions=attributes,
        ProvisionedThroughput={"ReadCapacityUnits": 1, "WriteCapacityUnits": 1},
        **extra,
    )["TableDescription"]


def only_shard(arn: str) -> str:
    shards = client("dynamodbstreams").describe_stream(StreamArn=arn)["StreamDescription"]
    (shard,) = shards["Shards"]
    shard_id: str = shard["ShardId"]
    return shard_id


def records_from(arn: str, kind: str = "TRIM_HORIZON", **position: str) -> list[Any]:
    streams = client("dynamodbstreams")
    iterator = streams.get_shard_iterator(
        StreamArn=arn, ShardId=only_shard(arn), ShardIteratorType=kind, **position
    )["ShardIterator"]
    records: list[Any] = streams.get_records(ShardIterator=iterator)["Records"]
    return records


class TestEdges:
    """Tables made by the tests themselves; the first ones leave things behind on purpose."""

    def setup_method(self) -> None:
        self.mock = mock_aws()
        self.mock.start()

    def teardown_method(self) -> None:
        self.mock.stop()

    def test_a_deleted_tables_stream_stays_listed_until_the_reset(self) -> None:
        arn = create_table()["LatestStreamArn"]
        client("dynamodb").delete_table(TableName=TABLE)
        (listed,) = client("dynamodbstreams").list_streams()["Streams"]
        assert listed["StreamArn"] == arn
        description = client("dynamodbstreams").describe_stream(StreamArn=arn)
        assert description["StreamDescription"]["StreamStatus"] == "DISABLED"

    def test_the_clock_and_faults_start_as_the_endpoint_did(self) -> None:
        stats = control("GET", "stats")
        assert stats["clock"]["offset_seconds"] == 0 and stats["streams"] == 0
        assert stats["faults"]["burst"] is None and stats["faults"]["injected"] == 0
        control("POST", "clock", {"advance": "2h"})
        control("POST", "throttle", {"count": 100})

    def test_a_view_type_aws_does_not_have_is_refused(self) -> None:
        ddb = client("dynamodb")
        with pytest.raises(ClientError) as caught:
            create_table("NEW_IMAGES")
        assert caught.value.response["Error"]["Code"] == "ValidationException"
        assert ddb.list_tables()["TableNames"] == []

    def test_a_stream_switched_off_and_on_again_is_a_new_stream(self) -> None:
        ddb = client("dynamodb")
        create_table(view_type=None)
        first = ddb.update_table(
            TableName=TABLE,
            StreamSpecification={"StreamEnabled": True, "StreamViewType": "KEYS_ONLY"},
        )["TableDescription"]["LatestStreamArn"]
        with pytest.raises(ClientError) as caught:
            ddb.update_table(
                TableName=TABLE,
                StreamSpecification={"StreamEnabled": True, "StreamViewType": "OLD_IMAGE"},
            )
        assert caught.value.response["Error"]["Code"] == "ValidationException"
        ddb.update_table(TableName=TABLE, StreamSpecification={"StreamEnabled": False})
        second = ddb.update_table(
            TableName=TABLE,
            StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_IMAGE"},
        )["TableDescription"]["LatestStreamArn"]
        assert second != first
        listed = client("dynamodbstreams").list_streams(TableName=TABLE)["Streams"]
        assert {s["StreamArn"] for s in listed} == {first, second}

    def test_a_range_key_table_streams_both_keys_from_latest(self) -> None:
        arn = create_table("NEW_IMAGE", range_key=True)["LatestStreamArn"]
        streams = client("dynamodbstreams")
        iterator = streams.get_shard_iterator(
            StreamArn=arn, ShardId=only_shard(arn), ShardIteratorType="LATEST"
        )["ShardIterator"]
        ddb = client("dynamodb")
        ddb.put_item(TableName=TABLE, Item={"id": {"S": "row1"}, "color": {"S": "blue"}})
        ddb.put_item(TableName=TABLE, Item={"id": {"S": "row2"}, "color": {"S": "green"}})
        records = streams.get_records(ShardIterator=iterator)["Records"]
        assert [r["dynamodb"]["Keys"]["color"]["S"] for r in records] == ["blue", "green"]
        assert all("NewImage" in r["dynamodb"] for r in records)


class TestCore:
    """One table with a stream per test, made in setup and deleted in teardown, as moto's."""

    def setup_method(self) -> None:
        self.mock = mock_aws()
        self.mock.start()
        self.stream_arn = create_table()["LatestStreamArn"]

    def teardown_method(self) -> None:
        client("dynamodb").delete_table(TableName=TABLE)
        self.mock.stop()

    def test_the_table_names_its_stream(self) -> None:
        table = client("dynamodb").describe_table(TableName=TABLE)["Table"]
        assert table["LatestStreamArn"] == self.stream_arn
        assert table["StreamSpecification"]["StreamViewType"] == "NEW_AND_OLD_IMAGES"

    def test_list_streams_lists_this_stream_alone(self) -> None:
        streams = client("dynamodbstreams")
        assert [s["StreamArn"] for s in streams.list_streams()["Streams"]] == [self.stream_arn]
        assert streams.list_streams(TableName="no-such-table")["Streams"] == []

    def test_describe_stream_shows_one_open_shard(self) -> None:
        description = client("dynamodbstreams").describe_stream(StreamArn=self.stream_arn)
        stream = description["StreamDescription"]
        assert (stream["StreamStatus"], stream["TableName"]) == ("ENABLED", TABLE)
        (shard,) = stream["Shards"]
        assert "EndingSequenceNumber" not in shard["SequenceNumberRange"]

    def test_an_empty_stream_reads_no_records(self) -> None:
        assert records_from(self.stream_arn) == []
        assert records_from(self.stream_arn, "LATEST") == []

    def test_records_come_in_write_order_and_from_any_position(self) -> None:
        ddb = client("dynamodb")
        ddb.put_item(TableName=TABLE, Item={"id": {"S": "entry1"}, "col": {"S": "foo"}})
        ddb.put_item(TableName=TABLE, Item={"id": {"S": "entry1"}, "col": {"S": "bar"}})
        ddb.delete_item(TableName=TABLE, Key={"id": {"S": "entry1"}})
        records = records_from(self.stream_arn)
        assert [r["eventName"] for r in records] == ["INSERT", "MODIFY", "REMOVE"]
        insert, modify, remove = (r["dynamodb"] for r in records)
        assert "OldImage" not in insert and "NewImage" not in remove
        assert modify["OldImage"]["col"] == {"S": "foo"} and modify["NewImage"]["col"]["S"] == "bar"
        assert all(r["ApproximateCreationDateTime"].microsecond == 0 for r in (insert, remove))
        at = records_from(
            self.stream_arn, "AT_SEQUENCE_NUMBER", SequenceNumber=modify["SequenceNumber"]
        )
        after = records_from(
            self.stream_arn, "AFTER_SEQUENCE_NUMBER", SequenceNumber=modify["SequenceNumber"]
        )
        assert [r["eventName"] for r in at] == ["MODIFY", "REMOVE"]
        assert [r["eventName"] for r in after] == ["REMOVE"]
