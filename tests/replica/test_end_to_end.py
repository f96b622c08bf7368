"""The whole path: writes to ``bridge local`` -> a worker with the Kafka processor -> the topic
-> ``bridge replica`` -> SQLite, which ends equal to the table, item by item. Also with the
replica process killed (SIGKILL) mid-stream and restarted: nothing lost, and at every moment
the file's rows are exactly the effect of the messages up to its stored offsets."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Mapping
from pathlib import Path
from typing import Any

import orjson
import pytest

from bridge.config import BridgeConfig
from bridge.local.endpoint import LocalEndpoint
from bridge.local.processes import KafkaBroker
from bridge.replica import stored_offsets
from bridge.worker.app import open_runtime
from tests.kafka.running import dynamodb, kafka_config
from tests.kafka.topic_reader import ReadMessage, TopicReader, create_topic
from tests.kafka.workload import Workload, create_table, write_all
from tests.replica.support import (
    following,
    replica_config,
    replica_rows,
    source_items,
    write_yaml,
)

KEYS = ("pk", "sk")


async def eventually(condition: Callable[[], object], within: float, what: str) -> None:
    """Poll (off the loop: conditions read SQLite and scan moto) until true or the deadline."""
    deadline = time.monotonic() + within
    while not await asyncio.to_thread(condition):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {within}s waiting for {what}")
        await asyncio.sleep(0.2)


@contextlib.asynccontextmanager
async def running_worker(config: BridgeConfig) -> AsyncIterator[None]:
    async with open_runtime(config) as runtime:
        worker = asyncio.create_task(runtime.worker.run(runtime.stream_arn), name="worker")
        try:
            yield
        finally:
            runtime.worker.request_stop()
            await asyncio.wait_for(worker, 60)


def setup(
    make_local_endpoint: Callable[..., LocalEndpoint], broker: KafkaBroker
) -> tuple[Any, str, BridgeConfig]:
    local = make_local_endpoint(rotate_records=300)
    ddb = dynamodb(local.endpoint_url)
    table = create_table(ddb, prefix="replica")
    create_topic(broker.bootstrap_servers, partitions=3, name=table)
    config = kafka_config(local.endpoint_url, table, broker, options={"tombstones": True})
    return ddb, table, config


@pytest.mark.parametrize(
    ("writes", "keys"),
    [
        pytest.param(300, 40, id="300"),
        pytest.param(6_000, 400, id="6k", marks=pytest.mark.slow),
    ],
)
async def test_the_replica_equals_the_table_after_catch_up(
    make_local_endpoint: Callable[..., LocalEndpoint],
    kafka_broker: KafkaBroker,
    tmp_path: Path,
    writes: int,
    keys: int,
) -> None:
    ddb, table, worker_config = setup(make_local_endpoint, kafka_broker)
    workload = Workload(writes, keys)
    assert {c.event for c in workload.changes} == {"INSERT", "MODIFY", "REMOVE"}
    path = tmp_path / "replica.db"
    config = replica_config(path, kafka_broker.bootstrap_servers, table)

    started = time.monotonic()
    async with running_worker(worker_config), following(config) as follower:
        await asyncio.to_thread(write_all, ddb, table, workload)
        expected = await asyncio.to_thread(source_items, ddb, table, KEYS)
        await eventually(lambda: replica_rows(path, table) == expected, 120, "convergence")
        await eventually(lambda: follower.verdict().ready, 30, "ready")
    print(
        f"\n{writes} writes, {len(expected)} items: equal after {time.monotonic() - started:.1f}s"
    )
    assert expected, "the workload left items in the table"


def expected_from_topic(messages: list[ReadMessage], upto: Mapping[int, int]) -> dict[Any, Any]:
    """What the messages up to the stored offsets make, by the replica's documented rules."""
    rows: dict[Any, tuple[Any, int]] = {}
    for message in sorted(messages, key=lambda m: (m.partition, m.offset)):
        if message.offset > upto.get(message.partition, -1):
            continue
        key_values = orjson.loads(message.key or b"{}")
        key = tuple(key_values[k] for k in KEYS)
        seq = int(message.headers["bridge-seq"])
        held = rows.get(key)
        if message.value is not None and message.envelope["event"] != "REMOVE":
            if held is None or seq > held[1]:
                rows[key] = (message.envelope["new"], seq)
        elif held is not None and seq > held[1]:
            del rows[key]
    return {key: item for key, (item, _) in rows.items()}


def read_through(broker: KafkaBroker, topic: str, upto: Mapping[int, int]) -> list[ReadMessage]:
    """The topic's messages, at least up to these offsets."""

    def through(messages: list[ReadMessage]) -> bool:
        reached: dict[int, int] = {}
        for m in messages:
            reached[m.partition] = max(reached.get(m.partition, -1), m.offset)
        return all(reached.get(p, -1) >= o for p, o in upto.items())

    with TopicReader(broker.bootstrap_servers, topic) as reader:
        return reader.read_until(through, 60)


@pytest.mark.slow
async def test_sigkill_mid_stream_then_restart_loses_nothing(
    make_local_endpoint: Callable[..., LocalEndpoint],
    kafka_broker: KafkaBroker,
    tmp_path: Path,
) -> None:
    ddb, table, worker_config = setup(make_local_endpoint, kafka_broker)
    workload = Workload(4_000, 300, seed=5)
    path = tmp_path / "replica.db"
    config = write_yaml(
        tmp_path / "replica.yaml",
        replica_config(
            path,
            kafka_broker.bootstrap_servers,
            table,
            kafka={
                "bootstrap_servers": kafka_broker.bootstrap_servers,
                "topic": table,
                "max_batch": 50,  # many small transactions: the kill lands between or inside one
            },
        ),
    )
    log = tmp_path / "replica.log"
    clean = {k: v for k, v in os.environ.items() if not k.startswith("BRIDGE_")}

    def start() -> subprocess.Popen[bytes]:
        with log.open("ab") as out:
            return subprocess.Popen(
                [sys.executable, "-m", "bridge", "replica", "-c", str(config)],
                stdout=out,
                stderr=out,
                env=clean,
            )

    def applied() -> int:
        try:
            return sum(o + 1 for o in stored_offsets(path, table).values())
        except Exception:  # no file or table yet
            return 0

    kills: list[int] = []
    async with running_worker(worker_config):
        writer = asyncio.create_task(asyncio.to_thread(write_all, ddb, table, workload))
        process = start()
        try:
            for target in (300, 1_500):  # two kills while the writes flow
                await eventually(lambda t=target: applied() >= t, 120, f"{target} applied")  # type: ignore[misc]
                process.send_signal(signal.SIGKILL)
                process.wait(10)
                kills.append(applied())
                # At the moment of the kill, rows and offsets agree exactly.
                upto = stored_offsets(path, table)
                messages = await asyncio.to_thread(read_through, kafka_broker, table, upto)
                assert replica_rows(path, table) == expected_from_topic(messages, upto)
                process = start()
            await writer
            expected = await asyncio.to_thread(source_items, ddb, table, KEYS)
            await eventually(lambda: replica_rows(path, table) == expected, 120, "convergence")
            removes = sum(c.event == "REMOVE" for c in workload.changes)
            # every message applied exactly once in effect: envelopes plus tombstones
            await eventually(lambda: applied() == len(workload.changes) + removes, 30, "offsets")
            process.send_signal(signal.SIGTERM)
            assert process.wait(30) == 0
        finally:
            if process.poll() is None:
                process.kill()
    print(f"\nkilled at {kills} messages applied; {len(expected)} items equal after restart")
