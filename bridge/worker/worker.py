"""A worker: take leases, run one consumer per owned shard, renew, drain on SIGTERM.

Three loops run side by side in one TaskGroup: the renewer (its own task, so a busy processor
can never starve renewals), the leaser (take free, expired or stealable leases; start
consumers whose parents are done) and the shard syncer (new shards -> new leases).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import signal
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import structlog

from bridge.config import BridgeConfig
from bridge.core.backoff import Backoff
from bridge.core.leasing import ExpiryTracker, Lease, plan_take
from bridge.core.lineage import parents_exhausted
from bridge.core.positions import InitialPosition
from bridge.errors import WorkerFailedError
from bridge.leases.store import LeaseConflictError, LeaseStore
from bridge.metrics import Metrics
from bridge.processors.api import EndReason, ProcessorFactory, ShardContext
from bridge.processors.dead_letter import DeadLetterFile
from bridge.streams.errors import FatalStreamError, StreamError
from bridge.streams.reader import StreamReader
from bridge.worker.delivery import BatchDelivery, DeliveryPolicy
from bridge.worker.lease_holder import LeaseHolder
from bridge.worker.lease_table_retry import checkpoint_backoff, is_transient, renewal_backoff
from bridge.worker.membership import Membership
from bridge.worker.shard_consumer import ConsumerSettings, ShardConsumer
from bridge.worker.shard_syncer import ShardSyncer, create_child_leases

log = structlog.get_logger("bridge.worker")

# Look a little after an expiry is due, so that the clock has certainly passed it.
_EXPIRY_MARGIN = 0.005
_LEASE_TABLE_TRIES = 6
"""Tries of a lease-table step that may be left to a later take cycle or the leader."""
_T = TypeVar("_T")


@dataclass
class _Owned:
    holder: LeaseHolder
    consumer: ShardConsumer | None = None
    task: asyncio.Task[EndReason] | None = None
    failed: bool = False


@dataclass
class WorkerState:
    """What the worker holds now; read by status, readiness and tests."""

    owned: dict[str, _Owned] = field(default_factory=dict)
    fatal: BaseException | None = None


class Worker:
    def __init__(
        self,
        config: BridgeConfig,
        *,
        worker_id: str,
        reader: StreamReader,
        store: LeaseStore,
        factory: ProcessorFactory,
        metrics: Metrics | None = None,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
        membership: Membership | None = None,
    ) -> None:
        self.config = config
        self.worker_id = worker_id
        self.reader = reader
        self.store = store
        self.factory = factory
        self.metrics = metrics or Metrics(config.app, config.source.table)
        self.clock = clock
        self.rng = rng or random.Random()
        self.state = WorkerState()
        self.stopping = asyncio.Event()
        self.last_take_ok: float | None = None
        """When a take cycle last read the lease table: readiness needs the table in reach."""
        self.tracker = ExpiryTracker()
        self.stream_arn = ""
        self.sync_requested = asyncio.Event()
        self.lease_duration = config.coordination.lease_duration.total_seconds()
        self.membership = membership or Membership(
            worker_id, lease_duration=self.lease_duration, clock=clock
        )
        self.dead_letter = (
            DeadLetterFile(
                config.processor.dead_letter_path or _default_dead_letter_path(config.app)
            )
            if config.processor.on_error == "dead_letter"
            else None
        )
        self._releases: set[asyncio.Task[None]] = set()
        self._next_expiry: float | None = None
        self._log = log.bind(worker=worker_id)

    # -- lifecycle ---------------------------------------------------------------------------

    def request_stop(self) -> None:
        if not self.stopping.is_set():
            self._log.info("stop requested: finishing batches, checkpointing, releasing leases")
            self.stopping.set()

    def install_signal_handlers(self) -> None:
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, self.request_stop)

    async def run(self, stream_arn: str) -> None:
        """Run until stopped; raises ``WorkerFailedError`` after a fatal error (leases released)."""
        self.stream_arn = stream_arn
        await self.store.ensure_table()
        await self.membership.start()
        try:
            await self.factory.open()
        except BaseException:
            # Leave at once: holding the leader lock and a heartbeat row while failing to start
            # would make the others wait out their expiry.
            await self.membership.leave()
            raise
        self._log.info("worker started", stream=stream_arn)
        drained = asyncio.Event()
        try:
            async with asyncio.TaskGroup() as group:
                # Renewals go on through the drain (a slow last batch must not cost the lease);
                # taking and syncing stop with the stop request.
                renewer = group.create_task(self._renew_rounds(until=drained))
                taker = group.create_task(
                    self._every(self._take_cycle, self._take_interval(), sooner=self._take_due)
                )
                syncer = group.create_task(self._sync_loop())
                await self.stopping.wait()
                syncer.cancel()
                await taker  # its cycle in progress may still take a lease: let it land first
                await self._drain(renewer, drained)
        finally:
            await self.factory.close()
            await self.membership.leave()
        if self.state.fatal is not None:
            raise WorkerFailedError(str(self.state.fatal)) from self.state.fatal
        self._log.info("worker stopped")

    async def _drain(self, renewer: asyncio.Task[None], drained: asyncio.Event) -> None:
        """Let consumers finish the batch in hand and checkpoint, then give the leases back.

        The heartbeat row goes first, then the leases: while it stays, the others still count
        this worker in their fair share, and would leave the released leases lying free until
        it expired. A take cycle reads the lease table before the heartbeat rows, so a worker
        that sees a lease released also sees this worker gone.
        """
        tasks = [owned.task for owned in self.state.owned.values() if owned.task is not None]
        if tasks:
            _, late = await asyncio.wait(tasks, timeout=self._drain_timeout())
            if late:
                # Their batches are not checkpointed: the next owner delivers them again.
                self._log.warning(
                    "drain timeout: abandoning unfinished batches",
                    shards=sorted(task.get_name() for task in late),
                    timeout_s=self._drain_timeout(),
                )
                for task in late:
                    task.cancel()
                await asyncio.gather(*late, return_exceptions=True)
        # Stopped, not cancelled: a renewal cut off in flight could land unseen and make the
        # release below (conditional on the counter) fail, leaving the lease to expire. But a
        # renewal that hangs (the lease table unreachable) is not waited for past the lease
        # duration: by then the leases are expired and there is nothing left to release.
        drained.set()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(renewer), self.lease_duration)
        renewer.cancel()
        await asyncio.gather(renewer, return_exceptions=True)
        await self.membership.withdraw()  # never raises: the row would expire by itself
        await asyncio.gather(
            *(owned.holder.release() for owned in self.state.owned.values()),
            *self._releases,
            return_exceptions=True,
        )
        self.state.owned.clear()
        self._update_gauges()

    def _renew_interval(self) -> float:
        return self.config.coordination.effective_renew_interval.total_seconds()

    def _drain_timeout(self) -> float:
        return self.config.coordination.drain_timeout.total_seconds()

    def _take_interval(self) -> float:
        return self.config.coordination.take_interval.total_seconds()

    async def _every(
        self,
        action: Callable[[], object],
        interval: float,
        until: asyncio.Event | None = None,
        sooner: Callable[[], float] | None = None,
    ) -> None:
        """Run ``action`` every ``interval`` until ``until`` (default: the stop request) is set;
        ``sooner`` may ask for the next run earlier (seconds from now)."""
        until = until or self.stopping
        backoff = Backoff(base=interval, cap=60.0)
        failures = 0
        while not until.is_set():
            try:
                await action()  # type: ignore[misc]
                failures = 0
                delay = interval if sooner is None else max(0.0, min(interval, sooner()))
            except StreamError as exc:
                if isinstance(exc, FatalStreamError):
                    self._fail(exc)
                    return
                failures += 1
                delay = backoff.delay(failures, self.rng)
                self.metrics.errors_transient.inc()
                self._log.warning("coordination step failed", error=repr(exc), retry_s=delay)
            except Exception as exc:
                failures += 1
                delay = backoff.delay(failures, self.rng)
                self.metrics.errors_transient.inc()
                self._log.warning("coordination step failed", error=repr(exc), retry_s=delay)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(until.wait(), delay)

    def _fail(self, error: BaseException) -> None:
        if self.state.fatal is None:
            self.state.fatal = error
            self._log.error("fatal error; stopping the worker", error=str(error))
        self.request_stop()

    # -- shard sync --------------------------------------------------------------------------

    async def _sync_loop(self) -> None:
        syncer = ShardSyncer(
            self.reader, self.store, self.stream_arn, initial=_initial(self.config)
        )
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
            self.sync_requested.clear()
            last = self.clock()
            try:
                await syncer.sync()
                self.metrics.describe_stream_calls.inc()
            except FatalStreamError as exc:
                self._fail(exc)
                return
            except Exception as exc:
                self.metrics.errors_transient.inc()
                self._log.warning("shard sync failed", error=repr(exc))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._sync_or_stop(), interval)

    async def _sync_or_stop(self) -> None:
        stop = asyncio.ensure_future(self.stopping.wait())
        sync = asyncio.ensure_future(self.sync_requested.wait())
        try:
            await asyncio.wait({stop, sync}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stop.cancel()
            sync.cancel()

    # -- leases ------------------------------------------------------------------------------

    async def _renew_rounds(self, until: asyncio.Event) -> None:
        """A renewal round every renew interval, counted from the previous round's start, not
        its end: a round's retries (throttling) end when the next round is due, so a lease is
        renewed at least every two intervals however slow the lease table is."""
        interval = self._renew_interval()
        while not until.is_set():
            next_round = self.clock() + interval
            await self._renew_all(next_round)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(until.wait(), max(0.0, next_round - self.clock()))

    async def _renew_all(self, give_up_at: float) -> None:
        holders = [owned.holder for owned in self.state.owned.values()]
        beat = asyncio.ensure_future(self._beat(give_up_at))
        await asyncio.gather(*(holder.renew(give_up_at) for holder in holders))
        await beat  # after the renewals: a failing heartbeat must not delay them
        for key, owned in list(self.state.owned.items()):
            if owned.holder.lost.is_set() and (owned.task is None or owned.task.done()):
                self.state.owned.pop(key, None)
        self._update_gauges()

    async def _beat(self, give_up_at: float) -> None:
        """The heartbeat, tried again at once after a passing failure (like a renewal) until
        ``give_up_at``: other workers count us by it, and a worker that looks gone is owed no
        share, so its leases would look stealable. Never raises: the renewals go on."""
        backoff = renewal_backoff(self.lease_duration)
        attempt = 0
        while True:
            try:
                await self.membership.beat()
                return
            except Exception as exc:
                self.metrics.errors_transient.inc()
                self._log.warning("heartbeat failed", attempt=attempt + 1, error=repr(exc))
                if not is_transient(exc) or self.clock() >= give_up_at:
                    return
            delay = min(backoff.delay(attempt, self.rng), give_up_at - self.clock())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stopping.wait(), max(0.0, delay))
            if self.stopping.is_set():
                return
            attempt += 1

    async def _take_cycle(self) -> None:
        # The leases before the heartbeat rows: a leaving worker removes its row before it
        # releases its leases, so a lease seen released comes with its old owner seen gone.
        leases = await self.store.list_leases()
        now = self.clock()
        self.tracker.observe(leases, now)
        by_key = {lease.key: lease for lease in leases}
        held = {key for key, owned in self.state.owned.items() if not owned.holder.lost.is_set()}
        plan = plan_take(
            leases=leases,
            me=self.worker_id,
            held=held,
            live_workers=await self.membership.live_workers(),
            tracker=self.tracker,
            now=now,
            lease_duration=self.lease_duration,
            max_leases=self.config.coordination.max_leases_per_worker,
            max_steals=self.config.coordination.max_steals_per_cycle,
            rng=self.rng,
        )
        for lease in plan.take:
            await self._take(lease, stolen=False)
        for lease in plan.steal:
            await self._take(lease, stolen=True)
        self._start_ready_consumers(by_key)
        self._update_gauges()
        expiries = (
            self.tracker.next_expiry(now, self.lease_duration, besides=self.worker_id),
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
        previous = self.state.owned.get(lease.key)
        if previous is not None and previous.task is not None and not previous.task.done():
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
        self.state.owned[lease.key] = _Owned(
            LeaseHolder(
                self.store,
                taken,
                self.lease_duration,
                taken_at=sent,
                clock=self.clock,
                rng=self.rng,
            )
        )

    def _start_ready_consumers(self, leases: dict[str, Lease]) -> None:
        for key, owned in self.state.owned.items():
            if owned.task is not None or owned.failed or owned.holder.lost.is_set():
                continue
            lease = owned.holder.lease
            if lease.finished:
                continue
            checkpoints = {other.key: other.checkpoint for other in leases.values()}
            if parents_exhausted(lease.parents, checkpoints):
                self._start_consumer(key, owned)

    def _start_consumer(self, key: str, owned: _Owned) -> None:
        context = ShardContext(
            shard_id=key,
            table=self.config.source.table,
            stream_arn=self.stream_arn,
            worker_id=self.worker_id,
            checkpointer=owned.holder,
            parent_shard_ids=owned.holder.lease.parents,
        )
        processor = self.factory.create(key)
        policy = DeliveryPolicy(
            max_attempts=self.config.processor.max_attempts,
            on_error=self.config.processor.on_error,
            backoff=Backoff(base=0.1, cap=5.0),
        )

        async def checkpoint(sequence_number: str) -> None:
            await owned.holder.checkpoint(sequence_number)
            self.metrics.checkpoint_writes.inc()

        delivery = BatchDelivery(
            processor,
            policy,
            checkpoint=checkpoint,
            dead_letter=self.dead_letter,
            on_dead_letter=self.metrics.dead_letters.inc,
            on_retry=self.metrics.errors_transient.inc,
            stopping=self.stopping,
            ensure_valid=owned.holder.ensure_valid,
            rng=self.rng,
        )
        polling = self.config.polling
        settings = ConsumerSettings(
            initial=_initial(self.config),
            max_records=polling.max_records,
            interval=polling.interval.total_seconds(),
            idle_interval=polling.idle_interval.total_seconds(),
            on_trimmed=self.config.source.on_trimmed,
            roundtrip_attribute=self.config.metrics.roundtrip_attribute,
        )
        owned.consumer = ShardConsumer(
            context=context,
            reader=self.reader,
            holder=owned.holder,
            processor=processor,
            delivery=delivery,
            settings=settings,
            metrics=self.metrics,
            stop=self.stopping,
            rng=self.rng,
            before_shard_end=lambda: self._lease_children(key),
        )
        owned.task = asyncio.create_task(owned.consumer.run(), name=f"shard-{key}")
        owned.task.add_done_callback(lambda task: self._consumer_done(key, task))

    def _consumer_done(self, key: str, task: asyncio.Task[EndReason]) -> None:
        owned = self.state.owned.get(key)
        if task.cancelled():
            return
        error = task.exception()
        if isinstance(error, FatalStreamError):
            self._fail(error)
            return
        if error is not None:
            self._log.error("shard consumer crashed", shard=key, error=repr(error))
            self._fail(error)
            return
        reason = task.result()
        if owned is None or owned.task is not task:
            return  # a consumer of an earlier tenure: its lease is already gone
        if reason is EndReason.SHARD_END:
            self.state.owned.pop(key, None)
            # The children are leased already (before_shard_end): give the parent back. Kept
            # until done: the loop holds tasks weakly, and the drain waits for them.
            release = asyncio.get_running_loop().create_task(owned.holder.release())
            self._releases.add(release)
            release.add_done_callback(self._releases.discard)
        elif reason is EndReason.LEASE_LOST:
            self.state.owned.pop(key, None)
        elif reason is EndReason.FAILED:
            owned.failed = True  # keep the lease so no other worker reads past the failure
        self._update_gauges()

    async def _lease_children(self, key: str) -> None:
        """Lease the children of a shard read to its end, *before* its SHARD_END checkpoint.

        In this order the number of unfinished leases never dips: were the parent finished
        first, for a moment its owner would look one lease short of its fair share with
        nothing free to take, and steal from a balanced worker. Passing failures (a throttled
        lease table) are retried while the parent's lease is ours: both steps are idempotent.
        """
        owned = self.state.owned.get(key)
        still_ours = owned.holder.is_valid if owned is not None else (lambda: False)
        created = await self._retry_transient(
            "lease child shards",
            lambda: create_child_leases(self.reader, self.store, self.stream_arn, key),
            still_ours,
        )
        if created is None:
            self._log.warning("could not lease child shards; the leader will", parent=key)
            self.sync_requested.set()
            return
        if not created:
            return
        # The lineage goes on with the worker that read it: take its continuation now, rather
        # than leave it to whichever take cycle runs first. Under a throttled lease table that
        # may be another worker's, and then this one is a lease short and steals one back.
        # A waiting child is nobody's load, so holding it early unbalances nothing.
        child = Lease(created[0], parents=frozenset([key]))

        async def take_child() -> bool:
            await self._take(child, stolen=False)
            return True

        if await self._retry_transient("take the child shard", take_child, still_ours) is None:
            self._log.warning("could not take the child shard; a take cycle will", shard=child.key)

    async def _retry_transient(
        self, what: str, call: Callable[[], Awaitable[_T]], still_wanted: Callable[[], bool]
    ) -> _T | None:
        """``call()``, tried again after passing failures while ``still_wanted()``; None once
        it fails for good (logged)."""
        backoff = checkpoint_backoff(self.lease_duration)
        for attempt in range(_LEASE_TABLE_TRIES):
            try:
                return await call()
            except Exception as exc:
                retry = is_transient(exc) and still_wanted() and attempt + 1 < _LEASE_TABLE_TRIES
                self._log.warning(
                    f"could not {what}", attempt=attempt + 1, retrying=retry, error=repr(exc)
                )
                if not retry:
                    return None
            await asyncio.sleep(backoff.delay(attempt, self.rng))
        return None

    def _update_gauges(self) -> None:
        running = [o for o in self.state.owned.values() if o.task is not None and not o.task.done()]
        self.metrics.shards_active.set(len(running))
        self.metrics.leases_owned.set(len(self.state.owned))
        lags = [o.consumer.lag_ms for o in running if o.consumer is not None]
        self.metrics.lag_ms.set(max(lags, default=0.0))


def _initial(config: BridgeConfig) -> InitialPosition:
    return "latest" if config.source.start == "latest" else "trim_horizon"


def _default_dead_letter_path(app: str) -> Path:
    return Path(f"{app}-dead-letter.jsonl")
