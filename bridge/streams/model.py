"""Values the Streams API hands back: shards, a stream's description, a page of records.

Parsing lives here as pure functions over the JSON shapes of the API, so the real client, the
in-memory fake and the benchmark all build these values the same way.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import orjson

from bridge.records import ChangeRecord

IteratorKind = Literal["TRIM_HORIZON", "LATEST", "AT_SEQUENCE_NUMBER", "AFTER_SEQUENCE_NUMBER"]
StreamStatus = Literal["ENABLING", "ENABLED", "DISABLING", "DISABLED"]
ViewType = Literal["NEW_IMAGE", "OLD_IMAGE", "NEW_AND_OLD_IMAGES", "KEYS_ONLY"]


class ShardIterator(str):
    """A shard iterator: the opaque string the API returned, plus where it points.

    It is a ``str`` (send it anywhere an iterator is expected), but it remembers its stream and
    shard, so ``get_records`` can stamp each record with its shard id and name the shard in an
    error without the caller passing them around again.
    """

    stream_arn: str
    shard_id: str

    def __new__(cls, value: str, *, stream_arn: str, shard_id: str) -> ShardIterator:
        self = super().__new__(cls, value)
        self.stream_arn = stream_arn
        self.shard_id = shard_id
        return self

    def __getnewargs_ex__(self) -> tuple[tuple[str], dict[str, str]]:
        # Pickling must pass the keyword-only fields back to __new__.
        return (str(self),), {"stream_arn": self.stream_arn, "shard_id": self.shard_id}

    def follow(self, value: str) -> ShardIterator:
        """The next iterator of the same shard."""
        return ShardIterator(value, stream_arn=self.stream_arn, shard_id=self.shard_id)

    def describe(self) -> str:
        """Names the shard for error messages."""
        return f"stream {self.stream_arn} shard {self.shard_id}"


@dataclass(frozen=True, slots=True)
class Shard:
    """One shard of a stream; it is closed (will never get new records) once it has an end."""

    shard_id: str
    parent_shard_id: str | None
    starting_sequence_number: str
    """Empty when the service did not say (it always does for real streams)."""
    ending_sequence_number: str | None

    @property
    def closed(self) -> bool:
        return self.ending_sequence_number is not None


@dataclass(frozen=True, slots=True)
class KeyAttribute:
    """One attribute of the table's primary key."""

    name: str
    key_type: Literal["HASH", "RANGE"]


@dataclass(frozen=True, slots=True)
class StreamDescription:
    """Everything DescribeStream says about a stream, every page of shards merged in order."""

    stream_arn: str
    status: StreamStatus
    table_name: str
    view_type: ViewType
    key_schema: tuple[KeyAttribute, ...]
    shards: tuple[Shard, ...]
    stream_label: str = ""

    @property
    def key_names(self) -> tuple[str, ...]:
        """The key attribute names, hash key first."""
        return tuple(key.name for key in self.key_schema)


@dataclass(frozen=True, slots=True)
class RecordsPage:
    """One GetRecords answer. ``next_iterator`` is None once a closed shard is read to its end."""

    records: list[ChangeRecord]
    next_iterator: str | None
    """A ``ShardIterator`` when it comes from ``StreamsClient`` or ``MemoryStream``."""

    @property
    def shard_end(self) -> bool:
        return self.next_iterator is None


def parse_shard(data: Mapping[str, Any]) -> Shard:
    numbers: Mapping[str, Any] = data.get("SequenceNumberRange") or {}
    return Shard(
        shard_id=data["ShardId"],
        parent_shard_id=data.get("ParentShardId") or None,
        starting_sequence_number=numbers.get("StartingSequenceNumber") or "",
        ending_sequence_number=numbers.get("EndingSequenceNumber") or None,
    )


def parse_stream_description(
    pages: Iterable[Mapping[str, Any]],
) -> StreamDescription:
    """Merge the ``StreamDescription`` of every DescribeStream page into one value.

    Stream-level fields come from the last page (the freshest view); shards are deduplicated by
    id in first-seen order, since a shard that closes between two pages may appear in both.
    """
    shards: dict[str, Shard] = {}
    last: Mapping[str, Any] = {}
    for page in pages:
        last = page
        for data in page.get("Shards") or ():
            shard = parse_shard(data)
            shards[shard.shard_id] = shard
    if not last:
        raise ValueError("no DescribeStream page to parse")
    return StreamDescription(
        stream_arn=last["StreamArn"],
        status=last["StreamStatus"],
        table_name=last.get("TableName", ""),
        view_type=last.get("StreamViewType", "KEYS_ONLY"),
        key_schema=tuple(
            KeyAttribute(key["AttributeName"], key["KeyType"]) for key in last.get("KeySchema", ())
        ),
        shards=tuple(shards.values()),
        stream_label=last.get("StreamLabel", ""),
    )


def parse_get_records(body: bytes, iterator: ShardIterator) -> RecordsPage:
    """Decode a GetRecords response body: orjson, then a lazy ``ChangeRecord`` per record.

    This is the whole decode cost of the fast path; images are decoded only when read.
    """
    with _gc_paused():
        data = orjson.loads(body)
        shard_id = iterator.shard_id
        from_raw = ChangeRecord.from_raw
        records = [from_raw(record, shard_id) for record in data.get("Records") or ()]
    next_value = data.get("NextShardIterator")
    return RecordsPage(records, iterator.follow(next_value) if next_value else None)


@contextlib.contextmanager
def _gc_paused() -> Iterator[None]:
    """Keep the cycle collector out while one response body becomes Python objects.

    A 1,000-record page is ~30,000 tracked containers; allocating them with the collector on
    triggers dozens of young and several full collections that traverse the page again and
    again (measured: two thirds of the decode time). JSON cannot hold a cycle, so there is
    nothing to find; the collector runs as usual on the next allocation after this block.
    Not re-enabled if it was off: the process owner's choice stands.
    """
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()
