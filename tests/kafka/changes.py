"""Hand-built changes for the Kafka tests, in the two shapes a processor meets.

``from_stream`` wraps DynamoDB JSON as GetRecords returns it (images decoded lazily, the way
every record read from a stream arrives); ``from_values`` builds a record from plain values
with no DynamoDB JSON at all, as a user's own code or a test might.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from bridge.records import ChangeRecord, EventName, Item, encode_item

SHARD = "shardId-00000001700000000000-aaaa0001"
WHEN = datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)
WHEN_MS = 1767323045678


def from_stream(
    event: EventName,
    keys: Item,
    new: Item | None = None,
    old: Item | None = None,
    *,
    seq: str = "100000000000000000001",
    shard: str = SHARD,
    at: datetime = WHEN,
) -> ChangeRecord:
    body: dict[str, Any] = {
        "ApproximateCreationDateTime": at.timestamp(),
        "Keys": encode_item(keys),
        "SequenceNumber": seq,
        "SizeBytes": 100,
        "StreamViewType": "NEW_AND_OLD_IMAGES",
    }
    if new is not None:
        body["NewImage"] = encode_item(new)
    if old is not None:
        body["OldImage"] = encode_item(old)
    return ChangeRecord.from_raw({"eventName": event, "dynamodb": body}, shard)


def from_values(
    event: EventName,
    keys: Item,
    new: Item | None = None,
    old: Item | None = None,
    *,
    seq: str = "100000000000000000001",
    shard: str = SHARD,
    at: datetime = WHEN,
) -> ChangeRecord:
    return ChangeRecord(event, keys, new, old, seq, at, shard, 100, {})


BUILDERS = [from_stream, from_values]


def order_item(n: int) -> Item:
    """An item with a value of every kind the encoding rules treat specially."""
    return {
        "pk": f"order-{n:04d}",
        "sk": n % 7,
        "version": n,
        "price": Decimal(f"{n}.25"),
        "big": 2**60 + n,
        "blob": n.to_bytes(4, "big") + b"\x00\xff",
        "tags": {"b", "a", f"t{n % 3}"},
        "nums": {3, Decimal("2.5"), n + 10},
        "flag": n % 2 == 0,
        "nothing": None,
        "nested": {"list": [n, "x", None, True, Decimal("0.1")], "map": {"deep": 2**53}},
    }
