"""``bridge demo``: the whole path on one machine, with nothing to set up.

A ``bridge local`` endpoint in the background (shards that rotate, as in AWS), a demo table,
a stream of writes to it, and a worker applying every change to a processor. At the end it
checks what a user would check: every change arrived once, in order per item.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import aioboto3
import structlog

from bridge.aws import client_kwargs
from bridge.config import BridgeConfig
from bridge.local.endpoint import LocalEndpoint
from bridge.processors.api import Batch, EndReason, Processor, ProcessorFactory
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
class DemoTally:
    """Shared by the demo processors of all shards: what arrived, and whether in order."""

    applied: int = 0
    duplicates: int = 0
    out_of_order: int = 0
    shards: set[str] = field(default_factory=set)
    last_version: dict[str, int] = field(default_factory=dict)
    ends: Counter[str] = field(default_factory=Counter)
    changed: asyncio.Event = field(default_factory=asyncio.Event)


class DemoProcessor(Processor):
    def __init__(self, tally: DemoTally, show: bool) -> None:
        self.tally = tally
        self.show = show

    async def process(self, batch: Batch) -> None:
        tally = self.tally
        tally.shards.add(batch.shard_id)
        for record in batch.records:
            key = str(record.keys["order_id"])
            # Each item's changes are put v1, put v2, ..., delete, put v3 ...: twice the
            # version for a put and one more for the delete that follows it always increases.
            if record.event == "REMOVE":
                ordinal = 2 * int((record.old_image or {}).get("version", 0)) + 1
            else:
                ordinal = 2 * int((record.new_image or {}).get("version", 0))
            seen = tally.last_version.get(key, -1)
            if ordinal == seen:
                tally.duplicates += 1
            elif ordinal < seen:
                tally.out_of_order += 1
            tally.last_version[key] = max(seen, ordinal)
            tally.applied += 1
            if self.show:
                log.info(
                    "change",
                    op=record.event,
                    key=key,
                    seq=record.sequence_number,
                    shard=record.shard_id,
                )
        tally.changed.set()

    async def end(self, reason: EndReason) -> None:
        self.tally.ends[str(reason)] += 1


class DemoFactory(ProcessorFactory):
    def __init__(self, show: bool) -> None:
        self.tally = DemoTally()
        self.show = show

    def create(self, shard_id: str) -> Processor:
        return DemoProcessor(self.tally, self.show)


@dataclass(frozen=True)
class DemoSummary:
    written: int
    applied: int
    duplicates: int
    out_of_order: int
    shards_read: int
    shards_in_stream: int
    records_lost: float
    getrecords_calls: float
    seconds: float
    endpoint: str

    @property
    def ok(self) -> bool:
        return (
            self.applied == self.written
            and self.duplicates == 0
            and self.out_of_order == 0
            and self.records_lost == 0
        )


async def run_demo(options: DemoOptions, endpoint: LocalEndpoint) -> DemoSummary:
    config = BridgeConfig.model_validate(
        {
            "app": "bridge-demo",
            "source": {
                "table": TABLE,
                "endpoint_url": endpoint.endpoint_url,
                "aws_access_key_id": "demo",
                "aws_secret_access_key": "demo",
            },
            "coordination": {"lease_duration": "5s", "shard_sync_interval": "1s"},
            "polling": {"interval": "50ms", "idle_interval": "500ms"},
            "processor": {"kind": "log"},
        }
    )
    kwargs = client_kwargs(config.source)
    started = time.monotonic()
    async with aioboto3.Session().client("dynamodb", **kwargs) as dynamodb:
        await _create_table(dynamodb)
        async with open_runtime(config) as runtime:
            factory = DemoFactory(options.show_changes)
            runtime.worker.factory = factory
            worker = asyncio.create_task(runtime.worker.run(runtime.stream_arn))
            await _write(dynamodb, options)
            try:
                await asyncio.wait_for(
                    _all_applied(factory.tally, options.writes, worker), options.timeout
                )
            finally:
                runtime.worker.request_stop()
                await worker
            description = await runtime.streams.describe_stream(runtime.stream_arn)
            metrics = runtime.worker.metrics
            tally = factory.tally
            return DemoSummary(
                written=options.writes,
                applied=tally.applied,
                duplicates=tally.duplicates,
                out_of_order=tally.out_of_order,
                shards_read=len(tally.shards),
                shards_in_stream=len(description.shards),
                records_lost=metrics.value("bridge_records_lost_total"),
                getrecords_calls=metrics.value("bridge_getrecords_calls_total"),
                seconds=time.monotonic() - started,
                endpoint=endpoint.endpoint_url,
            )


async def _all_applied(tally: DemoTally, expected: int, worker: asyncio.Task[None]) -> None:
    while tally.applied < expected:
        if worker.done():
            worker.result()  # raises the worker's error
            raise RuntimeError("the worker stopped before every change arrived")
        tally.changed.clear()
        waiter = asyncio.ensure_future(tally.changed.wait())
        await asyncio.wait({waiter, worker}, return_when=asyncio.FIRST_COMPLETED)
        waiter.cancel()


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
