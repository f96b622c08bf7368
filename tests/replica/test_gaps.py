"""Offsets deleted from the topic before the replica applied them (retention): found at a
restart from a local file and while running, never skipped; ``on_gap`` decides."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from bridge.replica import ReplicaFollower, ReplicaGapError
from bridge.snapshots import MemoryObjectStore
from tests.replica.memory_topic import MemoryTopic
from tests.replica.support import await_for, replica_config, replica_rows, status_of

SNAPSHOTS = {"bucket": "snapshots", "prefix": "t/"}


def config(path: Path, **extra: Any) -> Any:
    return replica_config(path, "memory:1", "t", stall_after="1s", **extra)


def fill(topic: MemoryTopic, partition: int, upto: int) -> None:
    for n in range(len(topic.log[partition]), upto):
        topic.append(partition, f"p{partition}-{n}", 1, 100 * partition + n + 1)


async def follow_until(follower: ReplicaFollower, condition: Any, what: str) -> None:
    task = asyncio.create_task(follower.run())
    try:
        await await_for(lambda: condition() or task.done(), 10, what)
        assert not task.done(), "the follower stopped early"
    finally:
        follower.request_stop()
        await asyncio.wait_for(task, 10)


async def test_a_restart_after_its_offsets_were_deleted_fails_naming_the_gap(
    tmp_path: Path,
) -> None:
    topic = MemoryTopic(partitions=2)
    fill(topic, 0, 3)
    fill(topic, 1, 2)
    path = tmp_path / "r.db"
    first = ReplicaFollower(config(path), consumer=topic)
    await follow_until(first, lambda: len(replica_rows(path, "t")) == 5, "five items")

    fill(topic, 0, 12)
    topic.trim(0, 8)  # retention deleted offsets 0..7; the file stopped after 2
    again = MemoryTopic(partitions=2)
    again.log, again.low = topic.log, topic.low
    follower = ReplicaFollower(config(path), consumer=again)
    with pytest.raises(ReplicaGapError) as failure:
        await asyncio.wait_for(follower.run(), 10)

    gap = "partition 0: offsets 3..7 (5 messages) are no longer in the topic (it begins at 8)"
    assert gap in str(failure.value) and "on_gap: fail" in str(failure.value)
    assert follower.metrics.value("bridge_replica_gaps_total") == 1
    assert status_of(path) == (False, f"gap: {gap}")
    assert len(replica_rows(path, "t")) == 5  # nothing after the gap was applied


async def test_a_trim_while_running_is_detected_not_skipped(tmp_path: Path) -> None:
    topic = MemoryTopic(partitions=1)
    fill(topic, 0, 3)
    path = tmp_path / "r.db"
    follower = ReplicaFollower(config(path), consumer=topic)
    task = asyncio.create_task(follower.run())
    await await_for(lambda: follower.verdict().ready, 10, "ready")
    with topic.lock:  # the replica falls behind and retention deletes what it has not read
        for n in range(3, 10):
            log = topic.log[0]
            topic.log[0].append(type(log[0])(0, n, b"k", log[0].value, {}, log[0].timestamp_ms))
        topic.low[0] = 8
    with pytest.raises(ReplicaGapError, match=r"partition 0: offsets 3\.\.7 \(5 messages\)"):
        await asyncio.wait_for(task, 10)
    assert follower.metrics.value("bridge_replica_gaps_total") == 1
    assert not follower.verdict().ready


async def test_on_gap_restore_replaces_the_file_with_a_snapshot_that_covers_it(
    tmp_path: Path,
) -> None:
    topic = MemoryTopic(partitions=1)
    objects = MemoryObjectStore()
    fill(topic, 0, 3)
    lagging = tmp_path / "lagging.db"
    first = ReplicaFollower(config(lagging), consumer=topic)
    await follow_until(first, lambda: len(replica_rows(lagging, "t")) == 3, "three items")

    fill(topic, 0, 10)  # another node follows on and uploads a snapshot at offset 9
    current = tmp_path / "current.db"
    taker = ReplicaFollower(config(current, snapshots=SNAPSHOTS), consumer=topic, objects=objects)
    task = asyncio.create_task(taker.run())
    await await_for(lambda: len(replica_rows(current, "t")) == 10, 10, "ten items")
    assert await taker.take_snapshot() is not None
    taker.request_stop()
    await asyncio.wait_for(task, 10)

    topic.trim(0, 6)
    fill(topic, 0, 12)
    again = MemoryTopic(partitions=1)
    again.log, again.low = topic.log, topic.low
    follower = ReplicaFollower(
        config(lagging, snapshots=SNAPSHOTS, on_gap="restore"), consumer=again, objects=objects
    )
    await follow_until(follower, lambda: len(replica_rows(lagging, "t")) == 12, "twelve items")
    assert follower.restored is not None and follower.restored.offsets == {0: 9}
    assert follower.metrics.value("bridge_replica_gaps_total") == 1
    assert again.assigned_at == {0: 10}  # resumed after the snapshot, nothing skipped


async def test_on_gap_restore_without_a_covering_snapshot_fails_clearly(tmp_path: Path) -> None:
    topic = MemoryTopic(partitions=1)
    fill(topic, 0, 3)
    path = tmp_path / "r.db"
    first = ReplicaFollower(config(path), consumer=topic)
    await follow_until(first, lambda: len(replica_rows(path, "t")) == 3, "three items")
    fill(topic, 0, 10)
    topic.trim(0, 6)
    again = MemoryTopic(partitions=1)
    again.log, again.low = topic.log, topic.low
    follower = ReplicaFollower(
        config(path, snapshots=SNAPSHOTS, on_gap="restore"),
        consumer=again,
        objects=MemoryObjectStore(),
    )
    with pytest.raises(ReplicaGapError, match="no snapshot covers it"):
        await asyncio.wait_for(follower.run(), 10)
