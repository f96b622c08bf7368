"""A new application with ``source.start: bootstrap`` on a table older than its stream: the
table's snapshot reaches the topic first, then the stream, so that a reader of the topic alone
rebuilds the table exactly.

The table is written, its stream trimmed (so the stream alone no longer holds most items), then
a worker starts while writes go on. The topic is read back and replayed as an edge would:
SNAPSHOT envelopes upsert, changes apply in partition order; the result equals a Scan.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Callable
from typing import Any

import orjson

from bridge.item_json import PORTABLE
from bridge.local.endpoint import LocalEndpoint
from bridge.local.processes import KafkaBroker
from bridge.worker.app import open_runtime
from tests.kafka.running import dynamodb, kafka_config
from tests.kafka.topic_reader import ReadMessage, TopicReader, create_topic
from tests.kafka.workload import Workload, create_table, write_all

PARTITIONS = 3
SEGMENTS = 4


def scan(ddb: Any, table: str) -> dict[bytes, Any]:
    """The table as the topic should rebuild it: message key -> the item, portable JSON."""
    items: dict[bytes, Any] = {}
    for page in ddb.get_paginator("scan").paginate(TableName=table):
        for item in page["Items"]:
            plain = PORTABLE.item(item)
            key = orjson.dumps({"pk": plain["pk"], "sk": plain["sk"]}, option=orjson.OPT_SORT_KEYS)
            items[key] = orjson.loads(orjson.dumps(plain))
    return items


def replay(messages: list[ReadMessage]) -> dict[bytes, Any]:
    """What an edge following the topic holds: each partition in offset order."""
    held: dict[bytes, Any] = {}
    for message in sorted(messages, key=lambda m: (m.partition, m.offset)):
        if message.value is None:
            continue
        envelope = message.envelope
        event = envelope["event"]
        if event == "SNAPSHOT_END":
            continue
        assert message.key is not None
        if event == "REMOVE":
            held.pop(message.key, None)
        else:
            held[message.key] = envelope["new"]
    return held


async def test_a_bootstrap_publishes_the_table_then_the_stream(
    make_local_endpoint: Callable[..., LocalEndpoint], kafka_broker: KafkaBroker
) -> None:
    local = make_local_endpoint(rotate_records=150)
    ddb = dynamodb(local.endpoint_url)
    table = create_table(ddb, prefix="snap")
    create_topic(kafka_broker.bootstrap_servers, partitions=PARTITIONS, name=table)
    before = Workload(600, 400, seed=3)
    write_all(ddb, table, before)
    local.trim(advance="25h")  # the stream forgets every change so far: only a scan sees them
    after = Workload(200, 400, seed=4)
    config = kafka_config(
        local.endpoint_url,
        table,
        kafka_broker,
        source={"start": "bootstrap", "bootstrap": {"segments": SEGMENTS, "page_items": 6}},
    )
    with TopicReader(kafka_broker.bootstrap_servers, table) as reader:
        async with open_runtime(config) as runtime:
            worker = asyncio.create_task(runtime.worker.run(runtime.stream_arn))
            try:
                # The writes go on while the scan is under way: a change of an item not yet
                # scanned must still come after the item's snapshot in its partition.
                await asyncio.to_thread(reader.read_until, lambda ms: worker.done() or any(ms), 60)
                await asyncio.to_thread(write_all, ddb, table, after)
                ends = SEGMENTS * PARTITIONS

                def caught_up(messages: list[ReadMessage]) -> bool:
                    done = sum(m.envelope["event"] == "SNAPSHOT_END" for m in messages if m.value)
                    if worker.done():
                        return True
                    return done >= ends and replay(messages) == scan(ddb, table)

                await asyncio.to_thread(reader.read_until, caught_up, 120)
            finally:
                runtime.worker.request_stop()
                await asyncio.wait_for(worker, 60)
        messages = reader.messages

    assert replay(messages) == scan(ddb, table)
    # In each partition, an item's snapshot comes before any change of it from the stream.
    first_change: dict[bytes, int] = {}
    snapshot_at: dict[bytes, list[int]] = defaultdict(list)
    ends_seen: dict[int, set[int]] = defaultdict(set)
    for message in sorted(messages, key=lambda m: (m.partition, m.offset)):
        if message.value is None or message.key is None:
            continue
        envelope = message.envelope
        if envelope["event"] == "SNAPSHOT_END":
            ends_seen[message.partition].add(envelope["snapshot"]["segment"])
        elif envelope["event"] == "SNAPSHOT":
            snapshot_at[message.key].append(message.offset)
            assert envelope["old"] is None and envelope["seq"] is None
        else:
            first_change.setdefault(message.key, message.offset)
    for key, offsets in snapshot_at.items():
        assert key not in first_change or max(offsets) < first_change[key]
    assert {p: sorted(s) for p, s in ends_seen.items()} == {
        p: list(range(SEGMENTS)) for p in range(PARTITIONS)
    }
    assert len(snapshot_at) >= len(scan(ddb, table)) - len(after.changes)
