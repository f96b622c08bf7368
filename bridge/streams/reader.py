"""The one seam between bridge and a stream: what a shard consumer and the leader may call.

``StreamsClient`` implements it over the network; ``bridge.testing.memory_stream.MemoryStream``
implements it in memory, with failures on demand, for tests that should not need a server.

Iterators are typed as plain ``str`` so that any fake fits; both implementations here return
``ShardIterator`` (a ``str`` that knows its stream and shard), which is how a record read
through it learns its shard id: the caller never passes the shard alongside.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from bridge.streams.model import IteratorKind, RecordsPage, Shard, StreamDescription


@runtime_checkable
class StreamReader(Protocol):
    """Reads one DynamoDB stream. Every method raises ``bridge.streams.errors.StreamError``
    subclasses only, already sorted into transient, expired, trimmed and fatal."""

    async def latest_stream_arn(self, table: str) -> str:
        """The ARN of the table's current stream; fatal if the table or its stream is missing."""
        ...

    async def describe_stream(self, stream_arn: str) -> StreamDescription:
        """The stream and all of its shards (every page)."""
        ...

    async def child_shards(self, stream_arn: str, shard_id: str) -> list[Shard]:
        """The shards opened when this one closed (empty while it is open)."""
        ...

    async def get_shard_iterator(
        self,
        stream_arn: str,
        shard_id: str,
        kind: IteratorKind,
        sequence_number: str | None = None,
    ) -> str:
        """An iterator into a shard; AT_ and AFTER_SEQUENCE_NUMBER need ``sequence_number``."""
        ...

    async def get_records(
        self, iterator: str, limit: int = 1000, *, shard_id: str | None = None
    ) -> RecordsPage:
        """The next records after ``iterator``, at most ``limit`` (1..1000). The records know
        their shard from the iterator when this reader returned it (a ``ShardIterator``); for
        a bare string, ``shard_id`` says which shard it reads."""
        ...
