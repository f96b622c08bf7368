"""Kafka messages of the Kafka processor (DESIGN.md "Kafka envelope") as replica changes.

Pure: no Kafka, no SQLite. INSERT and MODIFY put the new image, REMOVE and tombstones (a null
value) delete by key; an item the filter does not keep is deleted (a MODIFY may make a kept
item stop matching), which is a no-op for an item never stored.

The ``bridge-key-types`` header names the DynamoDB type of each key attribute, which the
portable JSON of ``keys`` cannot say (a number beyond 2^53 arrives as a string); an envelope
with ``types`` (``processor.options.types: true``) carries each image as DynamoDB JSON too,
from which the item is written in the exact form, as the SQLite processor writes it.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from bridge import item_json
from bridge.processors.kafka import _debezium as debezium
from bridge.processors.kafka._envelope import KEY_TYPES_HEADER
from bridge.replica._filter import ItemFilter

_KEY_TYPES = frozenset({"S", "N", "B"})

KeyTypes = tuple[tuple[str, str], ...]
"""(key attribute, DynamoDB type letter) in key order, as the ``bridge-key-types`` header
gives them."""


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


SNAPSHOT_SEQ = "0"
"""The sequence number a snapshot item is stored with: older than any change."""


@dataclass(frozen=True)
class SnapshotMark:
    """Which snapshot (its cut-off) and segment a snapshot message belongs to."""

    cutoff_ms: int
    segment: int
    segments: int


@dataclass(frozen=True)
class Upsert:
    table: str
    keys: dict[str, Any]
    """Key attributes in the source table's order (partition key first)."""
    item: bytes
    """The new image as JSON: in ``bridge.item_json``'s exact form when the envelope carries
    its DynamoDB JSON (``types``), else as the envelope encodes it (the portable form)."""
    seq: str
    key_types: KeyTypes | None = None
    """From the ``bridge-key-types`` header; None from an older bridge."""
    snapshot: SnapshotMark | None = None
    """Set for an item of the table's snapshot: it never overwrites a row a change wrote."""


@dataclass(frozen=True)
class Delete:
    table: str | None
    """None for a tombstone without a ``bridge-table`` header: the replica's only table."""
    keys: dict[str, Any]
    seq: str | None
    """None deletes whatever the row holds (a tombstone with no ``bridge-seq`` header)."""
    key_types: KeyTypes | None = None


@dataclass(frozen=True)
class SnapshotEnd:
    """A segment of the table's snapshot is complete in this message's partition."""

    mark: SnapshotMark


Change = Upsert | Delete | SnapshotEnd


class BadMessageError(Exception):
    """A message that is not a bridge envelope; it names partition and offset."""


def change_of(message: Fetched, keep: ItemFilter) -> Change | None:
    """The change a message makes, None for none."""
    where = f"partition {message.partition} offset {message.offset}"
    if message.value is None:
        return _tombstone(message, where)
    try:
        envelope = orjson.loads(message.value)
    except orjson.JSONDecodeError as exc:
        raise BadMessageError(f"{where}: value is not JSON ({exc})") from None
    if not isinstance(envelope, dict):
        raise BadMessageError(f"{where}: value is not a JSON object")
    if "event" not in envelope and "op" in envelope:
        envelope = _from_debezium(envelope, message, where)
        if envelope is None:
            return None
    try:
        table, event, keys, seq = (envelope[k] for k in ("table", "event", "keys", "seq"))
    except KeyError as missing:
        raise BadMessageError(f"{where}: envelope has no {missing}") from None
    if event == "SNAPSHOT_END":
        return SnapshotEnd(_mark(envelope, where))
    if not isinstance(keys, dict) or not keys or not isinstance(table, str):
        raise BadMessageError(f"{where}: envelope keys or table malformed")
    key_types = _key_types_of(message, where, keys)
    if event == "REMOVE":
        return Delete(table, keys, str(seq), key_types)
    if event not in {"INSERT", "MODIFY", "SNAPSHOT"}:
        raise BadMessageError(f"{where}: unknown event {event!r}")
    new = envelope.get("new")
    if not isinstance(new, dict):
        raise BadMessageError(
            f"{where}: {event} has no new image (the stream's view type must include it)"
        )
    item = _item(envelope, new, where)
    if event == "SNAPSHOT":
        mark = _mark(envelope, where)
        if not keep.keeps(keys, new):  # a snapshot item the filter drops was never stored
            return None
        return Upsert(table, keys, item, SNAPSHOT_SEQ, key_types, mark)
    if not keep.keeps(keys, new):
        return Delete(table, keys, str(seq), key_types)
    return Upsert(table, keys, item, str(seq), key_types)


_EVENTS = {op: event for event, op in debezium.OPS.items()}


def _from_debezium(value: Mapping[str, Any], message: Fetched, where: str) -> dict[str, Any] | None:
    """A Debezium change event (``format: debezium``) as bridge's envelope; None for an
    ``op: "m"`` message that is not a snapshot segment's end."""
    source = value.get("source")
    if not isinstance(source, dict):
        raise BadMessageError(f"{where}: Debezium event without its source block")
    op = value["op"]
    snapshot = {name: source.get(name) for name in ("cutoff_ms", "segment", "segments")}
    common = {"table": source.get("table"), "seq": source.get("seq"), "snapshot": snapshot}
    if op == "m":
        body = value.get("message")
        if not isinstance(body, dict) or body.get("prefix") != debezium.SNAPSHOT_END_PREFIX:
            return None
        return {**common, "event": "SNAPSHOT_END", "keys": None}
    if op not in _EVENTS:
        raise BadMessageError(f"{where}: unknown Debezium op {op!r}")
    try:
        keys = orjson.loads(message.key or b"")
    except orjson.JSONDecodeError:
        raise BadMessageError(f"{where}: message key is not JSON") from None
    if isinstance(keys, dict) and (header := message.headers.get(KEY_TYPES_HEADER)):
        with contextlib.suppress(ValueError, KeyError):  # key order as the header gives it
            keys = {name: keys[name] for name, _ in _parse_key_types(bytes(header))}
    envelope = {**common, "event": _EVENTS[op], "keys": keys}
    envelope.update(new=value.get("after"), old=value.get("before"), types=value.get("types"))
    return envelope


def _mark(envelope: Mapping[str, Any], where: str) -> SnapshotMark:
    about: Any = envelope.get("snapshot")
    try:
        mark = SnapshotMark(int(about["cutoff_ms"]), int(about["segment"]), int(about["segments"]))
    except (TypeError, KeyError, ValueError):
        raise BadMessageError(f"{where}: snapshot envelope without its snapshot block") from None
    if not 0 <= mark.segment < mark.segments:
        raise BadMessageError(f"{where}: snapshot segment {mark.segment} of {mark.segments}")
    return mark


def _item(envelope: Mapping[str, Any], new: Any, where: str) -> bytes:
    typed = envelope.get("types")
    if typed is None:
        return item_json.dumps(new)
    image = typed.get("new") if isinstance(typed, dict) else None
    if not isinstance(image, dict):
        raise BadMessageError(f"{where}: types has no new image in DynamoDB JSON")
    try:
        return item_json.EXACT.item_json(image)
    except (ValueError, TypeError, KeyError, ArithmeticError) as exc:
        raise BadMessageError(f"{where}: types.new is not DynamoDB JSON ({exc})") from None


def _key_types_of(message: Fetched, where: str, keys: Mapping[str, Any]) -> KeyTypes | None:
    header = message.headers.get(KEY_TYPES_HEADER)
    if header is None:
        return None
    try:
        key_types = _parse_key_types(bytes(header))
    except ValueError as exc:
        raise BadMessageError(f"{where}: bad {KEY_TYPES_HEADER} header ({exc})") from None
    if len(key_types) != len(keys) or not all(name in keys for name, _ in key_types):
        raise BadMessageError(
            f"{where}: {KEY_TYPES_HEADER} names {[n for n, _ in key_types]}, the key has "
            f"{sorted(keys)}"
        )
    return key_types


@functools.lru_cache(maxsize=256)
def _parse_key_types(header: bytes) -> KeyTypes:
    """A topic's messages share a handful of header values: each is parsed once."""
    parsed = orjson.loads(header)
    if (
        not isinstance(parsed, dict)
        or not parsed
        or not all(isinstance(kind, str) and kind in _KEY_TYPES for kind in parsed.values())
    ):
        raise ValueError(f"not an object of key attributes to S, N or B: {header!r}")
    return tuple(parsed.items())


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
        _key_types_of(message, where, keys),
    )
