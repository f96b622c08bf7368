"""The whole path: writes to ``bridge local`` (rotating shards) -> a worker -> a Kafka topic.

The topic is read back with a real consumer and held against the writes themselves: every
change there, each item's changes in write order, every envelope field right.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest

from bridge.config import BridgeConfig
from bridge.local.endpoint import LocalEndpoint
from bridge.local.processes import KafkaBroker
from bridge.worker.app import open_runtime
from tests.kafka.running import dynamodb, kafka_config
from tests.kafka.topic_reader import ReadMessage, TopicReader, create_topic
from tests.kafka.workload import (
    Workload,
    create_table,
    expected_json,
    message_key,
    write_all,
)


async def run_until(
    config: BridgeConfig,
    reader: TopicReader,
    write: Callable[[], None],
    done: Callable[[list[ReadMessage]], bool],
) -> list[ReadMessage]:
    """Run a worker while ``write`` runs, until ``done(what the topic holds)``."""
    async with open_runtime(config) as runtime:
        worker = asyncio.create_task(runtime.worker.run(runtime.stream_arn), name="worker")
        try:
            await asyncio.to_thread(write)
            await asyncio.to_thread(
                reader.read_until, lambda messages: done(messages) or worker.done(), 120
            )
        finally:
            runtime.worker.request_stop()
            await asyncio.wait_for(worker, 60)  # re-raises what stopped the worker
    return reader.messages


@pytest.mark.parametrize(
    ("writes", "keys"),
    [
        pytest.param(1_000, 100, id="1k"),
        pytest.param(10_000, 500, id="10k", marks=pytest.mark.slow),
    ],
)
async def test_every_change_reaches_the_topic_in_order_with_its_envelope(
    make_local_endpoint: Callable[..., LocalEndpoint],
    kafka_broker: KafkaBroker,
    writes: int,
    keys: int,
) -> None:
    local = make_local_endpoint(rotate_records=500)
    ddb = dynamodb(local.endpoint_url)
    table = create_table(ddb)
    # The default topic template is "{table}"; three partitions spread the items.
    create_topic(kafka_broker.bootstrap_servers, partitions=3, name=table)
    workload = Workload(writes, keys)
    removes = sum(change.event == "REMOVE" for change in workload.changes)
    config = kafka_config(local.endpoint_url, table, kafka_broker, options={"tombstones": True})

    started_ms = int(time.time() * 1000)
    with TopicReader(kafka_broker.bootstrap_servers, table) as reader:
        messages = await run_until(
            config,
            reader,
            lambda: write_all(ddb, table, workload),
            lambda messages: len(messages) >= writes + removes,
        )
    finished_ms = int(time.time() * 1000)

    assert len(messages) == writes + removes, Counter(m.key for m in messages).most_common(3)
    by_key: dict[bytes | None, list[ReadMessage]] = {}
    for message in messages:
        by_key.setdefault(message.key, []).append(message)
    expected = workload.by_key()
    assert set(by_key) == {message_key(key) for key in expected}

    shards: set[str] = set()
    for key, changes in expected.items():
        got = by_key[message_key(key)]
        assert len({m.partition for m in got}) == 1  # one item, one partition: its order holds
        want: list[tuple[Any, ...] | None] = []
        for change in changes:
            want.append((change.event, expected_json(change.new), expected_json(change.old)))
            if change.event == "REMOVE":
                want.append(None)  # the tombstone follows its REMOVE
        seen = [
            (m.envelope["event"], m.envelope["new"], m.envelope["old"]) if m.value else None
            for m in got
        ]
        assert seen == want, f"item {key}"

        envelopes = [m for m in got if m.value is not None]
        seqs = [int(m.envelope["seq"]) for m in envelopes]
        assert seqs == sorted(set(seqs)), f"item {key}: sequence numbers out of order"
        for message in envelopes:
            envelope = message.envelope
            assert envelope["table"] == table
            assert envelope["keys"] == {"pk": key[0], "sk": key[1]}
            assert started_ms - 5_000 <= envelope["ts"] <= finished_ms + 5_000
            assert message.headers == {
                "bridge-event": envelope["event"].encode(),
                "bridge-table": table.encode(),
                "bridge-shard": envelope["shard"].encode(),
                "bridge-seq": envelope["seq"].encode(),
                "bridge-key-types": b'{"pk":"S","sk":"N"}',
            }
            shards.add(envelope["shard"])
    assert all(shard.startswith("shardId-") for shard in shards)
    assert len(shards) > writes // 500  # the worker followed the shards through rotations


async def test_an_item_too_large_for_kafka_goes_to_the_dead_letter_file(
    make_local_endpoint: Callable[..., LocalEndpoint],
    kafka_broker: KafkaBroker,
    tmp_path: Path,
) -> None:
    local = make_local_endpoint()
    ddb = dynamodb(local.endpoint_url)
    table = create_table(ddb)
    create_topic(kafka_broker.bootstrap_servers, partitions=1, name=table)
    dead_letters = tmp_path / "dead.jsonl"
    config = kafka_config(
        local.endpoint_url,
        table,
        kafka_broker,
        options={"producer": {"message.max.bytes": 100_000}},
        processor={"on_error": "dead_letter", "dead_letter_path": str(dead_letters)},
    )

    def write() -> None:
        for n in range(6):
            item: dict[str, Any] = {
                "pk": {"S": "big" if n == 3 else f"small-{n}"},
                "sk": {"N": "0"},
            }
            if n == 3:
                item["blob"] = {"B": b"\x01" * 150_000}  # a DynamoDB item well under 400 KB
            ddb.put_item(TableName=table, Item=item)

    smalls = {f"small-{n}" for n in (0, 1, 2, 4, 5)}

    def all_in(messages: list[ReadMessage]) -> bool:
        # The dead letter is written before the changes after it in its shard go through.
        read = {m.envelope["keys"]["pk"] for m in messages}
        return read == smalls and dead_letters.exists()

    with TopicReader(kafka_broker.bootstrap_servers, table) as reader:
        messages = await run_until(config, reader, write, all_in)
    # The batch holding the big item failed before any of it was sent: no repeats.
    assert sorted(m.envelope["keys"]["pk"] for m in messages) == sorted(smalls)
    [line] = dead_letters.read_bytes().splitlines()
    dead = orjson.loads(line)
    assert dead["record"]["dynamodb"]["Keys"]["pk"] == {"S": "big"}
    assert dead["error"].startswith("MessageTooLargeError: ")
    assert "message.max.bytes" in dead["error"] and table in dead["error"]
