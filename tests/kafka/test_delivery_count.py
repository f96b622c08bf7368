"""A batch's acknowledgements, counted without a broker: one failed report fails the batch.

``PendingBatch`` counts the reports of a whole batch through one callback; the processor
returns from ``process`` only once every report is in, and raises if any of them failed.
A fake session stands in for librdkafka and reports what the test tells it to.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence

import pytest
from confluent_kafka import KafkaError

from bridge.processors.api import Batch
from bridge.processors.kafka import KafkaDeliveryError, KafkaProcessorFactory
from bridge.processors.kafka._envelope import Headers, Message
from bridge.processors.kafka._session import PendingBatch
from bridge.records import ChangeRecord
from tests.kafka.changes import SHARD, from_stream

TIMED_OUT = KafkaError(KafkaError._MSG_TIMED_OUT, "Local: Message timed out")


class ReportedMessage:
    """What librdkafka hands the delivery callback; only the headers are read."""

    def __init__(self, headers: Headers) -> None:
        self._headers = headers

    def headers(self) -> Headers:
        return self._headers


def seq_message(seq: str) -> ReportedMessage:
    return ReportedMessage([("bridge-seq", seq.encode())])


async def test_wait_returns_only_once_every_report_is_in() -> None:
    pending = PendingBatch(asyncio.get_running_loop())
    pending.sent = 3
    pending.on_delivery(None, seq_message("1"))
    waiting = asyncio.create_task(pending.wait())
    pending.on_delivery(None, seq_message("2"))
    await asyncio.sleep(0.05)
    assert not waiting.done()
    pending.on_delivery(None, seq_message("3"))
    outcome = await asyncio.wait_for(waiting, 5)
    assert (outcome.delivered, outcome.failed) == (3, 0)


async def test_a_failed_report_is_counted_as_a_failure_not_an_ack() -> None:
    pending = PendingBatch(asyncio.get_running_loop())
    pending.sent = 3
    pending.on_delivery(None, seq_message("1"))
    pending.on_delivery(TIMED_OUT, seq_message("2"))
    pending.on_delivery(None, seq_message("3"))
    outcome = await asyncio.wait_for(pending.wait(), 5)
    assert (outcome.delivered, outcome.failed) == (2, 1)
    assert [f.sequence_number for f in outcome.failures] == ["2"]


async def test_reports_from_another_thread_wake_the_waiter() -> None:
    # While closing, flush() serves the last reports from a worker thread.
    pending = PendingBatch(asyncio.get_running_loop())
    pending.sent = 100
    waiting = asyncio.create_task(pending.wait())
    await asyncio.sleep(0)

    def report_all() -> None:
        for n in range(100):
            pending.on_delivery(None if n != 42 else TIMED_OUT, seq_message(str(n)))

    thread = threading.Thread(target=report_all)
    thread.start()
    outcome = await asyncio.wait_for(waiting, 5)
    thread.join()
    assert (outcome.delivered, outcome.failed) == (99, 1)


class FakeSession:
    """A producer session that takes every message and reports each one, failing those at
    the given positions (counted over the session's life), on the next loop iteration."""

    generation = 1
    fatal = None

    def __init__(self, loop: asyncio.AbstractEventLoop, fail_at: set[int]) -> None:
        self.loop = loop
        self.fail_at = fail_at
        self.produced = 0

    def send(self, topic: str, messages: Sequence[Message], pending: PendingBatch) -> bool:
        for _, _, headers in messages[pending.sent :]:
            error = TIMED_OUT if self.produced in self.fail_at else None
            self.loop.call_soon(pending.on_delivery, error, ReportedMessage(headers))
            self.produced += 1
            pending.sent += 1
        return True


def records(first: int, count: int) -> list[ChangeRecord]:
    return [
        from_stream("INSERT", {"pk": f"k{n}"}, {"pk": f"k{n}", "n": n}, seq=str(n))
        for n in range(first, first + count)
    ]


async def test_one_failed_delivery_fails_the_batch_and_the_retry_succeeds() -> None:
    factory = KafkaProcessorFactory("orders", bootstrap_servers="127.0.0.1:1", topic="orders")
    session = FakeSession(asyncio.get_running_loop(), fail_at={7})
    factory._session = session  # type: ignore[assignment]  # the fake stands in for librdkafka
    processor = factory.create(SHARD)
    batch = Batch(SHARD, records(1, 10))

    with pytest.raises(KafkaDeliveryError) as raised:
        await processor.process(batch)
    assert raised.value.sequence_numbers == ("8",)
    assert "1 of 10 messages" in str(raised.value)
    assert (factory.stats.delivered, factory.stats.failed) == (9, 1)

    await processor.process(batch)  # the runtime's retry: every message acknowledged now
    assert (factory.stats.delivered, factory.stats.failed) == (19, 1)
    assert session.produced == 20
