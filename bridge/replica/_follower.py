"""``bridge replica``: follow every partition of a topic into the replica file.

Two threads do the blocking work, each owning its handle: one talks to Kafka, one writes
SQLite. The loop reads a batch, applies it (data and offsets in one transaction), and every
``check_interval`` asks the broker for the topic's metadata: that finds new partitions and
proves the broker answers. A broker that does not answer is retried with backoff, logged
with its address, and turns readiness false; nothing is lost, because nothing moves.

With ``snapshots``, a node starting without a file restores the newest usable snapshot first
(``_snapshot_restorer``), and, every ``snapshots.interval``, a third thread copies the file
and uploads it (``_snapshot_taker``). A stored offset the topic no longer holds is a gap:
never skipped, handled as ``on_gap`` says.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import signal
import tempfile
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import structlog
from prometheus_client import Counter

from bridge.core.backoff import Backoff
from bridge.health import HealthServer, Readiness
from bridge.metrics import Metrics
from bridge.replica._config import ReplicaConfig
from bridge.replica._consumer import (
    BrokerUnavailableError,
    KafkaPartitionConsumer,
    PartitionConsumer,
    TopicMissingError,
)
from bridge.replica._filter import ItemFilter
from bridge.replica._messages import BadMessageError, OutOfRange, PartitionEnd, change_of
from bridge.replica._readiness import FollowerReadiness
from bridge.replica._snapshot_restorer import RestoreResult, SnapshotRestorer
from bridge.replica._snapshot_taker import SnapshotTaker
from bridge.replica._store import Entry, ReplicaStore, StoredOffset
from bridge.snapshots import (
    Manifest,
    ObjectStore,
    S3ObjectStore,
    copy_replica,
    describe_gap,
    offsets_gap,
)

T = TypeVar("T")

POLL_TIMEOUT = 0.2
"""How long one read waits for messages: also how soon a stop request is noticed."""
STATUS_INTERVAL = 1.0
"""``_bridge_status`` is republished this often; readers judge the writer alive by it."""
CATCH_UP_LOG_EVERY = 10.0
"""While not ready, how often "catching up" is logged (messages behind, rate)."""


class OffsetGapError(Exception):
    """Messages the replica needs were deleted from the topic before it applied them."""

    def __init__(self, message: str, partitions: list[int]) -> None:
        super().__init__(message)
        self.partitions = partitions


class ReplicaGapError(Exception):
    """A gap that ``on_gap`` could not repair: the replica stops (exit 1) rather than skip."""


class SnapshotRestoreError(Exception):
    """No usable snapshot at a cold start, with ``bootstrap_on_failure: fail`` (exit 1)."""


class ReplicaFollower:
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
        self.store = self._new_store()
        self.readiness = FollowerReadiness(
            ready_lag=config.ready_lag.total_seconds(),
            stall_after=config.stall_after.total_seconds(),
            broker=config.kafka.servers,
        )
        self.metrics = metrics or Metrics(config.app, config.sqlite.table or self.topic)
        self.skipped = Counter(
            "bridge_replica_skipped_total",
            "Messages skipped because they are not bridge envelopes.",
            ("app", "table"),
            registry=self.metrics.registry,
        ).labels(config.app, config.sqlite.table or self.topic)
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
        self.restored: Manifest | None = None
        """The snapshot this replica was restored from, if any."""
        self.restore_result: RestoreResult | None = None
        """The last restore attempt: what was restored, what was rejected and why."""
        self.stopping = asyncio.Event()
        self._consumer = consumer
        self._kafka_thread = ThreadPoolExecutor(1, thread_name_prefix="replica-kafka")
        self._sqlite_thread = ThreadPoolExecutor(1, thread_name_prefix="replica-sqlite")
        self._snapshot_thread = ThreadPoolExecutor(1, thread_name_prefix="replica-snapshot")
        self._objects = objects
        self._file_lock = asyncio.Lock()  # a snapshot's copy vs a restore replacing the file
        self._last_snapshot: dict[int, StoredOffset] | None = None
        self._failure: str | None = None
        self._next_progress_log = 0.0
        self._stored: dict[int, StoredOffset] = {}
        self._assigned: set[int] = set()
        self._next_check = 0.0
        self._failures = 0
        self._backoff = Backoff(base=config.kafka.check_interval.total_seconds() or 0.1, cap=10.0)
        self._rng = random.Random()
        self._log = structlog.get_logger("bridge.replica").bind(
            topic=self.topic, path=str(config.sqlite.path)
        )

    def _new_store(self) -> ReplicaStore:
        return ReplicaStore(
            self.config.sqlite.path,
            table=self.config.sqlite.table,
            journal_mode=self.config.sqlite.journal_mode,
            synchronous=self.config.sqlite.synchronous,
        )

    def _counter(self, name: str, doc: str) -> Any:
        table = self.config.sqlite.table or self.topic
        return Counter(name, doc, ("app", "table"), registry=self.metrics.registry).labels(
            self.config.app, table
        )

    def request_stop(self) -> None:
        self.stopping.set()

    def verdict(self) -> Readiness:
        ready, reason = self.readiness.verdict(self.clock(), int(time.time() * 1000))
        return Readiness(ready, reason)

    async def run(self) -> None:
        """Follow until ``request_stop``; the transaction in hand always completes."""
        try:
            if self._consumer is None:
                self._consumer = await self._kafka(
                    KafkaPartitionConsumer, self.config.kafka, app=self.config.app
                )
            if self._cold_start_wanted():
                await self._cold_start(self._consumer)
                if self.stopping.is_set():
                    return
            await self._open()
            self.readiness.phase = "streaming"
            self._log.info(
                "replica following", broker=self.config.kafka.servers, resumed=len(self._stored)
            )
            tasks = [asyncio.create_task(self._publish_status(), name="replica-status")]
            snapshots = self.config.snapshots
            if snapshots is not None and snapshots.interval.total_seconds() > 0:
                tasks.append(asyncio.create_task(self._snapshot_loop(), name="replica-snapshots"))
            try:
                while not self.stopping.is_set():
                    try:
                        await self._follow(self._consumer)
                    except OffsetGapError as gap:
                        await self._on_gap(self._consumer, gap)
            finally:
                for task in tasks:
                    task.cancel()
                for task in tasks:
                    with contextlib.suppress(asyncio.CancelledError):
                        await task
        finally:
            await self._close()

    async def _open(self) -> None:
        self.store = self._new_store()
        await self._sqlite(self.store.open)
        self._stored = await self._sqlite(self.store.offsets, self.topic)

    # -- snapshots: cold start, gaps, taking them --------------------------------------------

    def _cold_start_wanted(self) -> bool:
        snapshots = self.config.snapshots
        if snapshots is None or snapshots.restore == "never":
            return False
        if self.config.sqlite.path.exists():
            self._log.info("replica file exists: resuming from it, not from a snapshot")
            return False
        return True

    def _object_store(self) -> ObjectStore:
        if self._objects is None:
            settings = self.config.snapshots
            assert settings is not None
            self._objects = S3ObjectStore(
                settings.bucket, region=settings.region, endpoint_url=settings.endpoint_url
            )
        return self._objects

    async def _cold_start(self, consumer: PartitionConsumer) -> None:
        self.readiness.phase = "restoring"
        result = await self._restore(consumer)
        if result.manifest is not None or self.stopping.is_set():
            self.restored = result.manifest
            return
        settings = self.config.snapshots
        assert settings is not None
        reason = result.why_none()
        if settings.bootstrap_on_failure == "fail":
            self._failure = f"no usable snapshot: {reason}"
            raise SnapshotRestoreError(
                f"no usable snapshot in s3://{settings.bucket}/{settings.prefix}"
                f"{self.config.app}/ ({reason}); snapshots.bootstrap_on_failure is fail"
            )
        self._log.warning(
            "no usable snapshot: replaying the topic from its beginning", reason=reason
        )

    async def _restore(self, consumer: PartitionConsumer) -> RestoreResult:
        """The newest usable snapshot into the file's place (its offsets checked against the
        topic's low watermarks)."""
        lows = await self._low_watermarks(consumer)
        if lows is None:
            return RestoreResult()
        restorer = await self._snapshot(SnapshotRestorer, self.config, self._object_store())
        async with self._file_lock:
            self.restore_result = await self._snapshot(
                restorer.restore, self.config.sqlite.path, lows, stop=self.stopping.is_set
            )
        return self.restore_result

    async def _low_watermarks(self, consumer: PartitionConsumer) -> Mapping[int, int] | None:
        """Every partition's first offset still in the topic; retried while the broker does
        not answer. None if stopped; empty if the topic does not exist."""
        timeout = max(1.0, min(5.0, self.readiness.stall_after / 2))
        while not self.stopping.is_set():
            try:
                partitions = await self._kafka(consumer.partitions, timeout)
                lows = await self._kafka(consumer.low_watermarks, partitions, timeout)
            except BrokerUnavailableError as exc:
                self._broker_failed(str(exc))
                delay = max(0.0, self._next_check - self.clock())
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.stopping.wait(), delay)
                continue
            except TopicMissingError as exc:
                self._log.warning("the topic does not exist (yet)", reason=str(exc))
                return {}
            self.readiness.broker_answered(self.clock())
            self._failures = 0
            self._next_check = 0.0
            return lows
        return None

    async def _on_gap(self, consumer: PartitionConsumer, gap: OffsetGapError) -> None:
        self.gaps.inc(max(1, len(gap.partitions)))
        self.readiness.gap = f"gap: {gap}"
        self._log.error(
            "offsets deleted from the topic before they were applied",
            gap=str(gap),
            partitions=gap.partitions,
            on_gap=self.config.on_gap,
        )
        with contextlib.suppress(Exception):
            await self.publish_status()
        path = self.config.sqlite.path
        if self.config.on_gap == "fail":
            self._failure = f"gap: {gap}"
            raise ReplicaGapError(
                f"{gap}: resuming would skip them (on_gap: fail). Delete {path} to replay the "
                "topic from its beginning, or set on_gap: restore with snapshots"
            )
        await self._kafka(consumer.unassign)
        self._assigned.clear()
        self.readiness.partitions.clear()
        await self._sqlite(self.store.close)
        self.readiness.phase = "restoring"
        result = await self._restore(consumer)
        if result.manifest is None:
            if self.stopping.is_set():
                return
            self._failure = f"gap: {gap}; no snapshot covers it"
            raise ReplicaGapError(
                f"{gap}, and no snapshot covers it ({result.why_none()}): on_gap: restore "
                f"cannot repair {path}; delete it to replay the topic from its beginning"
            )
        self.restored = result.manifest
        self.readiness.gap = None
        await self._open()
        self.readiness.phase = "streaming"
        self._next_check = 0.0
        self._log.info("gap repaired from a snapshot", key=result.key)

    async def _snapshot_loop(self) -> None:
        settings = self.config.snapshots
        assert settings is not None
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stopping.wait(), settings.interval.total_seconds())
            if self.stopping.is_set():
                return
            try:
                await self.take_snapshot()
            except Exception as exc:  # the next interval tries again; following goes on
                self.snapshot_failures.inc()
                self._log.error("snapshot failed", error=str(exc))

    async def take_snapshot(self) -> Manifest | None:
        """Copy, upload and expire now; None when nothing changed since the last one."""
        if self.readiness.phase != "streaming":
            return None
        offsets = await self._sqlite(self.store.offsets, self.topic)
        if offsets == self._last_snapshot:
            self._log.debug("snapshot skipped: nothing applied since the last one")
            return None
        taker = SnapshotTaker(self.config, self._object_store())
        path = self.config.sqlite.path
        with tempfile.TemporaryDirectory(prefix=".bridge-snapshot-", dir=path.parent) as tmp:
            copy = Path(tmp) / "copy.sqlite"
            async with self._file_lock:
                if self.config.sqlite.journal_mode == "wal":
                    await self._snapshot(copy_replica, path, copy)
                else:  # without WAL a reader would block the writer: copy on its thread
                    await self._sqlite(self.store.copy_into, copy)
            manifest = await self._snapshot(taker.upload, copy, Path(tmp))
        self._last_snapshot = offsets
        self.snapshots_taken.inc()
        return manifest

    async def _follow(self, consumer: PartitionConsumer) -> None:
        while not self.stopping.is_set():
            if self.clock() >= self._next_check:
                await self._check(consumer)
            if not self._assigned:
                delay = max(0.0, self._next_check - self.clock())
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.stopping.wait(), delay)
                continue
            fetched = await self._kafka(consumer.consume, self.config.kafka.max_batch, POLL_TIMEOUT)
            if fetched:
                await self._handle(fetched)

    async def _check(self, consumer: PartitionConsumer) -> None:
        interval = self.config.kafka.check_interval.total_seconds()
        timeout = max(1.0, min(5.0, self.readiness.stall_after / 2))
        try:
            partitions = await self._kafka(consumer.partitions, timeout)
        except BrokerUnavailableError as exc:
            self._broker_failed(str(exc))
            return
        except TopicMissingError as exc:
            self.readiness.broker_answered(self.clock())
            if self.readiness.topic_error is None:
                self._log.warning("waiting for the topic", reason=str(exc))
            self.readiness.topic_error = str(exc)
            self._next_check = self.clock() + interval
            return
        self.readiness.broker_answered(self.clock())
        self.readiness.topic_error = None
        if self._failures:
            self._log.info("kafka broker answers again", broker=self.config.kafka.servers)
            self._failures = 0
        self._next_check = self.clock() + interval
        new = [p for p in partitions if p not in self._assigned]
        if new:
            try:
                await self._assign(consumer, new)
            except BrokerUnavailableError as exc:
                self._broker_failed(str(exc))
                return
        highs = await self._kafka(lambda: {p: consumer.high_watermark(p) for p in self._assigned})
        for partition, high in highs.items():
            if high is not None:
                self.readiness.high_watermark(partition, high)

    async def _assign(self, consumer: PartitionConsumer, partitions: list[int]) -> None:
        resumed = [p for p in partitions if p in self._stored]
        if resumed:
            timeout = max(1.0, min(5.0, self.readiness.stall_after / 2))
            lows = await self._kafka(consumer.low_watermarks, resumed, timeout)
            gaps = offsets_gap({p: self._stored[p].last_offset for p in resumed}, lows)
            if gaps:
                raise OffsetGapError(describe_gap(gaps), sorted(gaps))
        positions: dict[int, int | None] = {}
        for partition in partitions:
            stored = self._stored.get(partition)
            positions[partition] = None if stored is None else stored.last_offset + 1
            self.readiness.assigned(
                partition,
                0 if stored is None else stored.last_offset + 1,
                None if stored is None else stored.message_ms,
            )
        await self._kafka(consumer.assign, positions)
        self._assigned.update(partitions)
        self._log.info(
            "partitions assigned", positions={str(p): o for p, o in sorted(positions.items())}
        )

    def _broker_failed(self, error: str) -> None:
        self.readiness.broker_failed(error)
        self.metrics.errors_transient.inc()
        delay = max(
            self.config.kafka.check_interval.total_seconds(),
            self._backoff.delay(self._failures, self._rng),
        )
        self._failures += 1
        self._next_check = self.clock() + delay
        self._log.warning(
            "kafka broker unreachable, retrying",
            broker=self.config.kafka.servers,
            error=error,
            attempt=self._failures,
            retry_in=round(delay, 2),
        )

    async def _handle(self, fetched: list[Any]) -> None:
        entries: list[Entry] = []
        ends: list[PartitionEnd] = []
        out_of_range: list[OutOfRange] = []
        for item in fetched:
            if isinstance(item, PartitionEnd):
                ends.append(item)
                continue
            if isinstance(item, OutOfRange):
                out_of_range.append(item)
                continue
            try:
                change = change_of(item, self.keep)
            except BadMessageError as exc:
                self._log.error("skipping a message that is not a bridge envelope", error=str(exc))
                self.skipped.inc()
                change = None
            entries.append(Entry(item.partition, item.offset, item.timestamp_ms, change))
        self.readiness.broker_answered(self.clock())
        if entries:
            self.metrics.records_consumed.inc(len(entries))
            applied = await self._sqlite(self.store.apply, self.topic, entries)
            self.metrics.records_processed.inc(applied)
            for entry in entries:
                self.readiness.applied(entry.partition, entry.offset, entry.message_ms)
        for end in ends:  # only once what came before the end is committed
            self.readiness.reached_end(end.partition, end.offset)
        if out_of_range:
            await self._out_of_range(out_of_range)

    async def _out_of_range(self, events: list[OutOfRange]) -> None:
        """The broker refused a fetch position (retention deleted it, or the topic was
        recreated): a gap, whatever the low watermark says now."""
        consumer = self._consumer
        assert consumer is not None
        partitions = sorted({e.partition for e in events})
        positions = {
            p: self.readiness.partitions[p].position
            for p in partitions
            if p in self.readiness.partitions
        }
        timeout = max(1.0, min(5.0, self.readiness.stall_after / 2))
        lows: Mapping[int, int] = {}
        with contextlib.suppress(BrokerUnavailableError):
            lows = await self._kafka(consumer.low_watermarks, partitions, timeout)
        gaps = offsets_gap({p: n - 1 for p, n in positions.items()}, lows)
        if gaps:
            raise OffsetGapError(describe_gap(gaps), sorted(gaps))
        detail = "; ".join(
            f"partition {e.partition}: offset {positions.get(e.partition, e.offset)} is out of "
            f"range ({e.detail})"
            for e in events
        )
        raise OffsetGapError(detail, partitions)

    async def _publish_status(self) -> None:
        started, applied_at_start = (
            self.clock(),
            self.metrics.value("bridge_records_consumed_total"),
        )
        while True:
            ready, _ = await self.publish_status()
            now = self.clock()
            if not ready and now >= self._next_progress_log and self.readiness.behind():
                self._next_progress_log = now + CATCH_UP_LOG_EVERY
                applied = self.metrics.value("bridge_records_consumed_total") - applied_at_start
                self._log.info(
                    "catching up",
                    messages_behind=self.readiness.behind(),
                    applied=int(applied),
                    rate_per_s=round(applied / max(now - started, 1e-9)),
                )
            await asyncio.sleep(STATUS_INTERVAL)

    async def publish_status(self, *, stopped: bool = False) -> tuple[bool, str]:
        wall_ms = int(time.time() * 1000)
        if stopped:
            ready, reason = False, self._failure or "stopped"
        else:
            ready, reason = self.readiness.verdict(self.clock(), wall_ms)
        lag = self.readiness.lag_ms(wall_ms)
        self.metrics.lag_ms.set(lag or 0.0)
        self.metrics.shards_active.set(len(self._assigned))
        await self._sqlite(
            self.store.write_status,
            ready,
            reason,
            lag,
            self.readiness.watermark_ms(),
            "stopped" if stopped else self.readiness.phase,
        )
        return ready, reason

    async def _close(self) -> None:
        self.readiness.phase = "stopped"
        with contextlib.suppress(Exception):
            await self.publish_status(stopped=True)
        if self._consumer is not None:
            try:
                await self._kafka(self._consumer.close)
            except Exception as exc:  # closing must not hide why we stopped
                self._log.warning("closing the kafka consumer failed", error=str(exc))
        await self._sqlite(self.store.close)
        self._kafka_thread.shutdown(wait=True)
        self._sqlite_thread.shutdown(wait=True)
        self._snapshot_thread.shutdown(wait=True)
        self._log.info("replica stopped")

    async def _kafka(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._kafka_thread, lambda: fn(*args, **kwargs))

    async def _sqlite(self, fn: Callable[..., T], *args: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._sqlite_thread, fn, *args)

    async def _snapshot(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._snapshot_thread, lambda: fn(*args, **kwargs))


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
