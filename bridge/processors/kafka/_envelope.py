"""The Kafka message of one change: key, value (the envelope) and headers. Pure: no Kafka here.

Encoding rules (docs/kafka.md is the user-facing version):

- Integers whose magnitude fits in 53 bits are JSON numbers: every JSON reader, JavaScript's
  included, holds them exactly. Every other number (a fraction, a larger integer) is a JSON
  string with its exact decimal text, so no reader can round it by accident.
- Binary is base64 (standard alphabet, padded). Sets are JSON arrays in sorted order.
- The key is the item's primary key with the same rules, keys sorted, no whitespace: one item
  always has the same key bytes, so it always lands in the same partition.
"""

from __future__ import annotations

import binascii
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import orjson

from bridge.records import decode_number

if TYPE_CHECKING:
    from bridge.records import ChangeRecord

Headers = list[tuple[str, str | bytes | None]]
Message = tuple[bytes, bytes | None, Headers]
"""(key, value, headers); a value of None is a tombstone."""

SAFE_INTEGER = 2**53 - 1

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MILLISECOND = timedelta(milliseconds=1)
_EVENTS = {name: name.encode() for name in ("INSERT", "MODIFY", "REMOVE")}


def _to_json(value: Any) -> Any:
    """orjson's hook for what it cannot encode by itself."""
    if isinstance(value, Decimal):
        # As a record decoded from the stream would hold it: integral values are ints.
        if value.is_finite() and value == value.to_integral_value():
            return _json_number(int(value))
        return str(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return binascii.b2a_base64(value, newline=False).decode("ascii")
    if isinstance(value, set | frozenset):
        return sorted(value)
    raise TypeError(f"cannot encode {type(value).__name__} in a Kafka envelope: {value!r}")


def _big_integers_as_text(value: Any) -> Any:
    """The slow path, for the rare item holding an integer beyond 53 bits."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return value if -SAFE_INTEGER <= value <= SAFE_INTEGER else str(value)
    if isinstance(value, Mapping):
        return {name: _big_integers_as_text(item) for name, item in value.items()}
    if isinstance(value, list | tuple):
        return [_big_integers_as_text(item) for item in value]
    if isinstance(value, set | frozenset):
        return [_big_integers_as_text(item) for item in sorted(value)]
    return value


def dumps(value: Any, *, sort_keys: bool = False) -> bytes:
    """JSON bytes by the rules above."""
    option = orjson.OPT_STRICT_INTEGER | (orjson.OPT_SORT_KEYS if sort_keys else 0)
    try:
        return orjson.dumps(value, default=_to_json, option=option)
    except TypeError:
        pass  # most likely an integer beyond 53 bits; a genuine error raises again below
    return orjson.dumps(_big_integers_as_text(value), default=_to_json, option=option)


def _json_number(number: int | Decimal) -> int | str:
    if isinstance(number, int) and -SAFE_INTEGER <= number <= SAFE_INTEGER:
        return number
    return str(number)


def _number_from_text(text: str) -> int | str:
    # Most numbers are short integers: int() them without the general (slower) rules.
    digits = text[1:] if text[:1] == "-" else text
    if digits.isdigit() and len(digits) <= 15:  # below 10**15 < 2**53
        return int(text)
    return _json_number(decode_number(text))


def _binary_text(value: str | bytes) -> str:
    # On the wire binary already is base64; botocore's parser hands over bytes instead.
    if isinstance(value, str):
        return value
    return binascii.b2a_base64(value, newline=False).decode("ascii")


def _binary_bytes(value: str | bytes) -> bytes:
    return binascii.a2b_base64(value) if isinstance(value, str) else bytes(value)


def plain_value(attribute: Mapping[str, Any]) -> Any:
    """One DynamoDB JSON attribute value straight to its JSON form by the rules above.

    The same result as decoding it (``bridge.records.decode_value``) and encoding the decoded
    value, without building Decimals, bytes and sets only to turn them back into text.
    """
    for tag, value in attribute.items():
        if tag == "S":
            return value
        if tag == "N":
            return _number_from_text(value)
        if tag == "M":
            return {name: plain_value(item) for name, item in value.items()}
        if tag == "L":
            return [plain_value(item) for item in value]
        if tag == "BOOL":
            return bool(value)
        if tag == "NULL":
            return None
        if tag == "SS":
            return sorted(value)
        if tag == "NS":
            return [_json_number(number) for number in sorted(map(decode_number, value))]
        if tag == "B":
            return _binary_text(value)
        if tag == "BS":
            return [_to_json(item) for item in sorted(map(_binary_bytes, value))]
        raise ValueError(f"unknown DynamoDB attribute type {tag!r}")
    raise ValueError("empty DynamoDB attribute value")


def plain_image(attributes: Mapping[str, Mapping[str, Any]] | None) -> dict[str, Any] | None:
    if attributes is None:
        return None
    return {name: plain_value(value) for name, value in attributes.items()}


def canonical_key(keys: Mapping[str, Any]) -> bytes:
    """The message key: the primary key as canonical JSON (sorted keys, compact)."""
    return dumps(keys, sort_keys=True)


class EnvelopeEncoder:
    """Turns a change into its Kafka message(s): the envelope, then a tombstone if asked.

    A record that carries its DynamoDB JSON (``raw``, as every record read from a stream does)
    is encoded straight from it; one built by hand from plain values is encoded from those.
    Both give the same bytes.
    """

    def __init__(self, table: str, *, include_old_image: bool, tombstones: bool) -> None:
        self.table = table
        self.include_old_image = include_old_image
        self.tombstones = tombstones
        self._table_header = table.encode()

    def messages(self, record: ChangeRecord) -> Iterator[Message]:
        stream_record = record.raw.get("dynamodb")
        if stream_record is not None and "Keys" in stream_record:
            keys = plain_image(stream_record["Keys"])
            key = orjson.dumps(keys, option=orjson.OPT_SORT_KEYS)
            new = plain_image(stream_record.get("NewImage"))
            old = plain_image(stream_record.get("OldImage")) if self.include_old_image else None
            value = orjson.dumps(self._envelope(record, keys, new, old))
        else:
            key = canonical_key(record.keys)
            old = record.old_image if self.include_old_image else None
            value = dumps(self._envelope(record, record.keys, record.new_image, old))
        headers: Headers = [
            ("bridge-event", _EVENTS[record.event]),
            ("bridge-table", self._table_header),
            ("bridge-shard", record.shard_id.encode()),
            ("bridge-seq", record.sequence_number.encode()),
        ]
        yield key, value, headers
        if self.tombstones and record.event == "REMOVE":
            # Same key, null value: log compaction then drops the item, as with Debezium.
            yield key, None, headers

    def _envelope(self, record: ChangeRecord, keys: Any, new: Any, old: Any) -> dict[str, Any]:
        since_epoch = record.approximate_creation_time - _EPOCH
        return {
            "table": self.table,
            "event": record.event,
            "keys": keys,
            "new": new,
            "old": old,
            "seq": record.sequence_number,
            "shard": record.shard_id,
            "ts": since_epoch // _MILLISECOND,
        }
