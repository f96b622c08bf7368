"""The emulator's reset on a virtual clock, and record times rounded as the service rounds them."""

from __future__ import annotations

import pytest

from bridge.local.clock import EndpointClock
from bridge.local.emulator import (
    FaultInjector,
    FaultSettings,
    ResourceNotFoundError,
    StreamIdentity,
    StreamsEmulator,
    StreamSettings,
    ValidationError,
    parse_sequence,
)
from tests.local.test_emulator import ARN, T0, iterator, make, read_all, records, shards, write

IDENTITY = StreamIdentity(
    ARN, "t", "2024-01-01T00:00:00.000", "NEW_AND_OLD_IMAGES", (("pk", "HASH"),), "us-east-1"
)


def test_a_reset_forgets_streams_and_counts() -> None:
    emulator = make(shards=2)
    write(emulator, "a", 1)
    read_all(emulator, shards(emulator)[0])
    emulator.reset()
    assert emulator.list_streams({}, T0) == {"Streams": []}
    with pytest.raises(ResourceNotFoundError):
        emulator.describe_stream({"StreamArn": ARN}, T0)
    stats = emulator.stats()
    assert stats["streams"] == stats["records_retained"] == stats["shards_open"] == 0
    assert "GetRecords" not in stats and "records_written" not in stats


def test_sequence_numbers_keep_growing_across_a_reset() -> None:
    emulator = make(shards=1)
    before = parse_sequence(write(emulator, "a", 1))
    emulator.reset()
    emulator.create_stream(IDENTITY, T0)  # the same table and ARN again
    after = parse_sequence(write(emulator, "a", 1))
    assert after > before
    (shard,) = shards(emulator)
    assert parse_sequence(shard["SequenceNumberRange"]["StartingSequenceNumber"]) > before


def test_an_iterator_from_before_a_reset_is_refused_even_for_a_stream_of_the_same_arn() -> None:
    emulator = make(shards=1)
    write(emulator, "a", 1)
    old = iterator(emulator, shards(emulator)[0]["ShardId"])
    emulator.reset()
    emulator.create_stream(IDENTITY, T0)
    write(emulator, "b", 2)
    with pytest.raises(ValidationError, match="issued before the endpoint was reset"):
        records(emulator, old)
    fresh = iterator(emulator, shards(emulator)[0]["ShardId"])
    assert [r["dynamodb"]["Keys"] for r in records(emulator, fresh)["Records"]] == [
        {"pk": {"S": "b"}}
    ]


@pytest.mark.parametrize("fraction", [0.0, 0.001, 0.5, 0.999])
def test_approximate_creation_time_is_rounded_down_to_the_second(fraction: float) -> None:
    emulator = make(shards=1)
    write(emulator, "a", 1, now=T0 + 7 + fraction)
    (record,) = read_all(emulator, shards(emulator)[0], now=T0 + 8)
    assert record["dynamodb"]["ApproximateCreationDateTime"] == T0 + 7


def test_retention_still_counts_from_the_exact_write_time() -> None:
    """Only the record's stated time is rounded: trimming keeps to the real age."""
    emulator = StreamsEmulator(StreamSettings(shards=1, retention_seconds=10.0), seed=1)
    emulator.create_stream(IDENTITY, T0)
    write(emulator, "a", 1, now=T0 + 0.9)
    assert len(read_all(emulator, shards(emulator)[0], now=T0 + 10.5)) == 1
    assert emulator.trim(T0 + 11.0)["records"] == 1


def test_a_reset_fault_injector_replays_its_seeded_draws() -> None:
    faults = FaultInjector(FaultSettings(throttle_rate=0.3, error_rate=0.2, seed=5))

    def draws() -> list[str]:
        return [type(faults.fault_for("GetRecords", T0)).__name__ for _ in range(40)]

    first = draws()
    faults.burst(T0, count=3)
    faults.reset()
    assert faults.describe(T0)["burst"] is None and faults.injected == 0
    assert draws() == first
    assert faults.settings.throttle_rate == 0.3  # the endpoint's settings stay


def test_a_reset_clock_is_real_time_again() -> None:
    clock = EndpointClock()
    clock.advance(3600)
    assert clock.offset == 3600
    clock.reset()
    assert clock.offset == 0.0
