"""Keep one lease per shard: the leader's sync, and the children of a shard read to its end.

Only the leader runs ``ShardSyncer.sync`` in a cluster, so DescribeStream costs the same for 1
or 100 workers; what it changes is decided by ``bridge.core.sync_plan``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace

import structlog

from bridge.core.lease_keys import BY_SHARD_ID, StreamKeys
from bridge.core.leasing import Lease
from bridge.core.positions import LATEST, TRIM_HORIZON, InitialPosition
from bridge.core.snapshot_plan import SnapshotRequest
from bridge.core.sync_plan import plan_sync
from bridge.leases.store import LeaseStore
from bridge.streams.reader import StreamReader

log = structlog.get_logger("bridge.shard_sync")


@dataclass
class SyncResult:
    created: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    shards: int = 0


class ShardSyncer:
    def __init__(
        self,
        reader: StreamReader,
        store: LeaseStore,
        stream_arn: str,
        *,
        initial: InitialPosition,
        snapshot: SnapshotRequest | None = None,
        keys: StreamKeys = BY_SHARD_ID,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.reader = reader
        self.store = store
        self.stream_arn = stream_arn
        self.keys = keys
        """How this stream's leases are keyed."""
        self.initial = initial
        self.snapshot = snapshot
        """Asked for: a new application scans the table first (``core.snapshot_plan``)."""
        self.wall_clock = wall_clock

    async def sync(self) -> SyncResult:
        description = await self.reader.describe_stream(self.stream_arn)
        shards = {shard.shard_id: shard for shard in description.shards}
        leases = named_leases(await self.store.list_leases(), self.keys)
        now_ms = round(self.wall_clock() * 1000)
        plan = plan_sync(shards, leases, self.initial, snapshot=self.snapshot, now_ms=now_ms)
        result = SyncResult(shards=len(shards))
        key = self.keys.key
        for shard_id, parents in plan.create:
            checkpoint = LATEST if self.initial == "latest" and not parents else TRIM_HORIZON
            if await self.store.create_lease(key(shard_id), parents, checkpoint):
                result.created.append(shard_id)
        for parent, children in plan.add_children:
            await self.store.add_children(key(parent), children)
        for name, parents in plan.add_parents:
            await self.store.add_parents(key(name), parents)
        if plan.add_parents:
            log.warning(
                "fresh snapshot of the table: every shard waits for it",
                shards=len(plan.add_parents),
            )
        for name in plan.delete:
            await self.store.delete(key(name))
            result.deleted.append(name)
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


@dataclass(frozen=True)
class ChildLeases:
    children: list[str]
    """Every child of the shard, sorted."""
    created: list[str]
    """The children whose lease this call created (the others existed already)."""


def named_leases(leases: Iterable[Lease], keys: StreamKeys) -> dict[str, Lease]:
    """The leases of one stream by name (shard id or segment), as the pure plans take them;
    their parent and child links by name too, whichever way they were written."""
    named: dict[str, Lease] = {}
    for lease in leases:
        name = keys.name_of(lease.key)
        if name is not None:
            named[name] = replace(
                lease,
                key=name,
                parents=frozenset(keys.name_of(p) or p for p in lease.parents),
                children=frozenset(keys.name_of(c) or c for c in lease.children),
            )
    return named


async def lease_child_shards(
    reader: StreamReader,
    store: LeaseStore,
    stream_arn: str,
    parent: str,
    keys: StreamKeys = BY_SHARD_ID,
) -> ChildLeases:
    """Leases for the children of a shard that just ended, by whichever worker read it.

    Without this the children would wait for the leader's next full sync (a minute by
    default); one filtered DescribeStream per shard end keeps handoff quick, and its cost
    grows with shard ends, not with the number of workers.
    """
    key = keys.key
    children = sorted(shard.shard_id for shard in await reader.child_shards(stream_arn, parent))
    created = [
        child for child in children if await store.create_lease(key(child), frozenset([parent]))
    ]
    if children:
        await store.add_children(key(parent), frozenset(children))
    if created:
        log.info("child shards leased", parent=parent, created=created)
    return ChildLeases(children, created)


async def create_child_leases(
    reader: StreamReader, store: LeaseStore, stream_arn: str, parent: str
) -> list[str]:
    """``lease_child_shards``, answering only which leases it created."""
    return (await lease_child_shards(reader, store, stream_arn, parent)).created
