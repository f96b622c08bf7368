"""What the leader's shard sync should change in the lease table, given the stream's shards.

One lease per shard: new shards get a lease (parents first, so a child's parent link always
points at a lease that exists), unless a descendant has one already; parents learn their
children, and a finished lease goes once its shard has left the stream and every child has
started. Pure: the leader lists the shards
and the leases, this decides, ``bridge.worker.shard_syncer`` writes.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Set
from dataclasses import dataclass
from typing import Protocol

from bridge.core.leasing import Lease
from bridge.core.positions import InitialPosition, is_sequence_number
from bridge.core.snapshot_plan import (
    SnapshotRequest,
    pending_segments,
    plan_cutoff,
    segment_of,
    segments,
    snapshot_wanted,
)


class StreamShard(Protocol):
    """What the plan needs to know of a shard (``bridge.streams.Shard`` is one)."""

    @property
    def shard_id(self) -> str: ...
    @property
    def parent_shard_id(self) -> str | None: ...
    @property
    def closed(self) -> bool: ...


@dataclass(frozen=True)
class SyncPlan:
    create: tuple[tuple[str, frozenset[str]], ...] = ()
    """(shard id, parents) of each lease to create, parents before their children."""
    add_children: tuple[tuple[str, frozenset[str]], ...] = ()
    """(lease key, children) where a lease does not list all its shard's children yet."""
    delete: tuple[str, ...] = ()
    """Finished leases whose shard left the stream and whose children all started."""
    add_parents: tuple[tuple[str, frozenset[str]], ...] = ()
    """(lease key, new parents): the segments of a fresh snapshot, which every unfinished
    shard waits for (``on_trimmed: rebootstrap``)."""


def plan_sync(
    shards: Mapping[str, StreamShard],
    leases: Mapping[str, Lease],
    initial: InitialPosition,
    *,
    snapshot: SnapshotRequest | None = None,
    now_ms: int = 0,
) -> SyncPlan:
    """``snapshot``: the processor takes snapshots and the configuration asks for one; a new
    application (an empty lease table) then scans the table first (``core.snapshot_plan``)."""
    # A new application starting at LATEST reads only the open shards: leases for closed
    # shards (and lineage links to them) would replay their history.
    only_open = initial == "latest" and not leases
    create: list[tuple[str, frozenset[str]]] = []
    scan: frozenset[str] = frozenset()
    fresh = snapshot is not None and (
        (snapshot.new_app and not leases)
        or (snapshot.on_trim and leases and snapshot_wanted(leases.values(), snapshot.margin_ms))
    )
    if snapshot is not None and fresh:
        # The segments first: a shard lease seen without its segment parents would be read
        # at once (a missing parent counts as exhausted), before the scan.
        keys = [s.key for s in segments(plan_cutoff(now_ms, snapshot), snapshot.segments)]
        create.extend((key, frozenset()) for key in keys)
        scan = frozenset(keys)
    # A snapshot taken while shards are read (on_trimmed: rebootstrap): every unfinished shard
    # waits for it, its reader stopping at a batch boundary. Planned again at every sync, so a
    # leader that stopped after creating the segments, or a shard leased since, still is.
    waiting_for = scan or pending_segments(leases.values())
    add_parents = [
        (lease.key, waiting_for - lease.parents)
        for lease in leases.values()
        if not lease.finished and segment_of(lease.key) is None and not waiting_for <= lease.parents
    ]
    superseded = ancestors_of_leased(shards, leases)
    for shard_id in parents_first(shards):
        shard = shards[shard_id]
        if shard_id in leases or shard_id in superseded or (only_open and shard.closed):
            continue
        parent = shard.parent_shard_id
        known_parent = (
            parent is not None and not only_open and (parent in shards or parent in leases)
        )
        parents = frozenset([parent]) if known_parent and parent else frozenset()
        create.append((shard_id, parents | waiting_for))
    children: dict[str, set[str]] = defaultdict(set)
    for shard in shards.values():
        if shard.parent_shard_id:
            children[shard.parent_shard_id].add(shard.shard_id)
    add_children = [
        (parent, frozenset(kids))
        for parent, kids in children.items()
        if parent in leases and not kids <= leases[parent].children
    ]
    # A finished segment has no shard and no children: it goes at the first sync after it.
    delete = [
        lease.key for lease in leases.values() if _finished_and_gone(lease, shards.keys(), leases)
    ]
    return SyncPlan(tuple(create), tuple(add_children), tuple(delete), tuple(add_parents))


def ancestors_of_leased(
    shards: Mapping[str, StreamShard], leases: Mapping[str, Lease]
) -> frozenset[str]:
    """Shards with a leased descendant: never leased again. A lease exists for a shard only
    once every ancestor was read to its end, so its ancestors are done even when their own
    leases are gone: KCL's DynamoDB Streams adapter deletes a finished parent's lease once
    its children have checkpoints, while the stream lists the closed parent for up to a day
    more. Leasing it again would read the whole closed shard again."""
    found: set[str] = set()
    for key in leases:
        shard = shards.get(key)
        parent = shard.parent_shard_id if shard is not None else None
        while parent is not None and parent not in found:
            found.add(parent)
            above = shards.get(parent)
            parent = above.parent_shard_id if above is not None else None
    return frozenset(found)


def parents_first(shards: Mapping[str, StreamShard]) -> list[str]:
    """Shard ids ordered so that a parent comes before its children (creation order of leases)."""
    ordered: list[str] = []
    seen: set[str] = set()

    def visit(shard_id: str) -> None:
        if shard_id in seen or shard_id not in shards:
            return
        seen.add(shard_id)
        parent = shards[shard_id].parent_shard_id
        if parent:
            visit(parent)
        ordered.append(shard_id)

    for shard_id in sorted(shards):
        visit(shard_id)
    return ordered


def _finished_and_gone(lease: Lease, in_stream: Set[str], leases: Mapping[str, Lease]) -> bool:
    """A lease can go once its shard is done, has left the stream, and its children started."""
    if not lease.finished or lease.key in in_stream:
        return False
    return all(child in leases and _started(leases[child]) for child in lease.children)


def _started(lease: Lease) -> bool:
    """Read from: its checkpoint moved off the position it was created with."""
    return lease.finished or is_sequence_number(lease.checkpoint)
