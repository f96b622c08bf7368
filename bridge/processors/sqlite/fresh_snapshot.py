"""A fresh snapshot of the table applied to the file (``on_trimmed: rebootstrap``).

Records were trimmed before they were read, so the file may hold items that changed or were
deleted since. The cluster scans the table again while every shard waits; each page is
written here like a bootstrap page (``INSERT OR REPLACE``, ``_seq`` older than any change),
and once every segment of the snapshot has delivered its last page into this file, the rows
the snapshot did not write (``_updated_ms`` before its first page) are deleted: those items
no longer exist. Progress (``_bridge_fresh_snapshots``) commits with each page, so a restart
mid-snapshot resumes the same sweep. The sweep needs every segment in this file: a worker of
a cluster, which sees only its own segments, never sweeps (docs/sqlite.md).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import orjson
import structlog

from bridge.processors.api import SnapshotBatch
from bridge.processors.sqlite.applier import ChangeApplier
from bridge.processors.sqlite.schema import ReplicaTable, quote
from bridge.processors.sqlite.writer import ReplicaWriter

log = structlog.get_logger("bridge.sqlite.snapshot")

PROGRESS = """
CREATE TABLE IF NOT EXISTS _bridge_fresh_snapshots (
    cutoff_ms INTEGER PRIMARY KEY,
    segments INTEGER NOT NULL,
    started_ms INTEGER NOT NULL,
    done TEXT NOT NULL,
    swept_ms INTEGER
)
"""


class FreshSnapshotApplier:
    def __init__(
        self,
        writer: ReplicaWriter,
        applier: ChangeApplier,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.writer = writer
        self.applier = applier
        self.clock = clock

    async def apply(self, batch: SnapshotBatch) -> None:
        await self.writer.call(self._apply, batch)

    def _apply(self, batch: SnapshotBatch) -> None:
        table: ReplicaTable | None = self.applier.table
        if batch.items:
            first = batch.items[0]
            table = self.applier.ensure_table({name: first[name] for name in batch.key_names})
        db = self.writer.connection()
        now_ms = int(self.clock() * 1000)
        db.execute(PROGRESS)
        db.execute("BEGIN IMMEDIATE")
        try:
            db.execute(
                "INSERT OR IGNORE INTO _bridge_fresh_snapshots (cutoff_ms, segments, started_ms, "
                "done) VALUES (?, ?, ?, '[]')",
                (batch.cutoff_ms, batch.total, now_ms),
            )
            if table is not None:
                table.put_scanned(db, batch.items, now_ms)
            if batch.last:
                self._segment_done(db, batch, table.name if table is not None else None)
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    def _segment_done(self, db: Any, batch: SnapshotBatch, table: str | None) -> None:
        started_ms, done_text, swept = db.execute(
            "SELECT started_ms, done, swept_ms FROM _bridge_fresh_snapshots WHERE cutoff_ms = ?",
            (batch.cutoff_ms,),
        ).fetchone()
        done = sorted(set(orjson.loads(done_text)) | {batch.index})
        db.execute(
            "UPDATE _bridge_fresh_snapshots SET done = ? WHERE cutoff_ms = ?",
            (orjson.dumps(done).decode(), batch.cutoff_ms),
        )
        if swept is not None or len(done) < batch.total:
            return
        deleted = 0
        if table is not None:
            deleted = db.execute(
                f"DELETE FROM {quote(table)} WHERE _updated_ms < ?", (started_ms,)
            ).rowcount
        db.execute(
            "UPDATE _bridge_fresh_snapshots SET swept_ms = ? WHERE cutoff_ms = ?",
            (int(self.clock() * 1000), batch.cutoff_ms),
        )
        log.info(
            "fresh snapshot applied; items gone from the table deleted",
            cutoff_ms=batch.cutoff_ms,
            deleted=deleted,
        )
