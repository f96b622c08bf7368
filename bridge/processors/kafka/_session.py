"""One librdkafka producer, and the delivery reports it owes, served to asyncio.

librdkafka calls delivery reports from inside ``poll()``. A batch counts its reports under a
lock (they may come from the loop's thread or, while closing, from ``flush()`` in a worker
thread) and wakes its waiter once, when the last one is in: one ``call_soon_threadsafe`` per
batch, not per message.

A session is one idempotent-producer session (producer id and epoch). Some failures end it for
good (a fatal error, a fenced epoch); the factory then replaces it with a new one.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import structlog
from confluent_kafka import KafkaError, KafkaException, Message, Producer

from bridge.processors.kafka._envelope import Message as EnvelopeMessage

log = structlog.get_logger("bridge.processor.kafka")

# Errors after which this producer id/epoch cannot go on: a new session is needed.
SESSION_ENDING = frozenset(
    {
        KafkaError.PRODUCER_FENCED,
        KafkaError.INVALID_PRODUCER_EPOCH,
        KafkaError.UNKNOWN_PRODUCER_ID,
        KafkaError.OUT_OF_ORDER_SEQUENCE_NUMBER,
        KafkaError.INVALID_PRODUCER_ID_MAPPING,
        KafkaError._FATAL,
    }
)
TOO_LARGE = KafkaError.MSG_SIZE_TOO_LARGE
_KEPT_ERRORS = 5
_PUMP_FAST = 0.001
_PUMP_SLOW = 0.05
_PUMP_STALL = 1.0
_PUMP_IDLE = 1.0
# Messages queued between two poll(0) calls while sending. A call after every message, as a
# plain producer loop makes, took about a tenth more CPU per message here; the reports are
# served all the same, a few dozen at a time.
_POLL_EVERY = 64


@dataclass
class DeliveryFailure:
    code: int
    reason: str
    sequence_number: str | None
    fatal: bool

    def describe(self) -> str:
        where = f" (seq {self.sequence_number})" if self.sequence_number else ""
        return f"{self.reason}{where}"


@dataclass
class BatchOutcome:
    delivered: int = 0
    failed: int = 0
    failures: list[DeliveryFailure] = field(default_factory=list)
    """The first few failures, in the order their reports came."""


class PendingBatch:
    """Counts the delivery reports of one batch; ``wait`` returns when all are in.

    One object per batch, its ``on_delivery`` (bound once) passed with every message of it: a
    report costs a lock and a count, no future or task per message.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._lock = threading.Lock()
        self._expected = -1  # not known until wait(): no count of reports reaches it
        self._reports = 0
        self.sent = 0
        """Messages queued for this batch; counted on the event loop's thread only."""
        self.outcome = BatchOutcome()
        self._done = loop.create_future()
        self.on_delivery = self._on_delivery
        """The delivery callback, bound once (not once per message)."""

    def _on_delivery(self, error: KafkaError | None, message: Message) -> None:
        """librdkafka's delivery callback: on the loop's thread, or on the thread that runs
        ``flush()`` while closing."""
        with self._lock:
            self._reports += 1
            if error is not None:
                self.outcome.failed += 1
                if len(self.outcome.failures) < _KEPT_ERRORS:
                    self.outcome.failures.append(_failure(error, message))
            finished = self._reports == self._expected
        if finished:
            with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits
                self._loop.call_soon_threadsafe(self._finish)

    async def wait(self) -> BatchOutcome:
        """Every message of the batch is queued; wait for all their delivery reports.

        Every report that is not a failure is an acknowledgement: ``delivered`` is counted
        from them once all are in.
        """
        with self._lock:
            self._expected = self.sent
            finished = self._reports == self.sent
        if finished:
            self._finish()
        await self._done
        with self._lock:
            self.outcome.delivered = self._reports - self.outcome.failed
        return self.outcome

    def _finish(self) -> None:
        if not self._done.done():
            self._done.set_result(None)


def _failure(error: KafkaError, message: Message) -> DeliveryFailure:
    sequence_number = None
    headers = message.headers() or []
    pairs = headers.items() if isinstance(headers, dict) else headers
    for name, value in pairs:
        if name == "bridge-seq" and value is not None:
            sequence_number = value.decode() if isinstance(value, bytes) else value
    return DeliveryFailure(error.code(), str(error.str()), sequence_number, error.fatal())


class ProducerSession:
    """A producer whose delivery reports are served by a task on the event loop.

    Serving them on the loop's own thread, rather than from a polling thread, keeps the GIL
    from bouncing between the two: with a thread, throughput halved (scripts/bench_kafka.py).
    The pump polls every millisecond while anything is in flight, less often once nothing came
    back for a second (a frozen broker); sending also polls, every few dozen messages.
    """

    def __init__(
        self, config: dict[str, str], loop: asyncio.AbstractEventLoop, generation: int
    ) -> None:
        self.loop = loop
        self.generation = generation
        self._log = log.bind(client_id=config.get("client.id"), session=generation)
        self.producer = Producer(
            {**config, "error_cb": self._on_error, "logger": _LibrdkafkaLog(self._log)}
        )
        self.fatal: KafkaError | None = None
        self._work = asyncio.Event()
        self._served = asyncio.Event()
        self._pump_task = loop.create_task(self._pump(), name=f"bridge-kafka-pump-{generation}")

    async def _pump(self) -> None:
        quiet_since = self.loop.time()
        while True:
            if len(self.producer) == 0:  # nothing queued, in flight or to report
                self._work.clear()
                with contextlib.suppress(TimeoutError):
                    # Wake at least now and then for error and log callbacks.
                    await asyncio.wait_for(self._work.wait(), _PUMP_IDLE)
                quiet_since = self.loop.time()
            if self._poll():
                quiet_since = self.loop.time()
                self._served.set()
            # Every millisecond while reports flow; slower once none came for a while (a
            # broker that stopped answering), so a long outage does not spin the loop.
            stalled = self.loop.time() - quiet_since > _PUMP_STALL
            await asyncio.sleep(_PUMP_SLOW if stalled else _PUMP_FAST)

    def _poll(self) -> int:
        """Serve what librdkafka has for us; a failing callback must not stop the serving."""
        try:
            return int(self.producer.poll(0))
        except Exception as exc:
            self._log.error("kafka callback failed", error=repr(exc))
            return 1

    def _on_error(self, error: KafkaError) -> None:
        if error.fatal():
            self.fatal = error
            self._log.error("kafka producer failed for good", error=str(error))
        else:
            self._log.warning("kafka client error", error=str(error))

    def send(self, topic: str, messages: Sequence[EnvelopeMessage], pending: PendingBatch) -> bool:
        """Queue ``messages[pending.sent:]`` without awaiting; False when the queue filled up.

        Stops at the first message librdkafka's full queue does not take, to go on from there
        once there is room (backpressure, not loss). A message librdkafka refuses outright
        raises ``KafkaException``; it is ``messages[pending.sent]``.
        """
        produce = self.producer.produce
        on_delivery = pending.on_delivery
        start = pending.sent
        queued = 0
        try:
            for key, value, headers in itertools.islice(messages, start, None):
                produce(topic, value, key, headers=headers, on_delivery=on_delivery)
                queued += 1
                if not queued % _POLL_EVERY:
                    self._poll()  # serve the reports already in, so they do not pile up
        except BufferError:
            return False
        finally:
            pending.sent = start + queued
            if queued and not self._work.is_set():
                self._work.set()
            self._poll()
        return True

    def send_to_partitions(
        self, topic: str, message: EnvelopeMessage, partitions: Sequence[int], pending: PendingBatch
    ) -> bool:
        """Queue one message to each of ``partitions[pending.sent:]`` (markers every reader of
        the topic must see, whichever partitions it reads); False when the queue filled up."""
        key, value, headers = message
        start = pending.sent
        queued = 0
        try:
            for partition in itertools.islice(partitions, start, None):
                self.producer.produce(
                    topic,
                    value,
                    key,
                    partition=partition,
                    headers=headers,
                    on_delivery=pending.on_delivery,
                )
                queued += 1
        except BufferError:
            return False
        finally:
            pending.sent = start + queued
            if queued and not self._work.is_set():
                self._work.set()
            self._poll()
        return True

    def partitions(self, topic: str, timeout: float) -> list[int]:
        """Blocking: the topic's partitions now."""
        metadata = self.metadata(topic, timeout).topics.get(topic)
        return sorted(metadata.partitions) if metadata is not None else []

    async def wait_for_room(self) -> None:
        """Wait until librdkafka's queue has room again (some delivery reports came in)."""
        self._served.clear()
        if self._poll():
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._served.wait(), _PUMP_SLOW)

    def metadata(self, topic: str, timeout: float) -> Any:
        """Blocking: the cluster's metadata for ``topic`` (asks for auto-creation if allowed)."""
        return self.producer.list_topics(topic=topic, timeout=timeout)

    async def close(self, flush_seconds: float, *, purge: bool = False) -> int:
        """Deliver (or, with ``purge``, fail at once) what is queued, then shut the producer.

        Returns how many messages were still undelivered at the deadline; they are failed
        (purged) rather than waited for, so closing never hangs on a broker that is down.
        """
        self._pump_task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._pump_task
        # flush() serves the last reports from a worker thread: PendingBatch is thread-safe.
        return await asyncio.to_thread(self._shut, flush_seconds, purge)

    def _shut(self, flush_seconds: float, purge: bool) -> int:
        remaining = 0
        try:
            if purge:
                self.producer.purge()
            remaining = int(self.producer.flush(flush_seconds))
            if remaining:
                self.producer.purge()
                self.producer.flush(1.0)
            # Closes the broker connections now, not whenever the garbage collector gets to
            # this producer (its callbacks refer back to this session).
            self.producer.close()
        except (KafkaException, RuntimeError) as exc:
            self._log.warning("kafka producer did not close cleanly", error=str(exc))
        return remaining


class _LibrdkafkaLog:
    """librdkafka's own log lines, through structlog instead of raw stderr."""

    def __init__(self, logger: Any) -> None:
        self._logger = logger

    def log(self, level: int, template: str, *args: object) -> None:
        try:
            detail = template % args if args else template
        except (TypeError, ValueError):
            detail = f"{template} {args!r}"
        self._logger.log(level, "librdkafka", detail=detail)
