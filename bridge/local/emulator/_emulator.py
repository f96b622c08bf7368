"""The DynamoDB Streams API over in-memory streams, with no I/O and ``now`` passed in.

Requests and answers are the decoded JSON of the wire protocol, so the HTTP layer only moves
bytes, and tests can drive every behaviour (rotation, expiry, trimming) on a virtual clock.
One lock guards all state: the HTTP server calls in from many threads, and moto's write path
calls ``record_change`` from those same threads.
"""

from __future__ import annotations

import os
import random
import threading
from collections import Counter
from collections.abc import Mapping

import orjson

from bridge.local.emulator._errors import (
    ResourceNotFoundError,
    TrimmedDataAccessError,
    ValidationError,
)
from bridge.local.emulator._iterators import IteratorCodec, IteratorPosition
from bridge.local.emulator._records import CapturedChange
from bridge.local.emulator._requests import (
    bounded_int,
    optional_object,
    optional_string,
    required_string,
)
from bridge.local.emulator._sequence import (
    SHARD_SPAN,
    SequenceBlocks,
    format_sequence,
    parse_sequence,
)
from bridge.local.emulator._settings import StreamSettings
from bridge.local.emulator._shard import Shard
from bridge.local.emulator._stream import Stream, StreamIdentity

MAX_RECORDS_BYTES = 1 << 20  # GetRecords answers at most 1 MB, like the service
ITERATOR_TYPES = ("TRIM_HORIZON", "LATEST", "AT_SEQUENCE_NUMBER", "AFTER_SEQUENCE_NUMBER")


class StreamsEmulator:
    def __init__(
        self,
        settings: StreamSettings | None = None,
        *,
        secret: bytes | None = None,
        seed: int | None = None,
        sequence_span: int = SHARD_SPAN,
    ) -> None:
        """``sequence_span`` is how many sequence numbers each shard gets (tests make it small
        to see a shard that used them all close)."""
        self.settings = settings or StreamSettings()
        self._rng = random.Random(seed)
        # A fresh secret per emulator: iterators from an earlier run are simply invalid.
        self._codec = IteratorCodec(secret or os.urandom(32), self.settings.iterator_ttl_seconds)
        self._sequence_blocks = SequenceBlocks(sequence_span)
        self._streams: dict[str, Stream] = {}
        self._lock = threading.RLock()
        self._counts: Counter[str] = Counter()

    # -- change capture ---------------------------------------------------------------------

    def create_stream(self, identity: StreamIdentity, now: float) -> None:
        with self._lock:
            if identity.arn not in self._streams:
                self._streams[identity.arn] = Stream(
                    identity, self.settings, self._sequence_blocks, self._rng, now
                )

    def disable_stream(self, arn: str, now: float) -> None:
        with self._lock:
            stream = self._streams.get(arn)
            if stream is not None and stream.enabled:
                stream.disable(now)

    def enabled_stream(self, table_name: str) -> StreamIdentity | None:
        """The table's enabled stream (a table has at most one), or None."""
        with self._lock:
            for stream in self._streams.values():
                if stream.enabled and stream.identity.table_name == table_name:
                    return stream.identity
            return None

    def has_stream(self, arn: str) -> bool:
        with self._lock:
            return arn in self._streams

    def record_change(self, arn: str, change: CapturedChange, now: float) -> str:
        """Append one change to its stream; returns its sequence number."""
        with self._lock:
            stream = self._stream(arn)
            sequence = stream.append(change, f"{self._rng.getrandbits(128):032x}", now)
            self._counts["records_written"] += 1
            return format_sequence(sequence)

    # -- the Streams API --------------------------------------------------------------------

    def list_streams(
        self, request: Mapping[str, object], now: float, region: str | None = None
    ) -> dict[str, object]:
        table = optional_string(request, "TableName")
        limit = bounded_int(request, "Limit", 100, 1, 100)
        start = optional_string(request, "ExclusiveStartStreamArn")
        with self._lock:
            self._counts["ListStreams"] += 1
            streams = [
                s
                for s in self._streams.values()
                if (table is None or s.identity.table_name == table)
                and (region is None or s.identity.region == region)
            ]
        if start is not None:
            arns = [s.arn for s in streams]
            streams = streams[arns.index(start) + 1 :] if start in arns else []
        page = streams[:limit]
        answer: dict[str, object] = {
            "Streams": [
                {
                    "StreamArn": s.arn,
                    "TableName": s.identity.table_name,
                    "StreamLabel": s.identity.label,
                }
                for s in page
            ]
        }
        if len(streams) > limit:
            answer["LastEvaluatedStreamArn"] = page[-1].arn
        return answer

    def describe_stream(self, request: Mapping[str, object], now: float) -> dict[str, object]:
        arn = required_string(request, "StreamArn")
        limit = bounded_int(request, "Limit", 100, 1, 100)
        start = optional_string(request, "ExclusiveStartShardId")
        parent = _child_filter(optional_object(request, "ShardFilter"))
        with self._lock:
            self._counts["DescribeStream"] += 1
            stream = self._stream(arn)
            stream.maintain(now)
            shards = list(stream.shard_ids_after(start)) if start else list(stream.shards())
            if parent is not None:
                shards = [s for s in shards if s.parent_id == parent]
            page = shards[:limit]
            identity = stream.identity
            description: dict[str, object] = {
                "StreamArn": identity.arn,
                "StreamLabel": identity.label,
                "StreamStatus": "ENABLED" if stream.enabled else "DISABLED",
                "StreamViewType": identity.view_type,
                "CreationRequestDateTime": round(stream.created_at, 3),
                "TableName": identity.table_name,
                "KeySchema": [
                    {"AttributeName": name, "KeyType": kind} for name, kind in identity.key_schema
                ],
                "Shards": [shard.describe() for shard in page],
            }
        if len(shards) > limit:
            description["LastEvaluatedShardId"] = page[-1].shard_id
        return {"StreamDescription": description}

    def get_shard_iterator(self, request: Mapping[str, object], now: float) -> dict[str, object]:
        arn = required_string(request, "StreamArn")
        shard_id = required_string(request, "ShardId")
        kind = required_string(request, "ShardIteratorType")
        given = optional_string(request, "SequenceNumber")
        if kind not in ITERATOR_TYPES:
            raise ValidationError(
                f"Value {kind!r} at 'shardIteratorType' failed to satisfy constraint: "
                f"Member must satisfy enum value set: [{', '.join(ITERATOR_TYPES)}]"
            )
        with self._lock:
            self._counts["GetShardIterator"] += 1
            stream = self._stream(arn)
            stream.maintain(now)
            shard = stream.shard(shard_id)
            position = self._start_position(shard, kind, given)
            self._counts["iterators_issued"] += 1
        token = self._codec.encode(IteratorPosition(arn, shard_id, position, now))
        return {"ShardIterator": token}

    def get_records(self, request: Mapping[str, object], now: float) -> bytes:
        """The GetRecords answer as JSON bytes: stored records are joined, not re-encoded."""
        token = required_string(request, "ShardIterator")
        limit = bounded_int(request, "Limit", 1000, 1, 1000)
        where = self._codec.decode(token, now)
        with self._lock:
            self._counts["GetRecords"] += 1
            stream = self._stream(where.stream_arn)
            stream.maintain(now)
            try:
                shard = stream.shard(where.shard_id)
            except ResourceNotFoundError:
                raise TrimmedDataAccessError(
                    f"Shard {where.shard_id} and all its records were trimmed"
                ) from None
            read = shard.read(where.position, limit, MAX_RECORDS_BYTES)
            self._counts["records_read"] += len(read.records)
            if not read.exhausted:
                self._counts["iterators_issued"] += 1
        body = b'{"Records":[' + b",".join(read.records) + b"]"
        if not read.exhausted:
            following = IteratorPosition(where.stream_arn, where.shard_id, read.next_position, now)
            body += b',"NextShardIterator":' + orjson.dumps(self._codec.encode(following))
        return body + b"}"

    # -- control ----------------------------------------------------------------------------

    def rotate(self, now: float, table_name: str | None = None) -> dict[str, list[str]]:
        """Close every open shard (of one table, or all) now; returns closed and opened ids."""
        with self._lock:
            closed: list[str] = []
            opened: list[str] = []
            for stream in self._streams.values():
                if table_name is not None and stream.identity.table_name != table_name:
                    continue
                stream.maintain(now)
                closed += [shard.shard_id for shard in stream.open_shards()]
                opened += [shard.shard_id for shard in stream.rotate_all(now)]
            return {"closed": closed, "opened": opened}

    def trim(self, now: float) -> dict[str, int]:
        """Apply retention to every stream now (it otherwise happens lazily on each call)."""
        with self._lock:
            reports = [stream.trim(now) for stream in self._streams.values()]
        return {
            "records": sum(r.records for r in reports),
            "bytes": sum(r.bytes for r in reports),
            "shards_removed": sum(r.shards_removed for r in reports),
        }

    def reset(self) -> None:
        """Forget every stream and count, as moto forgets its tables on ``/moto-api/reset``.

        Two things deliberately carry on. Sequence numbers keep growing, so no number of the
        new streams was ever seen before: a checkpoint from before cannot land inside one. And
        the iterators issued so far are refused, as they name streams that are gone. The
        random source for ids carries on too, so event ids stay unique across a reset.
        """
        with self._lock:
            self._streams.clear()
            self._counts.clear()
            self._codec.retire_issued()

    def stats(self) -> dict[str, int]:
        """Counts for tests and operators; ``iterators_held`` is 0 by design (signed tokens)."""
        with self._lock:
            shards = [shard for stream in self._streams.values() for shard in stream.shards()]
            return {
                "streams": len(self._streams),
                "shards_open": sum(1 for shard in shards if not shard.closed),
                "shards_closed": sum(1 for shard in shards if shard.closed),
                "records_retained": sum(shard.retained for shard in shards),
                "record_bytes": sum(shard.record_bytes for shard in shards),
                "iterators_held": 0,
                "records_trimmed": sum(s.records_trimmed for s in self._streams.values()),
                "shards_removed": sum(s.shards_removed for s in self._streams.values()),
                **self._counts,
            }

    # -- internals --------------------------------------------------------------------------

    def _stream(self, arn: str) -> Stream:
        try:
            return self._streams[arn]
        except KeyError:
            raise ResourceNotFoundError(
                f"Requested resource not found: Stream: {arn} not found"
            ) from None

    def _start_position(self, shard: Shard, kind: str, given: str | None) -> int:
        if kind == "TRIM_HORIZON":
            return shard.trim_horizon
        if kind == "LATEST":
            return shard.latest()
        if given is None:
            raise ValidationError(f"SequenceNumber is required for {kind}")
        sequence = parse_sequence(given)
        if shard.has_trimmed(sequence):
            raise TrimmedDataAccessError(
                f"Sequence number {given} of {shard.shard_id} was trimmed "
                "(older than the stream's retention)"
            )
        if not shard.contains(sequence):
            raise ValidationError(f"Invalid SequenceNumber {given} for shard {shard.shard_id}")
        return sequence if kind == "AT_SEQUENCE_NUMBER" else sequence + 1


def _child_filter(shard_filter: Mapping[str, object] | None) -> str | None:
    if shard_filter is None:
        return None
    if shard_filter.get("Type") != "CHILD_SHARDS":
        raise ValidationError("ShardFilter.Type must be CHILD_SHARDS")
    return required_string(shard_filter, "ShardId")
