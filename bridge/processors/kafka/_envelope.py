"""The Kafka message of one change: key, value (the envelope) and headers. Pure: no Kafka here.

Item values (``keys``, ``new``, ``old``) follow ``bridge.item_json`` in its portable form:
integers within 53 bits as JSON numbers, every other number as a string with its exact
canonical text, binary as base64, sets as sorted arrays (docs/kafka.md is the user-facing
version). The key is the item's primary key by the same rules, keys sorted, no whitespace:
one item always has the same key bytes, so it always lands in the same partition.

Portable JSON does not say which strings were numbers, so the ``bridge-key-types`` header
names each key attribute's DynamoDB type (a reader's key columns then never depend on which
message it read first), and with ``types`` the envelope carries the keys and images in
DynamoDB JSON as well.
"""

from __future__ import annotations

import binascii
import math
import time
from collections.abc import Iterator, Mapping, Set
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import orjson

from bridge.item_json import PORTABLE, dumps, dynamodb_json
from bridge.processors.kafka import _debezium as debezium
from bridge.records import encode_item

if TYPE_CHECKING:
    from bridge.records import ChangeRecord

Headers = list[tuple[str, str | bytes | None]]
Message = tuple[bytes, bytes | None, Headers]
"""(key, value, headers); a value of None is a tombstone."""
Envelope = tuple[bytes, bytes, Headers]
"""The message that carries a change's envelope."""

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MILLISECOND = timedelta(milliseconds=1)
_YEAR_2200 = 7_258_118_400  # epoch seconds; beyond it, fromtimestamp's own limits apply
_EVENTS = {name: name.encode() for name in ("INSERT", "MODIFY", "REMOVE")}
KEY_TYPES_HEADER = "bridge-key-types"

KeyShape = tuple[tuple[str, str], ...]
"""(key attribute, DynamoDB type letter) in the order of the record's ``Keys``."""


def canonical_key(keys: Mapping[str, Any]) -> bytes:
    """The message key of an item whose primary key is ``keys`` (plain Python values)."""
    return dumps(PORTABLE.item(encode_item(keys)), sort_keys=True)


def key_shape(keys: Mapping[str, Mapping[str, Any]]) -> KeyShape:
    """The key attributes of DynamoDB JSON ``Keys`` (or an item) and their type letters."""
    return tuple([(name, next(iter(attribute))) for name, attribute in keys.items()])


def key_types_header(shape: KeyShape) -> tuple[str, bytes]:
    """``bridge-key-types``: a JSON object of each key attribute's type letter, in key order,
    e.g. ``{"pk":"S","sk":"N"}``."""
    return KEY_TYPES_HEADER, dumps(dict(shape))


def wire_json(value: Any) -> Any:
    """What ``orjson`` cannot write of DynamoDB JSON as botocore or a caller hands it over:
    binary as the wire's base64, sets and other mappings as lists and objects."""
    if isinstance(value, bytes | bytearray | memoryview):
        return binascii.b2a_base64(bytes(value), newline=False).decode("ascii")
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, Set | tuple):
        return list(value)
    raise TypeError(f"not DynamoDB JSON: {type(value).__name__}")


class EnvelopeEncoder:
    """Turns a change into its Kafka message(s): the envelope, then a tombstone if asked.

    Every record is encoded from its DynamoDB JSON: the ``raw`` a record read from a stream
    carries, or its plain values encoded as the stream would have sent them for one built by
    hand. Both give the same bytes.
    """

    def __init__(
        self,
        table: str,
        *,
        include_old_image: bool,
        tombstones: bool,
        types: bool = False,
        debezium: bool = False,
    ) -> None:
        self.table = table
        self.include_old_image = include_old_image
        self.tombstones = tombstones
        self.types = types
        self.debezium = debezium
        # A table's key shape hardly ever changes: its header is built once per shape.
        self._key_types: dict[KeyShape, tuple[str, bytes]] = {}
        # Headers but the sequence number's are shared by many messages: built once each.
        self._table_header = ("bridge-table", table.encode())
        self._event_headers = {name: ("bridge-event", value) for name, value in _EVENTS.items()}
        # The records of a batch share their shard: its header is built once per batch.
        self._shard: tuple[str, tuple[str, bytes]] = ("", ("bridge-shard", b""))
        self._created: tuple[float, int] = (-1.0, 0)  # the last creation time and its ms

    def messages(self, record: ChangeRecord) -> Iterator[Message]:
        message = self.envelope(record)
        yield message
        if self.tombstones and record.event == "REMOVE":
            # Same key, null value: log compaction then drops the item, as with Debezium.
            yield message[0], None, message[2]

    def envelope(self, record: ChangeRecord) -> Envelope:
        """The change's envelope message (without the tombstone ``messages`` may add)."""
        stream_record = dynamodb_json(record)
        key, value = self._encode(record, stream_record)
        shape = key_shape(stream_record["Keys"])
        key_types = self._key_types.get(shape)
        if key_types is None:
            key_types = self._key_types[shape] = key_types_header(shape)
        shard_id = record.shard_id
        last_shard, shard_header = self._shard
        if last_shard != shard_id:
            shard_header = ("bridge-shard", shard_id.encode())
            self._shard = (shard_id, shard_header)
        headers: Headers = [
            self._event_headers[record.event],
            self._table_header,
            shard_header,
            ("bridge-seq", record.sequence_number.encode()),
            key_types,
        ]
        return key, value, headers

    def _encode(
        self, record: ChangeRecord, stream_record: Mapping[str, Any]
    ) -> tuple[bytes, bytes]:
        # Each image is made plain once; the old image and the keys take what they share
        # with an image already made plain from it instead of converting it again.
        new_raw = stream_record.get("NewImage")
        old_raw = stream_record.get("OldImage") if self.include_old_image else None
        keys_raw = stream_record["Keys"]
        new = old = None
        if new_raw is not None:
            new = PORTABLE.item(new_raw)
            keys = PORTABLE.item_like(keys_raw, new_raw, new)
            if old_raw is not None:
                old = PORTABLE.item_like(old_raw, new_raw, new)
        elif old_raw is not None:
            old = PORTABLE.item(old_raw)
            keys = PORTABLE.item_like(keys_raw, old_raw, old)
        else:
            keys = PORTABLE.item(keys_raw)
        created = stream_record.get("ApproximateCreationDateTime")
        last_created, last_ts = self._created  # the records of a batch mostly share it
        if created == last_created and type(created) is type(last_created):
            ts = last_ts
        elif (type(created) is float or type(created) is int) and 0 <= created < _YEAR_2200:
            ts = _epoch_ms(created)
            self._created = (created, ts)
        else:  # botocore's datetime, a record built by hand, or nothing sensible
            ts = (record.approximate_creation_time - _EPOCH) // _MILLISECOND
        envelope: dict[str, Any]
        if self.debezium:
            envelope = debezium.change_value(
                self.table,
                record.event,
                new,
                old,
                seq=record.sequence_number,
                shard=record.shard_id,
                ts_ms=ts,
                now_ms=time.time_ns() // 1_000_000,
            )
        else:
            envelope = {
                "table": self.table,
                "event": record.event,
                "keys": keys,
                "new": new,
                "old": old,
                "seq": record.sequence_number,
                "shard": record.shard_id,
                "ts": ts,
            }
        if self.types:
            envelope["types"] = {"keys": keys_raw, "new": new_raw, "old": old_raw}
            return dumps(keys, sort_keys=True), orjson.dumps(envelope, default=wire_json)
        return dumps(keys, sort_keys=True), dumps(envelope)


def _epoch_ms(seconds: float) -> int:
    """``(datetime.fromtimestamp(seconds, UTC) - epoch) // 1 ms`` without the datetime.

    ``ChangeRecord.approximate_creation_time`` is that datetime: fromtimestamp rounds to the
    microsecond, half to even, from the fraction ``modf`` splits off; the millisecond is then
    floored. Done the same way here, so both give the same number.
    """
    fraction, whole = math.modf(float(seconds))
    micros = round(fraction * 1e6)
    if micros >= 1_000_000:
        micros -= 1_000_000
        whole += 1.0
    return int(whole) * 1000 + micros // 1000
