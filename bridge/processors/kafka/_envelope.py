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
import math
import re
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
Envelope = tuple[bytes, bytes, Headers]
"""The message that carries a change's envelope."""

SAFE_INTEGER = 2**53 - 1

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MILLISECOND = timedelta(milliseconds=1)
_YEAR_2200 = 7_258_118_400  # epoch seconds; beyond it, fromtimestamp's own limits apply
_EVENTS = {name: name.encode() for name in ("INSERT", "MODIFY", "REMOVE")}
# A fraction that is not integral (last digit not 0), without superfluous leading zeros and
# not so small that Decimal would print it in exponent form: its JSON text is itself.
_PLAIN_FRACTION = re.compile(r"-?(?:[1-9][0-9]*|0(?=\.0{0,5}[1-9]))\.[0-9]*[1-9]")


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
    if _PLAIN_FRACTION.fullmatch(text):
        return text  # what str(Decimal(text)) gives, without raising from int() first
    return _json_number(decode_number(text))


def _binary_text(value: str | bytes) -> str:
    # On the wire binary already is base64; botocore's parser hands over bytes instead.
    if isinstance(value, str):
        return value
    return binascii.b2a_base64(value, newline=False).decode("ascii")


def _binary_bytes(value: str | bytes) -> bytes:
    return binascii.a2b_base64(value) if isinstance(value, str) else bytes(value)


# The functions below run for every attribute of every change forwarded, so they trade some
# repetition for speed: strings and short non-negative integers (most attributes) are handled
# inline, without a call; membership tests in order of how common the types are beat
# unpacking the one-entry dict. scripts/bench_kafka.py measures them.


def plain_value(attribute: Mapping[str, Any]) -> Any:
    """One DynamoDB JSON attribute value straight to its JSON form by the rules above.

    The same result as decoding it (``bridge.records.decode_value``) and encoding the decoded
    value, without building Decimals, bytes and sets only to turn them back into text.
    """
    if "S" in attribute:
        return attribute["S"]
    if "N" in attribute:
        text = attribute["N"]
        return int(text) if text.isdigit() and len(text) <= 15 else _number_from_text(text)
    return _plain_other(attribute)


def _plain_other(attribute: Mapping[str, Any]) -> Any:
    """``plain_value`` of an attribute that is neither a string nor a number."""
    if "M" in attribute:
        return _plain_map(attribute["M"])
    if "L" in attribute:
        return [
            element["S"]
            if "S" in element
            else _plain_map(element["M"])
            if "M" in element
            else plain_value(element)
            for element in attribute["L"]
        ]
    if "BOOL" in attribute:
        return bool(attribute["BOOL"])
    if "NULL" in attribute:
        return None
    if "SS" in attribute:
        return sorted(attribute["SS"])
    if "NS" in attribute:
        return [_json_number(number) for number in sorted(map(decode_number, attribute["NS"]))]
    if "B" in attribute:
        return _binary_text(attribute["B"])
    if "BS" in attribute:
        return [_to_json(item) for item in sorted(map(_binary_bytes, attribute["BS"]))]
    if attribute:
        raise ValueError(f"unknown DynamoDB attribute type {next(iter(attribute))!r}")
    raise ValueError("empty DynamoDB attribute value")


def _plain_map(attributes: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    plain: dict[str, Any] = {}
    for name, attribute in attributes.items():
        if "S" in attribute:
            plain[name] = attribute["S"]
        elif "N" in attribute:
            text = attribute["N"]
            plain[name] = (
                int(text) if text.isdigit() and len(text) <= 15 else _number_from_text(text)
            )
        else:
            plain[name] = _plain_other(attribute)
    return plain


def _plain_map_like(
    attributes: Mapping[str, Mapping[str, Any]],
    seen: Mapping[str, Mapping[str, Any]],
    seen_plain: Mapping[str, Any],
) -> dict[str, Any]:
    """``_plain_map(attributes)``, reusing the values of ``seen`` (already made plain as
    ``seen_plain``) where an attribute is the same in both: a MODIFY's old image mostly
    repeats its new one, and the keys always do. Comparing two attributes is C code;
    converting one again is not."""
    plain: dict[str, Any] = {}
    for name, attribute in attributes.items():
        if seen.get(name) == attribute:
            plain[name] = seen_plain[name]
        elif "S" in attribute:
            plain[name] = attribute["S"]
        else:
            plain[name] = plain_value(attribute)
    return plain


def plain_image(attributes: Mapping[str, Mapping[str, Any]] | None) -> dict[str, Any] | None:
    if attributes is None:
        return None
    return _plain_map(attributes)


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
        stream_record = record.raw.get("dynamodb")
        if stream_record is not None and "Keys" in stream_record:
            key, value = self._from_stream(record, stream_record)
        else:
            key = canonical_key(record.keys)
            old = record.old_image if self.include_old_image else None
            value = dumps(self._envelope(record, record.keys, record.new_image, old))
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
        ]
        return key, value, headers

    def _from_stream(
        self, record: ChangeRecord, stream_record: Mapping[str, Any]
    ) -> tuple[bytes, bytes]:
        # Each image is made plain once; the old image and the keys take what they share
        # with an image already made plain from it instead of converting it again.
        new_raw = stream_record.get("NewImage")
        old_raw = stream_record.get("OldImage") if self.include_old_image else None
        keys_raw = stream_record["Keys"]
        new = old = None
        if new_raw is not None:
            new = _plain_map(new_raw)
            keys = _plain_map_like(keys_raw, new_raw, new)
            if old_raw is not None:
                old = _plain_map_like(old_raw, new_raw, new)
        elif old_raw is not None:
            old = _plain_map(old_raw)
            keys = _plain_map_like(keys_raw, old_raw, old)
        else:
            keys = _plain_map(keys_raw)
        key = orjson.dumps(keys, option=orjson.OPT_SORT_KEYS)
        created = stream_record.get("ApproximateCreationDateTime")
        last_created, last_ts = self._created  # the records of a batch mostly share it
        if created == last_created and type(created) is type(last_created):
            ts = last_ts
        elif (type(created) is float or type(created) is int) and 0 <= created < _YEAR_2200:
            ts = _epoch_ms(created)
            self._created = (created, ts)
        else:  # botocore's datetime, or nothing sensible: the record's own rules decide
            ts = (record.approximate_creation_time - _EPOCH) // _MILLISECOND
        return key, orjson.dumps(self._envelope(record, keys, new, old, ts))

    def _envelope(
        self, record: ChangeRecord, keys: Any, new: Any, old: Any, ts: int | None = None
    ) -> dict[str, Any]:
        if ts is None:
            ts = (record.approximate_creation_time - _EPOCH) // _MILLISECOND
        return {
            "table": self.table,
            "event": record.event,
            "keys": keys,
            "new": new,
            "old": old,
            "seq": record.sequence_number,
            "shard": record.shard_id,
            "ts": ts,
        }


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
