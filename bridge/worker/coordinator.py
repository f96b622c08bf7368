"""KCL's lease coordinator for one worker: renewals, the take cycle, children, shard sync.

Three loops run side by side under the worker: renewal rounds (``Renewals``, their own task,
so a busy processor can never starve renewals), the take cycle (take free or expired leases
as ``plan_take`` says, ask the owners of those to steal for a handoff (``Handoffs``), then
start the consumers whose parents are done) and, on the leader only, the shard sync (new
shards become leases). When a consumer reads its shard to the end, the coordinator leases the
children and gives the parent back.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import random
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from typing import Any, TypeVar

import structlog

from bridge.config import BridgeConfig
from bridge.core.backoff import Backoff
from bridge.core.leasing import ExpiryTracker, Lease, continuation_of, plan_take
from bridge.core.lineage import parents_exhausted
from bridge.leases.store import LeaseConflictError, LeaseStore
from bridge.metrics import Metrics
from bridge.processors.api import EndReason
from bridge.streams.errors import FatalStreamError
from bridge.streams.reader import StreamReader
from bridge.worker.handoffs import Handoffs
from bridge.worker.launcher import ConsumerLauncher
from bridge.worker.lease_holder import LeaseHolder
from bridge.worker.lease_table_retry import checkpoint_backoff, retry_passing
from bridge.worker.membership import Membership
from bridge.worker.renewals import Renewals
from bridge.worker.shard_syncer import lease_child_shards
from bridge.worker.snapshot_pauses import SnapshotPauses
from bridge.worker.sync_scheduler import SyncScheduler
from bridge.worker.table_sources import TableSources
from bridge.worker.tenures import Tenure, Tenures

log = structlog.get_logger("bridge.worker")

# Look a little after an expiry is due, so that the clock has certainly passed it.
_EXPIRY_MARGIN = 0.005
_LEASE_TABLE_TRIES = 6
"""Tries of a lease-table step that may be left to a later take cycle or the leader."""
_T = TypeVar("_T")


class LeaseCoordinator:
    def __init__(
        self,
        config: BridgeConfig,
        *,
        worker_id: str,
        reader: StreamReader,
        store: LeaseStore,
        membership: Membership,
        launcher: ConsumerLauncher,
        metrics: Metrics,
        stopping: asyncio.Event,
        on_fatal: Callable[[BaseException], None],
        clock: Callable[[], float],
        rng: random.Random,
        sources: TableSources,
        dynamodb: Any = None,
    ) -> None:
        self.config = config
        self.worker_id = worker_id
        self.reader = reader
        self.store = store
        self.membership = membership
        self.launcher = launcher
        self.metrics = metrics
        self.stopping = stopping
        self.on_fatal = on_fatal
        self.clock = clock
        self.rng = rng
        self.sources = sources
        """The tables read, and which one each lease is for."""
        self.tenures = Tenures(metrics)
        self.slack = config.coordination.observation_slack
        self.tracker = ExpiryTracker(slack=self.slack)
        self.lease_duration = config.coordination.lease_duration.total_seconds()
        self.by_heartbeat = config.coordination.liveness == "heartbeat"
        """Leases kept alive by the heartbeat row alone (``coordination.liveness``)."""
        self.sync_requested = asyncio.Event()
        self.last_take_ok: float | None = None
        """When a take cycle last read the lease table: readiness needs the table in reach."""
        self._releases: set[asyncio.Task[None]] = set()
        self._next_expiry: float | None = None
        self._log = log.bind(worker=worker_id)
        self.pauses = SnapshotPauses(
            store=store,
            membership=membership,
            tenures=self.tenures,
            poll_interval=config.coordination.take_interval.total_seconds(),
            stopping=stopping,
            log=self._log,
            sources=sources,
        )
        self.handoffs = Handoffs(
            worker_id=worker_id,
            store=store,
            tenures=self.tenures,
            membership=membership,
            adopt=self._adopt,
            force=functools.partial(self._take, stolen=True),
            poll_interval=config.polling.interval.total_seconds(),
            patience=self.lease_duration,
            stopping=stopping,
            clock=clock,
        )
        self.renewals = Renewals(
            config,
            tenures=self.tenures,
            store=store,
            membership=membership,
            handoffs=self.handoffs,
            metrics=metrics,
            stopping=stopping,
            clock=clock,
            rng=rng,
            log=self._log,
        )
        self.sync = SyncScheduler(
            config=config,
            reader=reader,
            store=store,
            sources=sources,
            membership=membership,
            metrics=metrics,
            stopping=stopping,
            on_fatal=on_fatal,
            clock=clock,
            log=self._log,
            dynamodb=dynamodb,
            requested=self.sync_requested,
        )

    # -- renewals ----------------------------------------------------------------------------

    async def renew_rounds(self, until: asyncio.Event) -> None:
        await self.renewals.rounds(until)

    # -- taking ------------------------------------------------------------------------------

    async def take_rounds(self) -> None:
        """Take cycles every take interval until the stop request, sooner when an expiry is
        due; a failed cycle (the lease table unreachable) is retried with backoff."""
        interval = self.config.coordination.take_interval.total_seconds()
        backoff = Backoff(base=interval, cap=max(60.0, interval))
        failures = 0
        while not self.stopping.is_set():
            try:
                await self.take_cycle()
                failures = 0
                delay = max(0.0, min(interval, self._take_due()))
            except Exception as exc:
                failures += 1
                delay = backoff.delay(failures, self.rng)
                self.metrics.errors_transient.inc()
                self._log.warning("coordination step failed", error=repr(exc), retry_s=delay)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stopping.wait(), delay)

    async def take_cycle(self) -> None:
        # The leases before the heartbeat rows: a leaving worker removes its row before it
        # releases its leases, so a lease seen released comes with its old owner seen gone.
        leases = self.sources.ours(await self.store.list_leases())
        now = self.clock()
        self.tracker.observe(leases, now)
        await self.pauses.follow(leases)
        live = await self.membership.live_workers()
        plan = plan_take(
            leases=leases,
            me=self.worker_id,
            held=self.tenures.held() | self.handoffs.asked(),
            live_workers=live,
            leaving=self.membership.leaving,
            beating=self.membership.known if self.by_heartbeat else None,
            tracker=self.tracker,
            now=now,
            lease_duration=self.lease_duration,
            max_leases=self.config.coordination.max_leases_per_worker,
            max_steals=self.config.coordination.max_steals_per_cycle,
            rng=self.rng,
        )
        for lease in plan.take:
            await self._take(lease, stolen=False)
        for lease in plan.steal:  # asked for: its owner hands it over at a batch boundary
            if not self.stopping.is_set():  # a stopping worker would only have to give it back
                await self.handoffs.ask(lease)
        await self._start_ready_consumers({lease.key: lease.checkpoint for lease in leases})
        self.tenures.update_gauges()
        expiries = (
            None
            if self.by_heartbeat  # lease counters stand still: only heartbeats expire
            else self.tracker.next_expiry(now, self.lease_duration, besides=self.worker_id),
            self.membership.next_expiry(self.clock()),
        )
        self._next_expiry = min((due for due in expiries if due is not None), default=None)
        self.last_take_ok = self.clock()

    def _take_due(self) -> float:
        """Seconds until the next take cycle should run: at once after the next expiry (a
        dead worker's leases or heartbeat), if that comes before the take interval."""
        if self._next_expiry is None:
            return float("inf")
        return self._next_expiry + _EXPIRY_MARGIN - self.clock()

    async def _take(self, lease: Lease, *, stolen: bool) -> None:
        previous = self.tenures.get(lease.key)
        if previous is not None and previous.running:
            # Our last consumer of this shard lost its lease but has not stopped yet (a batch
            # in hand): never run two consumers of one shard; take it again once it stopped.
            return
        sent = self.clock()
        try:
            taken = await self.store.take(lease, self.worker_id)
        except LeaseConflictError:
            return
        (self.metrics.lease_steals if stolen else self.metrics.lease_takes).inc()
        self._log.info(
            "lease stolen" if stolen else "lease taken",
            shard=lease.key,
            counter=taken.counter,
            previous_owner=lease.owner,
        )
        self.tenures.hold(self._holder(taken, sent))

    async def _adopt(self, lease: Lease, read_at: float) -> None:
        """A lease handed to us: read it from its checkpoint now, not at the next take cycle."""
        previous = self.tenures.get(lease.key)
        if previous is not None and (previous.running or not previous.holder.lost.is_set()):
            return
        self.metrics.lease_takes.inc()
        self._log.info("lease received", shard=lease.key, counter=lease.counter)
        tenure = self.tenures.hold(self._holder(lease, read_at))
        source = self.sources.locate(lease.key)
        if source is not None and tenure.startable:
            await self.sources.ready(source)
            self._launch(lease.key, tenure)
        self.tenures.update_gauges()

    def _holder(self, lease: Lease, taken_at: float) -> LeaseHolder:
        return LeaseHolder(
            self.store,
            lease,
            self.lease_duration,
            taken_at=taken_at,
            clock=self.clock,
            rng=self.rng,
            on_checkpoint=self.metrics.checkpoint_writes.inc,
            slack=self.slack,
        )

    async def _start_ready_consumers(self, checkpoints: Mapping[str, str | None]) -> None:
        for key, tenure in list(self.tenures.items()):
            source = self.sources.locate(key)
            if source is None or not tenure.startable:
                continue
            if parents_exhausted(source.keys.parent_keys(tenure.holder.lease.parents), checkpoints):
                await self.sources.ready(source)
                self._launch(key, tenure)

    def _launch(self, key: str, tenure: Tenure) -> None:
        task = self.launcher.launch(
            tenure,
            before_shard_end=functools.partial(self._lease_children, key),
            readers_paused=functools.partial(self.pauses.readers_paused, key),
        )
        task.add_done_callback(functools.partial(self._consumer_done, key))

    def _consumer_done(self, key: str, task: asyncio.Task[EndReason]) -> None:
        tenure = self.tenures.get(key)
        if task.cancelled():
            return
        error = task.exception()
        if error is not None:
            if not isinstance(error, FatalStreamError):
                self._log.error("shard consumer crashed", shard=key, error=repr(error))
            self.on_fatal(error)
            return
        reason = task.result()
        if tenure is None or tenure.task is not task:
            return  # a consumer of an earlier tenure: its lease is already gone
        if reason is EndReason.SHARD_END:
            self.tenures.drop(key)
            # The children are leased already (before_shard_end): give the parent back. Kept
            # until done: the loop holds tasks weakly, and the drain waits for them.
            self._in_background(tenure.holder.release())
            # The child this worker took at the parent's end starts now, not at the next take
            # cycle: its only parent is done (a child of several waits for that cycle).
            for child, held in list(self.tenures.items()):
                source = self.sources.locate(child)
                parents = held.holder.lease.parents
                if held.startable and source and source.keys.parent_keys(parents) == {key}:
                    self._launch(child, held)
        elif reason is EndReason.LEASE_LOST:
            self.tenures.drop(key)
        elif reason is EndReason.SHUTDOWN and tenure.handing_to is not None:
            self.handoffs.consumer_stopped(tenure)
        elif reason is EndReason.PAUSED:
            # Held, to be read again once the fresh snapshot is through; meanwhile the next
            # take cycle says on the lease that it is paused.
            tenure.task = None
            tenure.consumer = None
        elif reason is EndReason.FAILED:
            tenure.failed = True  # keep the lease so no other worker reads past the failure
        self.tenures.update_gauges()

    async def _lease_children(self, key: str) -> None:
        """Lease the children of a shard read to its end, *before* its SHARD_END checkpoint.

        In this order the number of unfinished leases never dips: were the parent finished
        first, for a moment its owner would look one lease short of its fair share with
        nothing free to take, and steal from a balanced worker. Passing failures (a throttled
        lease table) are retried while the parent's lease is ours: both steps are idempotent.
        """
        tenure = self.tenures.get(key)
        source = self.sources.locate(key)
        if source is None:
            return
        still_ours = tenure.holder.is_valid if tenure is not None else (lambda: False)
        name = source.keys.name_of(key) or key
        leased = await self._retry_while(
            "lease child shards",
            lambda: lease_child_shards(
                self.reader, self.store, source.stream_arn, name, source.keys
            ),
            still_ours,
        )
        if leased is None:
            self._log.warning("could not lease child shards; the leader will", parent=key)
            self.sync_requested.set()
            return
        child = continuation_of(key, [source.keys.key(name) for name in leased.children])
        if child is None:
            return

        async def take_child() -> bool:
            await self._take(child, stolen=False)
            return True

        if await self._retry_while("take the child shard", take_child, still_ours) is None:
            self._log.warning("could not take the child shard; a take cycle will", shard=child.key)

    async def _retry_while(
        self, what: str, call: Callable[[], Awaitable[_T]], still_wanted: Callable[[], bool]
    ) -> _T | None:
        def failed(attempt: int, error: BaseException, retrying: bool) -> None:
            self._log.warning(
                f"could not {what}", attempt=attempt, retrying=retrying, error=repr(error)
            )

        return await retry_passing(
            call,
            failed=failed,
            backoff=checkpoint_backoff(self.lease_duration),
            rng=self.rng,
            may_retry=still_wanted,
            tries=_LEASE_TABLE_TRIES,
        )

    # -- shard sync --------------------------------------------------------------------------

    async def sync_rounds(self) -> None:
        """On the leader only (``sync_scheduler``)."""
        await self.sync.rounds()

    # -- giving back ---------------------------------------------------------------------------

    def _in_background(self, step: Coroutine[Any, Any, Any]) -> None:
        """A lease-table step after a consumer ended (a release, a handoff): kept until done,
        since the loop holds tasks weakly and the drain waits for them."""
        task = asyncio.get_running_loop().create_task(step)
        self._releases.add(task)
        task.add_done_callback(self._releases.discard)

    async def release_all(self) -> None:
        """Give every lease back (after the consumers stopped) and wait for the releases of
        finished parents and the handoffs still in flight."""
        await self.handoffs.settle()
        await asyncio.gather(
            *(holder.release() for holder in self.tenures.holders()),
            *self._releases,
            return_exceptions=True,
        )
        self.tenures.clear()
        self.tenures.update_gauges()
