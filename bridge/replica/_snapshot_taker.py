"""Taking a snapshot of the replica file: a consistent copy, gzip, upload, manifest last,
then the retention sweep.

The copy is ``VACUUM INTO`` from a connection of its own: in WAL mode that is one read
transaction, so the applier keeps committing while it runs, and the copy holds rows and
offsets of the same instant. Offsets, item count and watermark are read from the copy itself.
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
    DATA_SUFFIX,
    MANIFEST_SUFFIX,
    Manifest,
    ObjectStore,
    ObjectStoreError,
    SnapshotObject,
    SnapshotSource,
    TransferProgress,
    app_prefix,
    compress_file,
    expired,
    snapshot_base,
)
from bridge.snapshots._settings import SnapshotsConfig

log = structlog.get_logger("bridge.replica.snapshots")


def copy_replica(source: Path, target: Path) -> None:
    """A consistent copy of ``source`` from a connection of its own (WAL: writers go on)."""
    with contextlib.closing(sqlite3.connect(source, timeout=30, isolation_level=None)) as db:
        db.execute("VACUUM INTO ?", (str(target),))


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
        packed = workdir / "copy.sqlite.gz"
        progress = TransferProgress("compressing snapshot", copy.stat().st_size)
        try:
            compressed = compress_file(copy, packed, self.settings.compress_level, progress.advance)
        finally:
            progress.close()
        created = self.now()
        base, ident = snapshot_base(self.settings.prefix, self.config.app, created)
        data_key = base + DATA_SUFFIX
        progress = TransferProgress("uploading snapshot", compressed.size, key=data_key)
        try:
            self.store.put_file(data_key, packed, progress.advance)
        finally:
            progress.close()
        manifest = Manifest(
            id=ident,
            app=self.config.app,
            created_ms=int(created.timestamp() * 1000),
            created=created.astimezone(UTC).isoformat(),
            source=SnapshotSource(topic=topic, tables=tables, filter=filter_of(self.config)),
            offsets=offsets,
            watermark_ms=watermark,
            schema_version=SCHEMA_VERSION,
            items=items,
            object=SnapshotObject(
                key=data_key,
                size=compressed.size,
                sha256=compressed.sha256,
                raw_size=compressed.raw_size,
            ),
            bridge_version=__version__,
        )
        self.store.put_bytes(base + MANIFEST_SUFFIX, manifest.model_dump_json(indent=2).encode())
        log.info(
            "snapshot uploaded",
            key=data_key,
            items=items,
            bytes=compressed.size,
            raw_bytes=compressed.raw_size,
            offsets={str(p): o for p, o in sorted(offsets.items())},
        )
        self.expire()
        return manifest

    def expire(self) -> list[str]:
        """Delete what the retention rule no longer keeps; failures are logged, not raised
        (the next sweep tries again)."""
        prefix = app_prefix(self.settings.prefix, self.config.app)
        try:
            keys = self.store.list(prefix)
        except ObjectStoreError as exc:
            log.warning("snapshot retention skipped", error=str(exc))
            return []
        doomed = expired(
            keys, keep=self.settings.keep, max_age=self.settings.max_age, now=self.now()
        )
        deleted: list[str] = []
        for key in doomed:
            try:
                self.store.delete(key)
            except ObjectStoreError as exc:
                log.warning("snapshot retention: delete failed", key=key, error=str(exc))
                continue
            deleted.append(key)
        if deleted:
            log.info("old snapshots deleted", keys=deleted)
        return deleted


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
