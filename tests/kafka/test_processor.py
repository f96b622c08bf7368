"""The Kafka processor against a real broker, read back with a real consumer."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import orjson
import pytest

from bridge.local.processes import KafkaBroker, free_port
from bridge.processors.api import Batch, EndReason, LeaseLostError
from bridge.processors.kafka import (
    KafkaProcessorFactory,
    KafkaStartupError,
    MessageTooLargeError,
)
from bridge.processors.loader import ProcessorLoadError, load_factory
from tests.kafka.changes import SHARD, WHEN_MS, from_stream, order_item
from tests.kafka.topic_reader import TopicReader

TopicMaker = Callable[..., str]


def factory_for(broker: KafkaBroker, topic: str, **options: Any) -> KafkaProcessorFactory:
    factory = load_factory(
        "kafka",
        {"bootstrap_servers": broker.bootstrap_servers, "topic": topic, **options},
        table="orders",
        app="tests",
        worker_id="w1",
    )
    assert isinstance(factory, KafkaProcessorFactory)
    return factory


@pytest.fixture
async def opened() -> AsyncIterator[Callable[[KafkaProcessorFactory], Any]]:
    """``await opened(factory)``: open it now, close it after the test."""
    factories: list[KafkaProcessorFactory] = []

    async def open_(factory: KafkaProcessorFactory) -> KafkaProcessorFactory:
        await factory.open()
        factories.append(factory)
        return factory

    yield open_
    for factory in factories:
        await factory.close()


async def read_back(broker: KafkaBroker, topic: str, count: int) -> list[Any]:
    def read() -> list[Any]:
        with TopicReader(broker.bootstrap_servers, topic) as reader:
            return reader.read_count(count)

    return await asyncio.to_thread(read)


async def test_each_change_is_one_message_with_envelope_key_and_headers(
    kafka_broker: KafkaBroker, make_topic: TopicMaker, opened: Any
) -> None:
    topic = make_topic()
    factory = await opened(factory_for(kafka_broker, topic))
    item = order_item(3)
    keys = {"pk": item["pk"], "sk": item["sk"]}
    changed = {**item, "version": 4}
    batch = Batch(
        SHARD,
        [
            from_stream("INSERT", keys, item, seq="100000000000000000001"),
            from_stream("MODIFY", keys, changed, item, seq="100000000000000000002"),
            from_stream("REMOVE", keys, None, changed, seq="100000000000000000003"),
        ],
    )
    await factory.create(SHARD).process(batch)
    assert factory.stats.delivered == 3

    messages = await read_back(kafka_broker, topic, 3)
    assert len({m.partition for m in messages}) == 1  # one item, one partition
    assert [m.key for m in messages] == [b'{"pk":"order-0003","sk":3}'] * 3
    envelopes = [m.envelope for m in messages]
    assert [e["event"] for e in envelopes] == ["INSERT", "MODIFY", "REMOVE"]
    assert [e["seq"] for e in envelopes] == [r.sequence_number for r in batch.records]
    assert all(e["table"] == "orders" and e["shard"] == SHARD for e in envelopes)
    assert all(e["ts"] == WHEN_MS and e["keys"] == {"pk": "order-0003", "sk": 3} for e in envelopes)
    assert envelopes[0]["old"] is None and envelopes[2]["new"] is None
    assert envelopes[1]["new"]["version"] == 4 and envelopes[1]["old"]["version"] == 3
    assert envelopes[1]["new"]["price"] == "3.25"  # fractions as exact text
    assert envelopes[1]["new"]["big"] == str(2**60 + 3)  # beyond 53 bits: exact text
    assert messages[2].headers == {
        "bridge-event": b"REMOVE",
        "bridge-table": b"orders",
        "bridge-shard": SHARD.encode(),
        "bridge-seq": b"100000000000000000003",
        "bridge-key-types": b'{"pk":"S","sk":"N"}',  # what the portable keys cannot say
    }


async def test_one_item_always_lands_in_one_partition(
    kafka_broker: KafkaBroker, make_topic: TopicMaker, opened: Any
) -> None:
    topic = make_topic(partitions=4)
    factory = await opened(factory_for(kafka_broker, topic))
    records = [
        from_stream("INSERT", {"pk": f"k{n % 10}"}, {"pk": f"k{n % 10}", "n": n}, seq=str(n))
        for n in range(1, 101)
    ]
    await factory.create(SHARD).process(Batch(SHARD, records))

    messages = await read_back(kafka_broker, topic, 100)
    partitions: dict[bytes | None, set[int]] = {}
    order: dict[bytes | None, list[int]] = {}
    for message in messages:
        partitions.setdefault(message.key, set()).add(message.partition)
        order.setdefault(message.key, []).append(message.envelope["new"]["n"])
    assert all(len(p) == 1 for p in partitions.values())
    assert len(set().union(*partitions.values())) > 1  # ten keys spread over partitions
    assert all(ns == sorted(ns) for ns in order.values())


@pytest.mark.parametrize("tombstones", [True, False])
async def test_remove_is_followed_by_a_tombstone_when_asked(
    kafka_broker: KafkaBroker, make_topic: TopicMaker, opened: Any, tombstones: bool
) -> None:
    topic = make_topic(partitions=1)
    factory = await opened(factory_for(kafka_broker, topic, tombstones=tombstones))
    keys = {"pk": "gone"}
    records = [
        from_stream("INSERT", keys, {"pk": "gone", "v": 1}, seq="1"),
        from_stream("REMOVE", keys, None, {"pk": "gone", "v": 1}, seq="2"),
        from_stream("INSERT", keys, {"pk": "gone", "v": 2}, seq="3"),
    ]
    await factory.create(SHARD).process(Batch(SHARD, records))
    # A marker after the batch: once it is read, everything before it was read too.
    await factory.create(SHARD).process(Batch(SHARD, [from_stream("INSERT", keys, keys, seq="4")]))

    messages = await read_back(kafka_broker, topic, 5 if tombstones else 4)
    values = [(m.envelope["seq"] if m.value is not None else None) for m in messages]
    assert values == (["1", "2", None, "3", "4"] if tombstones else ["1", "2", "3", "4"])
    if tombstones:
        assert messages[2].key == messages[1].key == b'{"pk":"gone"}'
        assert messages[2].headers["bridge-event"] == b"REMOVE"


async def test_old_image_is_left_out_when_asked(
    kafka_broker: KafkaBroker, make_topic: TopicMaker, opened: Any
) -> None:
    topic = make_topic(partitions=1)
    factory = await opened(factory_for(kafka_broker, topic, include_old_image=False))
    record = from_stream("MODIFY", {"pk": "a"}, {"pk": "a", "v": 2}, {"pk": "a", "v": 1})
    await factory.create(SHARD).process(Batch(SHARD, [record]))
    [message] = await read_back(kafka_broker, topic, 1)
    assert message.envelope["old"] is None and message.envelope["new"] == {"pk": "a", "v": 2}


async def test_topic_template_names_the_topic_after_the_table(
    kafka_broker: KafkaBroker, opened: Any
) -> None:
    table = f"orders-{uuid.uuid4().hex[:6]}"
    factory = load_factory(
        "kafka",
        {"bootstrap_servers": kafka_broker.bootstrap_servers, "topic": "cdc.{table}.v1"},
        table=table,
    )
    assert isinstance(factory, KafkaProcessorFactory)
    assert factory.topic == f"cdc.{table}.v1"
    await opened(factory)  # the broker creates topics on first use: accepted
    await factory.create(SHARD).process(Batch(SHARD, [from_stream("INSERT", {"pk": "a"})]))
    [message] = await read_back(kafka_broker, factory.topic, 1)
    assert message.envelope["table"] == table


async def test_unreachable_broker_is_a_clear_error_within_seconds() -> None:
    address = f"127.0.0.1:{free_port()}"
    factory = load_factory(
        "kafka", {"bootstrap_servers": address, "startup_timeout": "2s"}, table="orders"
    )
    started = time.monotonic()
    with pytest.raises(KafkaStartupError) as raised:
        await factory.open()
    assert time.monotonic() - started < 5
    assert address in str(raised.value) and "'orders'" in str(raised.value)
    assert isinstance(raised.value, ProcessorLoadError)  # `bridge run` exits 2 with it


async def test_missing_topic_is_a_clear_error_naming_topic_and_broker(
    kafka_broker: KafkaBroker,
) -> None:
    topic = f"absent-{uuid.uuid4().hex[:8]}"
    factory = factory_for(
        kafka_broker, topic, producer={"allow.auto.create.topics": False}, startup_timeout=5
    )
    with pytest.raises(KafkaStartupError) as raised:
        await factory.open()
    message = str(raised.value)
    assert topic in message and kafka_broker.bootstrap_servers in message
    assert "does not exist" in message


@pytest.mark.parametrize(
    ("options", "complaint"),
    [
        ({"topic": "t", "colour": "red"}, "colour"),
        ({"topic": "{table}-{region}"}, "region"),
        ({"topic": "{table"}, "topic"),
        ({"topic": "bad topic!"}, "not a valid Kafka topic name"),
        ({"producer": {"acks": 1}}, "acks must stay all"),
        ({"producer": {"enable.idempotence": False}}, "idempotence must stay true"),
        ({"producer": {"bootstrap.servers": "x:1"}}, "bootstrap.servers is set by bridge"),
        ({"tombstones": "perhaps"}, "tombstones"),
    ],
)
def test_bad_options_are_refused_at_start(options: dict[str, Any], complaint: str) -> None:
    with pytest.raises(ProcessorLoadError, match=r"processor\.kind 'kafka'") as raised:
        load_factory("kafka", {"bootstrap_servers": "127.0.0.1:9", **options}, table="orders")
    assert complaint in str(raised.value)


async def test_unknown_librdkafka_setting_is_refused_at_open() -> None:
    factory = load_factory(
        "kafka",
        {"bootstrap_servers": "127.0.0.1:9", "producer": {"compression.typo": "lz4"}},
        table="orders",
    )
    with pytest.raises(KafkaStartupError, match=r"compression\.typo"):
        await factory.open()


async def test_librdkafka_settings_pass_through(
    kafka_broker: KafkaBroker, make_topic: TopicMaker, opened: Any
) -> None:
    topic = make_topic(partitions=1)
    factory = factory_for(kafka_broker, topic, producer={"compression.type": "lz4"})
    assert factory.producer_config["compression.type"] == "lz4"
    assert factory.producer_config["enable.idempotence"] == "true"
    assert factory.producer_config["acks"] == "all"
    await opened(factory)
    records = [from_stream("INSERT", {"pk": "a"}, order_item(n), seq=str(n)) for n in range(20)]
    await factory.create(SHARD).process(Batch(SHARD, records))
    assert len(await read_back(kafka_broker, topic, 20)) == 20


async def test_a_full_local_queue_waits_instead_of_dropping(
    kafka_broker: KafkaBroker, make_topic: TopicMaker, opened: Any
) -> None:
    topic = make_topic()
    factory = await opened(
        factory_for(kafka_broker, topic, producer={"queue.buffering.max.messages": 10})
    )
    records = [
        from_stream("INSERT", {"pk": f"k{n % 50}"}, {"pk": f"k{n % 50}", "n": n}, seq=str(n))
        for n in range(1, 501)
    ]
    await factory.create(SHARD).process(Batch(SHARD, records))
    assert factory.stats.delivered == 500
    messages = await read_back(kafka_broker, topic, 500)
    assert sorted(m.envelope["new"]["n"] for m in messages) == list(range(1, 501))


async def test_an_oversized_change_fails_its_batch_before_any_of_it_is_sent(
    kafka_broker: KafkaBroker, make_topic: TopicMaker, opened: Any
) -> None:
    topic = make_topic(partitions=1)
    factory = await opened(factory_for(kafka_broker, topic, producer={"message.max.bytes": 20_000}))
    small = from_stream("INSERT", {"pk": "a"}, {"pk": "a"}, seq="1")
    huge = from_stream("INSERT", {"pk": "b"}, {"pk": "b", "blob": b"x" * 50_000}, seq="2")
    after = from_stream("INSERT", {"pk": "c"}, {"pk": "c"}, seq="3")
    processor = factory.create(SHARD)
    with pytest.raises(MessageTooLargeError) as raised:
        await processor.process(Batch(SHARD, [small, huge, after]))
    assert raised.value.sequence_numbers == ("2",)
    assert "message.max.bytes (20000)" in str(raised.value) and topic in str(raised.value)
    assert raised.value.retriable is False
    assert factory.stats.delivered == 0  # so retrying the batch repeats nothing
    # The runtime replays the batch record by record: the others go through.
    await processor.process(Batch(SHARD, [small]))
    with pytest.raises(MessageTooLargeError):
        await processor.process(Batch(SHARD, [huge]))
    await processor.process(Batch(SHARD, [after]))
    messages = await read_back(kafka_broker, topic, 2)
    assert [m.envelope["seq"] for m in messages] == ["1", "3"]


async def test_a_change_librdkafka_refuses_is_reported_the_same_way(
    kafka_broker: KafkaBroker, make_topic: TopicMaker, opened: Any
) -> None:
    topic = make_topic(partitions=1)
    factory = await opened(factory_for(kafka_broker, topic, producer={"message.max.bytes": 20_000}))
    factory.max_message_bytes = 10**9  # let the message past bridge's own check
    small = from_stream("INSERT", {"pk": "a"}, {"pk": "a"}, seq="1")
    huge = from_stream("INSERT", {"pk": "b"}, {"pk": "b", "blob": b"x" * 50_000}, seq="2")
    with pytest.raises(MessageTooLargeError) as raised:
        await factory.create(SHARD).process(Batch(SHARD, [small, huge]))
    assert raised.value.sequence_numbers == ("2",)
    assert "Message size too large" in str(raised.value)
    # What was queued before the refusal was delivered before process() raised.
    assert factory.stats.delivered == 1


async def test_after_the_lease_is_lost_nothing_more_is_sent(
    kafka_broker: KafkaBroker, make_topic: TopicMaker, opened: Any
) -> None:
    topic = make_topic(partitions=1)
    factory = await opened(factory_for(kafka_broker, topic))
    processor = factory.create(SHARD)
    await processor.process(Batch(SHARD, [from_stream("INSERT", {"pk": "a"}, seq="1")]))
    await processor.end(EndReason.LEASE_LOST)
    with pytest.raises(LeaseLostError):
        await processor.process(Batch(SHARD, [from_stream("INSERT", {"pk": "a"}, seq="2")]))
    assert factory.stats.delivered == 1
    # Another shard of the same worker carries on with the shared producer.
    other = factory.create("shardId-other")
    await other.process(Batch("shardId-other", [from_stream("INSERT", {"pk": "z"}, seq="3")]))
    messages = await read_back(kafka_broker, topic, 2)
    assert [m.envelope["seq"] for m in messages] == ["1", "3"]


async def test_shards_share_one_producer_and_run_concurrently(
    kafka_broker: KafkaBroker, make_topic: TopicMaker, opened: Any
) -> None:
    topic = make_topic()
    factory = await opened(factory_for(kafka_broker, topic))
    shards = [f"shardId-{n}" for n in range(4)]
    processors = [factory.create(shard) for shard in shards]

    async def run(index: int) -> None:
        shard = shards[index]
        for start in range(0, 200, 50):
            records = [
                from_stream(
                    "INSERT",
                    {"pk": f"{shard}/{n}"},
                    {"pk": f"{shard}/{n}"},
                    seq=str(n),
                    shard=shard,
                )
                for n in range(start, start + 50)
            ]
            await processors[index].process(Batch(shard, records))

    await asyncio.gather(*(run(i) for i in range(4)))
    assert factory.stats.delivered == 800 and factory.stats.sessions == 1
    messages = await read_back(kafka_broker, topic, 800)
    by_shard: dict[str, int] = {}
    for message in messages:
        shard = orjson.loads(message.value or b"{}")["shard"]
        by_shard[shard] = by_shard.get(shard, 0) + 1
    assert by_shard == dict.fromkeys(shards, 200)
