"""``bridge dead-letters replay``: the records given up on, through the processor again.

Once the processor is fixed, the dead letters of the configured destination
(``processor.dead_letter``: a file, a Kafka topic or an S3 prefix) are read, rebuilt as the
records they were (each carries its DynamoDB JSON), and handed to the processor, shard by
shard, in stream order. What went through is taken off the destination: the file is rewritten
with what is left, the S3 objects deleted, the topic's replay position (a consumer group of
its own) committed. A record that fails again stays, and the command exits 1. Not for a
processor that keeps its own checkpoint (``sqlite``): an old record would move it back.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from bridge.config import BridgeConfig
from bridge.processors.api import Batch, EndReason, ShardContext
from bridge.processors.dead_letter import DeadLetterBucket, DeadLetterFile, DeadLetterTopic
from bridge.records import ChangeRecord
from bridge.worker.app import factory_maker
from bridge.worker.dead_letters import dead_letters

_KAFKA_TIMEOUT = 30.0
"""Seconds a Kafka dead-letter topic has to answer a replay's requests."""


class ReplayRefusedError(Exception):
    """This configuration's dead letters cannot be replayed (one line: why)."""


@dataclass
class Letter:
    shard: str
    seq: str
    record: dict[str, Any]
    handle: Any
    """Where it came from: a line index, an S3 key, a (partition, offset)."""


@dataclass
class ReplayResult:
    replayed: int = 0
    failed: list[str] = field(default_factory=list)
    """``shard/seq`` of the records that failed again (they stay)."""


class _NoCheckpoints:
    async def checkpoint(self, sequence_number: str) -> None:
        """A replayed record has no place in a shard's reading: nothing to checkpoint."""


async def replay(config: BridgeConfig) -> ReplayResult:
    if config.processor.on_error != "dead_letter":
        raise ReplayRefusedError("processor.on_error is not dead_letter: there are no dead letters")
    factory = factory_maker(config, f"replay-{uuid.uuid4().hex[:6]}", config.source)
    if not factory.takes_lanes():
        raise ReplayRefusedError(
            f"processor.kind {config.processor.kind!r} keeps its own checkpoint with each batch, "
            "which a replayed record would move back"
        )
    store = _store_of(config)
    letters = await asyncio.to_thread(store.read)
    result = ReplayResult()
    by_shard: dict[str, list[Letter]] = defaultdict(list)
    for letter in letters:
        by_shard[letter.shard].append(letter)
    done: list[Letter] = []
    await factory.open()
    try:
        for shard, group in by_shard.items():
            group.sort(key=lambda letter: int(letter.seq))
            processor = factory.create(shard)
            context = ShardContext(
                shard_id=shard,
                table=config.source.name,
                stream_arn="",
                worker_id="dead-letters-replay",
                checkpointer=_NoCheckpoints(),
            )
            await processor.start(context)
            try:
                for letter in group:  # one at a time: one that fails again does not stop the rest
                    record = ChangeRecord.from_raw(letter.record, shard)
                    try:
                        await processor.process(Batch(shard, [record]))
                    except Exception:
                        result.failed.append(f"{shard}/{letter.seq}")
                        continue
                    done.append(letter)
                    result.replayed += 1
            finally:
                await processor.end(EndReason.SHUTDOWN)
    finally:
        await factory.close()
        await asyncio.to_thread(store.remove, done)
    return result


def _store_of(config: BridgeConfig) -> Any:
    destination = dead_letters(config)
    if isinstance(destination, DeadLetterFile):
        return _FileLetters(destination.path)
    if isinstance(destination, DeadLetterBucket):
        return _BucketLetters(destination)
    assert isinstance(destination, DeadLetterTopic)
    return _TopicLetters(f"{config.app}-dead-letters-replay", destination)


def _letter(document: bytes, handle: Any) -> Letter:
    parsed = orjson.loads(document)
    return Letter(str(parsed["shard"]), str(parsed["seq"]), parsed["record"], handle)


class _FileLetters:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.lines: list[bytes] = []

    def read(self) -> list[Letter]:
        if not self.path.exists():
            return []
        self.lines = [line for line in self.path.read_bytes().splitlines() if line.strip()]
        return [_letter(line, index) for index, line in enumerate(self.lines)]

    def remove(self, done: list[Letter]) -> None:
        gone = {letter.handle for letter in done}
        left = [line for index, line in enumerate(self.lines) if index not in gone]
        scratch = self.path.with_suffix(self.path.suffix + ".replaying")
        scratch.write_bytes(b"".join(line + b"\n" for line in left))
        scratch.replace(self.path)


class _BucketLetters:
    def __init__(self, destination: DeadLetterBucket) -> None:
        self.client = destination.client
        self.bucket = destination.bucket
        self.prefix = destination.prefix

    def read(self) -> list[Letter]:
        letters: list[Letter] = []
        pages = self.client.get_paginator("list_objects_v2")
        for page in pages.paginate(Bucket=self.bucket, Prefix=self.prefix):
            for entry in page.get("Contents", []):
                body = self.client.get_object(Bucket=self.bucket, Key=entry["Key"])["Body"]
                letters.append(_letter(body.read(), entry["Key"]))
        return letters

    def remove(self, done: list[Letter]) -> None:
        for letter in done:
            self.client.delete_object(Bucket=self.bucket, Key=letter.handle)


class _TopicLetters:
    """The topic from the replay group's committed position to its end, read by assignment
    (no group join to wait for); the group's offsets move past what was replayed."""

    def __init__(self, group: str, destination: DeadLetterTopic) -> None:
        from confluent_kafka import Consumer

        self.topic = destination.topic
        self.where = destination.where
        self.group = group
        self.consumer = Consumer(
            {
                "bootstrap.servers": destination.servers,
                "group.id": group,
                "enable.auto.commit": False,
                "auto.offset.reset": "earliest",
                "enable.partition.eof": True,
                **destination.settings,
            }
        )

    def read(self) -> list[Letter]:
        from confluent_kafka import KafkaError, KafkaException, TopicPartition

        self.letters: list[Letter] = []
        try:
            listed = self.consumer.list_topics(self.topic, timeout=_KAFKA_TIMEOUT)
            found = listed.topics.get(self.topic)
            if found is None or found.error is not None or not found.partitions:
                raise ReplayRefusedError(f"no dead-letter {self.where}")
            wanted = [TopicPartition(self.topic, p) for p in sorted(found.partitions)]
            positions = self.consumer.committed(wanted, timeout=_KAFKA_TIMEOUT)
        except KafkaException as exc:
            raise ReplayRefusedError(f"dead-letter {self.where} did not answer: {exc}") from exc
        self.consumer.assign(positions)  # uncommitted partitions start at the beginning
        ended: set[int] = set()
        while ended != set(found.partitions):
            message = self.consumer.poll(_KAFKA_TIMEOUT)
            if message is None:
                raise ReplayRefusedError(
                    f"dead-letter {self.where} sent nothing for {_KAFKA_TIMEOUT:.0f} s"
                )
            error = message.error()
            if error is not None:
                if error.code() != KafkaError._PARTITION_EOF:
                    raise ReplayRefusedError(f"reading the dead-letter {self.where}: {error}")
                ended.add(message.partition() or 0)
                continue
            value = message.value()
            if value is not None:
                handle = (message.partition(), message.offset())
                self.letters.append(_letter(value, handle))
        return self.letters

    def remove(self, done: list[Letter]) -> None:
        from confluent_kafka import KafkaException, TopicPartition

        # Past the replayed ones, never past one that failed again (it is read next time).
        replayed = {letter.handle for letter in done}
        read: dict[int, list[int]] = defaultdict(list)
        for letter in self.letters:
            read[letter.handle[0]].append(letter.handle[1])
        upto: dict[int, int] = {}
        for partition, offsets in read.items():
            for offset in sorted(offsets):
                if (partition, offset) not in replayed:
                    break
                upto[partition] = offset
        try:
            if upto:
                positions = [TopicPartition(self.topic, p, o + 1) for p, o in upto.items()]
                self.consumer.commit(offsets=positions, asynchronous=False)
        except KafkaException as exc:
            raise ReplayRefusedError(
                f"the replayed records were delivered, but consumer group {self.group!r} did "
                f"not save its position ({exc}): a next replay hands them over again"
            ) from exc
        finally:
            self.consumer.close()
