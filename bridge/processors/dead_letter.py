"""Where records a processor could not handle go (``on_error: dead_letter``), with why and
where they were: a file, a Kafka topic or an S3 prefix (``processor.dead_letter``).

A dead letter is written, and acknowledged by its destination, before the checkpoint moves
past its record, so a record is never both skipped and unrecorded. A destination that cannot
take it (a broker down, a bucket out of reach) raises ``DeadLetterUnavailableError``, a
``RetriableError``: the shard waits for it rather than drop the record. Every destination
holds the same JSON document per record (``dead_letter_document``), from which
``bridge dead-letters replay`` rebuilds the record.
"""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import orjson

from bridge.processors.api import RetriableError

if TYPE_CHECKING:
    from bridge.records import ChangeRecord


class DeadLetterUnavailableError(RetriableError):
    """The dead-letter destination did not take the record: the shard waits, nothing is lost."""


class DeadLetters(Protocol):
    kind: str
    """``file``, ``kafka`` or ``s3``: the ``destination`` label of the dead-letter counter."""
    where: str
    """The destination, for logs."""

    async def write(self, record: ChangeRecord, error: BaseException, attempts: int) -> None: ...

    async def close(self) -> None: ...


def dead_letter_document(record: ChangeRecord, error: BaseException, attempts: int) -> bytes:
    return orjson.dumps(
        {
            "shard": record.shard_id,
            "seq": record.sequence_number,
            "event": record.event,
            "error": f"{type(error).__name__}: {error}",
            "attempts": attempts,
            "failed_at_ms": int(time.time() * 1000),
            "record": record.raw,
        },
        default=str,
    )


class DeadLetterFile:
    """JSON lines, appended and flushed to disk (fsync) before the write returns."""

    kind = "file"

    def __init__(self, path: Path) -> None:
        self.path = path
        self.where = str(path)
        self._lock = asyncio.Lock()

    async def write(self, record: ChangeRecord, error: BaseException, attempts: int) -> None:
        line = dead_letter_document(record, error, attempts)
        async with self._lock:
            try:
                await asyncio.to_thread(self._append, line + b"\n")
            except OSError as exc:
                raise DeadLetterUnavailableError(f"dead-letter file {self.path}: {exc}") from exc

    async def close(self) -> None:
        pass

    def _append(self, data: bytes) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("ab") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())


class DeadLetterTopic:
    """A Kafka topic of its own producer (idempotent, ``acks=all``): a write returns once the
    broker acknowledged it, within ``timeout`` seconds, or raises."""

    kind = "kafka"

    def __init__(
        self, servers: str, topic: str, *, producer: dict[str, Any], timeout: float = 30.0
    ) -> None:
        from confluent_kafka import Producer

        self.topic = topic
        self.servers = servers
        self.settings = producer
        """Extra librdkafka settings (security, compression), for a replay's consumer too."""
        self.where = f"topic {topic!r} on Kafka at {servers}"
        self.timeout = timeout
        self._producer = Producer(
            {
                "bootstrap.servers": servers,
                "message.timeout.ms": int(timeout * 1000),
                **producer,
                "enable.idempotence": True,
                "acks": "all",
            }
        )

    async def write(self, record: ChangeRecord, error: BaseException, attempts: int) -> None:
        document = dead_letter_document(record, error, attempts)
        key = f"{record.shard_id}/{record.sequence_number}".encode()
        await asyncio.to_thread(self._send, key, document)

    def _send(self, key: bytes, value: bytes) -> None:
        outcome: list[Any] = []
        self._producer.produce(
            self.topic, key=key, value=value, on_delivery=lambda err, msg: outcome.append(err)
        )
        self._producer.flush(self.timeout + 1)
        if not outcome or outcome[0] is not None:
            why = "no acknowledgement" if not outcome else str(outcome[0])
            raise DeadLetterUnavailableError(f"dead letter not written to {self.where}: {why}")

    async def close(self) -> None:
        await asyncio.to_thread(self._producer.flush, 5)


class DeadLetterBucket:
    """One S3 object per record, ``<prefix><shard>/<sequence number>.json``."""

    kind = "s3"

    def __init__(self, bucket: str, prefix: str, *, client: Any) -> None:
        self.bucket = bucket
        self.prefix = prefix
        self.where = f"s3://{bucket}/{prefix}"
        self.client = client

    async def write(self, record: ChangeRecord, error: BaseException, attempts: int) -> None:
        document = dead_letter_document(record, error, attempts)
        key = f"{self.prefix}{record.shard_id}/{record.sequence_number}.json"
        try:
            await asyncio.to_thread(
                self.client.put_object, Bucket=self.bucket, Key=key, Body=document
            )
        except Exception as exc:  # botocore's errors and connection failures alike
            raise DeadLetterUnavailableError(
                f"dead letter not written to {self.where}: {exc}"
            ) from exc

    async def close(self) -> None:
        pass
