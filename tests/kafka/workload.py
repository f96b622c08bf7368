"""Writes to a DynamoDB table with a composite key, and the Kafka messages they must become.

Items ``(pk, sk)`` are put again and again (INSERT, then MODIFY with the old image) and now and
then deleted (REMOVE; the next put is an INSERT again). Every value kind the encoding rules
treat specially is in every item. The writer keeps the table's state, so it knows the event,
new and old image of each change; ``expected_json`` is the documented encoding, written out
independently of bridge's encoder.
"""

from __future__ import annotations

import base64
import random
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from boto3.dynamodb.types import TypeSerializer

BATCH = 25  # BatchWriteItem's limit
SAFE_INTEGER = 2**53 - 1

Key = tuple[str, int]


def create_table(ddb: Any, prefix: str = "kafka") -> str:
    """A fresh table (pk string hash, sk number range) with a NEW_AND_OLD_IMAGES stream."""
    name = f"{prefix}-{uuid.uuid4().hex[:8]}"
    ddb.create_table(
        TableName=name,
        KeySchema=[
            {"AttributeName": "pk", "KeyType": "HASH"},
            {"AttributeName": "sk", "KeyType": "RANGE"},
        ],
        AttributeDefinitions=[
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "sk", "AttributeType": "N"},
        ],
        BillingMode="PAY_PER_REQUEST",
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
    )
    return name


def key_of(index: int) -> Key:
    return f"item-{index // 4:04d}", index % 4


def message_key(key: Key) -> bytes:
    """The canonical JSON of the primary key, spelled out by hand."""
    return f'{{"pk":"{key[0]}","sk":{key[1]}}}'.encode()


def make_item(key: Key, version: int, n: int) -> dict[str, Any]:
    return {
        "pk": key[0],
        "sk": key[1],
        "version": version,
        "n": n,
        "price": Decimal(f"{n}.{n % 97:02d}1"),
        "big": 2**60 + n,
        "blob": n.to_bytes(4, "big") + b"\x00\xff",
        "tags": {"x", f"t{n % 3}"},
        "nums": {Decimal("0.5"), n + 1},
        "flag": n % 2 == 0,
        "nested": {"list": [n, "s", None, True], "map": {"deep": Decimal("-1.25")}},
    }


@dataclass(frozen=True)
class Change:
    key: Key
    event: str
    new: dict[str, Any] | None
    old: dict[str, Any] | None


@dataclass
class Workload:
    """``writes`` changes over ``keys`` items; about one in ten is a delete."""

    writes: int
    keys: int
    seed: int = 11
    changes: list[Change] = field(default_factory=list)

    def __post_init__(self) -> None:
        rng = random.Random(self.seed)
        state: dict[Key, dict[str, Any]] = {}
        versions: dict[Key, int] = {}
        for n in range(self.writes):
            key = key_of(rng.randrange(self.keys))
            current = state.get(key)
            if current is not None and rng.random() < 0.1:
                self.changes.append(Change(key, "REMOVE", None, current))
                del state[key]
                continue
            versions[key] = versions.get(key, 0) + 1
            item = make_item(key, versions[key], n)
            self.changes.append(Change(key, "MODIFY" if current else "INSERT", item, current))
            state[key] = item

    def by_key(self) -> dict[Key, list[Change]]:
        out: dict[Key, list[Change]] = {}
        for change in self.changes:
            out.setdefault(change.key, []).append(change)
        return out

    def batches(self, start: int = 0, stop: int | None = None) -> Iterator[list[Change]]:
        """BatchWriteItem batches of changes[start:stop], in order, never one item twice."""
        batch: list[Change] = []
        seen: set[Key] = set()
        for change in self.changes[start:stop]:
            if len(batch) == BATCH or change.key in seen:
                yield batch
                batch, seen = [], set()
            batch.append(change)
            seen.add(change.key)
        if batch:
            yield batch


def write_all(
    ddb: Any, table: str, workload: Workload, start: int = 0, stop: int | None = None
) -> None:
    """Write the workload's changes (``changes[start:stop]``) in order."""
    serializer = TypeSerializer()  # boto3's low-level client wants bytes, not base64, for B
    for batch in workload.batches(start, stop):
        requests: list[dict[str, Any]] = []
        for change in batch:
            if change.new is None:
                key = {"pk": {"S": change.key[0]}, "sk": {"N": str(change.key[1])}}
                requests.append({"DeleteRequest": {"Key": key}})
            else:
                item = {name: serializer.serialize(value) for name, value in change.new.items()}
                requests.append({"PutRequest": {"Item": item}})
        pending: dict[str, Any] = {table: requests}
        while pending:
            pending = ddb.batch_write_item(RequestItems=pending).get("UnprocessedItems") or {}


def expected_json(value: Any) -> Any:
    """docs/kafka.md's rules: exact text for fractions and big integers, base64, sorted sets."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int):
        return value if abs(value) <= SAFE_INTEGER else str(value)
    if isinstance(value, Decimal):
        return expected_json(int(value)) if value == value.to_integral_value() else str(value)
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    if isinstance(value, set):
        return [expected_json(v) for v in sorted(value)]
    if isinstance(value, list):
        return [expected_json(v) for v in value]
    if isinstance(value, dict):
        return {k: expected_json(v) for k, v in value.items()}
    raise TypeError(type(value))


def is_subsequence(expected: list[Any], actual: list[Any]) -> bool:
    """Every element of ``expected`` appears in ``actual``, in the same order."""
    remaining = iter(actual)
    return all(any(item == other for other in remaining) for item in expected)
