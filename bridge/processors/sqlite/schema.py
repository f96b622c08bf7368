"""The replica's layout (DESIGN.md "SQLite layout") and the statements that keep it.

One table per source table: the key attributes as typed columns forming the primary key,
``item`` (the whole image as JSON), ``_seq`` and ``_updated_ms``. Bookkeeping beside it:
``_bridge_checkpoints`` (one row per shard, written in the same transaction as the data) and
``_bridge_status`` (one row: is the replica fit to read).

A number key column has no declared type, so that SQLite keeps each value as bound
(``keys.py`` says how a number is bound); ``_seq`` is the sequence number left-padded with
zeros to ``SEQ_WIDTH`` digits, so that a plain ``ORDER BY _seq`` is stream order.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from bridge.item_json import EXACT
from bridge.processors.sqlite.keys import wire_key

COLUMN_TYPES = {"S": "TEXT", "N": "", "B": "BLOB"}
"""Declared type per DynamoDB key type. A number column has none: any name SQLite does not
read as TEXT, BLOB or REAL gives it NUMERIC affinity, which rounds numbers."""


class ReplicaSchemaError(Exception):
    """The stream's records cannot be replicated as configured (no new images, keys changed),
    or the file has a layout this bridge does not know."""


SCHEMA_VERSION = 2
"""The layout's version, kept in ``PRAGMA user_version`` and in snapshot manifests. Version 1
declared number keys ``NUMERIC`` and kept ``_seq`` unpadded; such a file is migrated when it
is opened (``layout.py``)."""

SEQ_WIDTH = 40
"""Digits of a stored ``_seq``: AWS's sequence numbers have 21 to 40."""

SCANNED_SEQ = "0" * SEQ_WIDTH
"""The ``_seq`` of a row a bootstrap scan wrote: older than any change."""


def stored_seq(sequence_number: str) -> str:
    """A sequence number as ``_seq`` holds it: zero-padded, so text order is stream order."""
    return sequence_number.rjust(SEQ_WIDTH, "0")


BOOKKEEPING = """
CREATE TABLE IF NOT EXISTS _bridge_checkpoints (
    shard_id TEXT PRIMARY KEY,
    checkpoint TEXT NOT NULL,
    updated_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS _bridge_status (
    id INTEGER PRIMARY KEY CHECK (id = 0),
    ready INTEGER NOT NULL,
    lag_ms REAL,
    watermark_ms INTEGER,
    phase TEXT NOT NULL,
    reason TEXT NOT NULL,
    updated_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS _bridge_tables (
    name TEXT PRIMARY KEY,
    key_columns TEXT NOT NULL
);
"""


def quote(name: str) -> str:
    """An identifier quoted for SQLite; attribute names may hold any character."""
    return '"' + name.replace('"', '""') + '"'


def _newer(new: str, old: str) -> str:
    """Sequence numbers are decimal strings wider than SQLite's integers. Padded they compare
    as text; comparing by length first keeps a longer one than AWS documents in order too."""
    return f"(length({new}) > length({old}) OR (length({new}) = length({old}) AND {new} > {old}))"


@dataclass(frozen=True)
class ReplicaTable:
    name: str
    keys: Sequence[tuple[str, str]]
    """(attribute, DynamoDB type letter) in primary-key order."""

    @property
    def key_names(self) -> list[str]:
        return [name for name, _ in self.keys]

    def create(self) -> str:
        columns = [
            " ".join(filter(None, (quote(name), COLUMN_TYPES[kind], "NOT NULL")))
            for name, kind in self.keys
        ]
        primary = ", ".join(quote(name) for name, _ in self.keys)
        return (
            f"CREATE TABLE IF NOT EXISTS {quote(self.name)} ("
            + ", ".join(columns)
            + ", item TEXT NOT NULL, _seq TEXT NOT NULL, _updated_ms INTEGER NOT NULL,"
            + f" PRIMARY KEY ({primary})) WITHOUT ROWID"
        )

    def upsert(self) -> str:
        """Apply a put unless the row already holds this change or a later one (idempotent)."""
        table = quote(self.name)
        names = [quote(name) for name in self.key_names]
        placeholders = ", ".join("?" for _ in range(len(names) + 3))
        return (
            f"INSERT INTO {table} ({', '.join(names)}, item, _seq, _updated_ms) "
            f"VALUES ({placeholders}) ON CONFLICT ({', '.join(names)}) DO UPDATE SET "
            "item = excluded.item, _seq = excluded._seq, _updated_ms = excluded._updated_ms "
            f"WHERE {_newer('excluded._seq', f'{table}._seq')}"
        )

    def put(self) -> str:
        """Put an item of a snapshot whatever the row held: every change published before
        the snapshot is older than it, every one after overwrites it (``_seq`` older)."""
        names = ", ".join(quote(name) for name in self.key_names)
        placeholders = ", ".join("?" for _ in range(len(self.keys) + 3))
        return (
            f"INSERT OR REPLACE INTO {quote(self.name)} ({names}, item, _seq, _updated_ms) "
            f"VALUES ({placeholders})"
        )

    def put_scanned(self, db: sqlite3.Connection, items: Sequence[Any], now_ms: int) -> None:
        """Write items of a scan of the table (DynamoDB JSON), whatever the rows held: each
        row with ``_seq`` older than any change, so a change read after it overwrites it."""
        rows = [
            (
                *(wire_key(kind, item[name]) for name, kind in self.keys),
                EXACT.item_json(item).decode(),
                SCANNED_SEQ,
                now_ms,
            )
            for item in items
        ]
        db.executemany(self.put(), rows)

    def delete(self) -> str:
        """Delete unless the row holds a later change; parameters ``k0``, ``k1``, ``seq``."""
        table = quote(self.name)
        match = " AND ".join(f"{quote(name)} = :k{i}" for i, name in enumerate(self.key_names))
        return f"DELETE FROM {table} WHERE {match} AND {_newer(':seq', '_seq')}"


CHECKPOINT = (
    "INSERT INTO _bridge_checkpoints (shard_id, checkpoint, updated_ms) VALUES (?, ?, ?) "
    "ON CONFLICT (shard_id) DO UPDATE SET checkpoint = excluded.checkpoint, "
    "updated_ms = excluded.updated_ms"
)

STATUS = (
    "INSERT INTO _bridge_status (id, ready, lag_ms, watermark_ms, phase, reason, updated_ms) "
    "VALUES (0, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET ready = excluded.ready, "
    "lag_ms = excluded.lag_ms, watermark_ms = excluded.watermark_ms, phase = excluded.phase, "
    "reason = excluded.reason, updated_ms = excluded.updated_ms"
)
