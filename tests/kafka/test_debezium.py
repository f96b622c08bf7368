"""``format: debezium``: the value is Debezium's change event, so a consumer that knows only
Debezium's field names (``op``, ``before``, ``after``) rebuilds the table from the topic, its
snapshot included; and ``bridge replica`` reads it as it reads bridge's own format."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import orjson
import pytest

from bridge.local.endpoint import LocalEndpoint
from bridge.local.processes import KafkaBroker
from bridge.processors.api import SnapshotBatch
from bridge.processors.kafka import EnvelopeEncoder
from bridge.processors.kafka._snapshot import SnapshotEncoder
from bridge.records import ChangeRecord, encode_item
from bridge.replica import ItemFilter
from bridge.replica._messages import Fetched, change_of
from bridge.worker.app import open_runtime
from tests.kafka.changes import from_stream
from tests.kafka.running import dynamodb, kafka_config
from tests.kafka.test_snapshot_to_kafka import scan
from tests.kafka.topic_reader import ReadMessage, TopicReader, create_topic
from tests.kafka.workload import Workload, create_table, write_all

KEEP_ALL = ItemFilter()


def debezium_replay(messages: list[ReadMessage]) -> dict[bytes, Any]:
    """A consumer written against Debezium's documentation alone: upsert ``after`` for
    ``c``, ``u`` and ``r``, delete for ``d`` and tombstones, ignore any other op."""
    held: dict[bytes, Any] = {}
    for message in sorted(messages, key=lambda m: (m.partition, m.offset)):
        assert message.key is not None
        if message.value is None:
            held.pop(message.key, None)
            continue
        event = orjson.loads(message.value)
        if event["op"] in ("c", "u", "r"):
            held[message.key] = event["after"]
        elif event["op"] == "d":
            held.pop(message.key, None)
    return held


def fetched(messages: list[tuple[bytes, bytes | None, list[tuple[str, bytes]]]]) -> list[Fetched]:
    return [Fetched(0, n, k, v, dict(h)) for n, (k, v, h) in enumerate(messages)]


def both_formats(record: ChangeRecord) -> tuple[list[Fetched], list[Fetched]]:
    def encode(debezium: bool) -> list[Fetched]:
        encoder = EnvelopeEncoder(
            "orders", include_old_image=True, tombstones=True, debezium=debezium
        )
        return fetched(list(encoder.messages(record)))

    return encode(False), encode(True)


@pytest.mark.parametrize(
    ("event", "new", "old"),
    [
        ("INSERT", {"pk": "a", "sk": 1, "v": 1}, None),
        ("MODIFY", {"pk": "a", "sk": 1, "v": 2}, {"pk": "a", "sk": 1, "v": 1}),
        ("REMOVE", None, {"pk": "a", "sk": 1, "v": 2}),
    ],
)
def test_a_change_is_debeziums_event_and_the_replica_reads_it_as_bridges(
    event: str, new: dict[str, Any] | None, old: dict[str, Any] | None
) -> None:
    record = from_stream(event, {"pk": "a", "sk": 1}, new, old, seq="1234")  # type: ignore[arg-type]
    plain, debezium = both_formats(record)
    value = orjson.loads(debezium[0].value or b"")
    assert value["op"] == {"INSERT": "c", "MODIFY": "u", "REMOVE": "d"}[event]
    assert (value["before"], value["after"], value["transaction"]) == (old, new, None)
    source = value["source"]
    assert (source["table"], source["seq"], source["shard"]) == ("orders", "1234", record.shard_id)
    assert source["snapshot"] == "false" and source["connector"] == "dynamodb"
    assert isinstance(source["ts_ms"], int) and isinstance(value["ts_ms"], int)
    assert [(m.key, m.headers) for m in debezium] == [(m.key, m.headers) for m in plain]
    assert [change_of(m, KEEP_ALL) for m in debezium] == [change_of(m, KEEP_ALL) for m in plain]


def test_a_snapshot_read_is_op_r_and_a_segment_end_op_m() -> None:
    page = SnapshotBatch(
        "bridge-snapshot-5-1-of-2",
        1,
        2,
        5,
        ["pk", "sk"],
        [encode_item({"pk": "a", "sk": 1})],
        9,
        True,
    )

    def encode(debezium: bool) -> list[Fetched]:
        encoder = SnapshotEncoder("orders", debezium=debezium)
        return fetched([*encoder.items(page), encoder.segment_end(page)])

    plain, debezium = encode(False), encode(True)
    item, end = (orjson.loads(m.value or b"") for m in debezium)
    assert (item["op"], item["before"], item["after"]) == ("r", None, {"pk": "a", "sk": 1})
    assert item["source"]["snapshot"] == "true"
    assert (end["op"], end["message"]["prefix"]) == ("m", "bridge.snapshot_end")
    assert [change_of(m, KEEP_ALL) for m in debezium] == [change_of(m, KEEP_ALL) for m in plain]
    other = Fetched(0, 9, b"x", b'{"op": "m", "source": {}, "message": {"prefix": "app"}}')
    assert change_of(other, KEEP_ALL) is None  # a message of someone else's: not a change


@pytest.mark.slow
async def test_a_debezium_consumer_rebuilds_the_table_from_a_bootstrapped_topic(
    make_local_endpoint: Callable[..., LocalEndpoint], kafka_broker: KafkaBroker
) -> None:
    local = make_local_endpoint(rotate_records=150)
    ddb = dynamodb(local.endpoint_url)
    table = create_table(ddb, prefix="dbz")
    create_topic(kafka_broker.bootstrap_servers, partitions=3, name=table)
    await asyncio.to_thread(write_all, ddb, table, Workload(600, 400, seed=21))
    local.trim(advance="25h")
    config = kafka_config(
        local.endpoint_url,
        table,
        kafka_broker,
        options={"format": "debezium", "tombstones": True},
        source={"start": "bootstrap", "bootstrap": {"segments": 2, "page_items": 10}},
    )
    with TopicReader(kafka_broker.bootstrap_servers, table) as reader:
        async with open_runtime(config) as runtime:
            worker = asyncio.create_task(runtime.worker.run(runtime.stream_arn))
            try:
                await asyncio.to_thread(write_all, ddb, table, Workload(150, 400, seed=22))
                expected = await asyncio.to_thread(scan, ddb, table)

                def rebuilt(messages: list[ReadMessage]) -> bool:
                    ops = {orjson.loads(m.value)["op"] for m in messages if m.value is not None}
                    streamed = {"c", "u", "d"} <= ops  # the stream's changes follow the scan
                    return worker.done() or (streamed and debezium_replay(messages) == expected)

                await asyncio.to_thread(reader.read_until, rebuilt, 120)
            finally:
                runtime.worker.request_stop()
                await asyncio.wait_for(worker, 60)
        messages = reader.messages
    assert debezium_replay(messages) == expected
    ops = {orjson.loads(m.value)["op"] for m in messages if m.value is not None}
    assert {"r", "m", "c", "u", "d"} <= ops
