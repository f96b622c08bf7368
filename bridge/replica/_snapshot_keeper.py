"""The replica's snapshots, seen from the follower: the cold start from one, and taking one
every ``snapshots.interval``.

A node starting without a file restores the newest usable snapshot first: the restorer
(``_snapshot_restorer``) refuses one whose offsets the topic no longer holds, so the topic's
low watermarks are read before it looks. The same restore repairs a gap (``_gaps``). Taking one
copies the live file and hands the copy to the taker (``_snapshot_taker``). Both run on a thread
of their own, so neither delays an apply; one lock keeps a copy from reading a file that a
restore is replacing.
"""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from prometheus_client import Counter
from structlog.typing import FilteringBoundLogger

from bridge.replica._assigner import PartitionAssigner
from bridge.replica._config import ReplicaConfig
from bridge.replica._handles import OneThread, ReplicaFile
from bridge.replica._readiness import FollowerReadiness
from bridge.replica._snapshot_restorer import RestoreResult, SnapshotRestorer
from bridge.replica._snapshot_taker import SnapshotTaker
from bridge.replica._status import StatusPublisher
from bridge.replica._store import StoredOffset
from bridge.snapshots import Manifest, ObjectStore, S3ObjectStore, SnapshotsConfig, copy_replica


class SnapshotRestoreError(Exception):
    """No usable snapshot at a cold start, with ``bootstrap_on_failure: fail`` (exit 1)."""


@dataclass(eq=False, kw_only=True)
class SnapshotKeeper:
    config: ReplicaConfig
    file: ReplicaFile
    assigner: PartitionAssigner
    readiness: FollowerReadiness
    status: StatusPublisher
    taken: Counter
    failures: Counter
    objects: ObjectStore | None
    stopping: asyncio.Event
    log: FilteringBoundLogger
    restored: Manifest | None = field(init=False, default=None)
    """The snapshot this replica was restored from, if any."""
    restore_result: RestoreResult | None = field(init=False, default=None)
    """The last restore attempt: what was restored, what was rejected and why."""
    _thread: OneThread = field(init=False, default_factory=lambda: OneThread("replica-snapshot"))
    _file_lock: asyncio.Lock = field(init=False, default_factory=asyncio.Lock)
    """A snapshot's copy against a restore replacing the file."""
    _last_taken: dict[int, StoredOffset] | None = field(init=False, default=None)

    @property
    def _settings(self) -> SnapshotsConfig:
        assert self.config.snapshots is not None
        return self.config.snapshots

    def cold_start_wanted(self) -> bool:
        snapshots = self.config.snapshots
        if snapshots is None or snapshots.restore == "never":
            return False
        if self.file.path.exists():
            self.log.info("replica file exists: resuming from it, not from a snapshot")
            return False
        return True

    def periodic(self) -> bool:
        """Whether snapshots are taken every interval (``run``), not only on demand."""
        snapshots = self.config.snapshots
        return snapshots is not None and snapshots.interval.total_seconds() > 0

    def _object_store(self) -> ObjectStore:
        if self.objects is None:
            settings = self._settings
            self.objects = S3ObjectStore(
                settings.bucket, region=settings.region, endpoint_url=settings.endpoint_url
            )
        return self.objects

    async def cold_start(self) -> None:
        """Restore the newest usable snapshot, or say why none will do and replay the topic
        (``bootstrap_on_failure: fail`` raises ``SnapshotRestoreError`` instead)."""
        self.readiness.phase = "restoring"
        result = await self.restore()
        if result.manifest is not None or self.stopping.is_set():
            return
        settings = self._settings
        reason = result.why_none()
        if settings.bootstrap_on_failure == "fail":
            self.status.failure = f"no usable snapshot: {reason}"
            raise SnapshotRestoreError(
                f"no usable snapshot in s3://{settings.bucket}/{settings.prefix}"
                f"{self.config.app}/ ({reason}); snapshots.bootstrap_on_failure is fail"
            )
        self.log.warning(
            "no usable snapshot: replaying the topic from its beginning", reason=reason
        )

    async def restore(self) -> RestoreResult:
        """The newest usable snapshot into the file's place (its offsets checked against the
        topic's low watermarks)."""
        lows = await self.assigner.low_watermarks()
        if lows is None:
            return RestoreResult()
        restorer = await self._thread.run(SnapshotRestorer, self.config, self._object_store())
        async with self._file_lock:
            self.restore_result = await self._thread.run(
                restorer.restore, self.file.path, lows, stop=self.stopping.is_set
            )
        if self.restore_result.manifest is not None:
            self.restored = self.restore_result.manifest
        return self.restore_result

    async def run(self) -> None:
        """Take one every ``snapshots.interval`` until a stop is requested."""
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    self.stopping.wait(), self._settings.interval.total_seconds()
                )
            if self.stopping.is_set():
                return
            try:
                await self.take()
            except Exception as exc:  # the next interval tries again; following goes on
                self.failures.inc()
                self.log.error("snapshot failed", error=str(exc))

    async def take(self) -> Manifest | None:
        """Copy, upload and expire now; None when nothing changed since the last one."""
        if self.readiness.phase != "streaming":
            return None
        offsets = await self.file.offsets()
        if offsets == self._last_taken:
            self.log.debug("snapshot skipped: nothing applied since the last one")
            return None
        taker = SnapshotTaker(self.config, self._object_store())
        path = self.file.path
        with tempfile.TemporaryDirectory(prefix=".bridge-snapshot-", dir=path.parent) as tmp:
            copy = Path(tmp) / "copy.sqlite"
            async with self._file_lock:
                if self.config.sqlite.journal_mode == "wal":
                    await self._thread.run(copy_replica, path, copy)
                else:  # without WAL a reader would block the writer: copy on its thread
                    await self.file.copy_into(copy)
            manifest = await self._thread.run(taker.upload, copy, Path(tmp))
        self._last_taken = offsets
        self.taken.inc()
        return manifest

    def shutdown(self) -> None:
        self._thread.shutdown()
