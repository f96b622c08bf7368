"""An edge fed by a topic that starts with the table's snapshot: the table written, its stream
trimmed (only a scan still sees most items), a worker with ``source.start: bootstrap`` and
``types: true`` publishing while writes go on, then ``bridge replica`` following the topic.
The edge ends equal to a Scan of the table, each item the same JSON as the SQLite processor
would store (exact numbers), and it is not ready before the snapshot is whole."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from bridge.item_json import EXACT
from bridge.local.endpoint import LocalEndpoint
from bridge.local.processes import KafkaBroker
from bridge.processors.sqlite.keys import number_value
from tests.kafka.running import dynamodb, kafka_config
from tests.kafka.topic_reader import create_topic
from tests.kafka.workload import Workload, create_table, write_all
from tests.replica.support import following, replica_config, replica_rows
from tests.replica.test_end_to_end import eventually, running_worker

SEGMENTS = 3


def exact_scan(ddb: Any, table: str) -> dict[tuple[Any, ...], Any]:
    """The table as the SQLite processor would hold it: key tuple -> item (exact JSON)."""
    items: dict[tuple[Any, ...], Any] = {}
    for page in ddb.get_paginator("scan").paginate(TableName=table, ConsistentRead=True):
        for item in page["Items"]:
            key = (item["pk"]["S"], number_value(item["sk"]["N"]))
            items[key] = json.loads(EXACT.item_json(item))
    return items


@pytest.mark.slow
async def test_an_edge_fed_by_a_bootstrapped_topic_equals_the_table(
    make_local_endpoint: Callable[..., LocalEndpoint], kafka_broker: KafkaBroker, tmp_path: Path
) -> None:
    local = make_local_endpoint(rotate_records=150)
    ddb = dynamodb(local.endpoint_url)
    table = create_table(ddb, prefix="edge")
    create_topic(kafka_broker.bootstrap_servers, partitions=3, name=table)
    await asyncio.to_thread(write_all, ddb, table, Workload(900, 600, seed=11))
    local.trim(advance="25h")
    worker_config = kafka_config(
        local.endpoint_url,
        table,
        kafka_broker,
        options={"types": True, "tombstones": True},
        source={"start": "bootstrap", "bootstrap": {"segments": SEGMENTS, "page_items": 5}},
    )
    path = tmp_path / "edge.db"
    config = replica_config(path, kafka_broker.bootstrap_servers, table)

    async with running_worker(worker_config), following(config) as follower:
        await asyncio.to_thread(write_all, ddb, table, Workload(200, 600, seed=12))
        expected = await asyncio.to_thread(exact_scan, ddb, table)

        await eventually(
            lambda: replica_rows(path, table) == expected, 120, "the edge equal to the table"
        )
        await eventually(lambda: follower.verdict().ready, 30, "ready")

    assert len(expected) > 400  # most items are only in the snapshot
    # Every partition showed the end of every segment, kept in the file with the offsets.
    with contextlib.closing(sqlite3.connect(path)) as db:
        ends = db.execute(
            "SELECT partition, count(DISTINCT segment) FROM _bridge_kafka_snapshots "
            "WHERE segment >= 0 GROUP BY partition"
        ).fetchall()
    assert sorted(ends) == [(p, SEGMENTS) for p in range(3)]
