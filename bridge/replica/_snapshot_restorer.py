"""Restoring the newest usable snapshot: a new node's cold start, and ``on_gap: restore``.

Manifests are tried newest first. Each is checked before its data is fetched (format, replica
layout, topic, filter, and that its offsets are still in the topic: each partition's
``offset + 1`` at or above the topic's low watermark, else the messages between them are gone
and resuming would silently skip them). Then the data is downloaded, its sha256 checked,
decompressed, opened as SQLite and its offsets compared to the manifest's; only then is it
renamed into place (atomic). A rejected snapshot is logged with its reason and the next
older one is tried. A snapshot of the previous layout is restored as it is, and migrated when
the store opens it, as a file of the node's own would be.
"""

from __future__ import annotations

import contextlib
import sqlite3
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import structlog

from bridge.processors.sqlite.layout import PREVIOUS_VERSION
from bridge.replica._config import ReplicaConfig
from bridge.replica._snapshot_taker import filter_of
from bridge.replica._store import SCHEMA_VERSION
from bridge.snapshots import (
    CorruptSnapshotError,
    Manifest,
    ObjectStore,
    ObjectStoreError,
    SnapshotRejectedError,
    app_prefix,
    describe_gap,
    fetch_object,
    install_file,
    newest_first,
    offsets_gap,
    read_manifest,
)
from bridge.snapshots._settings import SnapshotsConfig

log = structlog.get_logger("bridge.replica.snapshots")


@dataclass(frozen=True)
class Rejection:
    key: str
    reason: str


@dataclass
class RestoreResult:
    manifest: Manifest | None = None
    """The snapshot restored, or None."""
    key: str | None = None
    rejected: list[Rejection] = field(default_factory=list)

    def why_none(self) -> str:
        if not self.rejected:
            return "no snapshot found"
        return "; ".join(f"{r.key}: {r.reason}" for r in self.rejected)


class SnapshotRestorer:
    """Synchronous: run it in a thread of its own."""

    def __init__(self, config: ReplicaConfig, store: ObjectStore) -> None:
        assert config.snapshots is not None
        self.config = config
        self.settings: SnapshotsConfig = config.snapshots
        self.store = store
        self.where = f"s3://{self.settings.bucket}/{app_prefix(self.settings.prefix, config.app)}"

    def restore(
        self,
        target: Path,
        low_watermarks: Mapping[int, int],
        *,
        stop: Callable[[], bool] = lambda: False,
    ) -> RestoreResult:
        """Put the newest usable snapshot at ``target`` (replacing it). ``low_watermarks``:
        each partition's first offset still in the topic."""
        result = RestoreResult()
        try:
            keys = newest_first(self.store.list(app_prefix(self.settings.prefix, self.config.app)))
        except ObjectStoreError as exc:
            result.rejected.append(Rejection(self.where, f"cannot list snapshots: {exc}"))
            log.error("cannot list snapshots", where=self.where, error=str(exc))
            return result
        log.info("snapshots found", where=self.where, count=len(keys))
        for key in keys:
            if stop():
                break
            try:
                manifest = self._manifest(key)
                self._check(manifest, low_watermarks)
                self._fetch(manifest, target)
            except (SnapshotRejectedError, CorruptSnapshotError, ObjectStoreError) as exc:
                reason = str(exc)
                if isinstance(exc, CorruptSnapshotError):
                    reason = f"corrupt: {reason}"
                log.warning("snapshot rejected", key=key, reason=reason)
                result.rejected.append(Rejection(key, reason))
                continue
            result.manifest, result.key = manifest, key
            log.info(
                "snapshot restored",
                key=key,
                items=manifest.items,
                created=manifest.created,
                offsets={str(p): o for p, o in sorted(manifest.offsets.items())},
            )
            return result
        return result

    def _manifest(self, key: str) -> Manifest:
        return read_manifest(self.store, key, Manifest)

    def _check(self, manifest: Manifest, low_watermarks: Mapping[int, int]) -> None:
        if manifest.schema_version not in (PREVIOUS_VERSION, SCHEMA_VERSION):
            raise SnapshotRejectedError(
                f"incompatible: replica layout version {manifest.schema_version}, this "
                f"bridge uses {SCHEMA_VERSION}"
            )
        if manifest.source.topic != self.config.kafka.topic:
            raise SnapshotRejectedError(
                f"incompatible: taken from topic {manifest.source.topic}, "
                f"not {self.config.kafka.topic}"
            )
        if manifest.source.filter != filter_of(self.config):
            raise SnapshotRejectedError(
                f"incompatible: taken with filter {manifest.source.filter}, this replica's "
                f"is {filter_of(self.config)}"
            )
        wanted = self.config.sqlite.table
        if wanted is not None and manifest.source.tables not in ([], [wanted]):
            raise SnapshotRejectedError(
                f"incompatible: holds tables {manifest.source.tables}, not {wanted}"
            )
        gaps = offsets_gap(manifest.offsets, low_watermarks)
        if gaps:
            raise SnapshotRejectedError(f"stale: {describe_gap(gaps)}")

    def _fetch(self, manifest: Manifest, target: Path) -> None:
        target.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix=".bridge-restore-", dir=target.parent) as tmp:
            restored = fetch_object(self.store, manifest.object, Path(tmp))
            _verify_file(restored, self.config.kafka.topic, manifest)
            install_file(restored, target)


def _verify_file(path: Path, topic: str, manifest: Manifest) -> None:
    try:
        with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
            (version,) = db.execute("PRAGMA user_version").fetchone()
            rows = db.execute(
                "SELECT partition, last_offset FROM _bridge_kafka_offsets WHERE topic = ?",
                (topic,),
            ).fetchall()
    except sqlite3.DatabaseError as exc:
        raise CorruptSnapshotError(f"not a replica file: {exc}") from None
    if version != manifest.schema_version:
        raise CorruptSnapshotError(
            f"the file has layout version {version}, the manifest says {manifest.schema_version}"
        )
    offsets = {int(p): int(o) for p, o in rows}
    if offsets != manifest.offsets:
        raise CorruptSnapshotError(
            f"the file's offsets {offsets} differ from the manifest's {manifest.offsets}"
        )
