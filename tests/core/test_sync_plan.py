"""The leader's sync plan over random streams and lease tables: one lease per shard, parents
created before their children, lineage links only to shards that exist, a LATEST start that
never leases history, and a finished lease deleted only once nothing needs it."""

from __future__ import annotations

from dataclasses import dataclass

from hypothesis import given
from hypothesis import strategies as st

from bridge.core.leasing import Lease
from bridge.core.positions import SHARD_END
from bridge.core.snapshot_plan import SnapshotRequest, cutoff_of, segment_of, segments
from bridge.core.sync_plan import parents_first, plan_sync


def started(lease: Lease) -> bool:
    """Read from: a checkpoint past the position it was created with."""
    return lease.finished or (lease.checkpoint or "").isdigit()


@dataclass(frozen=True)
class FakeShard:
    shard_id: str
    parent_shard_id: str | None
    closed: bool


@st.composite
def streams(draw: st.DrawFn) -> dict[str, FakeShard]:
    """A stream's shards: roots and splits, a parent closed once it has children; now and
    then a parent that left the stream already (trimmed away)."""
    shards: dict[str, FakeShard] = {}
    for n in range(draw(st.integers(1, 25))):
        parents = sorted(shards)
        parent = draw(st.none() | st.sampled_from(parents)) if parents else None
        if parent is not None and draw(st.integers(0, 6)) == 0:
            parent = f"gone-{n}"
        shards[f"s{n:02d}"] = FakeShard(f"s{n:02d}", parent, closed=False)
    with_children = {s.parent_shard_id for s in shards.values()}
    return {
        key: FakeShard(key, shard.parent_shard_id, key in with_children or draw(st.booleans()))
        for key, shard in shards.items()
    }


@st.composite
def lease_tables(draw: st.DrawFn, shards: dict[str, FakeShard]) -> dict[str, Lease]:
    leases: dict[str, Lease] = {}
    for key in sorted(shards):
        if draw(st.booleans()):
            checkpoint = draw(st.sampled_from([None, "TRIM_HORIZON", "7", SHARD_END]))
            leases[key] = Lease(key, checkpoint=checkpoint)
    for n in range(draw(st.integers(0, 3))):  # finished shards that left the stream
        leases[f"old{n}"] = Lease(f"old{n}", checkpoint=SHARD_END, children=frozenset({"s00"}))
    return leases


@given(data=st.data())
def test_every_shard_gets_one_lease_parents_first(data: st.DataObject) -> None:
    shards = data.draw(streams())
    leases = data.draw(lease_tables(shards))
    plan = plan_sync(shards, leases, "trim_horizon")
    created = [key for key, _ in plan.create]
    superseded = {a for key in leases if key in shards for a in ancestors(shards, key)}
    assert sorted(created) == sorted(set(shards) - set(leases) - superseded)
    for index, (key, parents) in enumerate(plan.create):
        parent = shards[key].parent_shard_id
        if parent in shards or parent in leases:
            assert parents == {parent}
            # a parent not leased again is done: a descendant of it is leased
            assert parent in leases or parent in created[:index] or parent in superseded
        else:
            assert parents == frozenset()


@given(data=st.data())
def test_a_new_app_at_latest_leases_only_open_shards_without_history(
    data: st.DataObject,
) -> None:
    shards = data.draw(streams())
    plan = plan_sync(shards, {}, "latest")
    assert {key for key, _ in plan.create} == {k for k, s in shards.items() if not s.closed}
    assert all(parents == frozenset() for _, parents in plan.create)


@given(data=st.data())
def test_parents_learn_every_child_and_finished_leases_go_only_when_unneeded(
    data: st.DataObject,
) -> None:
    shards = data.draw(streams())
    leases = data.draw(lease_tables(shards))
    plan = plan_sync(shards, leases, "trim_horizon")
    for parent, children in plan.add_children:
        assert parent in leases
        assert children == {k for k, s in shards.items() if s.parent_shard_id == parent}
        assert not children <= leases[parent].children
    for key in plan.delete:
        lease = leases[key]
        assert lease.finished and key not in shards
        assert all(started(leases.get(c, Lease(c))) for c in lease.children)
    for key, lease in leases.items():
        if key not in plan.delete:
            assert (
                not lease.finished
                or key in shards
                or any(not started(leases.get(child, Lease(child))) for child in lease.children)
            )


def test_parents_come_first_whatever_the_ids() -> None:
    shards = {
        "b": FakeShard("b", None, True),
        "a": FakeShard("a", "b", True),
        "c": FakeShard("c", "a", False),
    }
    assert parents_first(shards) == ["b", "a", "c"]


@given(data=st.data())
def test_a_new_app_that_snapshots_leases_the_segments_first_and_holds_every_shard_behind_them(
    data: st.DataObject,
) -> None:
    shards = data.draw(streams())
    request = SnapshotRequest(segments=3, margin_ms=60_000)
    plan = plan_sync(shards, {}, "trim_horizon", snapshot=request, now_ms=1_000_000)
    keys = [key for key, _ in plan.create]
    scan = {segment.key for segment in segments(940_000, 3)}
    assert set(keys[:3]) == scan  # before any shard: a shard seen alone would be read at once
    for _, parents in plan.create[3:]:
        assert parents >= scan
        assert cutoff_of(parents) == 940_000
    assert sorted(keys[3:]) == sorted(shards)


@given(data=st.data())
def test_an_app_with_leases_never_snapshots_again(data: st.DataObject) -> None:
    shards = data.draw(streams())
    leases = data.draw(lease_tables(shards))
    if not leases:
        return
    plan = plan_sync(shards, leases, "trim_horizon", snapshot=SnapshotRequest(3, 0), now_ms=5)
    assert all(segment_of(key) is None for key, _ in plan.create)
    assert all(cutoff_of(parents) is None for _, parents in plan.create)


def ancestors(shards: dict[str, FakeShard], shard_id: str) -> set[str]:
    found: set[str] = set()
    parent = shards[shard_id].parent_shard_id
    while parent is not None and parent in shards:
        found.add(parent)
        parent = shards[parent].parent_shard_id
    return found


@given(data=st.data())
def test_no_lease_is_created_for_a_shard_whose_descendant_has_one(data: st.DataObject) -> None:
    # As KCL's DynamoDB Streams adapter leaves a table: finished parents' leases deleted
    # once their children have checkpoints, while the stream still lists the parents.
    shards = data.draw(streams())
    leases = data.draw(lease_tables(shards))
    plan = plan_sync(shards, leases, "trim_horizon")
    created = {key for key, _ in plan.create}
    leased = [key for key in leases if key in shards]
    superseded = set().union(*(ancestors(shards, key) for key in leased)) if leased else set()
    assert not created & superseded
    # every other shard without a lease gets one
    assert created == set(shards) - set(leases) - superseded


def test_a_parent_whose_lease_kcl_deleted_is_not_read_again() -> None:
    shards = {
        "p": FakeShard("p", None, closed=True),
        "c1": FakeShard("c1", "p", closed=True),
        "c2": FakeShard("c2", "c1", closed=False),
    }
    leases = {"c2": Lease("c2", checkpoint="40")}  # p's and c1's leases deleted by KCL
    assert plan_sync(shards, leases, "trim_horizon").create == ()
