"""The worker's part in a fresh snapshot of the table taken while shards are read
(``on_trimmed: rebootstrap``), and what the configuration asks of snapshots at all.

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
from collections.abc import Callable
from dataclasses import dataclass

from structlog.typing import FilteringBoundLogger

from bridge.config import BridgeConfig
from bridge.core.lease_keys import split_key
from bridge.core.leasing import Lease
from bridge.core.snapshot_plan import SnapshotRequest, cutoff_of, pending_segments, still_read
from bridge.errors import LeaseLostError
from bridge.leases.store import LeaseStore
from bridge.processors.api import ProcessorFactory
from bridge.worker.membership import Membership
from bridge.worker.tenures import Tenures


def snapshot_request(config: BridgeConfig, factory: ProcessorFactory) -> SnapshotRequest | None:
    """When the cluster scans the table, if ever: on a new application's start (``start:
    bootstrap | auto``) for a processor that takes snapshots, and after records were trimmed
    before they were read (``on_trimmed: rebootstrap``) for one that applies fresh ones."""
    source = config.source
    new_app = source.start in ("bootstrap", "auto") and factory.takes_snapshots()
    on_trim = source.on_trimmed == "rebootstrap" and factory.takes_fresh_snapshots()
    if not (new_app or on_trim):
        return None
    margin_ms = round(source.bootstrap.margin.total_seconds() * 1000)
    return SnapshotRequest(source.bootstrap.segments, margin_ms, new_app=new_app, on_trim=on_trim)


@dataclass(eq=False, kw_only=True)
class SnapshotPauses:
    store: LeaseStore
    membership: Membership
    tenures: Tenures
    poll_interval: float
    """How often a scan waiting for readers to pause looks at the lease table again."""
    stopping: asyncio.Event
    log: FilteringBoundLogger
    ours: Callable[[list[Lease]], list[Lease]] = lambda leases: leases
    """The leases of this application's stream, of all those in the table."""

    async def follow(self, leases: list[Lease]) -> None:
        """Our leases as the take cycle listed them: segments added as parents are adopted
        (the reader of the shard then pauses), and a lease read by no one says it paused."""
        listed = {lease.key: lease for lease in leases}
        pending_keys = pending_segments(leases)
        cutoff = cutoff_of(pending_keys)
        pending = frozenset(split_key(key).name for key in pending_keys)  # parents hold names
        for key, tenure in list(self.tenures.items()):
            row = listed.get(key)
            holder = tenure.holder
            if row is None or holder.lost.is_set():
                continue
            if not row.parents <= holder.lease.parents:
                holder.adopt_parents(row.parents)
            if cutoff is not None and pending <= holder.lease.parents and not tenure.running:
                with contextlib.suppress(LeaseLostError):
                    await holder.pause(cutoff)

    async def readers_paused(self, cutoff_ms: int) -> None:
        """Returns once no shard's reader can publish a change during the scan of the
        snapshot of ``cutoff_ms``, or the worker is stopping."""
        told = False
        while not self.stopping.is_set():
            leases = self.ours(await self.store.list_leases())
            reading = still_read(leases, cutoff_ms, await self.membership.live_workers())
            if reading is None:
                return
            if not told:
                self.log.info("snapshot waits for shard readers to pause", shard=reading)
                told = True
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stopping.wait(), self.poll_interval)
