"""Kafka messages of the Kafka processor (DESIGN.md "Kafka envelope") as replica changes.

Pure: no Kafka, no SQLite. INSERT and MODIFY put the new image, REMOVE and tombstones (a null
value) delete by key; an item the filter does not keep is deleted (a MODIFY may make a kept
item stop matching), which is a no-op for an item never stored.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from bridge import item_json
from bridge.replica._filter import ItemFilter


@dataclass(frozen=True)
class Fetched:
    """One Kafka message as the consumer hands it over."""

    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: Mapping[str, bytes] = field(default_factory=dict)
    timestamp_ms: int | None = None


@dataclass(frozen=True)
class PartitionEnd:
    """The consumer reached the end of a partition: ``offset`` is its high watermark."""

    partition: int
    offset: int


@dataclass(frozen=True)
class OutOfRange:
    """The broker no longer (or not yet) holds ``offset`` of the partition: the consumer
    stopped there instead of jumping (``auto.offset.reset: error``)."""

    partition: int
    offset: int | None
    detail: str


@dataclass(frozen=True)
class Upsert:
    table: str
    keys: dict[str, Any]
    """Key attributes in the source table's order (partition key first)."""
    item: bytes
    """The new image as JSON, values as the envelope encodes them (``bridge.item_json``'s
    portable form)."""
    seq: str


@dataclass(frozen=True)
class Delete:
    table: str | None
    """None for a tombstone without a ``bridge-table`` header: the replica's only table."""
    keys: dict[str, Any]
    seq: str | None
    """None deletes whatever the row holds (a tombstone with no ``bridge-seq`` header)."""


Change = Upsert | Delete


class BadMessageError(Exception):
    """A message that is not a bridge envelope; it names partition and offset."""


def change_of(message: Fetched, keep: ItemFilter) -> Change:
    where = f"partition {message.partition} offset {message.offset}"
    if message.value is None:
        return _tombstone(message, where)
    try:
        envelope = orjson.loads(message.value)
    except orjson.JSONDecodeError as exc:
        raise BadMessageError(f"{where}: value is not JSON ({exc})") from None
    if not isinstance(envelope, dict):
        raise BadMessageError(f"{where}: value is not a JSON object")
    try:
        table, event, keys, seq = (envelope[k] for k in ("table", "event", "keys", "seq"))
    except KeyError as missing:
        raise BadMessageError(f"{where}: envelope has no {missing}") from None
    if not isinstance(keys, dict) or not keys or not isinstance(table, str):
        raise BadMessageError(f"{where}: envelope keys or table malformed")
    if event == "REMOVE":
        return Delete(table, keys, str(seq))
    if event not in {"INSERT", "MODIFY"}:
        raise BadMessageError(f"{where}: unknown event {event!r}")
    new = envelope.get("new")
    if not isinstance(new, dict):
        raise BadMessageError(
            f"{where}: {event} has no new image (the stream's view type must include it)"
        )
    if not keep.keeps(keys, new):
        return Delete(table, keys, str(seq))
    return Upsert(table, keys, item_json.dumps(new), str(seq))


def _tombstone(message: Fetched, where: str) -> Delete:
    if message.key is None:
        raise BadMessageError(f"{where}: tombstone without a key")
    try:
        keys = orjson.loads(message.key)
    except orjson.JSONDecodeError:
        raise BadMessageError(f"{where}: tombstone key is not JSON") from None
    if not isinstance(keys, dict) or not keys:
        raise BadMessageError(f"{where}: tombstone key is not a JSON object")
    table = message.headers.get("bridge-table")
    seq = message.headers.get("bridge-seq")
    return Delete(
        table.decode() if table else None,
        keys,
        seq.decode() if seq else None,
    )
