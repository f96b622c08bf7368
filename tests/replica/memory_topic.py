"""An in-memory topic for the follower's tests: the ``PartitionConsumer`` seam without a
broker, with retention (``trim``) and an outage (``down``) on demand."""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping

from bridge.replica._consumer import BrokerUnavailableError
from bridge.replica._messages import Fetched, OutOfRange, PartitionEnd

NOW_MS = int(time.time() * 1000)


class MemoryTopic:
    """``PartitionConsumer`` over in-memory partitions; ``down`` makes every call fail;
    ``trim(partition, low)`` deletes a partition's messages below ``low``, as retention does."""

    def __init__(self, partitions: int) -> None:
        self.log: dict[int, list[Fetched]] = {p: [] for p in range(partitions)}
        self.low: dict[int, int] = {}
        self.positions: dict[int, int] = {}
        self.assigned_at: dict[int, int | None] = {}
        self.down = False
        self.lock = threading.Lock()
        self.closed = False

    def append(self, partition: int, pk: str, version: int, seq: int) -> None:
        value = (
            f'{{"table":"t","event":"INSERT","keys":{{"pk":"{pk}"}},'
            f'"new":{{"pk":"{pk}","v":{version}}},"old":null,"seq":"{seq}","shard":"s","ts":0}}'
        ).encode()
        with self.lock:
            log = self.log.setdefault(partition, [])
            log.append(Fetched(partition, len(log), pk.encode(), value, {}, NOW_MS))

    def partitions(self, timeout: float) -> list[int]:
        if self.down:
            raise BrokerUnavailableError("kafka memory:1: connection refused")
        return sorted(self.log)

    def trim(self, partition: int, low: int) -> None:
        with self.lock:
            self.low[partition] = low

    def assign(self, positions: Mapping[int, int | None]) -> None:
        for partition, offset in positions.items():
            self.assigned_at[partition] = offset
            self.positions[partition] = self.low.get(partition, 0) if offset is None else offset

    def low_watermarks(self, partitions: list[int], timeout: float) -> dict[int, int]:
        if self.down:
            raise BrokerUnavailableError("kafka memory:1: connection refused")
        return {p: self.low.get(p, 0) for p in partitions}

    def unassign(self) -> None:
        self.positions.clear()

    def consume(
        self, max_messages: int, timeout: float
    ) -> list[Fetched | PartitionEnd | OutOfRange]:
        if self.down:
            time.sleep(timeout)
            return []
        out: list[Fetched | PartitionEnd | OutOfRange] = []
        with self.lock:
            for partition, position in sorted(self.positions.items()):
                log = self.log[partition]
                if position < self.low.get(partition, 0):
                    out.append(OutOfRange(partition, position, "Broker: Offset out of range"))
                    del self.positions[partition]  # stops there, as librdkafka does
                elif position < len(log):
                    out += log[position:]
                    self.positions[partition] = len(log)
                    out.append(PartitionEnd(partition, len(log)))
        if not out:
            time.sleep(min(timeout, 0.01))
        return out

    def high_watermark(self, partition: int) -> int | None:
        return len(self.log[partition]) if partition in self.positions else None

    def close(self) -> None:
        self.closed = True
