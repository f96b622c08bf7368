"""The replica file: the SQLite processor's layout, plus the Kafka offsets applied.

Data and offsets commit in one transaction per batch, so after any crash the file's rows are
exactly the effect of the messages up to its offsets: resuming from ``offset + 1`` is
exactly-once in effect. Puts and deletes are also conditional on the DynamoDB sequence number
(``_seq``), so a change the upstream worker published twice (it is at-least-once) cannot
undo a newer one.
"""

from __future__ import annotations

import contextlib
import sqlite3
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import structlog

from bridge.processors.sqlite.schema import BOOKKEEPING, STATUS, ReplicaTable, quote
from bridge.replica._messages import Change, Delete, Upsert

log = structlog.get_logger("bridge.replica")

SCHEMA_VERSION = 1
"""The replica file's layout (tables, columns, bookkeeping), kept in ``PRAGMA user_version``
and in every snapshot's manifest: a node refuses a snapshot of a layout it does not know."""

OFFSETS = """
CREATE TABLE IF NOT EXISTS _bridge_kafka_offsets (
    topic TEXT NOT NULL,
    partition INTEGER NOT NULL,
    last_offset INTEGER NOT NULL,
    message_ms INTEGER,
    updated_ms INTEGER NOT NULL,
    PRIMARY KEY (topic, partition)
);
"""

_SAVE_OFFSET = (
    "INSERT INTO _bridge_kafka_offsets (topic, partition, last_offset, message_ms, updated_ms) "
    "VALUES (?, ?, ?, ?, ?) ON CONFLICT (topic, partition) DO UPDATE SET "
    "last_offset = excluded.last_offset, message_ms = excluded.message_ms, "
    "updated_ms = excluded.updated_ms"
)


class ReplicaFileError(Exception):
    """The file holds a table whose key differs from the topic's items."""


@dataclass(frozen=True)
class Entry:
    """One message's place and effect; ``change`` None for a message skipped as unreadable."""

    partition: int
    offset: int
    message_ms: int | None
    change: Change | None


@dataclass(frozen=True)
class StoredOffset:
    last_offset: int
    message_ms: int | None


def _key_type(value: Any) -> str:
    # The envelope writes key numbers that fit 53 bits as JSON numbers; others (rare:
    # fractions, huge numbers) and binary arrive as text and are kept as text.
    return "N" if isinstance(value, int) and not isinstance(value, bool) else "S"


class ReplicaStore:
    """Used from one thread (the replica's writer)."""

    def __init__(
        self,
        path: Path,
        *,
        table: str | None = None,
        journal_mode: str = "wal",
        synchronous: str = "normal",
    ) -> None:
        self.path = path
        self.table_override = table
        self.journal_mode = journal_mode
        self.synchronous = synchronous
        self.tables: dict[str, ReplicaTable] = {}
        self._offsets: dict[tuple[str, int], int] = {}
        self._db: sqlite3.Connection | None = None

    def open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        db.execute(f"PRAGMA journal_mode={self.journal_mode}")
        db.execute(f"PRAGMA synchronous={self.synchronous}")
        db.execute("PRAGMA busy_timeout=5000")
        db.executescript(BOOKKEEPING + OFFSETS)
        (version,) = db.execute("PRAGMA user_version").fetchone()
        if version == 0:
            db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        elif version != SCHEMA_VERSION:
            db.close()
            raise ReplicaFileError(
                f"{self.path} has replica layout version {version}, this bridge writes "
                f"{SCHEMA_VERSION}: use a new file"
            )
        for name, columns in db.execute("SELECT name, key_columns FROM _bridge_tables"):
            self.tables[name] = ReplicaTable(name, [tuple(k) for k in orjson.loads(columns)])
        for topic, partition, last in db.execute(
            "SELECT topic, partition, last_offset FROM _bridge_kafka_offsets"
        ):
            self._offsets[topic, partition] = last
        self._db = db

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    def offsets(self, topic: str) -> dict[int, StoredOffset]:
        rows = self._conn().execute(
            "SELECT partition, last_offset, message_ms FROM _bridge_kafka_offsets WHERE topic = ?",
            (topic,),
        )
        return {partition: StoredOffset(last, ms) for partition, last, ms in rows}

    def apply(self, topic: str, entries: Sequence[Entry]) -> int:
        """Apply the entries not applied yet and move the offsets, in one transaction.
        Returns how many entries were new."""
        fresh = [e for e in entries if e.offset > self._offsets.get((topic, e.partition), -1)]
        if not fresh:
            return 0
        db = self._conn()
        now_ms = int(time.time() * 1000)
        last: dict[int, Entry] = {}
        created: list[str] = []
        db.execute("BEGIN IMMEDIATE")
        try:
            for entry in fresh:
                last[entry.partition] = entry
                if entry.change is not None:
                    self._apply_one(db, entry.change, now_ms, created)
            db.executemany(
                _SAVE_OFFSET,
                [(topic, p, e.offset, e.message_ms, now_ms) for p, e in last.items()],
            )
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            for name in created:
                self.tables.pop(name, None)
            raise
        for partition, entry in last.items():
            self._offsets[topic, partition] = entry.offset
        return len(fresh)

    def copy_into(self, target: Path) -> None:
        """A consistent copy of the file (``VACUUM INTO``); blocks writes while it runs, so
        with WAL a snapshot copies from another connection instead (``copy_replica``)."""
        self._conn().execute("VACUUM INTO ?", (str(target),))

    def write_status(
        self, ready: bool, reason: str, lag_ms: float | None, watermark_ms: int | None, phase: str
    ) -> None:
        self._conn().execute(
            STATUS, (int(ready), lag_ms, watermark_ms, phase, reason, int(time.time() * 1000))
        )

    # -- inside the transaction -------------------------------------------------------------

    def _apply_one(
        self, db: sqlite3.Connection, change: Change, now_ms: int, created: list[str]
    ) -> None:
        name = self.table_override or change.table or self._only_table()
        if name is None:
            return  # a tombstone before any item: nothing to delete
        table = self.tables.get(name)
        if table is None:
            if isinstance(change, Delete):
                return  # nothing stored yet, nothing to delete
            table = self._create(db, name, change)
            created.append(name)
        if set(change.keys) != set(table.key_names):
            raise ReplicaFileError(
                f"replica table {name} has key {table.key_names}, but a message has "
                f"{sorted(change.keys)}: use another file or sqlite.table"
            )
        values = [change.keys[n] for n in table.key_names]
        if isinstance(change, Upsert):
            db.execute(table.upsert(), (*values, change.item.decode(), change.seq, now_ms))
        elif change.seq is None:
            match = " AND ".join(f"{quote(n)} = ?" for n in table.key_names)
            db.execute(f"DELETE FROM {quote(table.name)} WHERE {match}", values)
        else:
            params = {f"k{i}": value for i, value in enumerate(values)}
            db.execute(table.delete(), {**params, "seq": change.seq})

    def _create(self, db: sqlite3.Connection, name: str, change: Upsert) -> ReplicaTable:
        columns = [(key, _key_type(value)) for key, value in change.keys.items()]
        table = ReplicaTable(name, columns)
        db.execute(table.create())
        db.execute(
            "INSERT OR REPLACE INTO _bridge_tables (name, key_columns) VALUES (?, ?)",
            (name, orjson.dumps([list(c) for c in columns]).decode()),
        )
        self.tables[name] = table
        log.info("replica table created", table=name, key=[list(c) for c in columns])
        return table

    def _only_table(self) -> str | None:
        return next(iter(self.tables)) if len(self.tables) == 1 else None

    def _conn(self) -> sqlite3.Connection:
        if self._db is None:
            raise RuntimeError("the replica file is not open")
        return self._db


def stored_offsets(path: Path, topic: str) -> Mapping[int, int]:
    """The last offset applied per partition, read-only (tests and tools)."""
    with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
        rows = db.execute(
            "SELECT partition, last_offset FROM _bridge_kafka_offsets WHERE topic = ?", (topic,)
        ).fetchall()
    return {int(p): int(o) for p, o in rows}
