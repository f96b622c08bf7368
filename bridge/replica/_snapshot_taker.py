"""Taking a snapshot of the replica file: describe a consistent copy
(``bridge.snapshots.copy_replica``), gzip, upload, manifest last, then the retention sweep.

Offsets, item count and watermark are read from the copy itself, never from the live file,
so they are those of the rows the copy holds.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import structlog

from bridge import __version__
from bridge.processors.sqlite.schema import quote
from bridge.replica._config import ReplicaConfig
from bridge.replica._store import SCHEMA_VERSION
from bridge.snapshots import (
    Manifest,
    ObjectStore,
    SnapshotSource,
    expire_snapshots,
    put_manifest,
    upload_copy,
)
from bridge.snapshots._settings import SnapshotsConfig

log = structlog.get_logger("bridge.replica.snapshots")


class SnapshotTaker:
    """Uploads a copy of the replica file and expires old snapshots. Synchronous: run it in a
    thread of its own (never the applier's)."""

    def __init__(
        self,
        config: ReplicaConfig,
        store: ObjectStore,
        *,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        assert config.snapshots is not None
        self.config = config
        self.settings: SnapshotsConfig = config.snapshots
        self.store = store
        self.now = now

    def upload(self, copy: Path, workdir: Path) -> Manifest:
        """Describe ``copy`` (a consistent copy of the file), compress and upload it, write
        its manifest, then expire old snapshots. Returns the manifest."""
        topic = self.config.kafka.topic
        offsets, tables, items, watermark = _describe(copy, topic)
        uploaded = upload_copy(
            self.store, self.settings, self.config.app, copy, workdir=workdir, created=self.now()
        )
        manifest = Manifest(
            id=uploaded.id,
            app=self.config.app,
            created_ms=uploaded.created_ms,
            created=uploaded.created_iso,
            source=SnapshotSource(topic=topic, tables=tables, filter=filter_of(self.config)),
            offsets=offsets,
            watermark_ms=watermark,
            schema_version=SCHEMA_VERSION,
            items=items,
            object=uploaded.object,
            bridge_version=__version__,
        )
        put_manifest(self.store, uploaded, manifest)
        log.info(
            "snapshot uploaded",
            key=uploaded.object.key,
            items=items,
            bytes=uploaded.object.size,
            raw_bytes=uploaded.object.raw_size,
            offsets={str(p): o for p, o in sorted(offsets.items())},
        )
        self.expire()
        return manifest

    def expire(self) -> list[str]:
        """Delete what the retention rule no longer keeps (failures logged, not raised)."""
        return expire_snapshots(self.store, self.settings, self.config.app, self.now())


def filter_of(config: ReplicaConfig) -> dict[str, object] | None:
    if config.filter is None:
        return None
    return config.filter.model_dump(mode="json", by_alias=True, exclude_unset=True)


def _describe(copy: Path, topic: str) -> tuple[dict[int, int], list[str], int, int | None]:
    """Offsets, tables, item count and watermark of the copy; its status row is marked not
    ready, so a restored file reads as "not ready" until its follower says otherwise."""
    with contextlib.closing(sqlite3.connect(copy, isolation_level=None)) as db:
        rows = db.execute(
            "SELECT partition, last_offset, message_ms FROM _bridge_kafka_offsets WHERE topic = ?",
            (topic,),
        ).fetchall()
        tables = [name for (name,) in db.execute("SELECT name FROM _bridge_tables ORDER BY name")]
        items = sum(
            db.execute(f"SELECT count(*) FROM {quote(name)}").fetchone()[0] for name in tables
        )
        db.execute(
            "UPDATE _bridge_status SET ready = 0, phase = 'snapshot', "
            "reason = 'restored from a snapshot, not followed yet'"
        )
    offsets = {int(p): int(o) for p, o, _ in rows}
    stamps = [int(ms) for _, _, ms in rows if ms is not None]
    return offsets, tables, items, min(stamps) if stamps else None
