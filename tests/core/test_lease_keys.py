"""Lease keys as KCL writes them: single-stream shard ids and the DynamoDB Streams adapter's
multi-stream keys, whose stream labels hold colons."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bridge.core.lease_keys import KeyParts, StreamId, split_key, stream_of_identifier

ARN = "arn:aws:dynamodb:eu-west-1:123456789012:table/orders-2024/stream/2024-05-11T21:21:33.291"
KEY = (
    "123456789012:eu-west-1$123456789012$orders-2024$2024-05-11T21:21:33.291:1:"
    "shardId-00000001715462493291-6a2c7f0e"
)

tables = st.from_regex(r"[A-Za-z0-9_.-]{3,40}", fullmatch=True)
labels = st.datetimes().map(lambda at: at.isoformat(timespec="milliseconds"))
shards = st.from_regex(r"shardId-[0-9]{20}-[0-9a-f]{8}", fullmatch=True)


def test_a_kcl_multi_stream_key_names_its_stream_and_shard() -> None:
    stream = StreamId.of_arn(ARN)
    assert stream.key("shardId-00000001715462493291-6a2c7f0e") == KEY
    parts = split_key(KEY)
    assert parts.name == "shardId-00000001715462493291-6a2c7f0e"
    assert parts.stream is not None and stream_of_identifier(parts.stream) == stream
    assert stream_of_identifier(parts.stream).arn == ARN  # type: ignore[union-attr]


def test_a_single_stream_key_is_a_shard_id() -> None:
    assert split_key("shardId-00000001715462493291-6a2c7f0e") == KeyParts(
        None, "shardId-00000001715462493291-6a2c7f0e"
    )
    assert split_key("bridge-snapshot-1-0000-of-0004").stream is None


@given(tables, labels, shards, st.sampled_from(["us-east-1", "eu-west-1"]))
def test_keys_round_trip(table: str, label: str, shard: str, region: str) -> None:
    stream = StreamId("123456789012", region, table, label)
    for name in (shard, "bridge-snapshot-1700000000000-0001-of-0004"):
        parts = split_key(stream.key(name))
        assert parts.name == name and parts.stream == stream.identifier
        assert stream_of_identifier(parts.stream) == stream


@pytest.mark.parametrize("arn", ["arn:aws:dynamodb:us-east-1:1:table/t", "not an arn"])
def test_what_is_not_a_stream_arn_is_refused(arn: str) -> None:
    with pytest.raises(ValueError, match="not a DynamoDB stream ARN"):
        StreamId.of_arn(arn)
