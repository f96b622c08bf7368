"""In-process workers against ``bridge local``: configuration, a running worker, the lease table."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import boto3

from bridge.config import BridgeConfig
from bridge.core.leasing import Lease
from bridge.worker.app import Runtime, open_runtime
from bridge.worker.worker import Worker
from tests.support.memory import RecordSink

SINK_PROCESSOR = "tests.support.memory:SinkProcessor"


def dynamodb(endpoint_url: str) -> Any:
    return boto3.client("dynamodb", endpoint_url=endpoint_url, region_name="us-east-1")


def worker_config(
    endpoint_url: str,
    table: str,
    sink: RecordSink,
    *,
    app: str | None = None,
    source: dict[str, Any] | None = None,
    processor: dict[str, Any] | None = None,
    coordination: dict[str, Any] | None = None,
    **extra: Any,
) -> BridgeConfig:
    """A one-worker configuration tuned for tests: quick polls, quick lease cycles."""
    return BridgeConfig.model_validate(
        {
            "app": app or f"test-{uuid.uuid4().hex[:8]}",
            "worker_id": "worker-1",
            "source": {"table": table, "endpoint_url": endpoint_url, **(source or {})},
            "coordination": {
                "lease_duration": "6s",
                "take_interval": "100ms",
                "shard_sync_interval": "5s",
                **(coordination or {}),
            },
            "polling": {"interval": "20ms", "idle_interval": "200ms", "max_records": 1000},
            "processor": {
                "kind": SINK_PROCESSOR,
                "options": {"sink": sink},
                "max_attempts": 2,
                **(processor or {}),
            },
            "metrics": {"port": 0},
            **extra,
        }
    )


@dataclass
class RunningWorker:
    runtime: Runtime
    task: asyncio.Task[None]

    @property
    def worker(self) -> Worker:
        return self.runtime.worker

    async def stop(self) -> None:
        """SIGTERM's path: request a stop and wait for the drain; re-raises the worker's error."""
        self.runtime.worker.request_stop()
        async with asyncio.timeout(30):
            await asyncio.shield(self.task)

    async def leases(self) -> dict[str, Lease]:
        return {lease.key: lease for lease in await self.runtime.worker.store.list_leases()}


@contextlib.asynccontextmanager
async def running_worker(config: BridgeConfig) -> AsyncIterator[RunningWorker]:
    """A worker running in this event loop; stopped (and awaited) on the way out."""
    async with open_runtime(config) as runtime:
        task = asyncio.create_task(runtime.worker.run(runtime.stream_arn), name="worker")
        running = RunningWorker(runtime, task)
        try:
            yield running
        finally:
            if not task.done():
                runtime.worker.request_stop()
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(task, 30)
