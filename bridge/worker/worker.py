"""A worker: KCL's scheduler. It runs the lease coordinator's loops, drains on SIGTERM, and
stops the whole worker on an error that retrying cannot fix.

What a worker holds and reads lives in the coordinator (``coordinator.py``) and its tenures;
how one shard is read, in ``ShardConsumer``; this class only orders start, run and drain, and
answers for its state through ``status()``.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import signal
import time
from collections.abc import Callable
from typing import Any

import structlog

from bridge.config import BridgeConfig, SourceConfig
from bridge.core.lease_keys import StreamKeys
from bridge.core.readiness import WorkerReading
from bridge.errors import WorkerFailedError
from bridge.leases.store import LeaseStore
from bridge.metrics import Metrics
from bridge.processors.api import ProcessorFactory
from bridge.streams.reader import StreamReader
from bridge.worker.coordinator import LeaseCoordinator
from bridge.worker.launcher import ConsumerLauncher
from bridge.worker.membership import Membership
from bridge.worker.table_sources import TableSources

log = structlog.get_logger("bridge.worker")


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
        make_factory: Callable[[SourceConfig], ProcessorFactory] | None = None,
        dynamodb: Any = None,
    ) -> None:
        """``factory``: the processors' factory of ``source.table``; with ``source.tables``,
        ``make_factory`` makes one per table and ``dynamodb`` lists the tables."""
        self.config = config
        self.worker_id = worker_id
        self.store = store
        self.factory = factory
        """Of ``source.table``: a wrapper may replace it before ``run`` (``bridge demo``)."""
        self.metrics = metrics or Metrics(config.app, config.source.table or "*")
        self.clock = clock
        self.stopping = asyncio.Event()
        self.fatal: BaseException | None = None
        self.lease_duration = config.coordination.lease_duration.total_seconds()
        self.membership = membership or Membership(
            worker_id, lease_duration=self.lease_duration, clock=clock
        )
        rng = rng or random.Random()
        self.sources = TableSources(config, self.metrics, make_factory or (lambda _: factory))
        self.launcher = ConsumerLauncher(
            config,
            worker_id=worker_id,
            reader=reader,
            sources=self.sources,
            clock=clock,
            rng=rng,
        )
        self.coordinator = LeaseCoordinator(
            config,
            worker_id=worker_id,
            reader=reader,
            store=store,
            membership=self.membership,
            launcher=self.launcher,
            metrics=self.metrics,
            stopping=self.stopping,
            on_fatal=self._fail,
            clock=clock,
            rng=rng,
            sources=self.sources,
            dynamodb=dynamodb,
        )
        self._log = log.bind(worker=worker_id)

    def request_stop(self) -> None:
        if not self.stopping.is_set():
            self._log.info("stop requested: handing leases over at batch boundaries")
            self.stopping.set()

    def install_signal_handlers(self) -> None:
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, self.request_stop)

    def status(self) -> WorkerReading:
        """A read-only view of this worker now, for readiness and tests."""
        now = self.clock()
        consumers = self.coordinator.tenures.consumers()
        return WorkerReading(
            now=now,
            fatal=None if self.fatal is None else str(self.fatal),
            stopping=self.stopping.is_set(),
            last_take_ok=self.coordinator.last_take_ok,
            last_reads={key: consumer.last_read_at for key, consumer in consumers.items()},
            lag_ms=max((consumer.lag_ms for consumer in consumers.values()), default=0.0),
            processor=self.sources.freshness(now),
        )

    async def run(self, stream_arn: str | None = None) -> None:
        """Run until stopped; raises ``WorkerFailedError`` after a fatal error (leases released)."""
        await self.store.ensure_table()
        if stream_arn is not None:  # source.table: how the lease table keys its stream
            leases = await self.store.list_leases()
            keys = StreamKeys.for_table(stream_arn, [lease.key for lease in leases])
            self.sources.single(stream_arn, keys, self.factory)
        await self.membership.start()
        try:
            if not self.sources.several:  # with several tables, each opens at its first lease
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
                renewer = group.create_task(self.coordinator.renew_rounds(until=drained))
                taker = group.create_task(self.coordinator.take_rounds())
                syncer = group.create_task(self.coordinator.sync_rounds())
                await self.stopping.wait()
                syncer.cancel()
                await taker  # its cycle in progress may still take a lease: let it land first
                await self._drain(renewer, drained)
        finally:
            if self.sources.several:
                await self.sources.close()
            else:
                await self.factory.close()
            await self.membership.leave()
        if self.fatal is not None:
            raise WorkerFailedError(str(self.fatal)) from self.fatal
        self._log.info("worker stopped")

    async def _drain(self, renewer: asyncio.Task[None], drained: asyncio.Event) -> None:
        """Hand the leases over while still reading them, then let the consumers left finish
        the batch in hand and checkpoint, then give the rest back.

        First the cooperative part (``Handoffs.leave``): the others, told by our heartbeat
        row, ask for our leases, and each goes to its asker right after a checkpoint, within
        a poll interval, so no shard waits for a take cycle. It waits at most two take
        intervals (the others' cycles) and never after a fatal error. Whatever nobody asked
        for is released: the heartbeat row goes first, then the leases, so that a take cycle
        (which reads the lease table before the heartbeat rows) that sees a lease released
        also sees this worker gone, and owes it no share.
        """
        timeout = self.config.coordination.drain_timeout.total_seconds()
        deadline = self.clock() + timeout
        if self.fatal is None:
            take = self.config.coordination.take_interval.total_seconds()
            await self.coordinator.handoffs.leave(min(deadline, self.clock() + 2 * take + 1.0))
        self.coordinator.tenures.stop_all()
        tasks = self.coordinator.tenures.tasks()
        if tasks:
            _, late = await asyncio.wait(tasks, timeout=max(0.0, deadline - self.clock()))
            if late:
                # Their batches are not checkpointed: the next owner delivers them again.
                self._log.warning(
                    "drain timeout: abandoning unfinished batches",
                    shards=sorted(task.get_name() for task in late),
                    timeout_s=timeout,
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
        await self.coordinator.release_all()

    def _fail(self, error: BaseException) -> None:
        if self.fatal is None:
            self.fatal = error
            self._log.error("fatal error; stopping the worker", error=str(error))
        self.request_stop()
