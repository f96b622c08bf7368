"""``processor.kind: kafka``: every change to a Kafka topic, checkpointed only once acknowledged."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import structlog
from confluent_kafka import KafkaError, KafkaException

from bridge.processors.api import (
    Batch,
    EndReason,
    LeaseLostError,
    Processor,
    ProcessorFactory,
    SnapshotBatch,
)
from bridge.processors.kafka._envelope import EnvelopeEncoder, Headers, Message
from bridge.processors.kafka._errors import (
    KafkaDeliveryError,
    KafkaStartupError,
    MessageTooLargeError,
)
from bridge.processors.kafka._options import KafkaOptions, parse_options
from bridge.processors.kafka._session import (
    SESSION_ENDING,
    TOO_LARGE,
    BatchOutcome,
    PendingBatch,
    ProducerSession,
)
from bridge.processors.kafka._snapshot import SnapshotEncoder

if TYPE_CHECKING:
    from bridge.records import ChangeRecord

log = structlog.get_logger("bridge.processor.kafka")

_TOPIC_NAME = re.compile(r"^[A-Za-z0-9._-]{1,249}$")
DEFAULT_MESSAGE_MAX_BYTES = 1_000_000  # librdkafka's default message.max.bytes


@dataclass
class Encoded:
    """The messages of a batch, ready to produce, and the changes they carry."""

    messages: list[Message] = field(default_factory=list)
    records: list[ChangeRecord] = field(default_factory=list)
    """``records[i]`` is the change ``messages[i]`` carries (a tombstone: its REMOVE)."""


_HEADERS_FIT = 4096  # bridge's four headers always fit in this; counted only near the limit


def _headers_size(headers: Headers) -> int:
    return sum(len(name) + len(value or b"") for name, value in headers)


@dataclass
class KafkaStats:
    """Counters of one factory, for logs and tests."""

    delivered: int = 0
    """Messages Kafka acknowledged."""
    failed: int = 0
    """Messages whose delivery failed (their batch was retried)."""
    sessions: int = 0
    """Producer sessions started: 1, plus one per replacement after a fatal or fenced error."""


class KafkaProcessorFactory(ProcessorFactory):
    """One idempotent producer per worker, shared by the processors of the shards it owns."""

    def __init__(
        self, table: str, app: str = "bridge", worker_id: str = "", **options: Any
    ) -> None:
        self.options: KafkaOptions = parse_options(options)
        self.table = table
        self.topic = self.options.topic_for(table)
        if not _TOPIC_NAME.match(self.topic):
            raise KafkaStartupError(
                f"processor.kind 'kafka': topic {self.topic!r} (from {self.options.topic!r}) is "
                "not a valid Kafka topic name (letters, digits, '.', '_', '-'; at most 249)"
            )
        self.encoder = EnvelopeEncoder(
            table,
            include_old_image=self.options.include_old_image,
            tombstones=self.options.tombstones,
            types=self.options.types,
            debezium=self.options.format == "debezium",
        )
        self.snapshots = SnapshotEncoder(
            table, types=self.options.types, debezium=self.options.format == "debezium"
        )
        client_id = "-".join(part for part in ("bridge", app, worker_id) if part)
        self.producer_config = self.options.producer_config(client_id)
        self.max_message_bytes = int(
            self.producer_config.get("message.max.bytes", DEFAULT_MESSAGE_MAX_BYTES)
        )
        self.stats = KafkaStats()
        self._session: ProducerSession | None = None
        self._retiring: set[asyncio.Task[int]] = set()

    @property
    def where(self) -> str:
        return f"topic {self.topic!r} on Kafka at {self.options.servers}"

    # -- lifecycle ------------------------------------------------------------------------

    async def open(self) -> None:
        """Start the producer and check that the broker answers and the topic is there."""
        session = self._start_session(asyncio.get_running_loop())
        try:
            await asyncio.to_thread(self._check_topic, session)
        except BaseException:
            await session.close(0.0, purge=True)
            raise
        self._session = session
        log.info("kafka producer ready", topic=self.topic, servers=self.options.servers)

    async def close(self) -> None:
        """Deliver what is still queued (normally nothing: batches wait for their acks)."""
        session, self._session = self._session, None
        if session is not None:
            timeout = self.options.flush_timeout.total_seconds()
            remaining = await session.close(timeout)
            if remaining:
                log.error(
                    "kafka messages still unconfirmed at close; their changes were not "
                    "checkpointed and will be sent again",
                    count=remaining,
                    topic=self.topic,
                )
        await asyncio.gather(*self._retiring)

    def create(self, shard_id: str) -> KafkaProcessor:
        return KafkaProcessor(self, shard_id)

    def takes_snapshots(self) -> bool:
        return True

    # -- shared by the processors ---------------------------------------------------------

    @property
    def session(self) -> ProducerSession:
        if self._session is None:
            raise RuntimeError("KafkaProcessorFactory.open() was not called, or it was closed")
        return self._session

    def encode(self, records: Sequence[ChangeRecord]) -> Encoded:
        """Every message of the records, or MessageTooLargeError naming the first too large."""
        limit = self.max_message_bytes
        envelope = self.encoder.envelope
        tombstones = self.encoder.tombstones
        out = Encoded()
        messages = out.messages
        owners = out.records
        for record in records:
            message = key, value, headers = envelope(record)
            size = len(key) + len(value)
            # librdkafka counts framing on top of this, so it refuses at least these.
            if size > limit - _HEADERS_FIT and size + _headers_size(headers) > limit:
                raise self._too_large(record, f"{size + _headers_size(headers)} bytes")
            messages.append(message)
            owners.append(record)
            if tombstones and record.event == "REMOVE":
                # Same key, null value: log compaction then drops the item, as with Debezium.
                messages.append((key, None, headers))
                owners.append(record)
        return out

    def _too_large(self, record: ChangeRecord, detail: str) -> MessageTooLargeError:
        seq = record.sequence_number
        return MessageTooLargeError(
            f"change {seq} of shard {record.shard_id} makes a message larger than the "
            f"producer's message.max.bytes ({self.max_message_bytes}) allows for "
            f"{self.where}: {detail}",
            sequence_numbers=(seq,),
        )

    def refused(
        self, session: ProducerSession, error: KafkaError, record: ChangeRecord
    ) -> Exception:
        """The error to raise for a message librdkafka refused to queue."""
        seq = record.sequence_number
        if error.code() == TOO_LARGE:
            return self._too_large(record, error.str())
        self._replace_if_ended(session, [error.code()], error.fatal(), error.str())
        return KafkaDeliveryError(
            f"kafka refused change {seq} of shard {record.shard_id} for {self.where}: "
            f"{error.str()}",
            sequence_numbers=(seq,),
        )

    def failed(self, session: ProducerSession, outcome: BatchOutcome, batch: Batch) -> Exception:
        """The error to raise for a batch some of whose messages were not acknowledged."""
        failures = outcome.failures
        sequence_numbers = tuple(f.sequence_number for f in failures if f.sequence_number)
        first = failures[0].describe() if failures else "unknown error"
        if any(f.code == TOO_LARGE for f in failures):
            return MessageTooLargeError(
                f"Kafka refused a message of shard {batch.shard_id} as too large for "
                f"{self.where}: {first}; the broker's message.max.bytes (or the topic's "
                "max.message.bytes) is below the size of this change",
                sequence_numbers=sequence_numbers,
            )
        codes = [f.code for f in failures]
        self._replace_if_ended(session, codes, any(f.fatal for f in failures), first)
        return KafkaDeliveryError(
            f"{outcome.failed} of {outcome.failed + outcome.delivered} messages of shard "
            f"{batch.shard_id} were not acknowledged by {self.where}: {first}; the checkpoint "
            "stays before this batch",
            sequence_numbers=sequence_numbers,
        )

    # -- internals ------------------------------------------------------------------------

    def _start_session(self, loop: asyncio.AbstractEventLoop) -> ProducerSession:
        self.stats.sessions += 1
        try:
            return ProducerSession(self.producer_config, loop, self.stats.sessions)
        except KafkaException as exc:
            raise KafkaStartupError(
                f"processor.kind 'kafka': bad processor.options.producer: {exc.args[0].str()}"
            ) from None

    def _check_topic(self, session: ProducerSession) -> None:
        timeout = self.options.startup_timeout.total_seconds()
        servers = self.options.servers
        try:
            metadata = session.metadata(self.topic, timeout)
        except KafkaException as exc:
            raise KafkaStartupError(
                f"cannot reach the Kafka broker(s) at {servers} (bootstrap_servers) within "
                f"{timeout:g}s to check topic {self.topic!r}: {exc.args[0].str()}"
            ) from None
        topic = metadata.topics.get(self.topic)
        error = None if topic is None else topic.error
        if topic is None or (
            error is not None and error.code() == KafkaError.UNKNOWN_TOPIC_OR_PART
        ):
            raise KafkaStartupError(
                f"topic {self.topic!r} does not exist on the Kafka cluster at {servers}, and the "
                "broker did not create it (auto.create.topics.enable is off, or "
                "producer.allow.auto.create.topics is false): create the topic first"
            )
        if error is not None:
            raise KafkaStartupError(f"{self.where}: {error.str()}")
        if not topic.partitions:
            raise KafkaStartupError(f"{self.where} has no partitions")

    def _replace_if_ended(
        self, session: ProducerSession, codes: Sequence[int], fatal: bool, reason: str
    ) -> None:
        """A fatal or fenced producer cannot send again: give the next attempt a new one."""
        if not (fatal or session.fatal is not None or SESSION_ENDING.intersection(codes)):
            return
        if self._session is not session:
            return  # another shard's processor already replaced it
        log.warning(
            "kafka producer session ended; starting a new one",
            session=session.generation,
            error=str(session.fatal) if session.fatal is not None else reason,
        )
        self._session = self._start_session(session.loop)
        # Messages of other shards still queued in the old session fail now (purged), so
        # their batches are retried on the new session instead of waiting for a timeout.
        task = asyncio.get_running_loop().create_task(session.close(5.0, purge=True))
        self._retiring.add(task)
        task.add_done_callback(self._retiring.discard)


class KafkaProcessor(Processor):
    """Sends one shard's changes; returns from ``process`` only once Kafka acknowledged all."""

    def __init__(self, factory: KafkaProcessorFactory, shard_id: str) -> None:
        self.factory = factory
        self.shard_id = shard_id
        self.ended: EndReason | None = None
        self._log = log.bind(shard=shard_id, topic=factory.topic)

    async def process(self, batch: Batch) -> None:
        if self.ended is not None:
            raise LeaseLostError(
                f"shard {self.shard_id}: the Kafka processor ended ({self.ended}); "
                "nothing more is sent for it"
            )
        factory = self.factory
        # The whole batch is encoded first: a change that cannot become a message fails the
        # batch before any of it is sent, so retrying it does not repeat the changes before.
        encoded = factory.encode(batch.records)
        session = factory.session
        pending = PendingBatch(session.loop)
        try:
            await self._queue(session, pending, encoded)
        except asyncio.CancelledError:
            raise
        except Exception:
            # What was queued before the refusal is on its way: let it land (or fail) before
            # raising, so that no attempt at a batch overlaps the next one.
            await self._settle(pending)
            raise
        outcome = await self._settle(pending)
        if outcome.failed:
            raise factory.failed(session, outcome, batch)

    async def _settle(self, pending: PendingBatch) -> BatchOutcome:
        outcome = await pending.wait()
        self.factory.stats.delivered += outcome.delivered
        self.factory.stats.failed += outcome.failed
        return outcome

    async def _queue(self, session: ProducerSession, pending: PendingBatch, out: Encoded) -> None:
        topic = self.factory.topic
        while True:
            try:
                if session.send(topic, out.messages, pending):
                    return
            except KafkaException as exc:
                record = out.records[pending.sent]
                raise self.factory.refused(session, exc.args[0], record) from None
            await session.wait_for_room()  # a full queue is backpressure, not loss

    async def snapshot(self, batch: SnapshotBatch) -> None:
        """Send a snapshot page's items, and at the segment's end its marker to every
        partition; returns once Kafka acknowledged all of them."""
        if self.ended is not None:
            raise LeaseLostError(f"segment {self.shard_id}: the Kafka processor ended")
        factory = self.factory
        session = factory.session
        messages = factory.snapshots.items(batch)
        pending = PendingBatch(session.loop)
        try:
            while not session.send(factory.topic, messages, pending):
                await session.wait_for_room()
            if batch.last:
                timeout = factory.options.startup_timeout.total_seconds()
                partitions = await asyncio.to_thread(session.partitions, factory.topic, timeout)
                marker = factory.snapshots.segment_end(batch)
                ends = PendingBatch(session.loop)
                while not session.send_to_partitions(factory.topic, marker, partitions, ends):
                    await session.wait_for_room()
                await self._settle(pending)
                pending = ends
        except KafkaException as exc:
            await self._settle(pending)
            raise KafkaDeliveryError(
                f"kafka refused a snapshot message of segment {batch.segment} for "
                f"{factory.where}: {exc.args[0].str()}"
            ) from None
        outcome = await self._settle(pending)
        if outcome.failed:
            first = outcome.failures[0].describe() if outcome.failures else "unknown error"
            raise KafkaDeliveryError(
                f"{outcome.failed} snapshot messages of segment {batch.segment} were not "
                f"acknowledged by {factory.where}: {first}; the segment's position stays "
                "before this page"
            )

    async def end(self, reason: EndReason) -> None:
        # process() returns only when its batch is acknowledged, so nothing of this shard is
        # in flight now; after LEASE_LOST nothing more may be sent.
        self.ended = reason
        self._log.info("kafka processor ended", reason=str(reason))
