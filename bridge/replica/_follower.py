"""``bridge replica``: follow every partition of a topic into the replica file.

``ReplicaFollower`` builds the roles, runs them and stops them; each role owns its decisions
in a module of its own, so no one of them needs to know the others' state:

- ``_handles``: the Kafka consumer and the SQLite file, each on a thread of its own;
- ``_assigner``: partitions, the offsets they resume from, broker checks and their backoff;
- ``_follow_loop``: read a batch, apply it with its offsets in one transaction;
- ``_gaps``: offsets the topic no longer holds, and what ``on_gap`` does about them;
- ``_snapshot_keeper``: the cold start from a snapshot, and one taken every interval;
- ``_status``: the ``_bridge_status`` row, the gauges and the readiness verdict.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from collections.abc import Callable

import structlog
from prometheus_client import Counter

from bridge.health import HealthServer, Readiness
from bridge.metrics import Metrics
from bridge.replica._assigner import PartitionAssigner
from bridge.replica._config import ReplicaConfig
from bridge.replica._consumer import PartitionConsumer
from bridge.replica._filter import ItemFilter
from bridge.replica._follow_loop import FollowLoop
from bridge.replica._gaps import GapHandler, OffsetGapError, ReplicaGapError
from bridge.replica._handles import KafkaLink, ReplicaFile
from bridge.replica._readiness import FollowerReadiness
from bridge.replica._snapshot_keeper import SnapshotKeeper, SnapshotRestoreError
from bridge.replica._snapshot_restorer import RestoreResult
from bridge.replica._status import StatusPublisher
from bridge.replica._store import ReplicaStore
from bridge.snapshots import Manifest, ObjectStore

__all__ = [
    "OffsetGapError",
    "ReplicaFollower",
    "ReplicaGapError",
    "SnapshotRestoreError",
    "run_replica",
]


class ReplicaFollower:
    """One replica file following one topic: ``run`` until ``request_stop``.

    ``verdict`` answers /readyz; ``store``, ``readiness``, ``metrics``, ``restored`` and
    ``restore_result`` are there to be looked at (tests, probes), not changed.
    """

    def __init__(
        self,
        config: ReplicaConfig,
        *,
        consumer: PartitionConsumer | None = None,
        objects: ObjectStore | None = None,
        clock: Callable[[], float] = time.monotonic,
        metrics: Metrics | None = None,
    ) -> None:
        self.config = config
        self.topic = config.kafka.topic
        self.clock = clock
        self.keep = ItemFilter.from_config(config.filter)
        self.readiness = FollowerReadiness(
            ready_lag=config.ready_lag.total_seconds(),
            stall_after=config.stall_after.total_seconds(),
            broker=config.kafka.servers,
        )
        self.metrics = metrics or Metrics(config.app, config.sqlite.table or self.topic)
        self.skipped = self._counter(
            "bridge_replica_skipped_total",
            "Messages skipped because they are not bridge envelopes.",
        )
        self.gaps = self._counter(
            "bridge_replica_gaps_total",
            "Stored offsets found deleted from the topic before they were applied.",
        )
        self.snapshots_taken = self._counter(
            "bridge_replica_snapshots_total", "Snapshots uploaded by this replica."
        )
        self.snapshot_failures = self._counter(
            "bridge_replica_snapshot_failures_total", "Snapshots that failed to upload."
        )
        self.stopping = asyncio.Event()
        self._log = structlog.get_logger("bridge.replica").bind(
            topic=self.topic, path=str(config.sqlite.path)
        )
        self._build_roles(consumer, objects)

    def _counter(self, name: str, doc: str) -> Counter:
        table = self.config.sqlite.table or self.topic
        return Counter(name, doc, ("app", "table"), registry=self.metrics.registry).labels(
            self.config.app, table
        )

    def _build_roles(self, consumer: PartitionConsumer | None, objects: ObjectStore | None) -> None:
        config, readiness, clock = self.config, self.readiness, self.clock
        stopping, log = self.stopping, self._log
        self._kafka = KafkaLink(config, consumer)
        self._file = ReplicaFile(config.sqlite, self.topic)
        self._assigner = PartitionAssigner(
            config, self._kafka, readiness, self.metrics, clock=clock, stopping=stopping, log=log
        )
        self._status = StatusPublisher(
            readiness, self.metrics, self._file, self._assigner.assigned, clock=clock, log=log
        )
        self._snapshots = SnapshotKeeper(
            config=config,
            file=self._file,
            assigner=self._assigner,
            readiness=readiness,
            status=self._status,
            taken=self.snapshots_taken,
            failures=self.snapshot_failures,
            objects=objects,
            stopping=stopping,
            log=log,
        )
        self._gap_handler = GapHandler(
            on_gap=config.on_gap,
            readiness=readiness,
            gaps=self.gaps,
            status=self._status,
            assigner=self._assigner,
            file=self._file,
            snapshots=self._snapshots,
            stopping=stopping,
            log=log,
        )
        self._loop = FollowLoop(
            max_batch=config.kafka.max_batch,
            keep=self.keep,
            kafka=self._kafka,
            file=self._file,
            assigner=self._assigner,
            readiness=readiness,
            metrics=self.metrics,
            skipped=self.skipped,
            clock=clock,
            stopping=stopping,
            log=log,
        )

    @property
    def store(self) -> ReplicaStore:
        """The replica file's store of the moment (a restore replaces it)."""
        return self._file.store

    @property
    def restored(self) -> Manifest | None:
        """The snapshot this replica was restored from, if any."""
        return self._snapshots.restored

    @property
    def restore_result(self) -> RestoreResult | None:
        """The last restore attempt: what was restored, what was rejected and why."""
        return self._snapshots.restore_result

    def request_stop(self) -> None:
        self.stopping.set()

    def verdict(self) -> Readiness:
        return self._status.verdict()

    async def publish_status(self, *, stopped: bool = False) -> tuple[bool, str]:
        return await self._status.publish(stopped=stopped)

    async def take_snapshot(self) -> Manifest | None:
        """Copy, upload and expire now; None when nothing changed since the last one."""
        return await self._snapshots.take()

    async def run(self) -> None:
        """Follow until ``request_stop``; the transaction in hand always completes."""
        try:
            await self._kafka.connect()
            if self._snapshots.cold_start_wanted():
                await self._snapshots.cold_start()
                if self.stopping.is_set():
                    return
            self._assigner.opened(await self._file.open())
            self.readiness.phase = "streaming"
            self._log.info(
                "replica following",
                broker=self.config.kafka.servers,
                resumed=len(self._assigner.stored),
            )
            await self._follow()
        finally:
            await self._close()

    async def _follow(self) -> None:
        tasks = [asyncio.create_task(self._status.run(), name="replica-status")]
        if self._snapshots.periodic():
            tasks.append(asyncio.create_task(self._snapshots.run(), name="replica-snapshots"))
        try:
            while not self.stopping.is_set():
                try:
                    await self._loop.run()
                except OffsetGapError as gap:
                    await self._gap_handler.handle(gap)
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    async def _close(self) -> None:
        self.readiness.phase = "stopped"
        with contextlib.suppress(Exception):
            await self._status.publish(stopped=True)
        try:
            await self._kafka.close()
        except Exception as exc:  # closing must not hide why we stopped
            self._log.warning("closing the kafka consumer failed", error=str(exc))
        await self._file.close()
        self._kafka.shutdown()
        self._file.shutdown()
        self._snapshots.shutdown()
        self._log.info("replica stopped")


async def run_replica(config: ReplicaConfig) -> None:
    """The ``bridge replica`` process: the follower, its probes, SIGTERM/SIGINT to stop."""
    follower = ReplicaFollower(config)
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, follower.request_stop)
    health: HealthServer | None = None
    if config.metrics.enabled:
        health = HealthServer(follower.metrics, follower.verdict, port=config.metrics.port)
        try:
            await health.start()
        except OSError as exc:
            structlog.get_logger("bridge.replica").error(
                "cannot serve metrics and probes", port=config.metrics.port, error=str(exc)
            )
            health = None
    try:
        await follower.run()
    finally:
        if health is not None:
            await health.stop()
