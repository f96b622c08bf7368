"""Keep one lease per shard: create leases for new shards, delete finished ones.

Only the leader runs this in a cluster, so DescribeStream costs the same for 1 or 100 workers.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Set
from dataclasses import dataclass, field

import structlog

from bridge.core.leasing import Lease
from bridge.core.positions import InitialPosition
from bridge.leases.store import LeaseStore
from bridge.streams.model import Shard
from bridge.streams.reader import StreamReader

log = structlog.get_logger("bridge.shard_sync")


@dataclass
class SyncResult:
    created: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    shards: int = 0


class ShardSyncer:
    def __init__(
        self, reader: StreamReader, store: LeaseStore, stream_arn: str, *, initial: InitialPosition
    ) -> None:
        self.reader = reader
        self.store = store
        self.stream_arn = stream_arn
        self.initial = initial

    async def sync(self) -> SyncResult:
        description = await self.reader.describe_stream(self.stream_arn)
        shards = {shard.shard_id: shard for shard in description.shards}
        leases = {lease.key: lease for lease in await self.store.list_leases()}
        result = SyncResult(shards=len(shards))
        # A new application starting at LATEST reads only the open shards: leases for closed
        # shards (and lineage links to them) would replay their history.
        only_open = self.initial == "latest" and not leases
        children: dict[str, set[str]] = defaultdict(set)
        for shard in shards.values():
            if shard.parent_shard_id:
                children[shard.parent_shard_id].add(shard.shard_id)
        for shard_id in _parents_first(shards):
            shard = shards[shard_id]
            if shard_id in leases or (only_open and shard.ending_sequence_number is not None):
                continue
            parent = shard.parent_shard_id
            known_parent = (
                parent is not None and not only_open and (parent in shards or parent in leases)
            )
            parents = frozenset([parent]) if known_parent and parent else frozenset()
            if await self.store.create_lease(shard_id, parents):
                result.created.append(shard_id)
        for parent, kids in children.items():
            lease = leases.get(parent)
            if lease is not None and not kids <= lease.children:
                await self.store.add_children(parent, frozenset(kids))
        for lease in leases.values():
            if _finished_and_gone(lease, shards.keys(), leases):
                await self.store.delete(lease.key)
                result.deleted.append(lease.key)
        if result.created or result.deleted:
            log.info(
                "shards synced",
                shards=result.shards,
                created=result.created,
                deleted=result.deleted,
            )
        else:  # one line per sync either way: which worker syncs shows at debug level
            log.debug("shards synced", shards=result.shards)
        return result


async def create_child_leases(
    reader: StreamReader, store: LeaseStore, stream_arn: str, parent: str
) -> list[str]:
    """Leases for the children of a shard that just ended, by whichever worker read it.

    Without this the children would wait for the leader's next full sync (a minute by
    default); one filtered DescribeStream per shard end keeps handoff quick, and its cost
    grows with shard ends, not with the number of workers.
    """
    children = await reader.child_shards(stream_arn, parent)
    created = []
    for child in sorted(children, key=lambda shard: shard.shard_id):
        if await store.create_lease(child.shard_id, frozenset([parent])):
            created.append(child.shard_id)
    if children:
        await store.add_children(parent, frozenset(child.shard_id for child in children))
    if created:
        log.info("child shards leased", parent=parent, created=created)
    return created


def _parents_first(shards: Mapping[str, Shard]) -> list[str]:
    """Order shard ids so that a parent comes before its children (creation order of leases)."""
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
    return all(child in leases and leases[child].checkpoint is not None for child in lease.children)
