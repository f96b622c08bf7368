"""Shard lineage over random trees and random orders of progress: never a child before its
parents are exhausted, never a finished shard read again, and every shard read in the end."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bridge.core.lineage import (
    LifecycleError,
    ShardLifecycle,
    ShardPhase,
    parents_exhausted,
    phase_of,
    resume_frontier,
)
from bridge.core.positions import SHARD_END


@st.composite
def lineage_trees(draw: st.DrawFn) -> dict[str, frozenset[str]]:
    """A forest in which each shard has at most one parent, and a parent at most two children,
    as DynamoDB makes them; now and then a merge (two parents) to keep the rules general."""
    roots = draw(st.integers(1, 4))
    shards: dict[str, frozenset[str]] = {f"r{i}": frozenset() for i in range(roots)}
    children: dict[str, int] = {}
    for n in range(draw(st.integers(0, 30))):
        open_parents = sorted(s for s in shards if children.get(s, 0) < 2)
        if not open_parents:
            break
        parent = draw(st.sampled_from(open_parents))
        parents = {parent}
        if draw(st.integers(0, 9)) == 0:
            parents.add(draw(st.sampled_from(open_parents)))
        for p in parents:
            children[p] = children.get(p, 0) + 1
        shards[f"s{n}"] = frozenset(parents)
    return shards


def ancestors(shard: str, tree: dict[str, frozenset[str]]) -> set[str]:
    found: set[str] = set()
    stack = list(tree[shard])
    while stack:
        parent = stack.pop()
        if parent in tree and parent not in found:
            found.add(parent)
            stack.extend(tree[parent])
    return found


@given(tree=lineage_trees(), data=st.data())
def test_any_order_of_progress_reads_every_shard_once_and_parents_first(
    tree: dict[str, frozenset[str]], data: st.DataObject
) -> None:
    checkpoints: dict[str, str | None] = {}
    finished_order: list[str] = []
    while len(finished_order) < len(tree):
        frontier = resume_frontier(tree, checkpoints)
        assert frontier, "progress stalled with shards left unread"
        for shard in frontier:
            assert checkpoints.get(shard) != SHARD_END
            assert all(checkpoints.get(a) == SHARD_END for a in ancestors(shard, tree))
        shard = data.draw(st.sampled_from(sorted(frontier)))
        # some progress first (a sequence-number checkpoint), then the end: a restart in
        # between must resume the same shard, not a child and not a finished one
        checkpoints[shard] = "100"
        assert shard in resume_frontier(tree, checkpoints)
        checkpoints[shard] = SHARD_END
        finished_order.append(shard)
    assert sorted(finished_order) == sorted(tree)
    position = {shard: i for i, shard in enumerate(finished_order)}
    for shard, parents in tree.items():
        assert all(position[parent] < position[shard] for parent in parents)


@given(tree=lineage_trees(), data=st.data())
def test_phase_from_checkpoints_agrees_with_the_frontier(
    tree: dict[str, frozenset[str]], data: st.DataObject
) -> None:
    checkpoints: dict[str, str | None] = {}
    for _ in range(data.draw(st.integers(0, len(tree)))):
        frontier = sorted(resume_frontier(tree, checkpoints))
        if not frontier:
            break
        shard = data.draw(st.sampled_from(frontier))
        checkpoints[shard] = data.draw(st.sampled_from([SHARD_END, "7", "TRIM_HORIZON"]))
    frontier = resume_frontier(tree, checkpoints)
    table = {shard: checkpoints.get(shard) for shard in tree}  # unread leases are rows too
    for shard, parents in tree.items():
        phase = phase_of(shard, parents, table)
        assert (shard in frontier) == (phase in (ShardPhase.INITIALIZING, ShardPhase.ACTIVE))
        if phase is ShardPhase.ACTIVE:
            assert checkpoints.get(shard) not in (None, SHARD_END)


def test_a_parent_gone_from_the_lease_table_counts_as_exhausted() -> None:
    assert parents_exhausted({"gone"}, {"child": None})
    assert not parents_exhausted({"p"}, {"p": "12"})
    assert not parents_exhausted({"p"}, {"p": None})


@given(parents=st.sets(st.sampled_from("abcd"), max_size=4), data=st.data())
def test_lifecycle_waits_for_every_parent_then_reads_then_ends(
    parents: set[str], data: st.DataObject
) -> None:
    lifecycle = ShardLifecycle("child", frozenset(parents))
    order = data.draw(st.permutations(sorted(parents)))
    for i, parent in enumerate(order):
        assert lifecycle.phase is ShardPhase.BLOCKED
        with pytest.raises(LifecycleError, match="open parents"):
            lifecycle.reading()
        lifecycle.parent_finished(parent)
        lifecycle.parent_finished(order[0])  # repeated news of a parent changes nothing
        assert (lifecycle.phase is ShardPhase.BLOCKED) == (i < len(order) - 1)
    assert lifecycle.phase is ShardPhase.INITIALIZING
    lifecycle.reading()
    assert lifecycle.phase is ShardPhase.ACTIVE
    lifecycle.ended()
    assert lifecycle.phase is ShardPhase.HISTORICAL
    with pytest.raises(LifecycleError):
        lifecycle.reading()
    with pytest.raises(LifecycleError):
        lifecycle.ended()
