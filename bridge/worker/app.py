"""Assemble a worker from configuration: clients, lease store, processor, and run it.

Everything a worker talks to is reached once before it takes a lease: the table (and its
stream), the Streams API, the lease and coordination tables, the snapshot bucket. A failure
that passes (a pod whose network is not ready yet: connection refused, timeouts, 5xx,
throttling) is tried again with backoff for ``startup_timeout`` seconds; then, as for one that
will not pass (credentials, permissions, a bucket that does not exist), the start fails with a
``StartupError`` that says in one line what is wrong and which setting or address is behind it.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

import aioboto3
import aiohttp
import botocore.exceptions
import structlog

from bridge import eventloop
from bridge.aws import client_kwargs
from bridge.config import BridgeConfig, SourceConfig
from bridge.core.backoff import Backoff
from bridge.core.readiness import ReadinessLimits, judge
from bridge.health import HealthServer
from bridge.leases.heartbeats import WorkerRegistry
from bridge.leases.leader import LeaderElection
from bridge.leases.store import DynamoLeaseStore
from bridge.leases.units import count_units
from bridge.logs import default_worker_id
from bridge.metrics import Metrics
from bridge.processors.api import ProcessorFactory
from bridge.processors.loader import ProcessorLoadError, load_factory
from bridge.processors.sqlite.snapshots import SqliteSnapshots
from bridge.snapshots import BucketMissingError, ObjectStoreError, S3ObjectStore
from bridge.streams.client import StreamsClient
from bridge.streams.errors import (
    AccessDeniedError,
    StreamError,
    TransientStreamError,
    from_exception,
)
from bridge.worker.membership import Membership
from bridge.worker.table_sources import discover_tables
from bridge.worker.worker import Worker

log = structlog.get_logger("bridge.app")

T = TypeVar("T")

STARTUP_TIMEOUT = 30.0
"""How long a start-up step that fails for a passing reason is tried again."""

# What an AWS call raises for a failed request; anything else is a bug and stays as it is.
_CALL_ERRORS = (
    StreamError,
    botocore.exceptions.BotoCoreError,
    botocore.exceptions.ClientError,
    aiohttp.ClientError,
    OSError,
)
# Codes of a request whose credentials the service did not accept (AccessDeniedException and
# its kin mean they were accepted and are not allowed to do this).
_REFUSED_CREDENTIALS = frozenset(
    {
        "UnrecognizedClientException",
        "InvalidSignatureException",
        "IncompleteSignature",
        "InvalidClientTokenId",
        "ExpiredToken",
        "ExpiredTokenException",
        "MissingAuthenticationToken",
        "MissingAuthenticationTokenException",
        "SignatureDoesNotMatch",
    }
)


_ENDPOINT_VARIABLES = {
    "DynamoDB": ("AWS_ENDPOINT_URL_DYNAMODB", "AWS_ENDPOINT_URL"),
    "DynamoDB Streams": ("AWS_ENDPOINT_URL_DYNAMODB_STREAMS", "AWS_ENDPOINT_URL"),
}


class StartupError(Exception):
    """The worker cannot start; the message is one line naming the setting or address.

    ``bad_configuration``: the fix is in the configuration or its environment (an address,
    credentials, permissions, a bucket), not in waiting for a service to recover."""

    def __init__(self, message: str, *, bad_configuration: bool) -> None:
        super().__init__(message)
        self.bad_configuration = bad_configuration


@dataclass
class Runtime:
    worker: Worker
    streams: StreamsClient
    stream_arn: str | None
    """The stream of ``source.table``; None with ``source.tables``."""


@contextlib.asynccontextmanager
async def open_runtime(
    config: BridgeConfig, *, startup_timeout: float = STARTUP_TIMEOUT
) -> AsyncIterator[Runtime]:
    """Connect everything a worker needs; fails early (before taking leases) on bad settings."""
    worker_id = config.worker_id or default_worker_id()
    make_factory = functools.partial(factory_maker, config, worker_id)
    several = config.source.tables is not None
    # With several tables, each gets its factory when first read: this one checks the options.
    factory = make_factory(config.source.for_table(CHECK_TABLE) if several else config.source)
    start = StartupSteps(config.source, startup_timeout)
    async with contextlib.AsyncExitStack() as stack:
        streams = StreamsClient.for_source(config.source)
        await start.step("connecting", lambda: stack.enter_async_context(streams))
        stream_arn: str | None = None
        if not several:
            stream_arn = await _table_stream(config.source, streams, start)
        session = aioboto3.Session()
        # The lease table's client: its calls are retried by bridge, renewals first
        # (bridge.worker.lease_table_retry), so botocore's own sleeping retries are off.
        dynamodb = await stack.enter_async_context(
            session.client("dynamodb", **client_kwargs(config.source, attempts=1))
        )
        metrics = Metrics(config.app, config.source.table or "*")
        count_units(dynamodb, [config.lease_table, config.lock_table], metrics.lease_table_units)
        store = DynamoLeaseStore(dynamodb, config.lease_table)
        named = "coordination.lease_table" if config.coordination.lease_table else "from app"
        await start.step(
            f"creating the lease table {config.lease_table} ({named})", store.ensure_table
        )
        registry = WorkerRegistry(dynamodb, config.lock_table)
        await start.step(
            f"creating the coordination table {config.lock_table}", registry.ensure_table
        )
        await _check_snapshot_bucket(factory, startup_timeout)
        lease_duration = config.coordination.lease_duration.total_seconds()
        membership = Membership(
            worker_id,
            lease_duration=lease_duration,
            clock=time.monotonic,
            slack=config.coordination.observation_slack,
            registry=registry,
            leader=LeaderElection(
                config.source,
                table=config.lock_table,
                worker_id=worker_id,
                lease_duration=lease_duration,
                on_units=metrics.lease_table_units,
            ),
        )
        if several:
            found = await start.step(
                f"listing the tables matching {config.source.tables} (source.tables)",
                lambda: discover_tables(dynamodb, config.source.tables or []),
            )
            log.info("tables found", tables=[table for table, _ in found])
        worker = Worker(
            config,
            worker_id=worker_id,
            reader=streams,
            store=store,
            factory=factory,
            metrics=metrics,
            membership=membership,
            make_factory=make_factory,
            dynamodb=dynamodb,
        )
        yield Runtime(worker=worker, streams=streams, stream_arn=stream_arn)


async def run_worker(config: BridgeConfig, *, startup_timeout: float = STARTUP_TIMEOUT) -> None:
    async with open_runtime(config, startup_timeout=startup_timeout) as runtime:
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


CHECK_TABLE = "bridge-options-check"
"""The table name the processor's options are checked with at the start of an application
that reads several tables (its factories are made per table later)."""


def factory_maker(config: BridgeConfig, worker_id: str, source: SourceConfig) -> ProcessorFactory:
    """The processors' factory for one table of the application."""
    options = dict(config.processor.options)
    if config.source.tables is not None and config.processor.kind == "sqlite":
        path = str(options.get("path", ""))
        if "{table}" not in path:
            raise ProcessorLoadError(
                f"processor.options.path {path!r}: with source.tables each table needs its own "
                "file; put {table} in the path (e.g. /data/{table}.db)"
            )
        options["path"] = path.replace("{table}", source.name)
    return load_factory(
        config.processor.kind,
        options,
        table=source.name,
        app=config.app,
        worker_id=worker_id,
        source=source,
        start=source.start,
        on_trimmed=source.on_trimmed,
        parallelism=config.processor.parallelism,
        ready_lag=config.ready_lag.total_seconds(),
    )


async def _table_stream(source: SourceConfig, streams: StreamsClient, start: StartupSteps) -> str:
    """The stream of ``source.table``: ``source.stream_arn``, or the table's latest one."""
    table = source.name
    stream_arn = source.stream_arn
    if not stream_arn:
        stream_arn = await start.step(
            f"reading table {table!r} (source.table)",
            lambda: streams.latest_stream_arn(table),
        )
    await start.step(
        f"listing the streams of table {table!r}",
        lambda: streams.list_streams(table),
        service="DynamoDB Streams",
    )
    return stream_arn


class StartupSteps:
    """Runs each start-up call, tried again while it fails for a passing reason, and says
    what a failure means in the words of the configuration."""

    def __init__(self, source: SourceConfig, timeout: float) -> None:
        self.source = source
        self.timeout = timeout
        self.backoff = Backoff(base=0.25, cap=5.0)
        self.rng = random.Random()

    async def step(
        self, doing: str, call: Callable[[], Awaitable[T]], *, service: str = "DynamoDB"
    ) -> T:
        started = time.monotonic()
        attempt = 0
        while True:
            try:
                return await call()
            except _CALL_ERRORS as exc:
                error = from_exception(exc)
                delay = self.backoff.delay(attempt, self.rng)
                attempt += 1
                tried = time.monotonic() - started
                if not error.retryable or tried + delay > self.timeout:
                    raise self._explained(error, doing, service, tried) from exc
                log.warning(
                    f"{service} not reachable yet, retrying",
                    step=doing,
                    error=str(error),
                    retry_in_s=round(delay, 2),
                )
            await asyncio.sleep(delay)

    def _explained(
        self, error: StreamError, doing: str, service: str, tried: float
    ) -> StreamError | StartupError:
        """What the start-up error says; errors of another kind (no such table) stay as they
        are, for the command line to report as it always has."""
        where = self._where(service)
        if isinstance(error, TransientStreamError):
            if error.code in ("ConnectionError", "Timeout"):
                return StartupError(
                    f"cannot reach {where}, tried for {tried:.0f}s: {error.message}",
                    bad_configuration=True,
                )
            return StartupError(
                f"{where} kept failing for {tried:.0f}s while {doing}: {_said(error)}",
                bad_configuration=False,
            )
        if not isinstance(error, AccessDeniedError):
            return error
        if error.code == "NoCredentials":
            return StartupError(
                "no AWS credentials found: set source.aws_access_key_id and "
                "source.aws_secret_access_key, or provide them the usual AWS way (environment, "
                "profile, web identity, instance role)",
                bad_configuration=True,
            )
        if error.code in _REFUSED_CREDENTIALS:
            given = "source.aws_access_key_id" if self.source.aws_access_key_id else "the AWS chain"
            return StartupError(
                f"{where} refused the credentials (from {given}): {_said(error)}",
                bad_configuration=True,
            )
        return StartupError(f"{where} denied {doing}: {_said(error)}", bad_configuration=True)

    def _where(self, service: str) -> str:
        if self.source.endpoint_url:
            return f"{service} at {self.source.endpoint_url} (source.endpoint_url)"
        # botocore's own override, for when the configuration names no endpoint.
        for variable in _ENDPOINT_VARIABLES[service]:
            if os.environ.get(variable):
                return f"{service} at {os.environ[variable]} ({variable})"
        return f"{service} in region {self.source.region} (source.region)"


def _said(error: StreamError) -> str:
    return f"{error.code}: {error.message}" if error.code else error.message


async def _check_snapshot_bucket(factory: ProcessorFactory, retry_for: float) -> None:
    """The SQLite processor's snapshot bucket, when this start will use it (a restore or
    snapshots on a schedule): a wrong name fails now, not at the first snapshot."""
    snapshots = getattr(factory, "snapshots", None)
    if not isinstance(snapshots, SqliteSnapshots):
        return
    settings = snapshots.settings
    restoring = settings.restore != "never" and not snapshots.path.exists()
    if not restoring and settings.interval.total_seconds() <= 0:
        return
    store = S3ObjectStore(
        settings.bucket, region=settings.region, endpoint_url=settings.endpoint_url
    )
    stopped = eventloop.stop_requested
    try:
        await asyncio.to_thread(
            store.check_bucket, retry_for=retry_for, stop=lambda: stopped() is not None
        )
    except BucketMissingError:
        where = settings.endpoint_url or f"region {settings.region}"
        raise StartupError(
            f"snapshot bucket {settings.bucket!r} (processor.options.snapshots.bucket) does not "
            f"exist at {where}",
            bad_configuration=True,
        ) from None
    except ObjectStoreError as exc:
        raise StartupError(
            f"cannot check snapshot bucket {settings.bucket!r} "
            f"(processor.options.snapshots.bucket): {exc}",
            bad_configuration=not exc.transient,
        ) from exc
