"""The follower's two blocking handles, each used from one thread of its own: librdkafka's
consumer and the SQLite connection must not be shared between threads, and neither may block
the event loop. Every role reaches Kafka and the file through these, so each handle keeps one
thread whoever calls it, and a slow fetch never delays a commit.

A restore replaces the file under the follower, so ``ReplicaFile`` opens a new store then:
roles ask it for the store of the moment instead of keeping one.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from bridge.replica._config import ReplicaConfig, SqliteTargetConfig
from bridge.replica._consumer import KafkaPartitionConsumer, PartitionConsumer
from bridge.replica._messages import Fetched, OutOfRange, PartitionEnd
from bridge.replica._snapshot_progress import MarkRow
from bridge.replica._store import Entry, ReplicaStore, StoredOffset

T = TypeVar("T")


class OneThread:
    """Blocking calls on a single thread of its own, in the order they were made."""

    def __init__(self, name: str) -> None:
        self._pool = ThreadPoolExecutor(1, thread_name_prefix=name)

    async def run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, lambda: fn(*args, **kwargs))

    def shutdown(self) -> None:
        self._pool.shutdown(wait=True)


class KafkaLink:
    """The partition consumer on the Kafka thread: made there by ``connect`` unless one was
    given (tests give an in-memory topic).

    A metadata request waits half of ``stall_after`` (1 to 5 s): long enough for a slow
    broker, short enough that a dead one turns readiness false in time.
    """

    def __init__(self, config: ReplicaConfig, consumer: PartitionConsumer | None = None) -> None:
        self._config = config
        self._consumer = consumer
        self._thread = OneThread("replica-kafka")
        self.timeout = max(1.0, min(5.0, config.stall_after.total_seconds() / 2))

    @property
    def consumer(self) -> PartitionConsumer:
        assert self._consumer is not None, "connect() first"
        return self._consumer

    async def connect(self) -> None:
        if self._consumer is None:
            self._consumer = await self._thread.run(
                KafkaPartitionConsumer, self._config.kafka, app=self._config.app
            )

    async def partitions(self) -> list[int]:
        return await self._thread.run(self.consumer.partitions, self.timeout)

    async def low_watermarks(self, partitions: list[int]) -> dict[int, int]:
        return await self._thread.run(self.consumer.low_watermarks, partitions, self.timeout)

    async def assign(self, positions: Mapping[int, int | None]) -> None:
        await self._thread.run(self.consumer.assign, positions)

    async def unassign(self) -> None:
        await self._thread.run(self.consumer.unassign)

    async def consume(
        self, max_messages: int, wait: float
    ) -> list[Fetched | PartitionEnd | OutOfRange]:
        """What arrives within ``wait`` seconds (up to ``max_messages``)."""
        return await self._thread.run(self.consumer.consume, max_messages, wait)

    async def high_watermarks(self, partitions: list[int]) -> dict[int, int | None]:
        """As last fetched, asking the broker nothing."""
        consumer = self.consumer
        return await self._thread.run(lambda: {p: consumer.high_watermark(p) for p in partitions})

    async def close(self) -> None:
        if self._consumer is not None:
            await self._thread.run(self._consumer.close)

    def shutdown(self) -> None:
        self._thread.shutdown()


@dataclass(frozen=True)
class OpenedFile:
    offsets: dict[int, StoredOffset]
    """The last offset applied per partition."""
    snapshot_marks: list[MarkRow]
    """What it read of the topic's snapshots."""


class ReplicaFile:
    """The replica file's store on the SQLite thread: the only writer of the file."""

    def __init__(self, config: SqliteTargetConfig, topic: str) -> None:
        self._config = config
        self._topic = topic
        self._thread = OneThread("replica-sqlite")
        self.store = self._new_store()

    @property
    def path(self) -> Path:
        return self._config.path

    def _new_store(self) -> ReplicaStore:
        return ReplicaStore(
            self._config.path,
            table=self._config.table,
            journal_mode=self._config.journal_mode,
            synchronous=self._config.synchronous,
        )

    async def open(self) -> OpenedFile:
        """Open the file as it is now (a restore may have replaced it): where it resumes."""
        self.store = self._new_store()
        await self._thread.run(self.store.open)
        marks = await self._thread.run(self.store.snapshot_marks, self._topic)
        return OpenedFile(await self.offsets(), marks)

    async def offsets(self) -> dict[int, StoredOffset]:
        return await self._thread.run(self.store.offsets, self._topic)

    async def apply(self, entries: list[Entry]) -> int:
        """Data and offsets in one transaction; how many entries were new."""
        return await self._thread.run(self.store.apply, self._topic, entries)

    async def write_status(
        self, ready: bool, reason: str, lag: float | None, watermark: int | None, phase: str
    ) -> None:
        await self._thread.run(self.store.write_status, ready, reason, lag, watermark, phase)

    async def copy_into(self, target: Path) -> None:
        await self._thread.run(self.store.copy_into, target)

    async def close(self) -> None:
        await self._thread.run(self.store.close)

    def shutdown(self) -> None:
        self._thread.shutdown()
