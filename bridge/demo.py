"""``bridge demo``: the main job on one machine, with nothing to set up.

A ``bridge local`` endpoint (shards that rotate, as in AWS) and a local Kafka broker in the
background, a demo table, a stream of writes to it, and a worker publishing every change to
a Kafka topic. At the end it reads the topic back as a downstream service would and checks
what a user would check: every change arrived once, in order per item.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import aioboto3
import orjson
import structlog
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from bridge.aws import client_kwargs
from bridge.config import BridgeConfig
from bridge.local.endpoint import LocalEndpoint
from bridge.processors.api import Batch, EndReason, Processor, ProcessorFactory, ShardContext
from bridge.worker.app import open_runtime

log = structlog.get_logger("bridge.demo")

TABLE = "demo-orders"


@dataclass(frozen=True)
class DemoOptions:
    writes: int = 2_000
    """Changes written to the demo table (puts and, now and then, a delete)."""
    keys: int = 100
    """Distinct items the writes go to; fewer keys means more changes per item."""
    rate: float = 500.0
    """Writes per second."""
    rotate_records: int = 250
    """Each shard closes and splits after this many records, so lineage is exercised."""
    show_changes: bool = False
    """Log every change as it is applied (the ``log`` processor's output)."""
    timeout: float = 120.0


@dataclass
class OrderCheck:
    """Per item, whether its changes arrived once each and in the order they were written.

    Each item's changes are put v1, put v2, ..., delete, put v3 ...: twice the version for a
    put, and one more for the delete that follows it, always increases.
    """

    seen: int = 0
    duplicates: int = 0
    out_of_order: int = 0
    last: dict[str, int] = field(default_factory=dict)

    def add(
        self, key: str, event: str, new: dict[str, Any] | None, old: dict[str, Any] | None
    ) -> None:
        if event == "REMOVE":
            ordinal = 2 * int((old or {}).get("version", 0)) + 1
        else:
            ordinal = 2 * int((new or {}).get("version", 0))
        before = self.last.get(key, -1)
        if ordinal == before:
            self.duplicates += 1
        elif ordinal < before:
            self.out_of_order += 1
        self.last[key] = max(before, ordinal)
        self.seen += 1


class CountingFactory(ProcessorFactory):
    """Wraps the configured processors to count what they finished (after Kafka's acks)."""

    def __init__(self, inner: ProcessorFactory, show: bool) -> None:
        self.inner = inner
        self.show = show
        self.applied = 0
        self.shards: set[str] = set()
        self.changed = asyncio.Event()

    async def open(self) -> None:
        await self.inner.open()

    async def close(self) -> None:
        await self.inner.close()

    def create(self, shard_id: str) -> Processor:
        return _Counting(self, self.inner.create(shard_id))


class _Counting(Processor):
    def __init__(self, factory: CountingFactory, inner: Processor) -> None:
        self.factory = factory
        self.inner = inner

    async def start(self, context: ShardContext) -> str | None:
        self.context = context
        return await self.inner.start(context)

    async def process(self, batch: Batch) -> None:
        await self.inner.process(batch)
        self.factory.applied += len(batch)
        self.factory.shards.add(batch.shard_id)
        if self.factory.show:
            for record in batch.records:
                log.info("published", op=record.event, keys=record.keys, seq=record.sequence_number)
        self.factory.changed.set()

    async def at_tip(self) -> None:
        await self.inner.at_tip()

    async def end(self, reason: EndReason) -> None:
        await self.inner.end(reason)


@dataclass(frozen=True)
class DemoSummary:
    written: int
    applied: int
    in_topic: int
    duplicates: int
    out_of_order: int
    shards_read: int
    shards_in_stream: int
    records_lost: float
    getrecords_calls: float
    seconds: float
    topic: str

    @property
    def ok(self) -> bool:
        return (
            self.applied == self.written == self.in_topic
            and self.duplicates == 0
            and self.out_of_order == 0
            and self.records_lost == 0
        )


async def run_demo(
    options: DemoOptions, endpoint: LocalEndpoint, bootstrap_servers: str
) -> DemoSummary:
    config = BridgeConfig.model_validate(
        {
            "app": "bridge-demo",
            "source": {
                "table": TABLE,
                "endpoint_url": endpoint.endpoint_url,
                "aws_access_key_id": "demo",
                "aws_secret_access_key": "demo",
            },
            "coordination": {"lease_duration": "5s", "take_interval": "500ms"},
            "polling": {"interval": "50ms", "idle_interval": "500ms"},
            "processor": {
                "kind": "kafka",
                "options": {"bootstrap_servers": bootstrap_servers, "topic": "{table}"},
            },
            "metrics": {"enabled": False},
        }
    )
    kwargs = client_kwargs(config.source)
    started = time.monotonic()
    async with aioboto3.Session().client("dynamodb", **kwargs) as dynamodb:
        await _create_table(dynamodb)
        async with open_runtime(config) as runtime:
            counting = CountingFactory(runtime.worker.factory, options.show_changes)
            runtime.worker.factory = counting
            worker = asyncio.create_task(runtime.worker.run(runtime.stream_arn))
            try:
                await _write(dynamodb, options)
                await asyncio.wait_for(
                    _all_applied(counting, options.writes, worker), options.timeout
                )
            finally:
                # Cancelled too (a stop request): the worker drains and hands its leases back.
                runtime.worker.request_stop()
                await worker
            assert runtime.stream_arn is not None  # the demo reads one table
            description = await runtime.streams.describe_stream(runtime.stream_arn)
            metrics = runtime.worker.metrics
    stop = threading.Event()
    try:
        check = await asyncio.to_thread(_read_topic, bootstrap_servers, TABLE, options.writes, stop)
    finally:
        stop.set()  # a cancelled read must not hold the process in its thread
    return DemoSummary(
        written=options.writes,
        applied=counting.applied,
        in_topic=check.seen,
        duplicates=check.duplicates,
        out_of_order=check.out_of_order,
        shards_read=len(counting.shards),
        shards_in_stream=len(description.shards),
        records_lost=metrics.value("bridge_records_lost_total"),
        getrecords_calls=metrics.value("bridge_getrecords_calls_total"),
        seconds=time.monotonic() - started,
        topic=TABLE,
    )


async def _all_applied(factory: CountingFactory, expected: int, worker: asyncio.Task[None]) -> None:
    while factory.applied < expected:
        if worker.done():
            worker.result()  # raises the worker's error
            raise RuntimeError("the worker stopped before every change arrived")
        factory.changed.clear()
        waiter = asyncio.ensure_future(factory.changed.wait())
        await asyncio.wait({waiter, worker}, return_when=asyncio.FIRST_COMPLETED)
        waiter.cancel()


def _read_topic(
    bootstrap_servers: str, topic: str, expected: int, stop: threading.Event
) -> OrderCheck:
    """Read the topic back as a downstream service would, and check every item's order;
    ``stop`` ends the reading early."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap_servers,
            "group.id": "bridge-demo-check",  # partitions are assigned, the group never joined
            "enable.auto.commit": False,
        }
    )
    check = OrderCheck()
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in sorted(partitions)])
        deadline = time.monotonic() + 30
        while check.seen < expected and time.monotonic() < deadline and not stop.is_set():
            for message in consumer.consume(1000, timeout=0.5):
                value = message.value()
                if message.error() is not None or value is None:
                    continue
                envelope = orjson.loads(value)
                key = str(envelope["keys"]["order_id"])
                check.add(key, envelope["event"], envelope["new"], envelope["old"])
    finally:
        consumer.close()
    return check


async def _create_table(dynamodb: Any) -> None:
    with contextlib.suppress(dynamodb.exceptions.ResourceNotFoundException):
        await dynamodb.delete_table(TableName=TABLE)
    await dynamodb.create_table(
        TableName=TABLE,
        KeySchema=[{"AttributeName": "order_id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "order_id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
    )


async def _write(dynamodb: Any, options: DemoOptions) -> None:
    """Puts with a per-item version, and a delete every 50th change, at ``options.rate``.

    Every change must produce exactly one stream record, so a delete only hits an item that
    exists (deleting a missing item changes nothing and DynamoDB writes no record for it).
    """
    versions: Counter[str] = Counter()
    exists: set[str] = set()
    started = time.monotonic()
    for start in range(0, options.writes, 25):
        requests: list[dict[str, Any]] = []
        batch_keys: set[str] = set()
        for n in range(start, min(start + 25, options.writes)):
            key = f"order-{n % options.keys:05d}"
            if key in batch_keys:  # one BatchWriteItem may not touch an item twice
                await _flush(dynamodb, requests)
                requests, batch_keys = [], set()
            batch_keys.add(key)
            if n % 50 == 49 and key in exists:
                exists.discard(key)
                requests.append({"DeleteRequest": {"Key": {"order_id": {"S": key}}}})
                continue
            exists.add(key)
            versions[key] += 1
            requests.append(_put(key, versions[key], n))
        await _flush(dynamodb, requests)
        ahead = (start + 25) / options.rate - (time.monotonic() - started)
        if ahead > 0:
            await asyncio.sleep(ahead)


def _put(key: str, version: int, n: int) -> dict[str, Any]:
    item = {
        "order_id": {"S": key},
        "version": {"N": str(version)},
        "amount": {"N": str(n % 997)},
        "written_ms": {"N": str(int(time.time() * 1000))},
    }
    return {"PutRequest": {"Item": item}}


async def _flush(dynamodb: Any, requests: list[dict[str, Any]]) -> None:
    pending = {TABLE: requests}
    while pending.get(TABLE):
        answer = await dynamodb.batch_write_item(RequestItems=pending)
        pending = answer.get("UnprocessedItems") or {}
