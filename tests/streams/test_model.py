"""Parsing the Streams API's answers into values (pure)."""

from __future__ import annotations

import pickle

import orjson
import pytest

from bridge.streams.model import (
    ShardIterator,
    parse_get_records,
    parse_stream_description,
)


def page(shards: list[dict[str, object]], **fields: object) -> dict[str, object]:
    return {
        "StreamArn": "arn:s",
        "StreamStatus": "ENABLED",
        "StreamViewType": "KEYS_ONLY",
        "TableName": "t",
        "KeySchema": [{"AttributeName": "id", "KeyType": "HASH"}],
        "Shards": shards,
        **fields,
    }


def shard(shard_id: str, parent: str | None = None, end: str | None = None) -> dict[str, object]:
    numbers = {"StartingSequenceNumber": "10"} | ({"EndingSequenceNumber": end} if end else {})
    data: dict[str, object] = {"ShardId": shard_id, "SequenceNumberRange": numbers}
    if parent:
        data["ParentShardId"] = parent
    return data


def test_pages_merge_in_order_and_a_shard_seen_twice_keeps_its_latest_state() -> None:
    description = parse_stream_description(
        [
            page([shard("a"), shard("b")]),
            page([shard("b", end="20"), shard("c", parent="a")], StreamStatus="DISABLING"),
        ]
    )

    assert [s.shard_id for s in description.shards] == ["a", "b", "c"]
    assert description.shards[1].ending_sequence_number == "20"
    assert description.shards[1].closed and not description.shards[0].closed
    assert description.shards[2].parent_shard_id == "a"
    assert description.status == "DISABLING"
    assert description.key_names == ("id",)


def test_a_stream_without_shards_is_described_and_no_pages_is_an_error() -> None:
    assert parse_stream_description([page([])]).shards == ()
    with pytest.raises(ValueError, match="no DescribeStream page"):
        parse_stream_description([])


def test_a_shard_iterator_is_a_string_that_remembers_its_shard() -> None:
    iterator = ShardIterator("abc", stream_arn="arn:s", shard_id="shard-1")

    following = iterator.follow("def")
    copy = pickle.loads(pickle.dumps(iterator))

    assert iterator == "abc" and isinstance(iterator, str)
    assert (following, following.stream_arn, following.shard_id) == ("def", "arn:s", "shard-1")
    assert (copy, copy.stream_arn, copy.shard_id) == ("abc", "arn:s", "shard-1")
    assert "shard-1" in iterator.describe() and "arn:s" in iterator.describe()


def test_a_records_page_stamps_the_shard_and_keeps_the_raw_json() -> None:
    raw = {
        "eventName": "INSERT",
        "dynamodb": {
            "ApproximateCreationDateTime": 1.0,
            "Keys": {"id": {"N": "1"}},
            "SequenceNumber": "5",
            "SizeBytes": 9,
        },
    }
    iterator = ShardIterator("it", stream_arn="arn:s", shard_id="shard-1")

    result = parse_get_records(orjson.dumps({"Records": [raw], "NextShardIterator": "n"}), iterator)

    assert [(r.shard_id, r.keys, r.raw) for r in result.records] == [("shard-1", {"id": 1}, raw)]
    assert result.next_iterator == "n"
    assert isinstance(result.next_iterator, ShardIterator)
    assert result.next_iterator.shard_id == "shard-1"
    assert not result.shard_end
