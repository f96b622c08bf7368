"""Taking a snapshot of the SQLite processor's replica: describe a consistent copy
(``bridge.snapshots.copy_replica``), gzip, upload, manifest last, then the retention sweep.

The checkpoints, item count and watermark in the manifest are read from the copy itself, never
from the live file, so they are those of the rows the copy holds.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import structlog

from bridge import __version__
from bridge.processors.sqlite.schema import SCHEMA_VERSION, quote
from bridge.snapshots import (
    ObjectStore,
    SnapshotsConfig,
    StreamManifest,
    StreamSnapshotSource,
    expire_snapshots,
    put_manifest,
    upload_copy,
)

log = structlog.get_logger("bridge.processor.sqlite.snapshots")


@dataclass(frozen=True)
class CopyContents:
    checkpoints: dict[str, str]
    items: int
    watermark_ms: int | None


def describe_copy(copy: Path, table: str) -> CopyContents:
    """Checkpoints, item count and watermark of the copy. Its status row is marked not ready,
    so a restored file reads as "not ready" until its worker has caught up."""
    with contextlib.closing(sqlite3.connect(copy, isolation_level=None)) as db:
        rows = db.execute("SELECT shard_id, checkpoint FROM _bridge_checkpoints").fetchall()
        known = db.execute("SELECT 1 FROM _bridge_tables WHERE name = ?", (table,)).fetchone()
        items = db.execute(f"SELECT count(*) FROM {quote(table)}").fetchone()[0] if known else 0
        status = db.execute("SELECT watermark_ms FROM _bridge_status").fetchone()
        db.execute(
            "UPDATE _bridge_status SET ready = 0, phase = 'snapshot', "
            "reason = 'restored from a snapshot, not caught up yet'"
        )
    watermark = status[0] if status is not None and status[0] is not None else None
    return CopyContents({str(s): str(c) for s, c in rows}, int(items), watermark)


class SnapshotTaker:
    """Uploads a copy of the replica file and expires old snapshots. Synchronous: run it in a
    thread of its own (never the writer's)."""

    def __init__(
        self,
        settings: SnapshotsConfig,
        store: ObjectStore,
        *,
        app: str,
        source_table: str,
        replica_table: str,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.settings = settings
        self.store = store
        self.app = app
        self.source_table = source_table
        self.replica_table = replica_table
        self.now = now

    def upload(self, copy: Path, workdir: Path, stream_arn: str) -> StreamManifest:
        """Describe ``copy`` (a consistent copy of the file), compress and upload it, write
        its manifest, then expire old snapshots. Returns the manifest."""
        contents = describe_copy(copy, self.replica_table)
        uploaded = upload_copy(
            self.store, self.settings, self.app, copy, workdir=workdir, created=self.now()
        )
        manifest = StreamManifest(
            id=uploaded.id,
            app=self.app,
            created_ms=uploaded.created_ms,
            created=uploaded.created_iso,
            source=StreamSnapshotSource(
                table=self.source_table, stream_arn=stream_arn, replica_table=self.replica_table
            ),
            checkpoints=contents.checkpoints,
            watermark_ms=contents.watermark_ms,
            schema_version=SCHEMA_VERSION,
            items=contents.items,
            object=uploaded.object,
            bridge_version=__version__,
        )
        key = put_manifest(self.store, uploaded, manifest)
        log.info(
            "snapshot uploaded",
            key=key,
            items=contents.items,
            bytes=uploaded.object.size,
            raw_bytes=uploaded.object.raw_size,
            shards=len(contents.checkpoints),
        )
        self.expire()
        return manifest

    def expire(self) -> list[str]:
        return expire_snapshots(self.store, self.settings, self.app, self.now())
