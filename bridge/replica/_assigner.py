"""Which partitions the follower reads and from where, and whether the broker answers.

Every ``check_interval`` the topic's metadata is asked for: that finds new partitions and
proves the broker answers. A new partition is read from the offset after the last one the file
stored with its data, or from the beginning; a stored offset the topic no longer holds is a
gap (``_gaps``), never skipped. A broker that does not answer is retried with backoff (never
sooner than ``check_interval``), logged with its address, and turns readiness false; nothing
is lost, because nothing moves.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Callable, Mapping

from structlog.typing import FilteringBoundLogger

from bridge.core.backoff import Backoff
from bridge.metrics import Metrics
from bridge.replica._config import ReplicaConfig
from bridge.replica._consumer import BrokerUnavailableError, TopicMissingError
from bridge.replica._gaps import gap_between
from bridge.replica._handles import KafkaLink, OpenedFile
from bridge.replica._readiness import FollowerReadiness
from bridge.replica._snapshot_progress import SnapshotProgress
from bridge.replica._store import StoredOffset


class PartitionAssigner:
    def __init__(
        self,
        config: ReplicaConfig,
        kafka: KafkaLink,
        readiness: FollowerReadiness,
        metrics: Metrics,
        *,
        clock: Callable[[], float],
        stopping: asyncio.Event,
        log: FilteringBoundLogger,
    ) -> None:
        self._servers = config.kafka.servers
        self._interval = config.kafka.check_interval.total_seconds()
        self._kafka = kafka
        self._readiness = readiness
        self._metrics = metrics
        self._clock = clock
        self._stopping = stopping
        self._log = log
        self.assigned: set[int] = set()
        self.stored: dict[int, StoredOffset] = {}
        """The offsets the file held when it was opened: where its partitions resume."""
        self._next_check = 0.0
        self._failures = 0
        self._backoff = Backoff(base=self._interval or 0.1, cap=10.0)
        self._rng = random.Random()

    def check_due(self) -> bool:
        return self._clock() >= self._next_check

    def opened(self, file: OpenedFile) -> None:
        """Resume where the file just opened left off: its offsets, and how much of the
        topic's snapshot it holds (readiness waits for the rest)."""
        self.stored = file.offsets
        self._readiness.snapshots = SnapshotProgress.of(file.snapshot_marks)

    def check_soon(self) -> None:
        """Ask the broker at the next turn of the loop (a restored file resumes elsewhere)."""
        self._next_check = 0.0

    async def wait_for_check(self) -> None:
        """Until the next check is due, or a stop is requested."""
        delay = max(0.0, self._next_check - self._clock())
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), delay)

    async def check(self) -> None:
        """Ask for the topic's partitions, assign the new ones, and note the high watermarks."""
        try:
            partitions = await self._kafka.partitions()
        except BrokerUnavailableError as exc:
            self._broker_failed(str(exc))
            return
        except TopicMissingError as exc:
            self._readiness.broker_answered(self._clock())
            if self._readiness.topic_error is None:
                self._log.warning("waiting for the topic", reason=str(exc))
            self._readiness.topic_error = str(exc)
            self._next_check = self._clock() + self._interval
            return
        self._readiness.broker_answered(self._clock())
        self._readiness.topic_error = None
        if self._failures:
            self._log.info("kafka broker answers again", broker=self._servers)
            self._failures = 0
        self._next_check = self._clock() + self._interval
        new = [p for p in partitions if p not in self.assigned]
        if new:
            try:
                await self._assign(new)
            except BrokerUnavailableError as exc:
                self._broker_failed(str(exc))
                return
        highs = await self._kafka.high_watermarks(list(self.assigned))
        for partition, high in highs.items():
            if high is not None:
                self._readiness.high_watermark(partition, high)

    async def _assign(self, partitions: list[int]) -> None:
        resumed = [p for p in partitions if p in self.stored]
        if resumed:
            lows = await self._kafka.low_watermarks(resumed)
            gap = gap_between({p: self.stored[p].last_offset for p in resumed}, lows)
            if gap is not None:
                raise gap
        positions: dict[int, int | None] = {}
        for partition in partitions:
            stored = self.stored.get(partition)
            positions[partition] = None if stored is None else stored.last_offset + 1
            self._readiness.assigned(
                partition,
                0 if stored is None else stored.last_offset + 1,
                None if stored is None else stored.message_ms,
            )
        await self._kafka.assign(positions)
        self.assigned.update(partitions)
        self._log.info(
            "partitions assigned", positions={str(p): o for p, o in sorted(positions.items())}
        )

    async def release(self) -> None:
        """Stop reading every partition: a restore is about to replace the file."""
        await self._kafka.unassign()
        self.assigned.clear()
        self._readiness.partitions.clear()

    async def low_watermarks(self) -> Mapping[int, int] | None:
        """Every partition's first offset still in the topic; retried while the broker does
        not answer. None if stopped; empty if the topic does not exist."""
        while not self._stopping.is_set():
            try:
                partitions = await self._kafka.partitions()
                lows = await self._kafka.low_watermarks(partitions)
            except BrokerUnavailableError as exc:
                self._broker_failed(str(exc))
                await self.wait_for_check()
                continue
            except TopicMissingError as exc:
                self._log.warning("the topic does not exist (yet)", reason=str(exc))
                return {}
            self._readiness.broker_answered(self._clock())
            self._failures = 0
            self._next_check = 0.0
            return lows
        return None

    def _broker_failed(self, error: str) -> None:
        self._readiness.broker_failed(error)
        self._metrics.errors_transient.inc()
        delay = max(self._interval, self._backoff.delay(self._failures, self._rng))
        self._failures += 1
        self._next_check = self._clock() + delay
        self._log.warning(
            "kafka broker unreachable, retrying",
            broker=self._servers,
            error=error,
            attempt=self._failures,
            retry_in=round(delay, 2),
        )
