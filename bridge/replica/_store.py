"""The replica file: the SQLite processor's layout, plus the Kafka offsets applied.

Data and offsets commit in one transaction per batch, so after any crash the file's rows are
exactly the effect of the messages up to its offsets: resuming from ``offset + 1`` is
exactly-once in effect. Puts and deletes are also conditional on the DynamoDB sequence number
(``_seq``), so a change the upstream worker published twice (it is at-least-once) cannot
undo a newer one.

Key columns are typed as the envelope's ``bridge-key-types`` header says, and key values
bound by the SQLite processor's rule (``processors/sqlite/keys.py``), so both files hold the
same key the same way whichever message came first. A topic without the header (an older
bridge) has its types guessed from the first message, as before: a JSON number is a number,
anything else text. Such a guess is corrected once a message with the header arrives.
"""

from __future__ import annotations

import contextlib
import sqlite3
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog

from bridge.processors.sqlite.keys import PLAIN_KEY, SqlValue
from bridge.processors.sqlite.layout import (
    PREVIOUS_VERSION,
    migrate,
    register,
    retyped,
    tables_of,
)
from bridge.processors.sqlite.schema import BOOKKEEPING, STATUS, ReplicaTable, quote, stored_seq
from bridge.replica._messages import Change, Delete, KeyTypes, SnapshotEnd, Upsert
from bridge.replica._snapshot_progress import SEEN, SWEPT, MarkRow, SnapshotProgress, mark_row

log = structlog.get_logger("bridge.replica")

SCHEMA_VERSION = 2
"""The replica file's layout (tables, columns, bookkeeping), kept in ``PRAGMA user_version``
and in every snapshot's manifest. A file (or restored snapshot) of layout 1 is migrated when
opened; a node refuses a snapshot of a layout it does not know."""

OFFSETS = """
CREATE TABLE IF NOT EXISTS _bridge_kafka_offsets (
    topic TEXT NOT NULL,
    partition INTEGER NOT NULL,
    last_offset INTEGER NOT NULL,
    message_ms INTEGER,
    updated_ms INTEGER NOT NULL,
    PRIMARY KEY (topic, partition)
);
CREATE TABLE IF NOT EXISTS _bridge_kafka_snapshots (
    topic TEXT NOT NULL,
    partition INTEGER NOT NULL,
    cutoff_ms INTEGER NOT NULL,
    segments INTEGER NOT NULL,
    segment INTEGER NOT NULL,
    seen_ms INTEGER NOT NULL,
    PRIMARY KEY (topic, partition, cutoff_ms, segment)
);
"""

_SAVE_MARK = (
    "INSERT OR IGNORE INTO _bridge_kafka_snapshots "
    "(topic, partition, cutoff_ms, segments, segment, seen_ms) VALUES (?, ?, ?, ?, ?, ?)"
)

_PARTITIONS = "SELECT partition FROM _bridge_kafka_offsets WHERE topic = ?"

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


def _guessed_type(value: Any) -> str:
    # Without the key types header: the envelope writes key numbers that fit 53 bits as JSON
    # numbers; others (rare: fractions, huge numbers) and binary arrive as text, kept as text.
    return "N" if isinstance(value, int) and not isinstance(value, bool) else "S"


KeyBinder = Callable[[Mapping[str, Any]], list[SqlValue]]


def _binder(table: ReplicaTable) -> KeyBinder:
    """The key values of a change's ``keys`` (portable JSON) in column order, as bound."""
    columns = [(name, PLAIN_KEY[kind]) for name, kind in table.keys]
    return lambda keys: [convert(keys[name]) for name, convert in columns]


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
        self._binders: dict[str, KeyBinder] = {}
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
        if version not in (0, PREVIOUS_VERSION, SCHEMA_VERSION):
            db.close()
            raise ReplicaFileError(
                f"{self.path} has replica layout version {version}, this bridge writes "
                f"{SCHEMA_VERSION}: use a new file"
            )
        try:
            if version == PREVIOUS_VERSION:
                migrate(db, self.path, SCHEMA_VERSION)
            elif version == 0:
                db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        except BaseException:
            db.close()
            raise
        self._load_tables(db)
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

    def snapshot_marks(self, topic: str) -> list[MarkRow]:
        """What the file has read of the topic's snapshots (``_snapshot_progress``)."""
        rows = self._conn().execute(
            "SELECT partition, cutoff_ms, segments, segment FROM _bridge_kafka_snapshots "
            "WHERE topic = ? AND segment != ?",
            (topic, SWEPT),
        )
        return [MarkRow(*row) for row in rows]

    def apply(self, topic: str, entries: Sequence[Entry]) -> int:
        """Apply the entries not applied yet and move the offsets, in one transaction.
        Returns how many entries were new."""
        fresh = [e for e in entries if e.offset > self._offsets.get((topic, e.partition), -1)]
        if not fresh:
            return 0
        db = self._conn()
        now_ms = int(time.time() * 1000)
        last: dict[int, Entry] = {}
        marks: set[MarkRow] = set()
        db.execute("BEGIN IMMEDIATE")
        try:
            for entry in fresh:
                last[entry.partition] = entry
                if entry.change is not None:
                    self._apply_one(db, entry.change, now_ms)
                    if (mark := mark_row(entry.partition, entry.change)) is not None:
                        marks.add(mark)
            db.executemany(
                _SAVE_MARK,
                [(topic, m.partition, m.cutoff_ms, m.segments, m.segment, now_ms) for m in marks],
            )
            db.executemany(
                _SAVE_OFFSET,
                [(topic, p, e.offset, e.message_ms, now_ms) for p, e in last.items()],
            )
            if any(m.segment != SEEN for m in marks):
                self._sweep_after_snapshot(db, topic, now_ms)
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            self._load_tables(db)  # a table made or retyped in the transaction is gone again
            raise
        for partition, entry in last.items():
            self._offsets[topic, partition] = entry.offset
        return len(fresh)

    def _sweep_after_snapshot(self, db: sqlite3.Connection, topic: str, now_ms: int) -> None:
        """Once the newest snapshot is whole in every partition read, delete the rows it
        did not write and no message since wrote: items that no longer exist. A row is
        judged by when it was written (``_updated_ms``) against when the snapshot's first
        message was applied; a snapshot is swept once."""
        rows = db.execute(
            "SELECT partition, cutoff_ms, segments, segment, seen_ms FROM "
            "_bridge_kafka_snapshots WHERE topic = ?",
            (topic,),
        ).fetchall()
        cutoff = max(row[1] for row in rows)
        if any(row[1] == cutoff and row[3] == SWEPT for row in rows):
            return
        partitions = [p for (p,) in db.execute(_PARTITIONS, (topic,))]
        progress = SnapshotProgress.of(MarkRow(*row[:4]) for row in rows if row[3] != SWEPT)
        if progress.incomplete(partitions) is not None:
            return
        began_ms = min(row[4] for row in rows if row[1] == cutoff)
        deleted = sum(
            db.execute(f"DELETE FROM {quote(name)} WHERE _updated_ms < ?", (began_ms,)).rowcount
            for name in self.tables
        )
        db.execute(_SAVE_MARK, (topic, -1, cutoff, 0, SWEPT, now_ms))
        log.info("table snapshot complete", cutoff_ms=cutoff, rows_of_gone_items_deleted=deleted)

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

    def _apply_one(self, db: sqlite3.Connection, change: Change, now_ms: int) -> None:
        if isinstance(change, SnapshotEnd):
            return  # no row: its mark is saved with the offsets
        name = self.table_override or change.table or self._only_table()
        if name is None:
            return  # a tombstone before any item: nothing to delete
        table = self.tables.get(name)
        if table is None:
            if isinstance(change, Delete):
                return  # nothing stored yet, nothing to delete
            table = self._create(db, name, change)
        if set(change.keys) != set(table.key_names):
            raise ReplicaFileError(
                f"replica table {name} has key {table.key_names}, but a message has "
                f"{sorted(change.keys)}: use another file or sqlite.table"
            )
        if change.key_types is not None and dict(change.key_types) != dict(table.keys):
            table = self._retype(db, table, change.key_types)
        try:
            values = self._binders[name](change.keys)
        except (ValueError, ArithmeticError, TypeError) as exc:
            raise ReplicaFileError(
                f"replica table {name}: a message's key {change.keys} does not fit its key "
                f"columns {[list(k) for k in table.keys]}: {exc}"
            ) from None
        if isinstance(change, Upsert):
            sql = table.upsert() if change.snapshot is None else table.put()
            db.execute(sql, (*values, change.item.decode(), stored_seq(change.seq), now_ms))
        elif change.seq is None:
            match = " AND ".join(f"{quote(n)} = ?" for n in table.key_names)
            db.execute(f"DELETE FROM {quote(table.name)} WHERE {match}", values)
        else:
            params = {f"k{i}": value for i, value in enumerate(values)}
            db.execute(table.delete(), {**params, "seq": stored_seq(change.seq)})

    def _create(self, db: sqlite3.Connection, name: str, change: Upsert) -> ReplicaTable:
        if change.key_types is not None:
            columns = list(change.key_types)
        else:
            columns = [(key, _guessed_type(value)) for key, value in change.keys.items()]
        table = ReplicaTable(name, columns)
        db.execute(table.create())
        register(db, table)
        self._known(table)
        log.info(
            "replica table created",
            table=name,
            key=[list(c) for c in columns],
            key_types="from the envelope" if change.key_types is not None else "guessed",
        )
        return table

    def _retype(self, db: sqlite3.Connection, table: ReplicaTable, told: KeyTypes) -> ReplicaTable:
        """The envelope's key types where a table's were guessed without them (an older
        bridge published the first messages): its rows converted, in this transaction."""
        try:
            new = retyped(db, table, told)
        except ValueError as exc:
            raise ReplicaFileError(
                f"replica table {table.name} has key types {[list(k) for k in table.keys]}, "
                f"but messages say {[list(k) for k in told]}: {exc}; use another file or "
                "sqlite.table"
            ) from None
        self._known(new)
        log.info(
            "replica key types corrected from the envelope",
            table=table.name,
            was=[list(k) for k in table.keys],
            key=[list(k) for k in new.keys],
        )
        return new

    def _known(self, table: ReplicaTable) -> None:
        self.tables[table.name] = table
        self._binders[table.name] = _binder(table)

    def _load_tables(self, db: sqlite3.Connection) -> None:
        self.tables.clear()
        self._binders.clear()
        for table in tables_of(db):
            self._known(table)

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
