"""The one seam to Kafka: partitions of a topic, assigned explicitly, read from given offsets.

No consumer group: nothing is ever committed to Kafka (the offsets live in the SQLite file,
committed with the data) and no group join delays the start. ``enable.partition.eof`` tells
the follower when a partition is read to its end, which is how it knows it caught up.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

import structlog

from bridge.replica._config import KafkaSourceConfig
from bridge.replica._messages import Fetched, OutOfRange, PartitionEnd

log = structlog.get_logger("bridge.replica.kafka")


class BrokerUnavailableError(Exception):
    """The broker did not answer (down, frozen, unreachable); the message names it."""


class TopicMissingError(Exception):
    """The broker answered, but the topic does not exist (yet)."""


class PartitionConsumer(Protocol):
    def partitions(self, timeout: float) -> list[int]:
        """The topic's partitions, asking the broker (raises the errors above)."""
        ...

    def assign(self, positions: Mapping[int, int | None]) -> None:
        """Start reading these partitions at these offsets (None: from the beginning)."""
        ...

    def consume(
        self, max_messages: int, timeout: float
    ) -> list[Fetched | PartitionEnd | OutOfRange]: ...

    def low_watermarks(self, partitions: list[int], timeout: float) -> dict[int, int]:
        """Each partition's first offset still in the topic, asking the broker."""
        ...

    def unassign(self) -> None:
        """Stop reading every partition (a restore replaces the file under the follower)."""
        ...

    def high_watermark(self, partition: int) -> int | None:
        """The high watermark as last fetched (no request), or None if not known yet."""
        ...

    def close(self) -> None: ...


class KafkaPartitionConsumer:
    """``PartitionConsumer`` over confluent-kafka. Used from one thread."""

    def __init__(self, config: KafkaSourceConfig, *, app: str) -> None:
        from confluent_kafka import Consumer

        self.topic = config.topic
        self.servers = config.servers
        self.last_error: str | None = None
        settings: dict[str, Any] = {
            "group.id": f"bridge-replica-{app}",  # required by the client; never joined
            **config.options,
            # An offset the topic no longer holds is reported, never silently skipped.
            "auto.offset.reset": "error",
            "bootstrap.servers": self.servers,
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "enable.partition.eof": True,
            "error_cb": self._on_error,
            "logger": _LibrdkafkaLog(),
        }
        self._consumer = Consumer(settings)

    def _on_error(self, error: Any) -> None:
        self.last_error = str(error)

    def partitions(self, timeout: float) -> list[int]:
        from confluent_kafka import KafkaError, KafkaException

        try:
            metadata = self._consumer.list_topics(self.topic, timeout=timeout)
        except KafkaException as exc:
            detail = self.last_error or str(exc.args[0] if exc.args else exc)
            raise BrokerUnavailableError(f"kafka {self.servers}: {detail}") from None
        topic = metadata.topics.get(self.topic)
        if topic is None or topic.error is not None:
            code = getattr(topic.error, "code", lambda: None)() if topic else None
            if code == KafkaError.UNKNOWN_TOPIC_OR_PART or topic is None:
                raise TopicMissingError(f"topic {self.topic} does not exist on {self.servers}")
            raise BrokerUnavailableError(f"kafka {self.servers}: topic {self.topic}: {topic.error}")
        return sorted(topic.partitions)

    def assign(self, positions: Mapping[int, int | None]) -> None:
        from confluent_kafka import OFFSET_BEGINNING, TopicPartition

        self._consumer.incremental_assign(
            [
                TopicPartition(self.topic, p, OFFSET_BEGINNING if o is None else o)
                for p, o in sorted(positions.items())
            ]
        )

    def consume(
        self, max_messages: int, timeout: float
    ) -> list[Fetched | PartitionEnd | OutOfRange]:
        from confluent_kafka import TIMESTAMP_NOT_AVAILABLE, KafkaError, KafkaException

        out: list[Fetched | PartitionEnd | OutOfRange] = []
        batch: list[Any] = self._consumer.consume(max_messages, timeout)  # stubs: Optional ints
        for message in batch:
            error = message.error()
            if error is not None:
                if error.code() == KafkaError._PARTITION_EOF:
                    out.append(PartitionEnd(message.partition(), message.offset()))
                    continue
                if error.code() in (
                    KafkaError._AUTO_OFFSET_RESET,
                    KafkaError.OFFSET_OUT_OF_RANGE,
                ):
                    offset = message.offset()
                    out.append(
                        OutOfRange(
                            message.partition(),
                            offset if offset is not None and offset >= 0 else None,
                            str(error),
                        )
                    )
                    continue
                if error.fatal():
                    raise KafkaException(error)
                self.last_error = str(error)
                log.warning("kafka consume error", broker=self.servers, error=str(error))
                continue
            kind, stamp = message.timestamp()
            out.append(
                Fetched(
                    partition=message.partition(),
                    offset=message.offset(),
                    key=message.key(),
                    value=message.value(),
                    headers={k: bytes(v or b"") for k, v in message.headers() or []},
                    timestamp_ms=None if kind == TIMESTAMP_NOT_AVAILABLE else stamp,
                )
            )
        return out

    def low_watermarks(self, partitions: list[int], timeout: float) -> dict[int, int]:
        from confluent_kafka import KafkaException, TopicPartition

        lows: dict[int, int] = {}
        for partition in partitions:
            try:
                low, _ = self._consumer.get_watermark_offsets(
                    TopicPartition(self.topic, partition), timeout=timeout, cached=False
                )
            except KafkaException as exc:
                detail = self.last_error or str(exc.args[0] if exc.args else exc)
                raise BrokerUnavailableError(f"kafka {self.servers}: {detail}") from None
            lows[partition] = max(0, int(low))
        return lows

    def unassign(self) -> None:
        self._consumer.unassign()

    def high_watermark(self, partition: int) -> int | None:
        from confluent_kafka import TopicPartition

        _, high = self._consumer.get_watermark_offsets(
            TopicPartition(self.topic, partition), cached=True
        )
        return int(high) if high is not None and high >= 0 else None

    def close(self) -> None:
        self._consumer.close()


class _LibrdkafkaLog:
    """librdkafka's own log lines through structlog at debug level: while a broker is down it
    repeats every reconnect attempt; the follower logs the outage once per retry instead."""

    def log(self, level: int, template: str, *args: object) -> None:
        try:
            detail = template % args if args else template
        except (TypeError, ValueError):
            detail = f"{template} {args!r}"
        log.debug("librdkafka", level=level, detail=detail)
