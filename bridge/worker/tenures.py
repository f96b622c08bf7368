"""The leases this worker holds, each with the consumer reading its shard.

The one record of what the worker owns: the coordinator adds and drops tenures (takes,
releases, losses), the launcher fills in their consumers, the worker's status view and the
gauges read them. Nothing else keeps a list of held shards that could disagree with this one.
"""

from __future__ import annotations

import asyncio
from collections.abc import ItemsView, ValuesView
from dataclasses import dataclass, field
from typing import Protocol

from bridge.metrics import Metrics
from bridge.processors.api import EndReason
from bridge.worker.lease_holder import LeaseHolder


class Reading(Protocol):
    """What the worker reads of a lease's consumer: a shard's ``ShardConsumer``, or a snapshot
    segment's ``SegmentScanner``."""

    @property
    def lag_ms(self) -> float: ...
    @property
    def last_read_at(self) -> float: ...


@dataclass
class Tenure:
    holder: LeaseHolder
    consumer: Reading | None = None
    task: asyncio.Task[EndReason] | None = None
    failed: bool = False
    """The consumer stopped at a record that keeps failing: the lease is kept, so that no
    other worker reads past the failure."""
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    """Asks the consumer to stop at its next batch boundary (after the checkpoint): the
    worker is stopping, or the lease goes to ``handing_to``."""
    handing_to: str | None = None
    """The worker this lease is handed to once its consumer stopped."""
    hand_off: asyncio.Event = field(default_factory=asyncio.Event)
    """Asks a shard's consumer to stop after its next read is delivered and checkpointed."""
    reads_shard: bool = False
    """The consumer is a shard's (it hears ``hand_off``); a snapshot segment's hears ``stop``."""

    def ask_to_hand_off(self) -> None:
        (self.hand_off if self.reads_shard else self.stop).set()

    def resume(self) -> None:
        """A handoff that was not taken up: the lease is still ours, to be read again."""
        self.handing_to = None
        self.task = None
        self.consumer = None
        self.stop = asyncio.Event()
        self.hand_off = asyncio.Event()

    @property
    def running(self) -> bool:
        return self.task is not None and not self.task.done()

    @property
    def startable(self) -> bool:
        """Held, unfinished, and no consumer started yet."""
        return (
            self.task is None
            and not self.failed
            and not self.holder.lost.is_set()
            and not self.holder.lease.finished
            and self.handing_to is None
        )


class Tenures:
    def __init__(self, metrics: Metrics) -> None:
        self._by_key: dict[str, Tenure] = {}
        self._metrics = metrics

    def get(self, key: str) -> Tenure | None:
        return self._by_key.get(key)

    def items(self) -> ItemsView[str, Tenure]:
        return self._by_key.items()

    def values(self) -> ValuesView[Tenure]:
        return self._by_key.values()

    def hold(self, holder: LeaseHolder) -> Tenure:
        tenure = Tenure(holder)
        self._by_key[holder.key] = tenure
        return tenure

    def drop(self, key: str) -> None:
        self._by_key.pop(key, None)

    def held(self) -> set[str]:
        """The shards whose lease is still ours."""
        return {key for key, tenure in self._by_key.items() if not tenure.holder.lost.is_set()}

    def consumers(self) -> dict[str, Reading]:
        """The consumers reading now, by shard."""
        return {
            key: tenure.consumer
            for key, tenure in self._by_key.items()
            if tenure.running and tenure.consumer is not None
        }

    def holders(self) -> list[LeaseHolder]:
        return [tenure.holder for tenure in self._by_key.values()]

    def tasks(self) -> list[asyncio.Task[EndReason]]:
        return [tenure.task for tenure in self._by_key.values() if tenure.task is not None]

    def forget_lost(self) -> None:
        """Drop the tenures whose lease is gone and whose consumer has stopped."""
        for key, tenure in list(self._by_key.items()):
            if tenure.holder.lost.is_set() and not tenure.running:
                del self._by_key[key]

    def stop_all(self) -> None:
        for tenure in self._by_key.values():
            tenure.stop.set()

    def clear(self) -> None:
        self._by_key.clear()

    def lag_ms(self) -> float:
        """The largest lag among the shards being read."""
        return max((consumer.lag_ms for consumer in self.consumers().values()), default=0.0)

    def update_gauges(self) -> None:
        self._metrics.shards_active.set(sum(1 for t in self._by_key.values() if t.running))
        self._metrics.leases_owned.set(len(self._by_key))
        self._metrics.lag_ms.set(self.lag_ms())
