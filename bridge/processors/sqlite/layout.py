"""A file of the previous layout brought to this one, in place, when it is opened.

Layout 1 declared number key columns ``NUMERIC``, whose affinity rounds a number to a double
beyond 15 significant digits or 2^63, and kept ``_seq`` unpadded. Layout 2 (``keys.py``,
``schema.py``) holds every key exactly and pads ``_seq``. Each replica table is copied into
one of the new layout, and the version moved, in one transaction: a crash part-way leaves
the file of layout 1, migrated again at the next open.

A number key is taken again from the row's ``item``, which holds it exactly: the processor's
as a JSON number with its full text, ``bridge replica``'s as the envelope sent it (a string
where a JSON reader would round it). So a key that layout 1 rounded gets its exact value
back. Two items whose keys layout 1 rounded to one value were already one row, the one
written last: the other is not in the file, and only a new file (a bootstrap scan, the topic
replayed) brings it back. The migration counts the rows whose key was rounded and logs them.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Sequence
from typing import Any

import orjson
import structlog

from bridge.processors.sqlite.keys import binary_of, number_of, number_value
from bridge.processors.sqlite.schema import ReplicaTable, quote, stored_seq

log = structlog.get_logger("bridge.sqlite.layout")

PREVIOUS_VERSION = 1
"""The layout a file may have and still be opened: it is migrated."""

_SCRATCH = "_bridge_rebuild"
_CHUNK = 1000

Row = tuple[Any, ...]
"""A replica table's row: the key columns, then ``item``, ``_seq``, ``_updated_ms``."""


def tables_of(db: sqlite3.Connection) -> list[ReplicaTable]:
    """The replica tables the file records (``_bridge_tables``)."""
    return [
        ReplicaTable(name, [(str(n), str(k)) for n, k in orjson.loads(columns)])
        for name, columns in db.execute("SELECT name, key_columns FROM _bridge_tables")
    ]


def register(db: sqlite3.Connection, table: ReplicaTable) -> None:
    """Record the table and its key columns in ``_bridge_tables``."""
    db.execute(
        "INSERT OR REPLACE INTO _bridge_tables (name, key_columns) VALUES (?, ?)",
        (table.name, orjson.dumps([list(k) for k in table.keys]).decode()),
    )


def migrate(db: sqlite3.Connection, path: object, to_version: int) -> None:
    """Bring a file of layout 1 to ``to_version`` (2), bookkeeping tables already there."""
    db.execute("BEGIN IMMEDIATE")
    try:
        for table in tables_of(db):
            rounded = rebuild(db, table, table, _from_layout_1(table))
            log.info("replica table migrated", path=str(path), table=table.name, to=to_version)
            if rounded:
                log.warning(
                    "layout 1 had rounded number keys: items whose keys differed only beyond "
                    "that rounding were kept as one row; start from a new file to get them back",
                    path=str(path),
                    table=table.name,
                    rows=rounded,
                )
        db.execute(f"PRAGMA user_version = {int(to_version)}")
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise


def rebuild(
    db: sqlite3.Connection,
    old: ReplicaTable,
    new: ReplicaTable,
    convert: Callable[[Row], tuple[Row, bool]],
) -> int:
    """Copy ``old``'s rows, converted, into a table of ``new``'s key columns that then takes
    its place; inside the caller's transaction. ``convert`` gives the new row and whether its
    key changed value; returns how many did."""
    scratch = ReplicaTable(_SCRATCH, new.keys)
    # Indexes and triggers a user added go with the table they belong to: made again after.
    extras = [
        sql
        for (sql,) in db.execute(
            "SELECT sql FROM sqlite_schema WHERE type IN ('index', 'trigger') "
            "AND tbl_name = ? AND sql IS NOT NULL",
            (old.name,),
        )
    ]
    db.execute(f"DROP TABLE IF EXISTS {quote(_SCRATCH)}")
    db.execute(scratch.create())
    names = ", ".join(quote(name) for name in old.key_names)
    rows = db.execute(f"SELECT {names}, item, _seq, _updated_ms FROM {quote(old.name)}")
    insert, changed = scratch.upsert(), 0
    while chunk := rows.fetchmany(_CHUNK):
        converted = [convert(tuple(row)) for row in chunk]
        changed += sum(moved for _, moved in converted)
        db.executemany(insert, [row for row, _ in converted])
    db.execute(f"DROP TABLE {quote(old.name)}")
    # Legacy renaming leaves views alone: they name the table, which is back under its name.
    db.execute("PRAGMA legacy_alter_table = ON")
    try:
        db.execute(f"ALTER TABLE {quote(_SCRATCH)} RENAME TO {quote(new.name)}")
    finally:
        db.execute("PRAGMA legacy_alter_table = OFF")
    for sql in extras:
        db.execute(sql)
    register(db, new)
    return changed


def _from_layout_1(table: ReplicaTable) -> Callable[[Row], tuple[Row, bool]]:
    width = len(table.keys)
    numbers = [(i, name) for i, (name, kind) in enumerate(table.keys) if kind == "N"]

    def convert(row: Row) -> tuple[Row, bool]:
        keys, (item, seq, updated_ms) = list(row[:width]), row[width:]
        rounded = False
        if numbers:
            exact = _number_texts(item)
            for i, name in numbers:
                value = _exact_key(exact.get(name), keys[i])
                rounded = rounded or value != keys[i] or type(value) is not type(keys[i])
                keys[i] = value
        return (*keys, item, stored_seq(str(seq)), updated_ms), rounded

    return convert


def _number_texts(item: str) -> dict[str, Any]:
    """The item's attributes with every JSON number as its text, as written."""
    try:
        parsed = json.loads(item, parse_int=str, parse_float=str)
    except ValueError:
        return {}
    return parsed if isinstance(parsed, dict) else {}


def _exact_key(text: Any, stored: Any) -> int | float | str:
    """A number key from the item's text of it, else from what layout 1 stored."""
    if isinstance(text, str):
        try:
            return number_value(text)
        except (ValueError, ArithmeticError):
            pass
    return number_of(stored)


_CONVERSIONS: dict[tuple[str, str], Callable[[Any], Any]] = {
    ("S", "N"): lambda text: number_value(str(text)),
    ("S", "B"): lambda text: binary_of(str(text)),
}
"""How a key column typed as text from a guess holds the values of its true type: a number
as its canonical text, binary as its base64 text (what the envelope sends)."""


def retyped(
    db: sqlite3.Connection, table: ReplicaTable, told: Sequence[tuple[str, str]]
) -> ReplicaTable:
    """``table`` with the key types ``told``, its rows converted; inside the caller's
    transaction. Only a column typed as text can be corrected (what a guess made of a number
    that arrived as a string, or of binary): ``ValueError`` for any other difference, or a
    value that is not of the type told."""
    types = dict(told)
    if set(types) != set(table.key_names):
        raise ValueError(f"the key attributes differ ({sorted(types)})")
    changes: list[tuple[int, Callable[[Any], Any]]] = []
    for i, (name, kind) in enumerate(table.keys):
        if types[name] == kind:
            continue
        conversion = _CONVERSIONS.get((kind, types[name]))
        if conversion is None:
            raise ValueError(f"{name} cannot change from type {kind} to {types[name]}")
        changes.append((i, conversion))
    new = ReplicaTable(table.name, [(name, types[name]) for name in table.key_names])

    def convert(row: Row) -> tuple[Row, bool]:
        values = list(row)
        for i, conversion in changes:
            try:
                values[i] = conversion(values[i])
            except (ValueError, ArithmeticError) as exc:
                raise ValueError(f"stored key {values[i]!r} is not of that type") from exc
        return tuple(values), True

    rebuild(db, table, new, convert)
    return new
