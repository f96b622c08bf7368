"""The leader's shard sync, on a schedule: every table's stream listed, its leases planned.

Only the leader syncs; the others look every moment whether they lead now. A round runs
every ``coordination.shard_sync_interval``, or at once when asked (a shard end whose children
could not be leased), at most once a second. With several tables (``source.tables``) a round
first looks for the tables matching the patterns, so a table created later is leased within
one interval; a stream that no longer exists (its table deleted, or its stream turned off long
enough ago) has its leases deleted: nothing of it can be read any more.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from structlog.typing import FilteringBoundLogger

from bridge.config import BridgeConfig
from bridge.leases.store import LeaseStore
from bridge.metrics import Metrics
from bridge.streams.errors import FatalStreamError, StreamNotFoundError
from bridge.streams.reader import StreamReader
from bridge.worker.membership import Membership
from bridge.worker.shard_syncer import ShardSyncer
from bridge.worker.table_sources import TableSource, TableSources, discover_tables


@dataclass(eq=False, kw_only=True)
class SyncScheduler:
    config: BridgeConfig
    reader: StreamReader
    store: LeaseStore
    sources: TableSources
    membership: Membership
    metrics: Metrics
    stopping: asyncio.Event
    on_fatal: Callable[[BaseException], None]
    clock: Callable[[], float]
    log: FilteringBoundLogger
    dynamodb: Any = None
    """For ``source.tables``: the client that lists and describes tables."""
    requested: asyncio.Event = field(default_factory=asyncio.Event)
    _syncers: dict[str, ShardSyncer] = field(default_factory=dict)

    async def rounds(self) -> None:
        interval = self.config.coordination.shard_sync_interval.total_seconds()
        min_gap = min(interval, 1.0)
        last = -float("inf")
        while not self.stopping.is_set():
            if not self.membership.is_leader:
                # Only the leader lists shards; look again soon, to lead at once when elected.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.stopping.wait(), 0.2)
                continue
            wait = max(0.0, last + min_gap - self.clock())
            if wait:
                await asyncio.sleep(wait)
            self.requested.clear()
            last = self.clock()
            try:
                await self.sync_once()
            except FatalStreamError as exc:
                self.on_fatal(exc)
                return
            except Exception as exc:
                self.metrics.errors_transient.inc()
                self.log.warning("shard sync failed", error=repr(exc))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._requested_or_stop(), interval)

    async def sync_once(self) -> None:
        if self.sources.several:
            patterns = self.sources.patterns or []
            for table, stream_arn in await discover_tables(self.dynamodb, patterns):
                self.sources.add(table, stream_arn)
        for source in self.sources.known():
            try:
                await self._syncer(source).sync()
            except StreamNotFoundError:
                if not self.sources.several:
                    raise
                await self._retire(source)
            finally:
                self.metrics.describe_stream_calls.inc()

    def _syncer(self, source: TableSource) -> ShardSyncer:
        syncer = self._syncers.get(source.stream_arn)
        if syncer is None:
            syncer = ShardSyncer(
                self.reader,
                self.store,
                source.stream_arn,
                initial=source.source.initial_position,
                snapshot=source.snapshot,
                keys=source.keys,
            )
            self._syncers[source.stream_arn] = syncer
        return syncer

    async def _retire(self, source: TableSource) -> None:
        """A table's stream is gone: its leases can never be read again."""
        leases = [
            lease
            for lease in await self.store.list_leases()
            if source.keys.name_of(lease.key) is not None
        ]
        for lease in leases:
            await self.store.retire(lease)
        self.sources.retire(source)
        self._syncers.pop(source.stream_arn, None)
        self.log.warning(
            "stream gone: its leases retired",
            table=source.table,
            stream=source.stream_arn,
            leases=len(leases),
        )

    async def _requested_or_stop(self) -> None:
        stop = asyncio.ensure_future(self.stopping.wait())
        sync = asyncio.ensure_future(self.requested.wait())
        try:
            await asyncio.wait({stop, sync}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stop.cancel()
            sync.cancel()
