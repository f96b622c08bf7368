"""The in-memory stream behaves like the service where a consumer can tell."""

from __future__ import annotations

import pytest

from bridge.records import ChangeRecord
from bridge.streams import (
    ExpiredIteratorError,
    InvalidRequestError,
    StreamNotFoundError,
    StreamReader,
    TransientStreamError,
    TrimmedDataError,
)
from bridge.testing.memory_stream import MemoryStream


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


async def read_all(stream: MemoryStream, iterator: str, limit: int = 2) -> list[ChangeRecord]:
    records: list[ChangeRecord] = []
    next_iterator: str | None = iterator
    while next_iterator is not None:
        page = await stream.get_records(next_iterator, limit)
        records += page.records
        if not page.records and page.next_iterator is not None:
            return records  # caught up with an open shard
        next_iterator = page.next_iterator
    return records


@pytest.fixture
def stream() -> MemoryStream:
    return MemoryStream("orders")


async def test_a_closed_shard_reads_in_order_to_its_end(stream: MemoryStream) -> None:
    shard = stream.add_shard()
    for n in range(5):
        stream.put(shard, new_image={"pk": f"k{n}", "n": n})
    stream.close_shard(shard)

    arn = await stream.latest_stream_arn("orders")
    iterator = await stream.get_shard_iterator(arn, shard, "TRIM_HORIZON")
    records = await read_all(stream, iterator)

    assert isinstance(stream, StreamReader)
    assert [r.new_image for r in records] == [{"pk": f"k{n}", "n": n} for n in range(5)]
    assert [r.keys for r in records] == [{"pk": f"k{n}"} for n in range(5)]
    assert {r.shard_id for r in records} == {shard}
    sequence_numbers = [int(r.sequence_number) for r in records]
    assert sequence_numbers == sorted(sequence_numbers)
    assert stream.get_records_calls == 3  # pages of 2, 2, 1; the last one ends the shard


async def test_events_follow_the_images_and_the_view_type() -> None:
    stream = MemoryStream("t", view_type="NEW_IMAGE")
    shard = stream.add_shard()

    insert = stream.put(shard, new_image={"pk": "a", "v": 1})
    modify = stream.put(shard, new_image={"pk": "a", "v": 2}, old_image={"pk": "a", "v": 1})
    remove = stream.put(shard, old_image={"pk": "a", "v": 2})

    assert [r.event for r in (insert, modify, remove)] == ["INSERT", "MODIFY", "REMOVE"]
    assert modify.new_image == {"pk": "a", "v": 2}
    assert modify.old_image is None  # NEW_IMAGE streams carry no old image
    assert remove.keys == {"pk": "a"} and remove.new_image is None


async def test_iterators_at_after_and_latest(stream: MemoryStream) -> None:
    shard = stream.add_shard()
    written = [stream.put(shard, new_image={"pk": str(n)}) for n in range(4)]
    arn = stream.stream_arn

    at = await stream.get_shard_iterator(
        arn, shard, "AT_SEQUENCE_NUMBER", written[1].sequence_number
    )
    after = await stream.get_shard_iterator(
        arn, shard, "AFTER_SEQUENCE_NUMBER", written[1].sequence_number
    )
    latest = await stream.get_shard_iterator(arn, shard, "LATEST")
    stream.put(shard, new_image={"pk": "new"})

    assert [r.keys["pk"] for r in await read_all(stream, at)] == ["1", "2", "3", "new"]
    assert [r.keys["pk"] for r in await read_all(stream, after)] == ["2", "3", "new"]
    assert [r.keys["pk"] for r in await read_all(stream, latest)] == ["new"]
    with pytest.raises(InvalidRequestError):
        await stream.get_shard_iterator(arn, shard, "AT_SEQUENCE_NUMBER", "1")


async def test_an_iterator_can_be_read_again(stream: MemoryStream) -> None:
    shard = stream.add_shard()
    stream.put(shard, new_image={"pk": "a"})
    iterator = await stream.get_shard_iterator(stream.stream_arn, shard, "TRIM_HORIZON")

    first = await stream.get_records(iterator)
    again = await stream.get_records(iterator)

    assert first.records == again.records and len(first.records) == 1


async def test_trimmed_records_are_refused_and_trim_horizon_moves(stream: MemoryStream) -> None:
    shard = stream.add_shard()
    written = [stream.put(shard, new_image={"pk": str(n)}) for n in range(4)]
    stale = await stream.get_shard_iterator(stream.stream_arn, shard, "TRIM_HORIZON")

    stream.trim(shard, 2)

    with pytest.raises(TrimmedDataError) as caught:
        await stream.get_records(stale)
    assert caught.value.code == "TrimmedDataAccessException" and shard in str(caught.value)
    with pytest.raises(TrimmedDataError):
        await stream.get_shard_iterator(
            stream.stream_arn, shard, "AFTER_SEQUENCE_NUMBER", written[0].sequence_number
        )
    horizon = await stream.get_shard_iterator(stream.stream_arn, shard, "TRIM_HORIZON")
    assert [r.keys["pk"] for r in await read_all(stream, horizon)] == ["2", "3"]


async def test_iterators_expire_on_demand_and_by_age() -> None:
    clock = FakeClock()
    stream = MemoryStream("t", clock=clock, iterator_ttl=900)
    shard = stream.add_shard()
    stream.put(shard, new_image={"pk": "a"})
    young = await stream.get_shard_iterator(stream.stream_arn, shard, "TRIM_HORIZON")
    assert len((await stream.get_records(young)).records) == 1

    clock.now += 901
    with pytest.raises(ExpiredIteratorError):
        await stream.get_records(young)
    fresh = await stream.get_shard_iterator(stream.stream_arn, shard, "TRIM_HORIZON")
    stream.expire_iterators()
    with pytest.raises(ExpiredIteratorError, match="ExpiredIteratorException"):
        await stream.get_records(fresh)


async def test_failures_are_injected_on_the_nth_call_only(stream: MemoryStream) -> None:
    shard = stream.add_shard()
    stream.put(shard, new_image={"pk": "a"})
    iterator = await stream.get_shard_iterator(stream.stream_arn, shard, "TRIM_HORIZON")
    stream.throttle("get_records", on_call=2)
    stream.fail("describe_stream", StreamNotFoundError("gone", code="ResourceNotFoundException"))

    await stream.get_records(iterator)
    with pytest.raises(TransientStreamError) as caught:
        await stream.get_records(iterator)
    third = await stream.get_records(iterator)
    with pytest.raises(StreamNotFoundError):
        await stream.describe_stream(stream.stream_arn)
    described = await stream.describe_stream(stream.stream_arn)

    assert caught.value.code == "LimitExceededException"
    assert shard in str(caught.value)
    assert len(third.records) == 1
    assert [s.shard_id for s in described.shards] == [shard]
    assert stream.get_records_calls == 3 and stream.describe_stream_calls == 2


async def test_a_split_shows_lineage_and_closes_the_parent(stream: MemoryStream) -> None:
    parent = stream.add_shard()
    stream.put(parent, new_image={"pk": "a"})

    children = stream.split(parent)
    stream.remove_shard(parent)
    description = await stream.describe_stream(stream.stream_arn)

    assert [s.shard_id for s in description.shards] == children
    assert all(s.parent_shard_id == parent and not s.closed for s in description.shards)
    with pytest.raises(StreamNotFoundError):
        await stream.get_shard_iterator(stream.stream_arn, parent, "TRIM_HORIZON")
    with pytest.raises(ValueError, match="closed"):
        stream.put(parent, new_image={"pk": "late"})


async def test_describe_stream_is_billed_per_page_of_shards() -> None:
    stream = MemoryStream("t", describe_page_size=2)
    for _ in range(5):
        stream.add_shard()

    description = await stream.describe_stream(stream.stream_arn)

    assert len(description.shards) == 5
    assert stream.describe_stream_calls == 3


async def test_a_deleted_table_or_an_unknown_one_is_not_found(stream: MemoryStream) -> None:
    shard = stream.add_shard()
    iterator = await stream.get_shard_iterator(stream.stream_arn, shard, "LATEST")

    with pytest.raises(StreamNotFoundError, match="'elsewhere'"):
        await stream.latest_stream_arn("elsewhere")
    stream.delete()
    with pytest.raises(StreamNotFoundError):
        await stream.get_records(iterator)
    with pytest.raises(StreamNotFoundError):
        await stream.latest_stream_arn("orders")
