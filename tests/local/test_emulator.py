"""The Streams emulator's core on a virtual clock: no HTTP, no moto, every rule pinned down."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bridge.local.emulator import (
    CapturedChange,
    ExpiredIteratorError,
    FaultInjector,
    FaultSettings,
    InternalServerError,
    LimitExceededError,
    ResourceNotFoundError,
    StreamIdentity,
    StreamsEmulator,
    StreamSettings,
    TrimmedDataAccessError,
    ValidationError,
    parse_sequence,
)

ARN = "arn:aws:dynamodb:us-east-1:123456789012:table/t/stream/2024-01-01T00:00:00.000"
T0 = 1_700_000_000.0


def make(**options: Any) -> StreamsEmulator:
    emulator = StreamsEmulator(StreamSettings(**options), seed=7)
    identity = StreamIdentity(
        ARN, "t", "2024-01-01T00:00:00.000", "NEW_AND_OLD_IMAGES", (("pk", "HASH"),), "us-east-1"
    )
    emulator.create_stream(identity, T0)
    return emulator


def write(emulator: StreamsEmulator, key: str, n: int, now: float = T0) -> str:
    image = {"pk": {"S": key}, "n": {"N": str(n)}}
    change = CapturedChange.from_attributes({"pk": {"S": key}}, "pk", new_image=image)
    return emulator.record_change(ARN, change, now)


def shards(emulator: StreamsEmulator, now: float = T0, **request: Any) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    while True:
        answer = emulator.describe_stream({"StreamArn": ARN, **request}, now)["StreamDescription"]
        found += answer["Shards"]
        if "LastEvaluatedShardId" not in answer:
            return found
        request["ExclusiveStartShardId"] = answer["LastEvaluatedShardId"]


def iterator(
    emulator: StreamsEmulator,
    shard_id: str,
    kind: str = "TRIM_HORIZON",
    now: float = T0,
    **extra: Any,
) -> str:
    request = {"StreamArn": ARN, "ShardId": shard_id, "ShardIteratorType": kind, **extra}
    return str(emulator.get_shard_iterator(request, now)["ShardIterator"])


def records(
    emulator: StreamsEmulator, token: str, now: float = T0, limit: int = 1000
) -> dict[str, Any]:
    answer: dict[str, Any] = orjson.loads(
        emulator.get_records({"ShardIterator": token, "Limit": limit}, now)
    )
    return answer


def read_all(emulator: StreamsEmulator, shard: dict[str, Any], now: float = T0) -> list[Any]:
    token: str | None = iterator(emulator, shard["ShardId"], now=now)
    found: list[Any] = []
    while token:
        answer = records(emulator, token, now)
        found += answer["Records"]
        token = answer.get("NextShardIterator")
        if not answer["Records"] and "EndingSequenceNumber" not in shard["SequenceNumberRange"]:
            break
    return found


def read_tree(emulator: StreamsEmulator, now: float = T0) -> list[tuple[dict[str, Any], list[Any]]]:
    """(shard, its records) for every shard, each parent before its children."""
    listed = shards(emulator, now)
    by_id = {s["ShardId"]: s for s in listed}
    done: set[str] = set()
    found: list[tuple[dict[str, Any], list[Any]]] = []

    def visit(shard: dict[str, Any]) -> None:
        if shard["ShardId"] in done:
            return
        parent = by_id.get(shard.get("ParentShardId", ""))
        if parent is not None:
            visit(parent)
        done.add(shard["ShardId"])
        found.append((shard, read_all(emulator, shard, now)))

    for shard in listed:
        visit(shard)
    return found


def read_parent_first(emulator: StreamsEmulator, now: float = T0) -> list[Any]:
    return [record for _, records in read_tree(emulator, now) for record in records]


def numbers(found: list[Any]) -> list[int]:
    return [parse_sequence(r["dynamodb"]["SequenceNumber"]) for r in found]


def range_of(shard: dict[str, Any], end: str) -> int:
    return parse_sequence(shard["SequenceNumberRange"][end])


def by_key(found: list[Any]) -> dict[str, list[int]]:
    seen: dict[str, list[int]] = {}
    for record in found:
        image = record["dynamodb"]["NewImage"]
        seen.setdefault(image["pk"]["S"], []).append(int(image["n"]["N"]))
    return seen


# -- lineage and routing ----------------------------------------------------------------------


def test_a_full_shard_closes_and_its_children_name_it() -> None:
    emulator = make(shards=1, rotate_records=3)
    for n in range(3):
        write(emulator, "a", n)
    parent, *children = shards(emulator)
    assert parent["SequenceNumberRange"]["EndingSequenceNumber"] == format_last(emulator, parent)
    assert len(children) == 2
    assert {c["ParentShardId"] for c in children} == {parent["ShardId"]}
    assert all("EndingSequenceNumber" not in c["SequenceNumberRange"] for c in children)
    assert all(
        c["SequenceNumberRange"]["StartingSequenceNumber"]
        > parent["SequenceNumberRange"]["EndingSequenceNumber"]
        for c in children
    )


def format_last(emulator: StreamsEmulator, shard: dict[str, Any]) -> str:
    return str(read_all(emulator, shard)[-1]["dynamodb"]["SequenceNumber"])


def test_a_closed_shard_read_to_its_end_has_no_next_iterator() -> None:
    emulator = make(shards=1, rotate_records=2)
    write(emulator, "a", 1)
    write(emulator, "a", 2)
    parent = shards(emulator)[0]
    first = records(emulator, iterator(emulator, parent["ShardId"]), limit=1)
    assert len(first["Records"]) == 1 and "NextShardIterator" in first
    last = records(emulator, first["NextShardIterator"])
    assert len(last["Records"]) == 1
    assert "NextShardIterator" not in last


def test_shard_ids_look_real_and_sort_in_creation_order() -> None:
    emulator = make(shards=2, rotate_records=1)
    for n in range(6):
        write(emulator, f"k{n}", n)
    ids = [s["ShardId"] for s in shards(emulator)]
    assert ids == sorted(ids)
    for shard_id in ids:
        prefix, stamp, suffix = shard_id.split("-")
        assert prefix == "shardId" and len(stamp) == 20 and stamp.isdigit()
        assert len(suffix) == 8 and int(suffix, 16) >= 0


def test_open_shards_never_exceed_the_cap_and_rotation_keeps_splitting_below_it() -> None:
    emulator = make(shards=2, max_open_shards=5, rotate_records=1)
    for n in range(200):
        write(emulator, f"k{n}", n)
    listed = shards(emulator)
    open_count = sum("EndingSequenceNumber" not in s["SequenceNumberRange"] for s in listed)
    assert open_count == 5  # 2 -> 3 -> 4 -> 5 by splits; from there only single children
    children: dict[str, int] = {}
    for shard in listed:
        if "ParentShardId" in shard:
            children[shard["ParentShardId"]] = children.get(shard["ParentShardId"], 0) + 1
    assert set(children.values()) == {1, 2}


def test_a_shard_rotates_by_age_when_the_clock_passes_it() -> None:
    emulator = make(shards=2, rotate_seconds=60)
    write(emulator, "a", 1)
    assert len(shards(emulator, T0 + 59)) == 2
    listed = shards(emulator, T0 + 60)
    assert sum("EndingSequenceNumber" in s["SequenceNumberRange"] for s in listed) == 2
    assert sum("ParentShardId" in s for s in listed) == 4


def test_sequence_numbers_are_consecutive_within_a_shard_and_grow_along_a_lineage() -> None:
    emulator = make(shards=2, rotate_records=50)
    for n in range(400):  # keys interleave, so every shard's writes interleave with others'
        write(emulator, f"k{n % 13}", n)
    tree = read_tree(emulator)
    assert len(tree) > 6
    by_id = {shard["ShardId"]: shard for shard, _ in tree}
    for shard, found in tree:
        assert_dense(shard, numbers(found))
        parent = by_id.get(shard.get("ParentShardId", ""))
        if parent is not None:
            assert range_of(shard, "StartingSequenceNumber") > range_of(
                parent, "EndingSequenceNumber"
            )
    # the gap between two numbers of one shard is the number of records between them
    shard, found = next((s, f) for s, f in tree if len(f) >= 10)
    third, ninth = numbers(found)[2], numbers(found)[8]
    assert ninth - third - 1 == len(found[3:8])


def test_a_shard_that_used_every_number_of_its_block_closes() -> None:
    emulator = StreamsEmulator(StreamSettings(shards=1, max_open_shards=1), sequence_span=5)
    identity = StreamIdentity(ARN, "t", "L", "NEW_IMAGE", (("pk", "HASH"),), "us-east-1")
    emulator.create_stream(identity, T0)
    written = [parse_sequence(write(emulator, "a", n)) for n in range(12)]
    listed = shards(emulator)
    assert [len(read_all(emulator, shard)) for shard in listed] == [5, 5, 2]
    assert [range_of(shard, "StartingSequenceNumber") for shard in listed] == [5, 10, 15]
    assert written == [*range(5, 10), *range(10, 15), 15, 16]
    assert [s.get("ParentShardId") for s in listed[1:]] == [s["ShardId"] for s in listed[:2]]


# -- iterators ---------------------------------------------------------------------------------


def test_a_tampered_or_foreign_iterator_is_a_validation_error() -> None:
    emulator = make()
    token = iterator(emulator, shards(emulator)[0]["ShardId"])
    flipped = token[:10] + ("A" if token[10] != "A" else "B") + token[11:]
    for bad in ["", "garbage", "x" * 3000, flipped]:
        with pytest.raises(ValidationError):
            records(emulator, bad)
    stranger = StreamsEmulator(StreamSettings(), seed=1)
    with pytest.raises(ValidationError):
        stranger.get_records({"ShardIterator": token}, T0)


def test_an_iterator_expires_after_its_ttl_and_a_fresh_one_works() -> None:
    emulator = make(iterator_ttl_seconds=900)
    shard_id = shards(emulator)[0]["ShardId"]
    token = iterator(emulator, shard_id)
    records(emulator, token, T0 + 900)
    with pytest.raises(ExpiredIteratorError):
        records(emulator, token, T0 + 901)
    records(emulator, iterator(emulator, shard_id, now=T0 + 901), T0 + 901)


def test_iterator_types_position_where_the_api_says() -> None:
    emulator = make(shards=1)
    sequences = [write(emulator, "a", n) for n in range(5)]
    shard_id = shards(emulator)[0]["ShardId"]

    def first(kind: str, **extra: Any) -> list[str]:
        found = records(emulator, iterator(emulator, shard_id, kind, **extra))["Records"]
        return [r["dynamodb"]["SequenceNumber"] for r in found]

    assert first("TRIM_HORIZON") == sequences
    assert first("LATEST") == []
    assert first("AT_SEQUENCE_NUMBER", SequenceNumber=sequences[2]) == sequences[2:]
    assert first("AFTER_SEQUENCE_NUMBER", SequenceNumber=sequences[2]) == sequences[3:]
    latest = iterator(emulator, shard_id, "LATEST")
    newer = write(emulator, "a", 9)
    assert [r["dynamodb"]["SequenceNumber"] for r in records(emulator, latest)["Records"]] == [
        newer
    ]


def test_bad_iterator_requests_are_answered_with_the_right_errors() -> None:
    emulator = make(shards=1)
    shard_id = shards(emulator)[0]["ShardId"]
    with pytest.raises(ResourceNotFoundError):
        iterator(emulator, "shardId-00000000000000000000-00000000")
    with pytest.raises(ValidationError):
        iterator(emulator, shard_id, "AT_SEQUENCE_NUMBER")  # no SequenceNumber
    with pytest.raises(ValidationError):
        iterator(emulator, shard_id, "AT_SEQUENCE_NUMBER", SequenceNumber="12x")
    with pytest.raises(ValidationError):
        iterator(emulator, shard_id, "SOMEWHERE")
    with pytest.raises(ResourceNotFoundError):
        emulator.describe_stream({"StreamArn": ARN + "x"}, T0)
    with pytest.raises(ValidationError):
        records(emulator, iterator(emulator, shard_id), limit=1001)


def test_limit_is_honoured() -> None:
    emulator = make(shards=1)
    for n in range(10):
        write(emulator, "a", n)
    answer = records(emulator, iterator(emulator, shards(emulator)[0]["ShardId"]), limit=4)
    assert len(answer["Records"]) == 4
    assert len(records(emulator, answer["NextShardIterator"])["Records"]) == 6


# -- retention ---------------------------------------------------------------------------------


def test_retention_moves_trim_horizon_and_trimmed_positions_fail() -> None:
    emulator = make(shards=1, retention_seconds=3600, iterator_ttl_seconds=10 * 3600)
    shard_id = shards(emulator)[0]["ShardId"]
    old = [write(emulator, "a", n, T0) for n in range(3)]
    kept = [write(emulator, "a", n, T0 + 1800) for n in range(3, 5)]
    horizon_before = iterator(emulator, shard_id, now=T0 + 1800)
    later = T0 + 3601
    found = records(emulator, iterator(emulator, shard_id, now=later), later)["Records"]
    assert [r["dynamodb"]["SequenceNumber"] for r in found] == kept
    with pytest.raises(TrimmedDataAccessError):
        records(emulator, horizon_before, later)
    for kind in ("AT_SEQUENCE_NUMBER", "AFTER_SEQUENCE_NUMBER"):
        with pytest.raises(TrimmedDataAccessError):
            iterator(emulator, shard_id, kind, later, SequenceNumber=old[-1])
    assert emulator.stats()["records_trimmed"] == 3


def test_records_lost_to_trimming_are_counted_by_the_sequence_gap() -> None:
    emulator = make(shards=1, retention_seconds=3600, iterator_ttl_seconds=10 * 3600)
    shard_id = shards(emulator)[0]["ShardId"]
    for n in range(10):
        write(emulator, "a", n, T0 + n)
    first_page = records(emulator, iterator(emulator, shard_id), T0 + 10, limit=4)["Records"]
    last_read = first_page[-1]["dynamodb"]["SequenceNumber"]
    for n in range(10, 15):
        write(emulator, "a", n, T0 + 3000)
    later = T0 + 3600 + 7.5  # records 0..7 are past retention, 8 and 9 are not
    horizon = records(emulator, iterator(emulator, shard_id, now=later), later)["Records"]
    assert by_key(horizon) == {"a": [8, 9, 10, 11, 12, 13, 14]}
    first_available = horizon[0]["dynamodb"]["SequenceNumber"]
    lost = parse_sequence(first_available) - parse_sequence(last_read) - 1
    assert lost == 4 == emulator.stats()["records_trimmed"] - len(first_page)


def test_a_closed_shard_leaves_the_stream_once_empty_and_older_than_retention() -> None:
    emulator = make(shards=1, max_open_shards=1, retention_seconds=100)
    write(emulator, "a", 1)
    emulator.rotate(T0)
    parent = shards(emulator)[0]
    token = iterator(emulator, parent["ShardId"])
    assert len(shards(emulator, T0 + 100)) == 2
    remaining = shards(emulator, T0 + 101)
    assert parent["ShardId"] not in {s["ShardId"] for s in remaining}
    assert remaining[0]["ParentShardId"] == parent["ShardId"]  # dangling, as in AWS
    with pytest.raises(TrimmedDataAccessError):
        records(emulator, token, T0 + 101)
    # a paging position at a removed shard still works: ids sort in creation order
    assert shards(emulator, T0 + 101, ExclusiveStartShardId=parent["ShardId"]) == remaining


# -- DescribeStream and ListStreams ------------------------------------------------------------


def test_describe_stream_pages_and_filters_children() -> None:
    emulator = make(shards=4)
    for _ in range(30):
        emulator.rotate(T0)
    everything = shards(emulator)
    assert len(everything) == 4 + 8 + 29 * 8
    first = emulator.describe_stream({"StreamArn": ARN}, T0)["StreamDescription"]
    assert len(first["Shards"]) == 100
    assert first["LastEvaluatedShardId"] == first["Shards"][-1]["ShardId"]
    assert shards(emulator, Limit=7) == everything
    parent = everything[0]["ShardId"]
    children = shards(emulator, ShardFilter={"Type": "CHILD_SHARDS", "ShardId": parent})
    assert len(children) == 2
    assert all(child["ParentShardId"] == parent for child in children)


def test_list_streams_filters_by_table_and_region() -> None:
    emulator = make()
    other = StreamIdentity(
        ARN.replace("table/t/", "table/u/"), "u", "L", "KEYS_ONLY", (("pk", "HASH"),), "eu-west-1"
    )
    emulator.create_stream(other, T0)
    assert len(emulator.list_streams({}, T0)["Streams"]) == 2  # type: ignore[arg-type]
    assert emulator.list_streams({"TableName": "u"}, T0)["Streams"] == [
        {"StreamArn": other.arn, "TableName": "u", "StreamLabel": "L"}
    ]
    assert emulator.list_streams({}, T0, region="us-east-1")["Streams"] == [
        {"StreamArn": ARN, "TableName": "t", "StreamLabel": "2024-01-01T00:00:00.000"}
    ]


def test_view_type_decides_which_images_a_record_carries() -> None:
    emulator = StreamsEmulator(StreamSettings(shards=1), seed=1)
    identity = StreamIdentity(ARN, "t", "L", "KEYS_ONLY", (("pk", "HASH"),), "us-east-1")
    emulator.create_stream(identity, T0)
    change = CapturedChange.from_attributes(
        {"pk": {"S": "a"}}, "pk", new_image={"pk": {"S": "a"}}, old_image={"pk": {"S": "a"}}
    )
    emulator.record_change(ARN, change, T0)
    (record,) = read_all(emulator, shards(emulator)[0])
    assert record["eventName"] == "MODIFY" and record["eventVersion"] == "1.1"
    assert set(record["dynamodb"]) == {
        "ApproximateCreationDateTime",
        "Keys",
        "SequenceNumber",
        "SizeBytes",
        "StreamViewType",
    }
    assert len(record["dynamodb"]["SequenceNumber"]) >= 21


# -- the invariant that matters: every record once, per-key order, along lineages ---------------

operations = st.lists(
    st.one_of(
        st.tuples(st.just("write"), st.integers(0, 15)),
        st.tuples(st.just("rotate"), st.just(0)),
        st.tuples(st.just("tick"), st.integers(1, 40)),
    ),
    max_size=120,
)


@settings(max_examples=60, deadline=None)
@given(operations, st.integers(1, 4), st.integers(0, 5))
def test_reading_parent_first_yields_every_change_once_in_per_key_order(
    ops: list[tuple[str, int]], shard_count: int, rotate_records: int
) -> None:
    emulator = make(shards=shard_count, rotate_records=rotate_records, rotate_seconds=60)
    now = T0
    written: dict[str, list[int]] = {}
    for n, (op, value) in enumerate(ops):
        if op == "write":
            write(emulator, f"k{value}", n, now)
            written.setdefault(f"k{value}", []).append(n)
        elif op == "rotate":
            emulator.rotate(now)
        else:
            now += value
    tree = read_tree(emulator, now)
    found = [record for _, records in tree for record in records]
    assert by_key(found) == written
    sequences = numbers(found)
    assert len(set(sequences)) == len(sequences)
    by_id = {shard["ShardId"]: shard for shard, _ in tree}
    for shard, records in tree:
        assert_dense(shard, numbers(records))
        parent = by_id.get(shard.get("ParentShardId", ""))
        if parent is not None:
            assert range_of(shard, "StartingSequenceNumber") > range_of(
                parent, "EndingSequenceNumber"
            )


def assert_dense(shard: dict[str, Any], found: list[int]) -> None:
    """A shard's numbers run start, start + 1, ... with no gap, up to its end if closed."""
    start = range_of(shard, "StartingSequenceNumber")
    assert found == list(range(start, start + len(found)))
    if found and "EndingSequenceNumber" in shard["SequenceNumberRange"]:
        assert range_of(shard, "EndingSequenceNumber") == found[-1]


# -- faults ------------------------------------------------------------------------------------


def test_a_counted_burst_fails_exactly_that_many_calls() -> None:
    faults = FaultInjector()
    faults.burst(T0, count=3)
    outcomes = [faults.fault_for("GetRecords", T0) for _ in range(5)]
    assert [type(o) for o in outcomes] == [LimitExceededError] * 3 + [type(None)] * 2
    assert faults.fault_for("GetShardIterator", T0) is None


def test_a_timed_burst_ends_on_time_and_rates_are_roughly_honoured() -> None:
    faults = FaultInjector(FaultSettings(error_rate=0.25, seed=3))
    failures = [faults.fault_for("DescribeStream", T0) for _ in range(2000)]
    errors = [f for f in failures if f is not None]
    assert 400 < len(errors) < 600
    assert all(isinstance(f, InternalServerError) for f in errors)
    assert {f.status for f in errors} == {500, 503}
    faults.burst(T0, kind="throttle", rate=1.0, seconds=10)
    assert isinstance(faults.fault_for("GetRecords", T0 + 9.9), LimitExceededError)
    after = [faults.fault_for("GetRecords", T0 + 10) for _ in range(100)]
    assert not any(isinstance(f, LimitExceededError) for f in after)


def test_iterators_cost_no_memory_on_the_server() -> None:
    emulator = make(shards=1)
    shard_id = shards(emulator)[0]["ShardId"]
    for _ in range(1000):
        iterator(emulator, shard_id)
    stats = emulator.stats()
    assert stats["iterators_issued"] == 1000
    assert stats["iterators_held"] == 0
