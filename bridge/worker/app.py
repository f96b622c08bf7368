"""Assemble a worker from configuration: clients, lease store, processor, and run it."""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import aioboto3
import structlog

from bridge.aws import client_kwargs
from bridge.config import BridgeConfig
from bridge.core.readiness import ReadinessLimits, judge
from bridge.health import HealthServer
from bridge.leases.heartbeats import WorkerRegistry
from bridge.leases.leader import LeaderElection
from bridge.leases.store import DynamoLeaseStore
from bridge.logs import default_worker_id
from bridge.metrics import Metrics
from bridge.processors.loader import load_factory
from bridge.streams.client import StreamsClient
from bridge.worker.membership import Membership
from bridge.worker.worker import Worker

log = structlog.get_logger("bridge.app")


@dataclass
class Runtime:
    worker: Worker
    streams: StreamsClient
    stream_arn: str


@contextlib.asynccontextmanager
async def open_runtime(config: BridgeConfig) -> AsyncIterator[Runtime]:
    """Connect everything a worker needs; fails early (before taking leases) on bad settings."""
    worker_id = config.worker_id or default_worker_id()
    factory = load_factory(
        config.processor.kind,
        config.processor.options,
        table=config.source.table,
        app=config.app,
        worker_id=worker_id,
        source=config.source,
        start=config.source.start,
        ready_lag=config.ready_lag.total_seconds(),
    )
    async with contextlib.AsyncExitStack() as stack:
        streams = await stack.enter_async_context(StreamsClient.for_source(config.source))
        stream_arn = config.source.stream_arn or await streams.latest_stream_arn(
            config.source.table
        )
        session = aioboto3.Session()
        # The lease table's client: its calls are retried by bridge, renewals first
        # (bridge.worker.lease_table_retry), so botocore's own sleeping retries are off.
        dynamodb = await stack.enter_async_context(
            session.client("dynamodb", **client_kwargs(config.source, attempts=1))
        )
        store = DynamoLeaseStore(dynamodb, config.lease_table)
        lease_duration = config.coordination.lease_duration.total_seconds()
        membership = Membership(
            worker_id,
            lease_duration=lease_duration,
            clock=time.monotonic,
            registry=WorkerRegistry(dynamodb, config.lock_table),
            leader=LeaderElection(
                config.source,
                table=config.lock_table,
                worker_id=worker_id,
                lease_duration=lease_duration,
            ),
        )
        worker = Worker(
            config,
            worker_id=worker_id,
            reader=streams,
            store=store,
            factory=factory,
            metrics=Metrics(config.app, config.source.table),
            membership=membership,
        )
        yield Runtime(worker=worker, streams=streams, stream_arn=stream_arn)


async def run_worker(config: BridgeConfig) -> None:
    async with open_runtime(config) as runtime:
        worker = runtime.worker
        # From here a stop request drains rather than cancels (the command line routes the
        # loop's SIGINT and SIGTERM handlers through its own, see bridge.eventloop).
        worker.install_signal_handlers()
        health: HealthServer | None = None
        if config.metrics.enabled:
            limits = ReadinessLimits.of(
                ready_lag=config.ready_lag.total_seconds(),
                lease_duration=config.coordination.lease_duration.total_seconds(),
                take_interval=config.coordination.take_interval.total_seconds(),
                idle_interval=config.polling.idle_interval.total_seconds(),
            )
            health = HealthServer(
                worker.metrics, lambda: judge(worker.status(), limits), port=config.metrics.port
            )
            try:
                await health.start()
            except OSError as exc:
                # Probes will fail and say so; the changes keep flowing meanwhile.
                log.error(
                    "cannot serve metrics and probes", port=config.metrics.port, error=str(exc)
                )
                health = None
        try:
            await worker.run(runtime.stream_arn)
        finally:
            if health is not None:
                await health.stop()
