"""A worker whose Kafka broker freezes (SIGSTOP) mid-run, for longer than the producer's
request and message timeouts, then resumes (SIGCONT).

While the broker is frozen nothing can be acknowledged, so no checkpoint may cover a change
that was not already in the topic before the freeze; after it resumes, every change must
arrive, each item's in write order (repeats allowed: delivery is at least once).
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Callable
from typing import Any

import boto3
import pytest

from bridge.core.positions import SHARD_END
from bridge.local.endpoint import LocalEndpoint
from bridge.local.processes import KafkaBroker
from bridge.processors.kafka import KafkaProcessorFactory
from bridge.worker.app import Runtime, open_runtime
from tests.kafka.running import dynamodb, kafka_config
from tests.kafka.topic_reader import ReadMessage, TopicReader, create_topic
from tests.kafka.workload import Workload, create_table, is_subsequence, message_key, write_all

WRITES = 1_500
BEFORE = 500  # written before the freeze; the rest while the broker is frozen


async def eventually(condition: Callable[[], bool], within: float, what: str) -> None:
    deadline = time.monotonic() + within
    while not condition():
        assert time.monotonic() < deadline, f"not within {within}s: {what}"
        await asyncio.sleep(0.05)


async def checkpoints(runtime: Runtime) -> dict[str, str | None]:
    return {lease.key: lease.checkpoint for lease in await runtime.worker.store.list_leases()}


def stream_records(endpoint_url: str, table: str) -> dict[str, list[int]]:
    """Every record's sequence number, per shard, read straight from the stream."""
    ddb = boto3.client("dynamodb", endpoint_url=endpoint_url, region_name="us-east-1")
    streams = boto3.client("dynamodbstreams", endpoint_url=endpoint_url, region_name="us-east-1")
    arn = ddb.describe_table(TableName=table)["Table"]["LatestStreamArn"]
    shards: list[dict[str, Any]] = []
    kwargs: dict[str, Any] = {}
    while True:
        description = streams.describe_stream(StreamArn=arn, **kwargs)["StreamDescription"]
        shards += description["Shards"]
        if "LastEvaluatedShardId" not in description:
            break
        kwargs["ExclusiveStartShardId"] = description["LastEvaluatedShardId"]
    out: dict[str, list[int]] = {}
    for shard in shards:
        iterator = streams.get_shard_iterator(
            StreamArn=arn, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        seqs = out.setdefault(shard["ShardId"], [])
        while iterator:
            answer = streams.get_records(ShardIterator=iterator, Limit=1000)
            seqs += [int(r["dynamodb"]["SequenceNumber"]) for r in answer["Records"]]
            if not answer["Records"] and "EndingSequenceNumber" not in shard["SequenceNumberRange"]:
                break
            iterator = answer.get("NextShardIterator")
    return out


def covered(checkpoint: str | None, seqs: list[int]) -> list[int]:
    """The records of a shard that a checkpoint says are done."""
    if checkpoint is None or not checkpoint.isdigit():
        return list(seqs) if checkpoint == SHARD_END else []
    return [seq for seq in seqs if seq <= int(checkpoint)]


def in_order(workload: Workload) -> Callable[[list[ReadMessage]], bool]:
    """Done when each item's changes appear in the topic in write order (repeats allowed)."""
    wanted = {
        message_key(key): [(c.event, c.new["version"] if c.new else None) for c in changes]
        for key, changes in workload.by_key().items()
    }

    def done(messages: list[ReadMessage]) -> bool:
        seen: dict[bytes | None, list[tuple[str, int | None]]] = {}
        for message in messages:
            new = message.envelope["new"]
            seen.setdefault(message.key, []).append(
                (message.envelope["event"], new["version"] if new else None)
            )
        return all(is_subsequence(want, seen.get(key, [])) for key, want in wanted.items())

    return done


@pytest.mark.slow  # the chaos suite's scenarios cover this too; CI runs both
async def test_a_broker_freeze_delays_delivery_but_loses_nothing_and_checkpoints_nothing_early(
    make_local_endpoint: Callable[..., LocalEndpoint], own_broker: KafkaBroker
) -> None:
    local = make_local_endpoint(rotate_records=500)
    ddb = dynamodb(local.endpoint_url)
    table = create_table(ddb)
    create_topic(own_broker.bootstrap_servers, partitions=3, name=table)
    workload = Workload(WRITES, 100)
    config = kafka_config(
        local.endpoint_url,
        table,
        own_broker,
        # A message not acknowledged within 1.5 s fails, and its batch is tried again.
        options={"producer": {"request.timeout.ms": 500, "message.timeout.ms": 1_500}},
        # Enough tries to outlast the freeze: a broker outage must not stop the shard.
        processor={"max_attempts": 1_000},
    )
    done = in_order(workload)

    with TopicReader(own_broker.bootstrap_servers, table) as reader:
        async with open_runtime(config) as runtime:
            factory = runtime.worker.factory
            assert isinstance(factory, KafkaProcessorFactory)
            metrics = runtime.worker.metrics
            worker = asyncio.create_task(runtime.worker.run(runtime.stream_arn))
            try:
                await asyncio.to_thread(write_all, ddb, table, workload, 0, BEFORE)
                await asyncio.to_thread(reader.read_count, BEFORE // 2, 60)

                frozen_at_ms = int(time.time() * 1000)
                own_broker.signal(signal.SIGSTOP)
                # The rest is written while the broker is frozen: the worker reads it and
                # holds changes it cannot send.
                writer = asyncio.create_task(
                    asyncio.to_thread(write_all, ddb, table, workload, BEFORE)
                )
                try:
                    await eventually(
                        lambda: (
                            factory.stats.failed > 0
                            and metrics.value("bridge_records_consumed_total")
                            > metrics.value("bridge_records_processed_total")
                        ),
                        within=30,
                        what="a delivery to fail while records are in hand",
                    )
                    early = await checkpoints(runtime)
                    failed = factory.stats.failed
                    await eventually(
                        lambda: factory.stats.failed > failed,
                        within=30,
                        what="a retry to fail too while the broker is still frozen",
                    )
                    late = await checkpoints(runtime)
                    in_hand = metrics.value("bridge_records_consumed_total") - metrics.value(
                        "bridge_records_processed_total"
                    )
                    frozen_for = time.time() - frozen_at_ms / 1000
                finally:
                    own_broker.signal(signal.SIGCONT)

                await writer
                await asyncio.to_thread(reader.read_until, done, 90)
            finally:
                runtime.worker.request_stop()
                await asyncio.wait_for(worker, 60)

    assert in_hand > 0
    # Nothing could be acknowledged during the freeze: only SHARD_END may have been written
    # (a shard whose records were all delivered before it), no sequence number moved.
    for shard, checkpoint in late.items():
        assert checkpoint in {early.get(shard), SHARD_END}, (shard, early.get(shard), checkpoint)
    # Compared with what the consumer read: every change a checkpoint covered during the
    # freeze was in the topic from a send made before the freeze.
    sent_before: dict[str, set[int]] = {}
    for message in reader.messages:
        if message.created_ms <= frozen_at_ms:
            envelope = message.envelope
            sent_before.setdefault(envelope["shard"], set()).add(int(envelope["seq"]))
    by_shard = await asyncio.to_thread(stream_records, local.endpoint_url, table)
    for snapshot in (early, late):
        for shard, checkpoint in snapshot.items():
            done_there = covered(checkpoint, by_shard.get(shard, []))
            missing = [seq for seq in done_there if seq not in sent_before.get(shard, set())]
            assert not missing, f"{shard} checkpointed at {checkpoint} past unsent {missing[:3]}"
    # And after the freeze every change arrived, each item's in write order.
    assert done(reader.messages)
    repeats = len(reader.messages) - len(workload.changes)
    print(
        f"\nfrozen {frozen_for:.1f}s with {in_hand:.0f} records in hand; "
        f"{factory.stats.failed} deliveries failed, {factory.stats.sessions} producer sessions, "
        f"{repeats} repeated messages"
    )
