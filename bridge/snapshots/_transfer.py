"""Moving one snapshot: compress and upload a copy, write its manifest last, expire old ones;
read a manifest, download its object and check it. Synchronous: run it off the event loop.

What a snapshot holds (offsets, checkpoints) and whether that position is still usable is the
caller's: the Kafka replica and the SQLite processor each check their own.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

import orjson
import structlog
from pydantic import ValidationError

from bridge.snapshots._files import CorruptSnapshotError, compress_file, decompress_file, sha256_of
from bridge.snapshots._manifest import (
    DATA_SUFFIX,
    FORMAT,
    MANIFEST_SUFFIX,
    ManifestBase,
    SnapshotObject,
    app_prefix,
    expired,
    snapshot_base,
)
from bridge.snapshots._objects import ObjectStore, ObjectStoreError
from bridge.snapshots._progress import TransferProgress
from bridge.snapshots._settings import SnapshotsConfig

log = structlog.get_logger("bridge.snapshots")

M = TypeVar("M", bound=ManifestBase)


class SnapshotRejectedError(Exception):
    """This snapshot cannot be used; the message starts with ``corrupt:``, ``stale:`` or
    ``incompatible:`` and says why."""


@dataclass(frozen=True)
class Rejection:
    key: str
    reason: str


@dataclass
class RestoreOutcome:
    """What a cold start found: the snapshot restored (or None) and every one refused."""

    key: str | None = None
    rejected: list[Rejection] = field(default_factory=list)

    def why_none(self) -> str:
        if not self.rejected:
            return "no snapshot found"
        return "; ".join(f"{r.key}: {r.reason}" for r in self.rejected)


@dataclass(frozen=True)
class Uploaded:
    """The data object of a snapshot, uploaded; its manifest is not written yet."""

    base: str
    id: str
    created: datetime
    object: SnapshotObject

    @property
    def created_ms(self) -> int:
        return int(self.created.timestamp() * 1000)

    @property
    def created_iso(self) -> str:
        return self.created.astimezone(UTC).isoformat()


def upload_copy(
    store: ObjectStore,
    settings: SnapshotsConfig,
    app: str,
    copy: Path,
    *,
    workdir: Path,
    created: datetime,
) -> Uploaded:
    """Compress ``copy`` (a consistent copy of the file) into ``workdir`` and upload it."""
    packed = workdir / "copy.sqlite.gz"
    progress = TransferProgress("compressing snapshot", copy.stat().st_size)
    try:
        compressed = compress_file(copy, packed, settings.compress_level, progress.advance)
    finally:
        progress.close()
    base, ident = snapshot_base(settings.prefix, app, created)
    data_key = base + DATA_SUFFIX
    progress = TransferProgress("uploading snapshot", compressed.size, key=data_key)
    try:
        store.put_file(data_key, packed, progress.advance)
    finally:
        progress.close()
    packed.unlink()
    return Uploaded(
        base=base,
        id=ident,
        created=created,
        object=SnapshotObject(
            key=data_key,
            size=compressed.size,
            sha256=compressed.sha256,
            raw_size=compressed.raw_size,
        ),
    )


def put_manifest(store: ObjectStore, uploaded: Uploaded, manifest: ManifestBase) -> str:
    """Write the manifest: from now on the snapshot exists. Returns its key."""
    key = uploaded.base + MANIFEST_SUFFIX
    store.put_bytes(key, manifest.model_dump_json(indent=2).encode())
    return key


def expire_snapshots(
    store: ObjectStore, settings: SnapshotsConfig, app: str, now: datetime
) -> list[str]:
    """Delete what the retention rule no longer keeps; failures are logged, not raised (the
    next sweep tries again). Returns the keys deleted."""
    prefix = app_prefix(settings.prefix, app)
    try:
        keys = store.list(prefix)
    except ObjectStoreError as exc:
        log.warning("snapshot retention skipped", error=str(exc))
        return []
    deleted: list[str] = []
    for key in expired(keys, keep=settings.keep, max_age=settings.max_age, now=now):
        try:
            store.delete(key)
        except ObjectStoreError as exc:
            log.warning("snapshot retention: delete failed", key=key, error=str(exc))
            continue
        deleted.append(key)
    if deleted:
        log.info("old snapshots deleted", keys=deleted)
    return deleted


def read_manifest(store: ObjectStore, key: str, model: type[M]) -> M:
    """The manifest at ``key``; ``SnapshotRejectedError`` (corrupt/incompatible) if it is not
    one this bridge reads."""
    raw = store.get_bytes(key)
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise SnapshotRejectedError(f"corrupt: the manifest is not JSON: {exc}") from None
    version = data.get("format") if isinstance(data, dict) else None
    if isinstance(version, int) and version > FORMAT:
        raise SnapshotRejectedError(
            f"incompatible: manifest format {version}, this bridge reads up to {FORMAT}"
        )
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise SnapshotRejectedError(
            f"corrupt: the manifest is invalid at {where}: {first['msg']}"
        ) from None


def fetch_object(store: ObjectStore, item: SnapshotObject, workdir: Path) -> Path:
    """Download ``item`` into ``workdir``, check its size and sha256 against the manifest,
    and decompress it; returns the SQLite file. ``CorruptSnapshotError`` if any check fails."""
    packed = workdir / "snapshot.sqlite.gz"
    progress = TransferProgress("downloading snapshot", item.size, key=item.key)
    try:
        store.get_file(item.key, packed, progress.advance)
    finally:
        progress.close()
    size = packed.stat().st_size
    if size != item.size:
        raise CorruptSnapshotError(f"{size} bytes downloaded, the manifest says {item.size}")
    if sha256_of(packed) != item.sha256:
        raise CorruptSnapshotError("sha256 of the object does not match the manifest")
    restored = workdir / "replica.sqlite"
    progress = TransferProgress("restoring snapshot", size, key=item.key)
    try:
        written = decompress_file(packed, restored, progress.advance)
    finally:
        progress.close()
    packed.unlink()
    if written != item.raw_size:
        raise CorruptSnapshotError(
            f"{written} bytes decompressed, the manifest says {item.raw_size}"
        )
    return restored


def install_file(restored: Path, target: Path) -> None:
    """Put a checked file at ``target`` (atomic rename; same file system)."""
    for suffix in ("-wal", "-shm", "-journal"):  # a replaced file's, now stale
        with contextlib.suppress(FileNotFoundError):
            os.unlink(f"{target}{suffix}")
    os.replace(restored, target)
