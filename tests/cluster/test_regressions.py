"""Small, fast pins for the bugs the cluster scenarios found (each named after its scenario).

They belong with the unit tests of the pure leaser and of the lease store; they live here so
that the scenario that found each bug and the pin that keeps it fixed stay together.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import AsyncIterator

import aioboto3
import pytest

from bridge.core.leasing import ExpiryTracker, Lease, plan_take, workable
from bridge.core.positions import SHARD_END
from bridge.leases.store import DynamoLeaseStore
from bridge.local.processes import MotoServer

LEASE = 3.0


def plan(leases: list[Lease], me: str, workers: set[str]) -> list[str]:
    tracker = ExpiryTracker()
    tracker.observe(leases, 0.0)
    taken = plan_take(
        leases=leases,
        me=me,
        held={lease.key for lease in leases if lease.owner == me},
        live_workers=workers,
        tracker=tracker,
        now=0.0,
        lease_duration=LEASE,
        rng=random.Random(1),
    )
    return sorted(lease.key for lease in [*taken.take, *taken.steal])


def test_a_child_waiting_for_its_parent_is_nobodys_work() -> None:
    """Scale 1 -> 4 -> 1 and the leader test: children leased before their parents' end were
    counted as load and taken by whoever was first, who then held more than its share once
    the parents ended, and was stolen from (duplicates)."""
    parents = [Lease(f"p{i}", owner="a" if i < 2 else "b", counter=1) for i in range(4)]
    children = [Lease(f"c{i}", parents=frozenset([f"p{i}"])) for i in range(4)]
    leases = parents + children
    assert [lease.key for lease in workable(leases)] == ["p0", "p1", "p2", "p3"]
    assert plan(leases, "a", {"a", "b"}) == []  # 2 each: nothing to take, nothing to steal
    # The parent read to its end: its child becomes the work in its place.
    ended = [Lease("p0", counter=2, checkpoint=SHARD_END), *parents[1:], *children]
    assert "c0" in {lease.key for lease in workable(ended)}
    assert plan(ended, "a", {"a", "b"}) == ["c0"]


def test_a_parent_ending_does_not_make_its_owner_steal() -> None:
    """Stay-put over 30 s: the worker leased a finished shard's children only after its
    SHARD_END checkpoint; in between, its owner looked one short of its share with nothing
    free, and stole from a balanced worker. The worker now leases children first."""
    others = [
        *(Lease(f"b{i}", owner="b", counter=1) for i in range(3)),
        *(Lease(f"c{i}", owner="c", counter=1) for i in range(3)),
    ]
    mine = [Lease("a1", owner="a", counter=1)]
    ended = Lease("a2", owner="a", counter=2, checkpoint=SHARD_END)
    child = Lease("a2-child", parents=frozenset(["a2"]))
    # Parent first: for a moment 7 leases of work, a holds 1 of a share of 3, nothing is free.
    assert len(plan([*mine, ended, *others], "a", {"a", "b", "c"})) == 1  # a steal
    # Children first: the child is there, free, the moment the parent ends.
    assert plan([*mine, ended, child, *others], "a", {"a", "b", "c"}) == ["a2-child"]


def test_the_next_expiry_of_another_workers_lease() -> None:
    """kill -9: a survivor looks again when the dead worker's leases expire, not up to a take
    interval later."""
    tracker = ExpiryTracker()
    tracker.observe([Lease("x", owner="dead", counter=4), Lease("mine", owner="me")], 10.0)
    tracker.observe([Lease("x", owner="dead", counter=4), Lease("free")], 11.0)
    assert tracker.next_expiry(11.0, LEASE, besides="me") == 10.0 + LEASE
    assert tracker.next_expiry(10.0 + LEASE, LEASE, besides="me") is None  # already due


@pytest.fixture
async def store(moto_server: MotoServer) -> AsyncIterator[DynamoLeaseStore]:
    session = aioboto3.Session()
    async with session.client(
        "dynamodb", endpoint_url=moto_server.endpoint_url, region_name="us-east-1"
    ) as client:
        leases = DynamoLeaseStore(client, f"reg-{uuid.uuid4().hex[:8]}-leases")
        await leases.ensure_table()
        yield leases


async def test_a_take_returns_the_checkpoint_written_after_the_scan(
    store: DynamoLeaseStore,
) -> None:
    """SIGSTOP: a thief started from the checkpoint its scan saw, though the previous owner
    had checkpointed since (a checkpoint does not move the counter), and replayed a batch."""
    await store.create_lease("s", frozenset())
    (free,) = await store.list_leases()
    owner = await store.take(free, "old")
    (scanned,) = await store.list_leases()  # the thief's scan
    await store.checkpoint(owner, "200")  # lands after the scan, before the steal
    stolen = await store.take(scanned, "thief")
    assert (stolen.owner, stolen.counter, stolen.checkpoint) == ("thief", 2, "200")
    assert stolen.owner_switches == 1
