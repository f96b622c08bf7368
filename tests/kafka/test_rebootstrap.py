"""``source.on_trimmed: rebootstrap``: records trimmed before they were read leave holes in
what was published (changes and deletions the stream no longer has). The worker asks for a
fresh snapshot of the table; the shards wait for it; the edge that follows the topic, and the
SQLite processor's file, equal the table again, deleted items gone, without an operator.

Each test: a worker publishes a first round of writes; it stops; a second round (updates and
deletes) is written and the stream trimmed past it; a third round follows; the worker starts
again and finds its checkpoints trimmed."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from bridge.config import BridgeConfig
from bridge.local.endpoint import LocalEndpoint
from bridge.local.processes import KafkaBroker
from tests.kafka.running import dynamodb, kafka_config
from tests.kafka.topic_reader import create_topic
from tests.kafka.workload import Workload, create_table, write_all
from tests.replica.support import following, replica_config, replica_rows
from tests.replica.test_bootstrap_topic import exact_scan
from tests.replica.test_end_to_end import eventually, running_worker


def lost_rounds(local: LocalEndpoint, ddb: Any, table: str) -> dict[tuple[Any, ...], Any]:
    """While no worker runs: updates and deletes the stream then forgets, and a few writes
    after; returns the table as it ends."""
    before = exact_scan(ddb, table)
    write_all(ddb, table, Workload(400, 120, seed=42))
    local.trim(advance="25h")
    write_all(ddb, table, Workload(40, 120, seed=43))
    after = exact_scan(ddb, table)
    assert set(before) - set(after), "some items were deleted while records were lost"
    return after


def fresh_config(config: BridgeConfig) -> BridgeConfig:
    return config.model_copy(
        update={
            "source": config.source.model_copy(
                update={
                    "on_trimmed": "rebootstrap",
                    "bootstrap": config.source.bootstrap.model_copy(
                        update={"segments": 2, "page_items": 25}
                    ),
                }
            )
        }
    )


@pytest.mark.slow
async def test_the_edge_equals_the_table_again_after_records_were_lost(
    make_local_endpoint: Callable[..., LocalEndpoint], kafka_broker: KafkaBroker, tmp_path: Path
) -> None:
    local = make_local_endpoint(rotate_records=150)
    ddb = dynamodb(local.endpoint_url)
    table = create_table(ddb, prefix="reboot")
    create_topic(kafka_broker.bootstrap_servers, partitions=3, name=table)
    config = fresh_config(
        kafka_config(
            local.endpoint_url, table, kafka_broker, options={"types": True, "tombstones": True}
        )
    )
    path = tmp_path / "edge.db"
    edge = replica_config(path, kafka_broker.bootstrap_servers, table)

    async with following(edge) as follower:
        async with running_worker(config):
            await asyncio.to_thread(write_all, ddb, table, Workload(300, 120, seed=41))
            first = await asyncio.to_thread(exact_scan, ddb, table)
            await eventually(lambda: replica_rows(path, table) == first, 60, "the first round")
        expected = await asyncio.to_thread(lost_rounds, local, ddb, table)
        assert replica_rows(path, table) != expected
        async with running_worker(config):
            await eventually(
                lambda: replica_rows(path, table) == expected, 120, "the edge equal again"
            )
            await eventually(lambda: follower.verdict().ready, 30, "ready")
    with contextlib.closing(sqlite3.connect(path)) as db:
        cutoffs = db.execute("SELECT DISTINCT cutoff_ms FROM _bridge_kafka_snapshots").fetchall()
    assert len(cutoffs) == 1  # one fresh snapshot, not one per shard that found the gap


@pytest.mark.slow
async def test_the_sqlite_processor_equals_the_table_again_after_records_were_lost(
    make_local_endpoint: Callable[..., LocalEndpoint], kafka_broker: KafkaBroker, tmp_path: Path
) -> None:
    local = make_local_endpoint(rotate_records=150)
    ddb = dynamodb(local.endpoint_url)
    table = create_table(ddb, prefix="rebootsql")
    path = tmp_path / "replica.db"
    config = fresh_config(
        kafka_config(
            local.endpoint_url,
            table,
            kafka_broker,
            processor={"kind": "sqlite", "options": {"path": str(path)}},
        )
    )

    async with running_worker(config):
        await asyncio.to_thread(write_all, ddb, table, Workload(300, 120, seed=41))
        first = await asyncio.to_thread(exact_scan, ddb, table)
        await eventually(lambda: replica_rows(path, table) == first, 60, "the first round")
    expected = await asyncio.to_thread(lost_rounds, local, ddb, table)
    async with running_worker(config):
        await eventually(lambda: replica_rows(path, table) == expected, 120, "the file equal again")
