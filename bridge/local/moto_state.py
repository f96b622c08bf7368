"""The few places where ``bridge local`` reaches into moto's state rather than its HTTP API.

moto keeps its tables in per-account, per-region backends and tracks every model instance for
its dashboard; the streams need the tables, the StreamSpecification checks need one table's
stream, and a long run needs the tracking of items off. Everything that knows moto's
internals for that lives here, so a moto upgrade that moves them breaks one module.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any


def moto_tables() -> Iterator[Any]:
    """Every table of every account and region moto holds (moto's Table: untyped)."""
    from moto.dynamodb.models import dynamodb_backends

    # dict views: iterating must not create backends for every account and region.
    for per_account in list(dict.values(dynamodb_backends)):
        for backend in list(dict.values(per_account)):
            yield from list(backend.tables.values())


def find_table(name: str, region: str | None) -> Any | None:
    """The table a request names (by name or ARN) in the signing region, or None when there
    is none or more than one (two accounts with the same name): moto then answers alone."""
    if name.startswith("arn:") and ":table/" in name:
        name = name.split(":table/", 1)[1]
    found = [
        table
        for table in moto_tables()
        if table.name == name and (region is None or table.region_name == region)
    ]
    return found[0] if len(found) == 1 else None


def stream_enabled(table: Any) -> bool:
    return bool((table.stream_specification or {}).get("StreamEnabled"))


def forget_stream_label(table: Any) -> str | None:
    """Let moto enable a stream on a table whose stream was switched off.

    moto refuses while the table keeps the label of any earlier stream, where DynamoDB makes a
    new stream with a new label (and ARN); the old one stays readable, DISABLED. Returns the
    label taken away, for ``restore_stream_label`` if moto then refuses for another reason.
    """
    label: str | None = table.latest_stream_label
    table.latest_stream_label = None
    return label


def restore_stream_label(table: Any, label: str | None) -> None:
    if table.latest_stream_label is None:
        table.latest_stream_label = label


class _Forgetful(list[Any]):
    """A list that keeps nothing appended to it."""

    def append(self, item: Any) -> None:
        pass


def stop_tracking_items() -> None:
    """moto keeps every model instance it ever made, for its dashboard (``/moto-api``): with
    an ``Item`` per write, that alone grows a long run by about 1 kB per write, forever.
    Items are the model made per write and the emulator keeps its own copy of each change, so
    they stop being tracked (process-wide; the dashboard still lists tables). A moto reset
    gives every model a fresh list, so this runs again after each one."""
    from moto.dynamodb.models.dynamo_type import Item

    Item.instances_tracked = _Forgetful()  # type: ignore[attr-defined]


def stored_item(table: Any, key: dict[str, Any]) -> dict[str, Any] | None:
    """The item stored under ``key`` (DynamoDB JSON, as a request names it), in DynamoDB
    JSON; None when there is none or the key does not fit the table."""
    from moto.dynamodb.models.dynamo_type import DynamoType

    hash_value = key.get(table.hash_key_attr)
    range_value = key.get(table.range_key_attr) if table.range_key_attr else None
    if not isinstance(hash_value, dict) or (table.range_key_attr and range_value is None):
        return None
    try:
        item = table.get_item(
            DynamoType(hash_value), DynamoType(range_value) if range_value else None
        )
    except Exception:  # a key of the wrong type: moto answers the request itself
        return None
    return None if item is None else dict(item.to_json()["Attributes"])


def key_of(table: Any, item: dict[str, Any]) -> dict[str, Any]:
    """The primary key attributes of an item, by the table's key schema."""
    names = [table.hash_key_attr] + ([table.range_key_attr] if table.range_key_attr else [])
    return {name: item[name] for name in names if name in item}


def global_indexes(table: Any) -> list[tuple[str, list[str], dict[str, Any]]]:
    """Each global secondary index of a table: its name, key attributes and projection."""
    return [
        (index.name, list(index.schema_key_attrs), dict(index.projection or {}))
        for index in table.global_indexes
    ]


def key_types(table: Any) -> dict[str, str]:
    """The declared type (S, N or B) of each attribute in the table's definitions."""
    return {
        definition["AttributeName"]: definition["AttributeType"] for definition in table.attr or []
    }
