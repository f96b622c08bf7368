"""The record model every processor receives, and the DynamoDB JSON codec behind it.

A ``ChangeRecord`` keeps the record exactly as the Streams API sent it (``raw``, DynamoDB JSON
as on the wire: numbers as strings, binary as base64) and decodes its images into plain Python
values only when someone asks for them. Decoding images costs several times more than parsing
the JSON itself, and a processor that forwards ``raw`` (or only looks at the keys) should not
pay for it; ``scripts/bench_decode.py`` measures both.

Image values follow boto3's ``TypeDeserializer`` with two deliberate differences: integral
numbers become ``int`` (``Decimal`` only where a fraction remains), and binary becomes plain
``bytes`` rather than ``boto3.dynamodb.types.Binary``.
"""

from __future__ import annotations

import binascii
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Literal, NoReturn, cast

EventName = Literal["INSERT", "MODIFY", "REMOVE"]
Item = dict[str, Any]
"""A decoded item: attribute name to plain Python value (str, int, Decimal, bytes, bool, None,
set, list, dict)."""

_UNSET: Any = object()  # "not decoded yet"; never visible outside this module


class ChangeRecord:
    """One change to one item, from one shard, in the order the shard holds it.

    Immutable. ``keys``, ``new_image``, ``old_image`` and ``approximate_creation_time`` of a
    record built by ``from_raw`` are decoded from ``raw`` on first access and cached.
    """

    __slots__ = (
        "_created",
        "_keys",
        "_new_image",
        "_old_image",
        "event",
        "raw",
        "sequence_number",
        "shard_id",
        "size_bytes",
    )

    event: EventName
    sequence_number: str
    shard_id: str
    size_bytes: int
    raw: dict[str, Any]
    _keys: Item
    _new_image: Item | None
    _old_image: Item | None
    _created: datetime

    def __init__(  # noqa: PLR0917  # the positional order is the documented record model
        self,
        event: EventName,
        keys: Item,
        new_image: Item | None,
        old_image: Item | None,
        sequence_number: str,
        approximate_creation_time: datetime,
        shard_id: str,
        size_bytes: int,
        raw: dict[str, Any],
    ) -> None:
        _init(
            self,
            event=event,
            sequence_number=sequence_number,
            shard_id=shard_id,
            size_bytes=size_bytes,
            raw=raw,
        )
        _set(self, "_keys", keys)
        _set(self, "_new_image", new_image)
        _set(self, "_old_image", old_image)
        _set(self, "_created", approximate_creation_time)

    @classmethod
    def from_raw(cls, record: dict[str, Any], shard_id: str) -> ChangeRecord:
        """Wrap one record of a GetRecords response (DynamoDB JSON) without decoding images.

        Also accepts what botocore's parser returns for a record (``bytes`` for binary, a
        ``datetime`` creation time), so records read through aiobotocore fit too.
        """
        self = cls.__new__(cls)
        stream_record = record["dynamodb"]
        _init(
            self,
            event=record["eventName"],
            sequence_number=stream_record["SequenceNumber"],
            shard_id=shard_id,
            size_bytes=stream_record.get("SizeBytes", 0),
            raw=record,
        )
        _set(self, "_keys", _UNSET)
        _set(self, "_new_image", _UNSET)
        _set(self, "_old_image", _UNSET)
        _set(self, "_created", _UNSET)
        return self

    @property
    def keys(self) -> Item:
        """The item's primary key attributes."""
        if self._keys is _UNSET:
            _set(self, "_keys", decode_item(self.raw["dynamodb"]["Keys"]))
        return self._keys

    @property
    def new_image(self) -> Item | None:
        """The item after the change; None for REMOVE or when the stream view omits it."""
        if self._new_image is _UNSET:
            image = self.raw["dynamodb"].get("NewImage")
            _set(self, "_new_image", None if image is None else decode_item(image))
        return self._new_image

    @property
    def old_image(self) -> Item | None:
        """The item before the change; None for INSERT or when the stream view omits it."""
        if self._old_image is _UNSET:
            image = self.raw["dynamodb"].get("OldImage")
            _set(self, "_old_image", None if image is None else decode_item(image))
        return self._old_image

    @property
    def approximate_creation_time(self) -> datetime:
        """When DynamoDB wrote the change (UTC, from the record's epoch seconds)."""
        if self._created is _UNSET:
            _set(
                self, "_created", _to_datetime(self.raw["dynamodb"]["ApproximateCreationDateTime"])
            )
        return self._created

    def _fields(self) -> tuple[Any, ...]:
        return (
            self.event,
            self.keys,
            self.new_image,
            self.old_image,
            self.sequence_number,
            self.approximate_creation_time,
            self.shard_id,
            self.size_bytes,
            self.raw,
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ChangeRecord):
            return NotImplemented
        return self._fields() == other._fields()

    __hash__ = None  # type: ignore[assignment]  # images are dicts: equal records could not hash alike

    def __repr__(self) -> str:
        # The images can be large; the position and the keys identify the record.
        return (
            f"ChangeRecord(event={self.event!r}, keys={self.keys!r}, "
            f"sequence_number={self.sequence_number!r}, shard_id={self.shard_id!r})"
        )

    def __setattr__(self, name: str, value: object) -> NoReturn:
        raise AttributeError(f"ChangeRecord is immutable (cannot set {name!r})")

    def __delattr__(self, name: str) -> NoReturn:
        raise AttributeError(f"ChangeRecord is immutable (cannot delete {name!r})")

    def __reduce__(self) -> tuple[Callable[..., ChangeRecord], tuple[Any, ...]]:
        # Pickle the decoded values: the "not decoded yet" marker would not survive the trip.
        return (ChangeRecord, self._fields())


_set = object.__setattr__


def _init(
    record: ChangeRecord,
    *,
    event: EventName,
    sequence_number: str,
    shard_id: str,
    size_bytes: int,
    raw: dict[str, Any],
) -> None:
    _set(record, "event", event)
    _set(record, "sequence_number", sequence_number)
    _set(record, "shard_id", shard_id)
    _set(record, "size_bytes", size_bytes)
    _set(record, "raw", raw)


def _to_datetime(value: float | int | str | datetime) -> datetime:
    if isinstance(value, datetime):
        return value if value.tzinfo is not None else value.replace(tzinfo=UTC)
    return datetime.fromtimestamp(float(value), tz=UTC)


# --- DynamoDB JSON -> Python -------------------------------------------------------------


def decode_item(attributes: Mapping[str, Mapping[str, Any]]) -> Item:
    """Decode a map of DynamoDB JSON attribute values (an image or the keys)."""
    return {name: decode_value(value) for name, value in attributes.items()}


def decode_value(attribute: Mapping[str, Any]) -> Any:
    """Decode one DynamoDB JSON attribute value such as ``{"N": "1.5"}``.

    Tags are tested in order of how often they occur in real items; a dict lookup of a decoder
    function costs more than these comparisons for the common ones.
    """
    for tag, value in attribute.items():
        if tag == "S":
            return value
        if tag == "N":
            return decode_number(value)
        if tag == "M":
            return {name: decode_value(item) for name, item in value.items()}
        if tag == "L":
            return [decode_value(item) for item in value]
        if tag == "BOOL":
            return bool(value)
        if tag == "NULL":
            return None
        if tag == "SS":
            return set(value)
        if tag == "NS":
            return {decode_number(item) for item in value}
        if tag == "B":
            return _decode_binary(value)
        if tag == "BS":
            return {_decode_binary(item) for item in value}
        raise ValueError(f"unknown DynamoDB attribute type {tag!r}")
    raise ValueError("empty DynamoDB attribute value")


def decode_number(text: str) -> int | Decimal:
    """A DynamoDB number: ``int`` when integral (``"1E+2"`` too), ``Decimal`` otherwise."""
    try:
        return int(text)
    except ValueError:
        number = Decimal(text)  # exact from a string, whatever the context precision
    if number == number.to_integral_value():
        return int(number)
    return number


def _decode_binary(value: str | bytes) -> bytes:
    # The wire carries base64; botocore's parser has already decoded it to bytes.
    if isinstance(value, str):
        return binascii.a2b_base64(value)
    return bytes(value)


# --- Python -> DynamoDB JSON -------------------------------------------------------------


def encode_item(item: Mapping[str, Any]) -> dict[str, Any]:
    """Encode plain Python values as DynamoDB JSON as it travels on the wire (base64 binary).

    The inverse of ``decode_item``; the in-memory stream uses it to produce records shaped
    exactly like the real service's.
    """
    return {name: encode_value(value) for name, value in item.items()}


def encode_value(value: Any) -> dict[str, Any]:
    """Encode one value; floats are refused, as boto3 does, because they lose precision."""
    if isinstance(value, str):
        return {"S": value}
    if isinstance(value, bool):  # before int: bool is an int
        return {"BOOL": value}
    if isinstance(value, int | Decimal):
        return {"N": _encode_number(value)}
    if isinstance(value, bytes | bytearray | memoryview):
        return {"B": _encode_binary(bytes(value))}
    if value is None:
        return {"NULL": True}
    if isinstance(value, Mapping):
        return {"M": encode_item(cast(Mapping[str, Any], value))}
    if isinstance(value, list | tuple):
        return {"L": [encode_value(element) for element in value]}
    if isinstance(value, set | frozenset):
        return _encode_set(value)
    raise TypeError(f"cannot encode {type(value).__name__} as a DynamoDB value: {value!r}")


def _encode_number(value: int | Decimal) -> str:
    if isinstance(value, Decimal) and not value.is_finite():
        raise TypeError(f"DynamoDB numbers must be finite, not {value}")
    return str(value)


def _encode_binary(value: bytes) -> str:
    return binascii.b2a_base64(value, newline=False).decode("ascii")


def _encode_set(values: set[Any] | frozenset[Any]) -> dict[str, Any]:
    if not values:
        raise TypeError("DynamoDB does not store empty sets")
    if all(isinstance(v, str) for v in values):
        return {"SS": sorted(values)}
    if all(isinstance(v, int | Decimal) and not isinstance(v, bool) for v in values):
        return {"NS": [_encode_number(v) for v in sorted(values)]}
    if all(isinstance(v, bytes | bytearray) for v in values):
        return {"BS": [_encode_binary(bytes(v)) for v in sorted(values)]}
    raise TypeError(f"a DynamoDB set holds only strings, only numbers or only binary: {values!r}")
