"""The Kafka topic as the checker reads it: a plain consumer, every partition from offset 0,
no consumer group, incrementally (each ``catch_up`` reads what was appended since)."""

from __future__ import annotations

import time

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition

from tests.chaos.checker import Delivery, delivery_of_message


class KafkaSink:
    def __init__(self, bootstrap_servers: str, topic: str) -> None:
        self.topic = topic
        self.consumer = Consumer(
            {
                "bootstrap.servers": bootstrap_servers,
                "group.id": "chaos-checker-unused",  # required; never joined (assign, no commit)
                "enable.auto.commit": False,
                "enable.partition.eof": True,
            }
        )
        metadata = self.consumer.list_topics(topic, timeout=30)
        self.partitions = sorted(metadata.topics[topic].partitions)
        self.consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in self.partitions])
        self.deliveries: list[Delivery] = []
        self.tombstones = 0
        self._next: dict[int, int] = {}

    def catch_up(self, within: float = 60.0) -> list[Delivery]:
        """Read up to each partition's end as it is now; returns every delivery so far."""
        highs = {
            p: self.consumer.get_watermark_offsets(TopicPartition(self.topic, p), timeout=30)[1]
            for p in self.partitions
        }
        deadline = time.monotonic() + within
        while any(self._position(p) < high for p, high in highs.items()):
            if time.monotonic() > deadline:
                raise AssertionError(f"topic {self.topic}: not read to its end within {within}s")
            for message in self.consumer.consume(1000, timeout=0.2):
                error = message.error()
                if error is not None:
                    if error.code() == KafkaError._PARTITION_EOF:
                        continue
                    raise AssertionError(f"consumer error: {error}")
                self._next[message.partition()] = message.offset() + 1
                value = message.value()
                if value is None:
                    self.tombstones += 1
                    continue
                self.deliveries.append(
                    delivery_of_message(
                        message.partition(), message.offset(), value, message.timestamp()[1]
                    )
                )
        return self.deliveries

    def _position(self, partition: int) -> int:
        return self._next.get(partition, 0)

    def close(self) -> None:
        self.consumer.close()
