"""The table's snapshot shared by a cluster of ``bridge run`` processes, one of them SIGKILLed
in the middle of its scan segment while writes go on: the other worker resumes that segment
from its last committed page (not from its first), the topic still rebuilds the table, and a
``bridge replica`` started afterwards from the topic equals a Scan of it, each item the same
JSON as the SQLite processor stores (``types: true``).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from bridge.core.positions import SHARD_END
from bridge.core.snapshot_plan import segment_of
from bridge.local.endpoint import LocalEndpoint
from bridge.local.processes import KafkaBroker
from tests.kafka.running import dynamodb
from tests.kafka.test_snapshot_to_kafka import replay, scan
from tests.kafka.topic_reader import ReadMessage, TopicReader, create_topic
from tests.kafka.workload import Workload, create_table, write_all
from tests.replica.support import following, replica_config, replica_rows
from tests.replica.test_bootstrap_topic import exact_scan
from tests.replica.test_end_to_end import eventually
from tests.support.worker_process import WorkerProcess

PARTITIONS = 3
SEGMENTS = 4
PAGE = 3


def cluster_config(path: Path, endpoint: str, table: str, broker: KafkaBroker) -> Path:
    path.write_text(
        yaml.safe_dump(
            {
                "app": f"snap-{uuid.uuid4().hex[:6]}",
                "source": {
                    "table": table,
                    "endpoint_url": endpoint,
                    "start": "bootstrap",
                    "bootstrap": {"segments": SEGMENTS, "page_items": PAGE},
                },
                "coordination": {
                    "lease_duration": "3s",
                    "take_interval": "300ms",
                    "shard_sync_interval": "2s",
                },
                "polling": {"interval": "30ms", "idle_interval": "200ms"},
                "processor": {
                    "kind": "kafka",
                    "options": {"bootstrap_servers": broker.bootstrap_servers, "types": True},
                },
                "metrics": {"port": 0},
            }
        )
    )
    return path


def segment_leases(ddb: Any, lease_table: str) -> dict[str, dict[str, Any]]:
    rows = ddb.scan(TableName=lease_table, ConsistentRead=True)["Items"]
    return {
        row["leaseKey"]["S"]: {
            "owner": row.get("leaseOwner", {}).get("S"),
            "checkpoint": row.get("checkpoint", {}).get("S"),
        }
        for row in rows
        if segment_of(row["leaseKey"]["S"]) is not None
    }


def wait_for(what: str, condition: Callable[[], Any], within: float = 60) -> Any:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        found = condition()
        if found:
            return found
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


@contextlib.contextmanager
def workers(config: Path, logs: Path, names: list[str]) -> Iterator[dict[str, WorkerProcess]]:
    running = {name: WorkerProcess(name, config, logs / f"{name}.log") for name in names}
    try:
        yield running
    finally:
        for worker in running.values():
            with contextlib.suppress(Exception):
                worker.terminate()
        for worker in running.values():
            with contextlib.suppress(Exception):
                worker.wait(30)
            worker.stop_for_teardown()


@pytest.mark.slow
async def test_a_segment_whose_worker_is_killed_resumes_from_its_last_committed_page(
    make_local_endpoint: Callable[..., LocalEndpoint], kafka_broker: KafkaBroker, tmp_path: Path
) -> None:
    local = make_local_endpoint(rotate_records=200)
    ddb = dynamodb(local.endpoint_url)
    table = create_table(ddb, prefix="snapk")
    create_topic(kafka_broker.bootstrap_servers, partitions=PARTITIONS, name=table)
    write_all(ddb, table, Workload(2000, 1600, seed=5))
    local.trim(advance="25h")
    config = cluster_config(tmp_path / "bridge.yaml", local.endpoint_url, table, kafka_broker)
    lease_table = f"{yaml.safe_load(config.read_text())['app']}-leases"

    with (
        TopicReader(kafka_broker.bootstrap_servers, table) as reader,
        workers(config, tmp_path, ["w1", "w2"]) as running,
    ):
        # A segment of w1's, some pages in: its checkpoint is a scan position, and it moved
        # once more since (at least two pages committed: a restart from zero would show).
        def w1_mid_segment() -> tuple[str, str] | None:
            with contextlib.suppress(Exception):
                for key, row in segment_leases(ddb, lease_table).items():
                    checkpoint = row["checkpoint"]
                    if row["owner"] == "w1" and checkpoint and checkpoint.startswith("{"):
                        return key, checkpoint
            return None

        victim, first = await asyncio.to_thread(wait_for, "w1 into a segment", w1_mid_segment)

        def moved_on() -> bool:
            row = segment_leases(ddb, lease_table).get(victim, {})
            return row.get("checkpoint") not in (first, None, SHARD_END)

        await asyncio.to_thread(wait_for, "the segment's checkpoint moving again", moved_on)
        running["w1"].kill()
        killed_at = segment_leases(ddb, lease_table)[victim]["checkpoint"]
        assert killed_at and killed_at.startswith("{"), killed_at
        await asyncio.to_thread(write_all, ddb, table, Workload(300, 1600, seed=6))

        def done(messages: list[ReadMessage]) -> bool:
            running["w2"].ensure_alive()
            ends = sum(m.envelope["event"] == "SNAPSHOT_END" for m in messages if m.value)
            return ends >= SEGMENTS * PARTITIONS and replay(messages) == scan(ddb, table)

        await asyncio.to_thread(reader.read_until, done, 180)
        leases = segment_leases(ddb, lease_table)
        messages = reader.messages

    assert replay(messages) == scan(ddb, table)
    edge = tmp_path / "edge.db"
    async with following(replica_config(edge, kafka_broker.bootstrap_servers, table)) as follower:
        expected = await asyncio.to_thread(exact_scan, ddb, table)
        await eventually(lambda: replica_rows(edge, table) == expected, 60, "the edge")
        await eventually(lambda: follower.verdict().ready, 30, "the edge ready")
    # The victim's segment was finished by w2, and resumed: of its items, only the page in
    # flight at the kill (and not yet checkpointed) may have been published twice.
    assert victim not in leases or leases[victim]["checkpoint"] == SHARD_END
    index = segment_of(victim).index  # type: ignore[union-attr]
    published = Counter(
        m.key
        for m in messages
        if m.value is not None
        and m.envelope["event"] == "SNAPSHOT"
        and m.envelope["snapshot"]["segment"] == index
    )
    twice = sum(count - 1 for count in published.values())
    assert twice <= PAGE, f"{twice} items of segment {index} published again: restarted?"
    assert len(published) > 2 * PAGE
