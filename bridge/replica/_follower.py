"""``bridge replica``: follow every partition of a topic into the replica file.

Two threads do the blocking work, each owning its handle: one talks to Kafka, one writes
SQLite. The loop reads a batch, applies it (data and offsets in one transaction), and every
``check_interval`` asks the broker for the topic's metadata: that finds new partitions and
proves the broker answers. A broker that does not answer is retried with backoff, logged
with its address, and turns readiness false; nothing is lost, because nothing moves.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import signal
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
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
from bridge.replica._messages import BadMessageError, PartitionEnd, change_of
from bridge.replica._readiness import FollowerReadiness
from bridge.replica._store import Entry, ReplicaStore, StoredOffset

T = TypeVar("T")

POLL_TIMEOUT = 0.2
"""How long one read waits for messages: also how soon a stop request is noticed."""
STATUS_INTERVAL = 1.0
"""``_bridge_status`` is republished this often; readers judge the writer alive by it."""


class ReplicaFollower:
    def __init__(
        self,
        config: ReplicaConfig,
        *,
        consumer: PartitionConsumer | None = None,
        clock: Callable[[], float] = time.monotonic,
        metrics: Metrics | None = None,
    ) -> None:
        self.config = config
        self.topic = config.kafka.topic
        self.clock = clock
        self.keep = ItemFilter.from_config(config.filter)
        self.store = ReplicaStore(
            config.sqlite.path,
            table=config.sqlite.table,
            journal_mode=config.sqlite.journal_mode,
            synchronous=config.sqlite.synchronous,
        )
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
        self.stopping = asyncio.Event()
        self._consumer = consumer
        self._kafka_thread = ThreadPoolExecutor(1, thread_name_prefix="replica-kafka")
        self._sqlite_thread = ThreadPoolExecutor(1, thread_name_prefix="replica-sqlite")
        self._stored: dict[int, StoredOffset] = {}
        self._assigned: set[int] = set()
        self._next_check = 0.0
        self._failures = 0
        self._backoff = Backoff(base=config.kafka.check_interval.total_seconds() or 0.1, cap=10.0)
        self._rng = random.Random()
        self._log = structlog.get_logger("bridge.replica").bind(
            topic=self.topic, path=str(config.sqlite.path)
        )

    def request_stop(self) -> None:
        self.stopping.set()

    def verdict(self) -> Readiness:
        ready, reason = self.readiness.verdict(self.clock(), int(time.time() * 1000))
        return Readiness(ready, reason)

    async def run(self) -> None:
        """Follow until ``request_stop``; the transaction in hand always completes."""
        try:
            await self._sqlite(self.store.open)
            self._stored = await self._sqlite(self.store.offsets, self.topic)
            if self._consumer is None:
                self._consumer = await self._kafka(
                    KafkaPartitionConsumer, self.config.kafka, app=self.config.app
                )
            self.readiness.phase = "streaming"
            self._log.info(
                "replica following", broker=self.config.kafka.servers, resumed=len(self._stored)
            )
            status = asyncio.create_task(self._publish_status(), name="replica-status")
            try:
                await self._follow(self._consumer)
            finally:
                status.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await status
        finally:
            await self._close()

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
            await self._assign(consumer, new)
        highs = await self._kafka(lambda: {p: consumer.high_watermark(p) for p in self._assigned})
        for partition, high in highs.items():
            if high is not None:
                self.readiness.high_watermark(partition, high)

    async def _assign(self, consumer: PartitionConsumer, partitions: list[int]) -> None:
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
        for item in fetched:
            if isinstance(item, PartitionEnd):
                ends.append(item)
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

    async def _publish_status(self) -> None:
        while True:
            await self.publish_status()
            await asyncio.sleep(STATUS_INTERVAL)

    async def publish_status(self, *, stopped: bool = False) -> tuple[bool, str]:
        wall_ms = int(time.time() * 1000)
        if stopped:
            ready, reason = False, "stopped"
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
        self._log.info("replica stopped")

    async def _kafka(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._kafka_thread, lambda: fn(*args, **kwargs))

    async def _sqlite(self, fn: Callable[..., T], *args: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._sqlite_thread, fn, *args)


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
