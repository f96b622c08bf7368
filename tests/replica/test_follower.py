"""The follower's loop against an in-memory topic: partitions found later, a broker that stops
answering, a restart that resumes after the stored offsets."""

from __future__ import annotations

from pathlib import Path

from bridge.replica import ReplicaFollower
from tests.replica.memory_topic import MemoryTopic
from tests.replica.support import await_for, replica_config, replica_rows


async def run_follower(path: Path, topic: MemoryTopic, until: object) -> ReplicaFollower:
    import asyncio

    config = replica_config(path, "memory:1", "t", stall_after="1s")
    follower = ReplicaFollower(config, consumer=topic)
    task = asyncio.create_task(follower.run())
    try:
        await until(follower)  # type: ignore[operator]
    finally:
        follower.request_stop()
        await asyncio.wait_for(task, 10)
    assert topic.closed
    return follower


async def test_a_partition_that_appears_later_is_read_from_its_beginning(tmp_path: Path) -> None:
    topic = MemoryTopic(partitions=1)
    topic.append(0, "a", 1, 1)
    path = tmp_path / "r.db"

    async def scenario(follower: ReplicaFollower) -> None:
        await await_for(lambda: follower.verdict().ready, 10, "ready on one partition")
        topic.append(1, "b", 1, 2)  # the topic grew a partition
        await await_for(lambda: len(replica_rows(path, "t")) == 2, 10, "the new partition's item")
        assert topic.assigned_at == {0: None, 1: None}
        await await_for(lambda: follower.verdict().ready, 10, "ready on both partitions")

    await run_follower(path, topic, scenario)


async def test_a_broker_that_stops_answering_turns_it_not_ready_until_it_answers(
    tmp_path: Path,
) -> None:
    topic = MemoryTopic(partitions=2)
    topic.append(0, "a", 1, 1)
    path = tmp_path / "r.db"

    async def scenario(follower: ReplicaFollower) -> None:
        await await_for(lambda: follower.verdict().ready, 10, "ready")
        topic.down = True
        await await_for(lambda: not follower.verdict().ready, 10, "not ready")
        assert "memory:1: connection refused" in follower.verdict().reason
        assert follower.metrics.value("bridge_errors_transient_total") >= 1
        topic.down = False
        topic.append(1, "b", 1, 2)
        await await_for(lambda: follower.verdict().ready, 20, "ready again")
        assert set(replica_rows(path, "t")) == {("a",), ("b",)}

    await run_follower(path, topic, scenario)


async def test_a_restart_resumes_after_the_stored_offsets(tmp_path: Path) -> None:
    topic = MemoryTopic(partitions=2)
    for n in range(5):
        topic.append(n % 2, f"k{n}", 1, n)
    path = tmp_path / "r.db"

    async def five_items(follower: ReplicaFollower) -> None:
        await await_for(lambda: len(replica_rows(path, "t")) == 5, 10, "five items")

    async def newer_version(follower: ReplicaFollower) -> None:
        await await_for(lambda: replica_rows(path, "t")[("k0",)]["v"] == 2, 10, "version 2")

    await run_follower(path, topic, five_items)
    again = MemoryTopic(partitions=2)
    again.log = topic.log
    again.append(0, "k0", 2, 10)
    await run_follower(path, again, newer_version)
    assert again.assigned_at == {0: 3, 1: 2}  # offsets 0..2 and 0..1 were applied before
