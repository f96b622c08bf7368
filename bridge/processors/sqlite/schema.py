"""The replica's layout (DESIGN.md "SQLite layout") and the statements that keep it.

One table per source table: the key attributes as typed columns forming the primary key,
``item`` (the whole image as JSON), ``_seq`` and ``_updated_ms``. Bookkeeping beside it:
``_bridge_checkpoints`` (one row per shard, written in the same transaction as the data) and
``_bridge_status`` (one row: is the replica fit to read).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

COLUMN_TYPES = {"S": "TEXT", "N": "NUMERIC", "B": "BLOB"}


class ReplicaSchemaError(Exception):
    """The stream's records cannot be replicated as configured (no new images, keys changed),
    or the file has a layout this bridge does not know."""


SCHEMA_VERSION = 1
"""The layout's version, kept in ``PRAGMA user_version``: a snapshot of another is refused."""

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
    """Sequence numbers are decimal strings of varying length, wider than SQLite's integers:
    compare by length, then text."""
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
        columns = [f"{quote(name)} {COLUMN_TYPES[kind]} NOT NULL" for name, kind in self.keys]
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
