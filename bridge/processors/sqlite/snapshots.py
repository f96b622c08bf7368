"""The SQLite processor's snapshots: the cold start from the newest usable one, and taking
one every ``snapshots.interval`` (docs/sqlite.md, "Snapshots").

The object store is synchronous (boto3's transfer manager), so copying, uploading and
downloading run on a thread of their own, never the writer's and never the event loop.
"""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import Awaitable, Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import structlog
from pydantic import ValidationError

from bridge.config import SourceConfig
from bridge.core.positions import SHARD_END
from bridge.errors import WorkerFailedError
from bridge.processors.sqlite.snapshot_restorer import RestoreResult, SnapshotRestorer, Wanted
from bridge.processors.sqlite.snapshot_taker import SnapshotTaker
from bridge.snapshots import (
    ObjectStore,
    S3ObjectStore,
    SnapshotsConfig,
    StreamManifest,
    copy_replica,
)
from bridge.streams import StreamError, StreamsClient

log = structlog.get_logger("bridge.processor.sqlite.snapshots")

T = TypeVar("T")


class SnapshotRestoreError(WorkerFailedError):
    """No usable snapshot at a cold start, with ``bootstrap_on_failure: fail`` (exit 1)."""


class LeasesAheadOfSnapshotError(Exception):
    """The lease table says a shard is finished that the restored snapshot did not read to
    its end: resuming its children would skip the rest of it."""


def check_parents_read(
    shard_id: str, parents: Mapping[str, str | None], restored: StreamManifest
) -> None:
    """``parents``: each parent's checkpoint in the file. The worker starts a child only once
    the lease table says every parent is finished; a parent still at the snapshot's position
    was finished by the worker that took the snapshot, after it, and this file never got the
    rest (a restored node sharing its lease table with that worker)."""
    for parent, stored in sorted(parents.items()):
        if (
            stored is not None
            and stored != SHARD_END
            and restored.checkpoints.get(parent) == stored
        ):
            raise LeasesAheadOfSnapshotError(
                f"shard {shard_id} is ready to read, but its parent {parent} is only at "
                f"{stored} in the snapshot restored ({restored.id}) while the lease table "
                "marks it finished: reading on would skip its later changes. Stop every "
                "worker of this app, delete its lease table and start again (the restored "
                "file is kept and resumed from)"
            )


def snapshots_from_options(
    options: Mapping[str, Any] | None,
    *,
    app: str | None,
    path: Path,
    source: SourceConfig | None,
    replica_table: str,
    retention: float,
    start: str,
) -> SqliteSnapshots | None:
    """``processor.options.snapshots`` checked now: a bad key fails the start (exit 2)."""
    if options is None:
        return None
    try:
        settings = SnapshotsConfig.model_validate(dict(options))
    except ValidationError as exc:
        problems = "; ".join(
            f"snapshots.{'.'.join(str(part) for part in error['loc'])}: {error['msg']}"
            for error in exc.errors()
        )
        raise TypeError(problems) from None
    if app is None:
        raise TypeError("snapshots need the app's name (run it through bridge)")
    return SqliteSnapshots(
        settings,
        app=app,
        path=path,
        source=source,
        source_table=source.name if source is not None else replica_table,
        replica_table=replica_table,
        retention=retention,
        start=start,
    )


class SqliteSnapshots:
    """Cold start and periodic snapshots of one replica file."""

    def __init__(
        self,
        settings: SnapshotsConfig,
        *,
        app: str,
        path: Path,
        source: SourceConfig | None,
        source_table: str,
        replica_table: str,
        retention: float,
        start: str,
        store: ObjectStore | None = None,
    ) -> None:
        self.settings = settings
        self.app = app
        self.path = path
        self.source = source
        self.source_table = source_table
        self.replica_table = replica_table
        self.retention = retention
        self.start = start
        self._store = store
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="sqlite-snapshot")
        self._last: Mapping[str, str] | None = None
        self.restore_result: RestoreResult | None = None
        """What the cold start found, if it ran."""
        self.taken = 0
        self.failures = 0

    @property
    def store(self) -> ObjectStore:
        if self._store is None:
            self._store = S3ObjectStore(
                self.settings.bucket,
                region=self.settings.region,
                endpoint_url=self.settings.endpoint_url,
            )
        return self._store

    # -- the cold start --------------------------------------------------------------------

    def restore_wanted(self) -> bool:
        if self.settings.restore == "never":
            return False
        if self.path.exists():
            log.info("replica file exists: resuming from it, not from a snapshot")
            return False
        return True

    async def cold_start(self) -> StreamManifest | None:
        """Restore the newest usable snapshot to the (missing) file; with none, fall back to
        the usual start or raise ``SnapshotRestoreError`` as ``bootstrap_on_failure`` says."""
        result = await self._restore()
        self.restore_result = result
        if result.manifest is not None:
            self._last = result.manifest.checkpoints
            return result.manifest
        reason = result.why_none()
        where = f"s3://{self.settings.bucket}/{self.settings.prefix}{self.app}/"
        if self.settings.bootstrap_on_failure == "fail":
            raise SnapshotRestoreError(
                f"no usable snapshot in {where} ({reason}); snapshots.bootstrap_on_failure is fail"
            )
        log.warning("no usable snapshot: starting without one", reason=reason, start=self.start)
        return None

    async def _restore(self) -> RestoreResult:
        if self.source is None:
            raise SnapshotRestoreError("restoring a snapshot needs the source settings")
        source = self.source
        async with StreamsClient.for_source(source) as streams:
            try:
                arn = source.stream_arn or await streams.latest_stream_arn(source.name)
            except StreamError as exc:
                raise SnapshotRestoreError(f"cannot find the table's stream: {exc}") from None
            wanted = Wanted(
                source_table=self.source_table,
                replica_table=self.replica_table,
                stream_arn=arn,
                retention_s=self.retention,
                reads_new_shards_from_start=self.start != "latest",
            )
            restorer = SnapshotRestorer(self.settings, self.store, app=self.app, wanted=wanted)
            return await restorer.restore(self.path, streams)

    # -- taking them -----------------------------------------------------------------------

    async def take(
        self,
        stream_arn: str,
        checkpoints: Mapping[str, str],
        copy_on_writer: Callable[[Path], Awaitable[None]] | None = None,
    ) -> StreamManifest | None:
        """Copy, upload and expire now; None when nothing was applied since the last one.
        ``copy_on_writer`` makes the copy on the writer's thread (without WAL a reader would
        block the writer); by default a connection of its own copies it."""
        if checkpoints == self._last:
            log.debug("snapshot skipped: nothing applied since the last one")
            return None
        taker = SnapshotTaker(
            self.settings,
            self.store,
            app=self.app,
            source_table=self.source_table,
            replica_table=self.replica_table,
        )
        with tempfile.TemporaryDirectory(prefix=".bridge-snapshot-", dir=self.path.parent) as tmp:
            copy = Path(tmp) / "copy.sqlite"
            if copy_on_writer is not None:
                await copy_on_writer(copy)
            else:
                await self._run(copy_replica, self.path, copy)
            manifest = await self._run(taker.upload, copy, Path(tmp), stream_arn)
        self._last = manifest.checkpoints
        self.taken += 1
        return manifest

    async def run_every_interval(
        self, take: Callable[[], Awaitable[StreamManifest | None]]
    ) -> None:
        """Call ``take`` every ``interval`` until cancelled; a failure is logged, counted and
        tried again at the next interval."""
        interval = self.settings.interval.total_seconds()
        while True:
            await asyncio.sleep(interval)
            try:
                await take()
            except Exception as exc:
                self.failures += 1
                log.error("snapshot failed", error=str(exc))

    def close(self) -> None:
        self._thread.shutdown(wait=True)

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._thread, fn, *args)
