"""Who else is working, and who leads: heartbeat rows and the leader lock, for one worker.

Without a registry (a lone worker over an in-memory store, as in unit tests) the worker is
the whole cluster: always live, always leader.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import structlog

from bridge.core.leasing import ExpiryTracker
from bridge.leases.heartbeats import WorkerRegistry
from bridge.leases.leader import LeaderElection

log = structlog.get_logger("bridge.membership")


class Membership:
    def __init__(
        self,
        worker_id: str,
        *,
        lease_duration: float,
        clock: Callable[[], float],
        slack: float = 0.0,
        registry: WorkerRegistry | None = None,
        leader: LeaderElection | None = None,
    ) -> None:
        self.worker_id = worker_id
        self.lease_duration = lease_duration
        self.clock = clock
        self.registry = registry
        self.leader = leader
        self.tracker = ExpiryTracker(slack=slack)
        self.leaving: frozenset[str] = frozenset()
        """The live workers that said they are stopping, as last read by ``live_workers``."""
        self.known: frozenset[str] = frozenset()
        """Every worker with a heartbeat row, live or not, as last read."""
        self._anyone_staying = True
        """Whether the last reading saw another live worker not leaving, to hand leases to."""
        self._withdrawn = False
        self._leaving = False

    @property
    def is_leader(self) -> bool:
        return self.leader is None or self.leader.is_leader

    async def start(self) -> None:
        if self.registry is not None:
            await self.registry.ensure_table()
            await self.registry.beat(self.worker_id)
        if self.leader is not None:
            self.leader.start()

    async def beat(self) -> None:
        if self.registry is not None:
            await self.registry.beat(self.worker_id, leaving=self._leaving)

    async def live_workers(self) -> frozenset[str]:
        """Workers whose heartbeat moved within a lease duration, by this worker's clock."""
        if self.registry is None:
            return frozenset([self.worker_id])
        rows = await self.registry.workers()
        now = self.clock()
        self.tracker.observe(rows, now)
        live = {row.key for row in rows if not self.tracker.expired(row, now, self.lease_duration)}
        self.known = frozenset(row.key for row in rows)
        self.leaving = frozenset(row.key for row in rows if row.handoff_to and row.key in live)
        self._anyone_staying = bool(live - self.leaving - {self.worker_id})
        return frozenset(live | {self.worker_id})

    def next_expiry(self, now: float) -> float | None:
        """When the next other worker's heartbeat expires unless it beats again (see
        ``ExpiryTracker.next_expiry``); None without one pending."""
        return self.tracker.next_expiry(now, self.lease_duration, besides=self.worker_id)

    def anyone_staying(self) -> bool:
        """Whether the last reading saw another live worker that is not leaving."""
        return self._anyone_staying

    async def announce_leaving(self) -> bool:
        """Say on our heartbeat row that we are stopping; False when it could not be said
        (no registry, or the table unreachable): then nobody will ask for our leases."""
        if self.registry is None:
            return False
        self._leaving = True
        try:
            await self.registry.beat(self.worker_id, leaving=True)
        except Exception as exc:
            log.warning("could not announce leaving", error=repr(exc))
            return False
        return True

    async def withdraw(self) -> None:
        """Remove our heartbeat row, so that the others stop counting us in their fair share
        at once (rather than after it expired); call it when giving the leases back."""
        if self.registry is None or self._withdrawn:
            return
        self._withdrawn = True
        try:
            await self.registry.leave(self.worker_id)
        except Exception as exc:  # the row expires by TTL; leaving cleanly is a courtesy
            log.warning("could not remove the heartbeat row", error=repr(exc))

    async def leave(self) -> None:
        """Stop leading (so another worker leads at once) and remove our heartbeat row."""
        await self.withdraw()
        if self.leader is not None:
            await asyncio.to_thread(self.leader.stop)
