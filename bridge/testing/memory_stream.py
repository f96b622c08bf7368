"""An in-memory DynamoDB stream, for testing consumers without a server.

``MemoryStream`` implements ``StreamReader`` with the service's semantics where a consumer can
tell the difference: shard lineage and closing, sequence numbers that grow, iterators that can
be reused and that expire, records trimmed away by retention, and failures injected on the Nth
call of a named method (as KCL's tests do)::

    stream = MemoryStream("orders")
    shard = stream.add_shard()
    stream.put(shard, new_image={"pk": "a", "n": 1})
    stream.throttle("get_records", on_call=2)       # the 2nd GetRecords is throttled
    stream.trim(shard, 1)                           # retention dropped the oldest record

Records come out exactly as the real client returns them: ``ChangeRecord.from_raw`` over
DynamoDB JSON as on the wire.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from bridge.records import ChangeRecord, EventName
from bridge.streams.errors import (
    ExpiredIteratorError,
    InvalidRequestError,
    StreamError,
    StreamNotFoundError,
    TransientStreamError,
    TrimmedDataError,
)
from bridge.streams.model import (
    IteratorKind,
    KeyAttribute,
    RecordsPage,
    Shard,
    ShardIterator,
    StreamDescription,
    ViewType,
)
from bridge.testing._memory_shard import MemoryShard, stream_record

_FIRST_SEQUENCE = 10**20  # real sequence numbers are 21+ digit decimal strings


@dataclass
class _Position:
    shard_id: str
    index: int
    issued_at: float
    expired: bool = False


@dataclass
class _Failure:
    method: str
    error: StreamError
    on_call: int | None
    remaining: int


class MemoryStream:
    """One table's stream, in memory; implements ``bridge.streams.StreamReader``.

    ``clock`` (seconds, default ``time.time``) stamps records and ages iterators; pass a fake
    one to test expiry by ``iterator_ttl`` (AWS: 900 s) without waiting.
    """

    def __init__(
        self,
        table: str = "table",
        *,
        key_schema: tuple[str, ...] = ("pk",),
        view_type: ViewType = "NEW_AND_OLD_IMAGES",
        clock: Callable[[], float] = time.time,
        iterator_ttl: float | None = None,
        describe_page_size: int = 100,
    ) -> None:
        self.table = table
        self.stream_arn = f"arn:aws:dynamodb:us-east-1:123456789012:table/{table}/stream/memory"
        self.key_schema = key_schema
        self.view_type = view_type
        self._clock = clock
        self._iterator_ttl = iterator_ttl
        self._describe_page_size = describe_page_size
        self._shards: dict[str, MemoryShard] = {}
        self._iterators: dict[str, _Position] = {}
        self._failures: list[_Failure] = []
        self._next_sequence = _FIRST_SEQUENCE
        self._next_iterator = 0
        self._deleted = False
        self.calls: Counter[str] = Counter()
        """Calls per method name, failed ones included (the service bills those too)."""

    # --- counters named like StreamsClient's ---------------------------------------------

    @property
    def get_records_calls(self) -> int:
        return self.calls["get_records"]

    @property
    def describe_stream_calls(self) -> int:
        return self.calls["describe_stream"]

    # --- building the stream -------------------------------------------------------------

    def add_shard(self, parent: str | None = None) -> str:
        """A new open shard (a child of ``parent`` if given); returns its id."""
        number = len(self._shards)
        shard_id = f"shardId-{number:020d}-{self.table[:8]}"
        self._shards[shard_id] = MemoryShard(shard_id, parent, self._take_sequence())
        return shard_id

    def put(
        self,
        shard_id: str,
        *,
        new_image: Mapping[str, Any] | None = None,
        old_image: Mapping[str, Any] | None = None,
        event: EventName | None = None,
        keys: Mapping[str, Any] | None = None,
    ) -> ChangeRecord:
        """Append a change to an open shard; the event and keys follow from the images.

        Images are filtered by the stream's view type as the service does. Returns the
        record as a reader will get it.
        """
        shard = self._open_shard(shard_id)
        if keys is None:
            image = new_image if new_image is not None else old_image
            if image is None:
                raise ValueError("a change needs an image or keys")
            keys = {name: image[name] for name in self.key_schema}
        if event is None:
            event = "MODIFY" if new_image and old_image else "INSERT" if new_image else "REMOVE"
        sequence = self._take_sequence()
        raw = stream_record(
            sequence,
            event,
            keys,
            new_image,
            old_image,
            view_type=self.view_type,
            created=self._clock(),
        )
        shard.append(raw, sequence)
        return ChangeRecord.from_raw(raw, shard_id)

    def close_shard(self, shard_id: str) -> None:
        """No more records will arrive: readers reach SHARD_END after the last one."""
        self._open_shard(shard_id).close()

    def split(self, shard_id: str, children: int = 2) -> list[str]:
        """Close a shard and open ``children`` shards whose parent it is (a reshard)."""
        self.close_shard(shard_id)
        return [self.add_shard(parent=shard_id) for _ in range(children)]

    def trim(self, shard_id: str, count: int) -> None:
        """Retention drops the oldest ``count`` records of a shard."""
        self._shards[shard_id].trim(count)

    def remove_shard(self, shard_id: str) -> None:
        """The shard aged out entirely: gone from DescribeStream, iterators refused."""
        self._shards[shard_id].removed = True

    def delete(self) -> None:
        """The table (and its stream) was deleted: every call is a fatal not-found."""
        self._deleted = True

    def expire_iterators(self) -> None:
        """Every iterator issued so far is now expired (as after 15 minutes)."""
        for position in self._iterators.values():
            position.expired = True

    # --- failure injection ---------------------------------------------------------------

    def fail(
        self, method: str, error: StreamError, *, on_call: int | None = None, times: int = 1
    ) -> None:
        """Raise a copy of ``error`` from ``method``: on its ``on_call``-th call (1-based,
        counting every call so far) and the ``times - 1`` calls after it, or from the next
        ``times`` calls when ``on_call`` is None."""
        self._failures.append(_Failure(method, error, on_call, times))

    def throttle(
        self, method: str = "get_records", *, on_call: int | None = None, times: int = 1
    ) -> None:
        """Shorthand for a ``LimitExceededException``, the Streams API's throttling error."""
        error = TransientStreamError(
            "Rate exceeded for shard", code="LimitExceededException", status=400
        )
        self.fail(method, error, on_call=on_call, times=times)

    # --- StreamReader ----------------------------------------------------------------------

    async def latest_stream_arn(self, table: str) -> str:
        await self._enter("describe_table", f"table {table!r}")
        if table != self.table or self._deleted:
            raise StreamNotFoundError(
                "the table does not exist",
                code="ResourceNotFoundException",
                status=400,
                context=f"table {table!r}",
            )
        return self.stream_arn

    async def describe_stream(self, stream_arn: str) -> StreamDescription:
        context = f"stream {stream_arn}"
        self._check_stream(stream_arn, context)
        shards = tuple(s.describe() for s in self._shards.values() if not s.removed)
        pages = max(1, -(-len(shards) // self._describe_page_size))
        for _ in range(pages):  # one billed call per page, as the real client pays
            await self._enter("describe_stream", context)
        return StreamDescription(
            stream_arn=self.stream_arn,
            status="ENABLED",
            table_name=self.table,
            view_type=self.view_type,
            key_schema=tuple(
                KeyAttribute(name, "HASH" if i == 0 else "RANGE")
                for i, name in enumerate(self.key_schema)
            ),
            shards=shards,
            stream_label="memory",
        )

    async def child_shards(self, stream_arn: str, shard_id: str) -> list[Shard]:
        context = f"stream {stream_arn} shard {shard_id}"
        self._check_stream(stream_arn, context)
        await self._enter("describe_stream", context)
        return [
            s.describe()
            for s in self._shards.values()
            if s.parent_shard_id == shard_id and not s.removed
        ]

    async def get_shard_iterator(
        self,
        stream_arn: str,
        shard_id: str,
        kind: IteratorKind,
        sequence_number: str | None = None,
    ) -> ShardIterator:
        context = f"stream {stream_arn} shard {shard_id}"
        await self._enter("get_shard_iterator", context)
        self._check_stream(stream_arn, context)
        shard = self._shards.get(shard_id)
        if shard is None or shard.removed:
            raise StreamNotFoundError(
                "Requested resource not found: Shard does not exist",
                code="ResourceNotFoundException",
                status=400,
                context=context,
            )
        return self._issue(shard_id, shard.start_index(kind, sequence_number, context))

    async def get_records(
        self, iterator: str, limit: int = 1000, *, shard_id: str | None = None
    ) -> RecordsPage:
        position = self._iterators.get(str(iterator))
        if position is not None and shard_id not in (None, position.shard_id):
            position = None  # an iterator of another shard than the caller says: not valid
        shard_name = position.shard_id if position is not None else "(unknown)"
        context = f"stream {self.stream_arn} shard {shard_name}"
        await self._enter("get_records", context)
        if not 1 <= limit <= 1000:
            raise InvalidRequestError(
                f"Limit must be 1..1000, not {limit}",
                code="ValidationException",
                status=400,
                context=context,
            )
        if position is None:
            raise InvalidRequestError(
                "Invalid ShardIterator", code="ValidationException", status=400, context=context
            )
        self._check_stream(self.stream_arn, context)
        if self._expired(position):
            raise ExpiredIteratorError(
                "Iterator expired. The iterator is valid for 15 minutes.",
                code="ExpiredIteratorException",
                status=400,
                context=context,
            )
        shard = self._shards[position.shard_id]
        if shard.removed or position.index < shard.horizon:
            raise TrimmedDataError(
                "The operation attempted to read past the oldest stream record in a shard.",
                code="TrimmedDataAccessException",
                status=400,
                context=context,
            )
        end = min(len(shard.records), position.index + limit)
        records = [
            ChangeRecord.from_raw(raw, shard.shard_id)
            for raw in shard.records[position.index : end]
        ]
        if shard.read_to_end(end):
            return RecordsPage(records, None)
        return RecordsPage(records, self._issue(shard.shard_id, end))

    # --- internals ---------------------------------------------------------------------------

    async def _enter(self, method: str, context: str) -> None:
        """Count the call, raise an injected failure if one is due, and yield to the loop
        (a real call always does, and tests of concurrent consumers rely on it)."""
        self.calls[method] += 1
        number = self.calls[method]
        for failure in self._failures:
            due = failure.on_call is None or number >= failure.on_call
            if failure.method == method and failure.remaining > 0 and due:
                failure.remaining -= 1
                error = failure.error
                raise type(error)(
                    error.message,
                    code=error.code,
                    status=error.status,
                    context=error.context or context,
                )
        await asyncio.sleep(0)

    def _issue(self, shard_id: str, index: int) -> ShardIterator:
        self._next_iterator += 1
        value = f"{self.stream_arn}|1|memory-{self._next_iterator}"
        self._iterators[value] = _Position(shard_id, index, self._clock())
        return ShardIterator(value, stream_arn=self.stream_arn, shard_id=shard_id)

    def _expired(self, position: _Position) -> bool:
        if position.expired:
            return True
        ttl = self._iterator_ttl
        return ttl is not None and self._clock() - position.issued_at > ttl

    def _check_stream(self, stream_arn: str, context: str) -> None:
        if stream_arn != self.stream_arn or self._deleted:
            raise StreamNotFoundError(
                "Requested resource not found: Stream not found",
                code="ResourceNotFoundException",
                status=400,
                context=context,
            )

    def _open_shard(self, shard_id: str) -> MemoryShard:
        shard = self._shards[shard_id]
        if not shard.is_open:
            raise ValueError(f"shard {shard_id} is closed")
        return shard

    def _take_sequence(self) -> int:
        self._next_sequence += 1
        return self._next_sequence
