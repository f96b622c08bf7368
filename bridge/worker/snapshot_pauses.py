"""The worker's part in a fresh snapshot of the table taken while shards are read
(``on_trimmed: rebootstrap``).

The leader adds a fresh snapshot's segments as parents of every unfinished shard lease
(``core.sync_plan``). Each worker follows its own leases: a reader stops at its next batch
boundary (``EndReason.PAUSED``), and a lease that no reader holds says at once, on its row,
that it is paused for the snapshot's cut-off. A segment's scan starts only once no reader
can publish a change during it (``core.snapshot_plan.still_read``): in each partition the
snapshot then lies between the changes read before it and those read after.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import defaultdict
from dataclasses import dataclass

from structlog.typing import FilteringBoundLogger

from bridge.core.lease_keys import split_key
from bridge.core.leasing import Lease
from bridge.core.snapshot_plan import cutoff_of, pending_segments, still_read
from bridge.errors import LeaseLostError
from bridge.leases.store import LeaseStore
from bridge.worker.membership import Membership
from bridge.worker.table_sources import TableSources
from bridge.worker.tenures import Tenures


@dataclass(eq=False, kw_only=True)
class SnapshotPauses:
    store: LeaseStore
    membership: Membership
    tenures: Tenures
    poll_interval: float
    """How often a scan waiting for readers to pause looks at the lease table again."""
    stopping: asyncio.Event
    log: FilteringBoundLogger
    sources: TableSources

    async def follow(self, leases: list[Lease]) -> None:
        """Our leases as the take cycle listed them: segments added as parents are adopted
        (the reader of the shard then pauses), and a lease read by no one says it paused.
        Each table's stream has its own snapshots."""
        for stream_leases in self._by_stream(leases).values():
            await self._follow_stream(stream_leases)

    def _by_stream(self, leases: list[Lease]) -> dict[str, list[Lease]]:
        groups: dict[str, list[Lease]] = defaultdict(list)
        for lease in leases:
            source = self.sources.locate(lease.key)
            if source is not None:
                groups[source.stream_arn].append(lease)
        return groups

    async def _follow_stream(self, leases: list[Lease]) -> None:
        listed = {lease.key: lease for lease in leases}
        pending_keys = pending_segments(leases)
        cutoff = cutoff_of(pending_keys)
        pending = frozenset(split_key(key).name for key in pending_keys)  # parents hold names
        for key, tenure in list(self.tenures.items()):
            row = listed.get(key)  # None for another stream's lease
            holder = tenure.holder
            if row is None or holder.lost.is_set():
                continue
            if not row.parents <= holder.lease.parents:
                holder.adopt_parents(row.parents)
            if cutoff is not None and pending <= holder.lease.parents and not tenure.running:
                with contextlib.suppress(LeaseLostError):
                    await holder.pause(cutoff)

    async def readers_paused(self, segment: str, cutoff_ms: int) -> None:
        """Returns once no shard of the segment's stream has a reader that can publish a
        change during the scan of the snapshot of ``cutoff_ms``, or the worker is stopping."""
        source = self.sources.locate(segment)
        told = False
        while not self.stopping.is_set():
            every = await self.store.list_leases()
            leases = [lease for lease in every if self.sources.locate(lease.key) is source]
            reading = still_read(leases, cutoff_ms, await self.membership.live_workers())
            if reading is None:
                return
            if not told:
                self.log.info("snapshot waits for shard readers to pause", shard=reading)
                told = True
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stopping.wait(), self.poll_interval)
