"""A broker frozen with SIGSTOP: process() waits for acknowledgements, fails, and recovers.

Each test freezes a broker of its own (``own_broker``), never the session's.
"""

from __future__ import annotations

import asyncio
import signal

import pytest

from bridge.local.processes import KafkaBroker
from bridge.processors.api import Batch, Processor
from bridge.processors.kafka import KafkaDeliveryError, KafkaProcessorFactory
from bridge.records import ChangeRecord
from tests.kafka.changes import SHARD, from_stream
from tests.kafka.topic_reader import TopicReader, create_topic

FREEZE_SECONDS = 1.5  # well above what a healthy acknowledgement takes here (milliseconds)


def records(first: int, count: int) -> list[ChangeRecord]:
    return [
        from_stream("INSERT", {"pk": f"k{n % 5}"}, {"pk": f"k{n % 5}", "n": n}, seq=str(n))
        for n in range(first, first + count)
    ]


async def deliver_eventually(processor: Processor, batch: Batch) -> None:
    """Process the batch, trying again with backoff while Kafka times it out."""
    for attempt in range(8):
        try:
            await processor.process(batch)
            return
        except KafkaDeliveryError:
            # Some brokers (tansu among them) fence the producer after a timeout: the
            # factory then starts a new producer session for the next attempt.
            await asyncio.sleep(0.1 * 2**attempt)
    pytest.fail("the batch was never delivered")


def read_seqs(broker: KafkaBroker, topic: str, wanted: set[str]) -> list[str]:
    with TopicReader(broker.bootstrap_servers, topic) as reader:
        reader.read_until(
            lambda messages: wanted <= {m.envelope["seq"] for m in messages}, within=30
        )
        return [m.envelope["seq"] for m in reader.messages]


async def test_process_returns_only_once_kafka_acknowledged(own_broker: KafkaBroker) -> None:
    topic = create_topic(own_broker.bootstrap_servers, partitions=1)
    factory = KafkaProcessorFactory(
        "orders", bootstrap_servers=own_broker.bootstrap_servers, topic=topic
    )
    await factory.open()
    try:
        processor = factory.create(SHARD)
        await processor.process(Batch(SHARD, records(1, 10)))

        own_broker.signal(signal.SIGSTOP)
        try:
            batch = asyncio.create_task(processor.process(Batch(SHARD, records(11, 10))))
            done, _ = await asyncio.wait({batch}, timeout=FREEZE_SECONDS)
            assert not done, "process() returned while the broker could not acknowledge"
        finally:
            own_broker.signal(signal.SIGCONT)
        await asyncio.wait_for(batch, 30)
        assert factory.stats.delivered == 20 and factory.stats.failed == 0
    finally:
        await factory.close()
    seqs = await asyncio.to_thread(read_seqs, own_broker, topic, {str(n) for n in range(1, 21)})
    assert seqs == [str(n) for n in range(1, 21)]


async def test_a_delivery_that_times_out_raises_and_a_retry_delivers(
    own_broker: KafkaBroker,
) -> None:
    topic = create_topic(own_broker.bootstrap_servers, partitions=1)
    factory = KafkaProcessorFactory(
        "orders",
        bootstrap_servers=own_broker.bootstrap_servers,
        topic=topic,
        producer={"request.timeout.ms": 300, "message.timeout.ms": 600},
    )
    await factory.open()
    try:
        processor = factory.create(SHARD)
        # A healthy broker first: on a loaded machine the producer's first delivery (its id,
        # the new topic's leader) can itself outlast the short message timeout set here, so
        # wait until one batch went through before freezing anything.
        await deliver_eventually(processor, Batch(SHARD, records(1, 10)))
        batch = Batch(SHARD, records(11, 10))

        own_broker.signal(signal.SIGSTOP)
        try:
            with pytest.raises(KafkaDeliveryError) as raised:
                await asyncio.wait_for(processor.process(batch), 30)
        finally:
            own_broker.signal(signal.SIGCONT)
        assert raised.value.retriable
        assert topic in str(raised.value) and own_broker.bootstrap_servers in str(raised.value)
        assert "checkpoint stays before this batch" in str(raised.value)

        # What the runtime does next: try the same batch again, with backoff.
        await deliver_eventually(processor, batch)
    finally:
        await factory.close()

    wanted = [str(n) for n in range(1, 21)]
    seqs = await asyncio.to_thread(read_seqs, own_broker, topic, set(wanted))
    # At least once, in order: the changes appear in order, maybe with earlier partial copies.
    assert list(dict.fromkeys(seqs)) == wanted, seqs
    assert seqs[-10:] == wanted[10:], seqs
    print(f"\nproducer sessions: {factory.stats.sessions}, failed: {factory.stats.failed}")
