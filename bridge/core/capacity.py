"""DynamoDB's capacity units, computed as DynamoDB bills them: by bytes, not by request.

A Scan of a lease table is one request but costs one read unit per 4 KB it reads (half
that when not consistent); a write costs one unit per 1 KB of the larger of the item before
and after it; a transaction costs twice. Counting requests hides what a design that reads
the whole table every few seconds costs, so ``bridge local``, the lease simulation and the
cost benchmark all count units with these rules (DynamoDB's developer guide, "Item sizes and
formats" and "Read/write capacity mode").
"""

from __future__ import annotations

import base64
import math
from collections.abc import Iterable, Mapping
from decimal import Decimal, InvalidOperation

READ_OPERATIONS = frozenset({"GetItem", "BatchGetItem", "Query", "Scan", "TransactGetItems"})
WRITE_OPERATIONS = frozenset(
    {"PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem", "TransactWriteItems"}
)
METERED_OPERATIONS = READ_OPERATIONS | WRITE_OPERATIONS
"""The DynamoDB calls that consume capacity units (and may report them)."""

READ_UNIT_BYTES = 4096
WRITE_UNIT_BYTES = 1024

AttributeValue = Mapping[str, object]
Item = Mapping[str, AttributeValue]


def item_size(item: Item) -> int:
    """Bytes DynamoDB counts for an item (DynamoDB JSON): each name's UTF-8 length plus its
    value's size."""
    return sum(len(name.encode()) + value_size(value) for name, value in item.items())


def value_size(value: AttributeValue) -> int:
    """Bytes of one attribute value: strings by UTF-8 length, numbers by about one byte per
    two significant digits plus one, a list or map 3 bytes plus 1 per element."""
    for kind, content in value.items():
        if kind == "S" and isinstance(content, str):
            return len(content.encode())
        if kind == "N" and isinstance(content, str):
            return number_size(content)
        if kind == "B" and isinstance(content, str | bytes):
            return _binary_size(content)
        if kind in ("BOOL", "NULL"):
            return 1
        if kind == "SS" and isinstance(content, list):
            return sum(len(str(member).encode()) for member in content)
        if kind == "NS" and isinstance(content, list):
            return sum(number_size(str(member)) for member in content)
        if kind == "BS" and isinstance(content, list):
            return sum(_binary_size(member) for member in content)
        if kind == "L" and isinstance(content, list):
            return 3 + sum(1 + value_size(element) for element in content)
        if kind == "M" and isinstance(content, Mapping):
            return 3 + sum(
                1 + len(str(name).encode()) + value_size(element)
                for name, element in content.items()
            )
    return 0


def number_size(text: str) -> int:
    """A number's size: its significant digits (leading and trailing zeros dropped), one
    byte per two, plus one, plus one more when negative."""
    try:
        digits = Decimal(text).normalize().as_tuple().digits
    except InvalidOperation:
        return len(text)
    significant = max(1, len(digits))
    return math.ceil(significant / 2) + 1 + (1 if text.lstrip().startswith("-") else 0)


def _binary_size(content: object) -> int:
    if isinstance(content, bytes):
        return len(content)
    try:
        return len(base64.b64decode(str(content), validate=False))
    except ValueError:
        return len(str(content))


def read_units(size: int, *, consistent: bool, transactional: bool = False) -> float:
    """Units of one read of ``size`` bytes (an item, or a Query or Scan page): one per 4 KB
    started, at least one; half for an eventually consistent read, twice in a transaction."""
    units = max(1, math.ceil(size / READ_UNIT_BYTES))
    if transactional:
        return 2.0 * units
    return float(units) if consistent else units / 2


def write_units(size: int, *, transactional: bool = False) -> float:
    """Units of one write of an item that is ``size`` bytes before or after (the larger):
    one per 1 KB started, at least one; twice in a transaction."""
    units = max(1, math.ceil(size / WRITE_UNIT_BYTES))
    return float(2 * units if transactional else units)


def page_read_units(items: Iterable[Item], *, consistent: bool) -> float:
    """A Query or Scan page: the sizes of every item it read, summed, then rounded up once."""
    return read_units(sum(item_size(item) for item in items), consistent=consistent)


def index_write_units(
    before: Item | None,
    after: Item | None,
    index_keys: Iterable[str],
    projection: Mapping[str, object],
    table_key: Item,
) -> float:
    """Units a global secondary index adds to a write: an entry written when the item enters
    the index or its projected attributes change, deleted when it leaves, both when its index
    key changes; nothing when the write leaves the entry as it was."""
    keys = list(index_keys)
    old = _index_entry(before, keys, projection, table_key)
    new = _index_entry(after, keys, projection, table_key)
    if old is None and new is None:
        return 0.0
    if old is None or new is None:
        return write_units(item_size(old or new or {}))
    if all(old.get(name) == new.get(name) for name in keys):
        return 0.0 if old == new else write_units(max(item_size(old), item_size(new)))
    return write_units(item_size(old)) + write_units(item_size(new))


def _index_entry(
    item: Item | None, keys: list[str], projection: Mapping[str, object], table_key: Item
) -> dict[str, AttributeValue] | None:
    """The index's copy of an item: None when the item lacks an index key attribute."""
    if item is None or any(name not in item for name in keys):
        return None
    kind = projection.get("ProjectionType", "ALL")
    if kind == "ALL":
        return dict(item)
    kept = set(keys) | set(table_key)
    extra = projection.get("NonKeyAttributes")
    if kind == "INCLUDE" and isinstance(extra, list):
        kept |= {str(name) for name in extra}
    return {name: value for name, value in item.items() if name in kept}
