"""``processor.kind: sqlite``: the factory that holds one replica file for a worker's shards,
and the processor of each shard.

The factory owns the options and the order things happen in at start and stop; the work is
done by one role each: ``ReplicaWriter`` (the file, its layout, the one writer thread),
``ChangeApplier`` (batches and their checkpoint in one transaction), ``CheckpointStore`` (the
positions shards resume from, which win over the lease table's: the replica is exactly-once
in effect), ``Bootstrapper`` (the scan of a new file), ``SqliteSnapshots`` (cold start from
and snapshots to S3), ``StatusPublisher`` (``_bridge_status`` for readers) and
``ReadinessTracker`` (is the file fit to read).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import structlog

from bridge.config import SourceConfig
from bridge.core.readiness import Readiness
from bridge.core.snapshot_plan import segment_of
from bridge.processors.api import (
    Batch,
    EndReason,
    Processor,
    ProcessorFactory,
    ShardContext,
    SnapshotBatch,
)
from bridge.processors.sqlite.applier import ChangeApplier
from bridge.processors.sqlite.bootstrap import BootstrapSettings
from bridge.processors.sqlite.bootstrapper import Bootstrapper
from bridge.processors.sqlite.checkpoints import CheckpointStore
from bridge.processors.sqlite.fresh_snapshot import FreshSnapshotApplier
from bridge.processors.sqlite.readiness import ReadinessTracker
from bridge.processors.sqlite.schema import ReplicaSchemaError, ReplicaTable
from bridge.processors.sqlite.snapshots import check_parents_read, snapshots_from_options
from bridge.processors.sqlite.status_publisher import StatusPublisher
from bridge.processors.sqlite.writer import ReplicaWriter
from bridge.records import ChangeRecord
from bridge.snapshots import StreamManifest

__all__ = ["ReplicaSchemaError", "SqliteProcessor", "SqliteProcessorFactory"]

log = structlog.get_logger("bridge.processor.sqlite")


class SqliteProcessorFactory(ProcessorFactory):
    """Options: ``path`` (the file), ``table`` (the replica table's name; default the source
    table's), ``key_order`` (primary-key column order; default as the stream lists the
    keys), ``journal_mode`` (``wal``), ``synchronous`` (``normal``; ``full`` to survive power
    loss, not just a crash), ``ready_lag`` and ``stall_after`` in seconds, ``snapshots``
    (the same section as ``bridge replica``'s: docs/sqlite.md)."""

    def __init__(
        self,
        path: str,
        table: str,
        *,
        key_order: Sequence[str] | None = None,
        journal_mode: str = "wal",
        synchronous: str = "normal",
        ready_lag: float = 2.0,
        stall_after: float = 30.0,
        status_interval: float = 1.0,
        bootstrap_segments: int = 4,
        bootstrap_margin: float = 60.0,
        retention: float = 24 * 3600.0,
        start: str = "trim_horizon",
        source: SourceConfig | None = None,
        app: str | None = None,
        snapshots: Mapping[str, Any] | None = None,
    ) -> None:
        self.path = Path(path)
        self.table_name = table
        self.journal_mode = journal_mode
        self.status_interval = status_interval
        self.start = start
        self.source = source
        self.readiness = ReadinessTracker(
            ready_lag=ready_lag, stall_after=stall_after, phase="starting"
        )
        """``starting`` until ``open`` knows whether the file bootstraps first."""
        self.bootstrap = BootstrapSettings(
            segments=bootstrap_segments, margin=bootstrap_margin, retention=retention
        )
        """The scan's settings, as a start that bootstraps will use them."""
        self.snapshots = snapshots_from_options(
            snapshots,
            app=app,
            path=self.path,
            source=source,
            replica_table=table,
            retention=retention,
            start=start,
        )
        self.stream_arn: str | None = None
        """The stream the shards are read from (known once the first shard started)."""
        self.restored: StreamManifest | None = None
        """The snapshot this replica was restored from at this start, if any."""
        self.writer = ReplicaWriter(self.path, journal_mode=journal_mode, synchronous=synchronous)
        self.applier = ChangeApplier(self.writer, table, key_order)
        self.checkpoints = CheckpointStore(self.writer)
        self.fresh_snapshots = FreshSnapshotApplier(self.writer, self.applier)
        self.status = StatusPublisher(self.writer, self.readiness, interval=status_interval)
        self._snapshot_task: asyncio.Task[None] | None = None

    @property
    def table(self) -> ReplicaTable | None:
        """The replica table, once the file has one."""
        return self.applier.table

    @property
    def cutoff_ms(self) -> int | None:
        """Changes older than this are in the bootstrap scan already and are skipped."""
        return self.applier.cutoff_ms

    # -- lifecycle ------------------------------------------------------------------------

    async def open(self) -> None:
        self.writer.start()
        if self.snapshots is not None and self.snapshots.restore_wanted():
            self.restored = await self.snapshots.cold_start()
        await self.writer.call(self._open_file)
        self.status.start()
        log.info("replica open", path=str(self.path), table=self.table_name)
        bootstrapper = Bootstrapper(
            writer=self.writer,
            checkpoints=self.checkpoints,
            readiness=self.readiness,
            publish_status=self.publish_status,
            table_name=self.table_name,
            start=self.start,
            source=self.source,
            settings=self.bootstrap,
        )
        state = await bootstrapper.run_if_needed(restored=self.restored is not None)
        self.readiness.phase = "streaming"
        if bootstrapper.table is not None:
            self.applier.table = bootstrapper.table
        if state is not None:
            self.applier.cutoff_ms = state.cutoff_ms
        if self.snapshots is not None and self.snapshots.settings.interval.total_seconds() > 0:
            self._snapshot_task = asyncio.create_task(
                self.snapshots.run_every_interval(self.take_snapshot), name="sqlite-snapshots"
            )

    def _open_file(self) -> None:
        self.writer.open_file()
        self.applier.load_table()
        self.status.write(False, "starting")

    async def close(self) -> None:
        if self._snapshot_task is not None:
            self._snapshot_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._snapshot_task
        await self.status.stop()
        if self.snapshots is not None:
            self.snapshots.close()
        await self.status.publish_stopped()
        await self.writer.close()

    def create(self, shard_id: str) -> Processor:
        if segment_of(shard_id) is not None:
            return SqliteSegmentProcessor(self)
        return SqliteProcessor(self, shard_id)

    def scans_itself(self) -> bool:
        return True

    def takes_fresh_snapshots(self) -> bool:
        return True

    def takes_lanes(self) -> bool:
        return False  # each batch commits its checkpoint with its rows

    def freshness(self, now: float) -> Readiness:
        """The replica's own verdict (``ReadinessTracker``), for the worker's ``/readyz``."""
        ready, reason = self.readiness.verdict(now)
        return Readiness(ready, reason)

    # -- snapshots ------------------------------------------------------------------------

    async def take_snapshot(self) -> StreamManifest | None:
        """Copy, upload and expire now (``snapshots`` needed); None while bootstrapping,
        before the first shard started, or when nothing was applied since the last one."""
        if self.snapshots is None:
            raise RuntimeError("take_snapshot needs processor.options.snapshots")
        if self.readiness.phase != "streaming" or self.stream_arn is None:
            return None
        checkpoints = await self.checkpoints.every()
        on_writer = None if self.journal_mode == "wal" else self._copy_on_writer
        return await self.snapshots.take(self.stream_arn, checkpoints, on_writer)

    async def _copy_on_writer(self, target: Path) -> None:
        await self.writer.call(self.writer.copy_into, target)

    async def check_parents(self, shard_id: str, parents: Iterable[str]) -> None:
        """After a restore: refuse to read a shard whose parent the lease table finished
        after the snapshot was taken (``LeasesAheadOfSnapshotError``)."""
        if self.restored is not None:
            stored = {parent: await self.checkpoint_of(parent) for parent in parents}
            check_parents_read(shard_id, stored, self.restored)

    # -- called by the shard processors ----------------------------------------------------

    async def checkpoint_of(self, shard_id: str) -> str | None:
        return await self.checkpoints.of(shard_id)

    async def apply(self, shard_id: str, records: Sequence[ChangeRecord]) -> None:
        await self.applier.apply(shard_id, records)
        last = records[-1]
        self.readiness.batch(shard_id, last.approximate_creation_time.timestamp(), time.time())

    async def shard_ended(self, shard_id: str) -> None:
        """Record that a shard was read to its end: a snapshot then knows it needs nothing
        more from it, even once the shard has left the stream."""
        await self.checkpoints.ended(shard_id)

    async def publish_status(self) -> tuple[bool, str]:
        """Write the current verdict to ``_bridge_status`` now; returns it."""
        return await self.status.publish()


class SqliteProcessor(Processor):
    def __init__(self, factory: SqliteProcessorFactory, shard_id: str) -> None:
        self.factory = factory
        self.shard_id = shard_id

    async def start(self, context: ShardContext) -> str | None:
        self.context = context
        if context is not None:  # the stream a snapshot's checkpoints belong to
            self.factory.stream_arn = context.stream_arn
            await self.factory.check_parents(self.shard_id, context.parent_shard_ids)
        self.factory.readiness.started(self.shard_id, time.monotonic())
        own = await self.factory.checkpoint_of(self.shard_id)
        if own is not None or self.factory.start == "latest":
            return own
        # The replica owns its position: a new file reads every shard from its oldest record
        # (skipping what a bootstrap scan already holds), whatever the lease table says.
        return "TRIM_HORIZON"

    async def process(self, batch: Batch) -> None:
        await self.factory.apply(self.shard_id, batch.records)
        self.factory.readiness.active(self.shard_id, time.monotonic())

    async def at_tip(self) -> None:
        self.factory.readiness.caught_up(self.shard_id, time.monotonic())

    async def end(self, reason: EndReason) -> None:
        if reason is EndReason.SHARD_END:
            await self.factory.shard_ended(self.shard_id)
        self.factory.readiness.ended(
            self.shard_id, time.monotonic(), shard_end=reason is EndReason.SHARD_END
        )


class SqliteSegmentProcessor(Processor):
    """A segment of a fresh snapshot of the table (``on_trimmed: rebootstrap``), written into
    the file; no shard of its own, so no checkpoint in the file and no readiness entry."""

    def __init__(self, factory: SqliteProcessorFactory) -> None:
        self.factory = factory

    async def start(self, context: ShardContext) -> str | None:
        return None

    async def process(self, batch: Batch) -> None:
        raise TypeError("a snapshot segment has no stream records")

    async def snapshot(self, batch: SnapshotBatch) -> None:
        await self.factory.fresh_snapshots.apply(batch)

    async def end(self, reason: EndReason) -> None:
        pass
