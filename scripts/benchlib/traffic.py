"""Timed writes into DynamoDB, and a real Kafka consumer that records when each one arrived.

Every item carries its write time (``w``, epoch ms, taken just before the BatchWriteItem call
that stores it) and the phase it belongs to; the consumer runs in this process too, so both
ends read the same clock and the latency is arrival - ``w`` with no clock skew in it.
"""

from __future__ import annotations

import itertools
import threading
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import orjson
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

BATCH = 25  # BatchWriteItem's limit
_ids = itertools.count()


def create_topic(bootstrap_servers: str, name: str, partitions: int = 4) -> str:
    admin = AdminClient({"bootstrap.servers": bootstrap_servers})
    admin.create_topics([NewTopic(name, num_partitions=partitions, replication_factor=1)])[
        name
    ].result(30)
    return name


def now_ms() -> float:
    return time.time() * 1000.0


def write_items(ddb: Any, table: str, phase: str, count: int) -> int:
    """Write ``count`` fresh items in one request; returns their write time (epoch ms)."""
    written = round(now_ms())
    items = [
        {
            "PutRequest": {
                "Item": {
                    "pk": {"S": f"i{next(_ids):08d}-{uuid.uuid4().hex[:4]}"},
                    "w": {"N": str(written)},
                    "phase": {"S": phase},
                }
            }
        }
        for _ in range(count)
    ]
    request: dict[str, Any] = {table: items}
    while request:
        request = ddb.batch_write_item(RequestItems=request).get("UnprocessedItems") or {}
    return written


@dataclass
class PhaseWrites:
    table: str
    phase: str
    rate: float
    seconds: float
    written: int = 0
    elapsed: float = 0.0

    @property
    def achieved_rate(self) -> float:
        return self.written / self.elapsed if self.elapsed else 0.0


def write_at_rate(
    ddb: Any,
    table: str,
    phase: str,
    rate: float,
    seconds: float,
    stop: threading.Event | None = None,
) -> PhaseWrites:
    """Write ``rate`` items a second for ``seconds``, in requests of at most 25 items sent as
    soon as they are due (every 20 ms at most), so an item waits at most ~20 ms to be sent."""
    result = PhaseWrites(table, phase, rate, seconds)
    started = time.monotonic()
    while True:
        elapsed = time.monotonic() - started
        if elapsed >= seconds or (stop is not None and stop.is_set()):
            break
        due = int(rate * elapsed) + 1 - result.written
        while due > 0:
            count = min(BATCH, due)
            write_items(ddb, table, phase, count)
            result.written += count
            due -= count
        time.sleep(max(0.0, min(0.02, started + (result.written / rate) - time.monotonic())))
    result.elapsed = time.monotonic() - started
    return result


@dataclass(frozen=True)
class Arrival:
    topic: str
    phase: str
    key: str
    shard: str
    written_ms: float
    arrived_ms: float

    @property
    def latency_ms(self) -> float:
        return self.arrived_ms - self.written_ms


class ArrivalRecorder:
    """A confluent-kafka consumer on a thread, reading ``topics`` from their beginning and
    keeping each item's first arrival (at-least-once delivery may repeat some). Repeated
    copies are counted, and kept with their own arrival time in ``repeats`` so that a
    benchmark can tell which event caused them."""

    def __init__(self, bootstrap_servers: str, topics: Iterable[str]) -> None:
        self.consumer = Consumer(
            {
                "bootstrap.servers": bootstrap_servers,
                "group.id": f"bench-{uuid.uuid4().hex[:6]}",  # never joined: partitions assigned
                "enable.auto.commit": False,
                "fetch.wait.max.ms": 10,
                "fetch.min.bytes": 1,
            }
        )
        assignment = []
        for topic in topics:
            metadata = self.consumer.list_topics(topic, timeout=10)
            partitions = sorted(metadata.topics[topic].partitions)
            assignment += [TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions]
        self.consumer.assign(assignment)
        self.arrivals: dict[tuple[str, str], Arrival] = {}
        self.duplicates = 0
        self.repeats: list[Arrival] = []
        self.errors: list[str] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="arrivals", daemon=True)

    def __enter__(self) -> ArrivalRecorder:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)
        self.consumer.close()

    def _run(self) -> None:
        while not self._stop.is_set():
            for message in self.consumer.consume(1000, timeout=0.05):
                arrived = now_ms()
                if message.error() is not None:
                    self.errors.append(str(message.error()))
                    continue
                value = message.value()
                if not value:
                    continue
                envelope = orjson.loads(value)
                new = envelope.get("new") or {}
                if "w" not in new:
                    continue
                arrival = Arrival(
                    message.topic(),
                    str(new.get("phase", "")),
                    str(new["pk"]),
                    str(envelope.get("shard", "")),
                    float(new["w"]),
                    arrived,
                )
                key = (arrival.topic, arrival.key)
                with self._lock:
                    if key in self.arrivals:
                        self.duplicates += 1
                        self.repeats.append(arrival)
                    else:
                        self.arrivals[key] = arrival

    def snapshot(self) -> list[Arrival]:
        with self._lock:
            return list(self.arrivals.values())

    def repeated(self) -> list[Arrival]:
        """The repeated copies so far, each with the time that copy arrived."""
        with self._lock:
            return list(self.repeats)

    def count(self, topic: str, phase: str | None = None) -> int:
        with self._lock:
            return sum(
                1
                for a in self.arrivals.values()
                if a.topic == topic and (phase is None or a.phase == phase)
            )

    def wait_for(self, topic: str, phase: str | None, count: int, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while self.count(topic, phase) < count:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.05)
        return True
