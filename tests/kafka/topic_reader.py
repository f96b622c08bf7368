"""Topics for the tests: created with the admin client, read back with a real consumer
(partitions assigned explicitly, no group join)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic


def create_topic(
    bootstrap_servers: str, prefix: str = "t", partitions: int = 3, *, name: str | None = None
) -> str:
    """Create a topic (``name``, or a fresh one starting with ``prefix``); returns its name."""
    name = name or f"{prefix}-{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": bootstrap_servers})
    topic = NewTopic(name, num_partitions=partitions, replication_factor=1)
    admin.create_topics([topic])[name].result(30)
    return name


@dataclass(frozen=True)
class ReadMessage:
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: dict[str, bytes]
    created_ms: int
    """The message's CreateTime: when the producer's produce() call made it."""

    @property
    def envelope(self) -> dict[str, Any]:
        assert self.value is not None, "a tombstone has no envelope"
        decoded = orjson.loads(self.value)
        assert isinstance(decoded, dict)
        return decoded


class TopicReader:
    """Everything in a topic from its beginning, in each partition's order."""

    def __init__(self, bootstrap_servers: str, topic: str) -> None:
        self.topic = topic
        self.consumer = Consumer(
            {
                "bootstrap.servers": bootstrap_servers,
                "group.id": "bridge-tests-unused",  # required; never joined (assign, no commit)
                "enable.auto.commit": False,
            }
        )
        metadata = self.consumer.list_topics(topic, timeout=10)
        partitions = sorted(metadata.topics[topic].partitions)
        assert partitions, f"topic {topic} has no partitions"
        self.consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
        self.messages: list[ReadMessage] = []

    def read_until(
        self, done: Callable[[list[ReadMessage]], bool], within: float = 30.0
    ) -> list[ReadMessage]:
        """Consume until ``done(messages so far)``; fails after ``within`` seconds."""
        deadline = time.monotonic() + within
        while not done(self.messages):
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"topic {self.topic}: condition not met within {within}s "
                    f"({len(self.messages)} messages read)"
                )
            for message in self.consumer.consume(1000, timeout=0.2):
                error = message.error()
                if error is not None:
                    raise AssertionError(f"consumer error: {error}")
                self.messages.append(_read(message))
        return self.messages

    def read_count(self, count: int, within: float = 30.0) -> list[ReadMessage]:
        return self.read_until(lambda messages: len(messages) >= count, within)

    def close(self) -> None:
        self.consumer.close()

    def __enter__(self) -> TopicReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _read(message: Any) -> ReadMessage:
    headers = {name: bytes(value or b"") for name, value in message.headers() or []}
    return ReadMessage(
        partition=message.partition(),
        offset=message.offset(),
        key=message.key(),
        value=message.value(),
        headers=headers,
        created_ms=message.timestamp()[1],
    )
