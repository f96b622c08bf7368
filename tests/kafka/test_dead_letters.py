"""Durable dead letters: a record given up on is written to a Kafka topic or an S3 prefix, and
acknowledged, before its checkpoint; a destination that cannot take it holds the shard."""

from __future__ import annotations

import asyncio
import signal
import uuid
from collections.abc import Callable
from pathlib import Path

import boto3
import orjson

from bridge.core.backoff import Backoff
from bridge.local.processes import KafkaBroker, MotoServer
from bridge.processors.api import Batch, Processor
from bridge.processors.dead_letter import DeadLetterBucket, DeadLetters, DeadLetterTopic
from bridge.worker.delivery import BatchDelivery, DeliveryPolicy
from tests.kafka.topic_reader import TopicReader, create_topic
from tests.sqlite.records import batch, change


class Refuses(Processor):
    """Cannot apply sequence number 2."""

    async def process(self, batch: Batch) -> None:
        if any(r.sequence_number == "2" for r in batch.records):
            raise ValueError("cannot apply 2")


def delivery(
    dead: DeadLetters, checkpoints: list[str], on_retry: Callable[[], None] = lambda: None
) -> BatchDelivery:
    async def checkpoint(sequence_number: str) -> None:
        checkpoints.append(sequence_number)

    policy = DeliveryPolicy(
        max_attempts=1, on_error="dead_letter", backoff=Backoff(base=0.05, cap=0.2)
    )
    return BatchDelivery(
        Refuses(), policy, checkpoint=checkpoint, dead_letter=dead, on_retry=on_retry
    )


def three() -> Batch:
    return batch(*(change("INSERT", seq, {"pk": f"k{seq}"}, {"v": seq}) for seq in (1, 2, 3)))


async def test_a_dead_letter_goes_to_a_topic_before_the_checkpoint_passes_it(
    own_broker: KafkaBroker,
) -> None:
    topic = create_topic(own_broker.bootstrap_servers, partitions=1)
    dead = DeadLetterTopic(own_broker.bootstrap_servers, topic, producer={}, timeout=2.0)
    checkpoints: list[str] = []
    retries = 0
    waited = asyncio.Event()

    def retried() -> None:  # the record's own failure once, then each refused dead letter
        nonlocal retries
        retries += 1
        if retries >= 3:
            waited.set()

    deliver = delivery(dead, checkpoints, retried)
    # The broker frozen while the record is given up: the shard waits, nothing moves.
    own_broker.signal(signal.SIGSTOP)
    task = asyncio.create_task(deliver.deliver(three()))
    try:
        await asyncio.wait_for(waited.wait(), 60)  # two dead-letter writes timed out
        assert not task.done() and checkpoints == ["1"]
    finally:
        own_broker.signal(signal.SIGCONT)
    await asyncio.wait_for(task, 60)
    assert checkpoints[-1] == "3" and "2" in checkpoints
    await dead.close()
    with TopicReader(own_broker.bootstrap_servers, topic) as reader:
        messages = reader.read_until(lambda ms: len(ms) >= 1, 30)
    documents = [orjson.loads(m.value or b"") for m in messages]
    assert {d["seq"] for d in documents} == {"2"}
    assert documents[0]["error"] == "ValueError: cannot apply 2"
    assert documents[0]["record"]["dynamodb"]["SequenceNumber"] == "2"


async def test_a_dead_letter_goes_to_an_s3_prefix(moto_server: MotoServer, tmp_path: Path) -> None:
    s3 = boto3.client("s3", endpoint_url=moto_server.endpoint_url, region_name="us-east-1")
    bucket = f"dead-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=bucket)
    dead = DeadLetterBucket(bucket, "dead-letters/app/", client=s3)
    checkpoints: list[str] = []
    await delivery(dead, checkpoints).deliver(three())
    (listed,) = s3.list_objects_v2(Bucket=bucket)["Contents"]
    assert listed["Key"].endswith("/2.json") and listed["Key"].startswith("dead-letters/app/")
    body = orjson.loads(s3.get_object(Bucket=bucket, Key=listed["Key"])["Body"].read())
    assert body["seq"] == "2" and checkpoints[-1] == "3"
