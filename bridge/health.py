"""``/metrics``, ``/healthz`` and ``/readyz`` on ``metrics.port``, served from the event loop.

Serving from the loop itself is deliberate: if the loop is stuck, ``/healthz`` stops answering
and the orchestrator restarts the pod, which is the point of a liveness probe.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import structlog
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from bridge.metrics import Metrics

if TYPE_CHECKING:
    from bridge.worker.worker import Worker

log = structlog.get_logger("bridge.health")


@dataclass(frozen=True)
class Readiness:
    ready: bool
    reason: str


def worker_readiness(worker: Worker, ready_lag: float) -> Readiness:
    """Ready: running, no fatal error, lag under ``ready_lag``, and the processor (when it
    judges its own freshness, as the SQLite replica does) agrees. A worker holding no lease
    is ready too: in a cluster larger than the shard count that is its legitimate share."""
    if worker.state.fatal is not None:
        return Readiness(False, f"failed: {worker.state.fatal}")
    if worker.stopping.is_set():
        return Readiness(False, "stopping")
    now = worker.clock()
    coordination = worker.config.coordination
    patience = max(
        coordination.lease_duration.total_seconds(), 3 * coordination.take_interval.total_seconds()
    )
    if worker.last_take_ok is None:
        return Readiness(False, "starting: lease table not read yet")
    if now - worker.last_take_ok > patience:
        return Readiness(False, f"lease table not read for {now - worker.last_take_ok:.0f}s")
    quiet = max(patience, 3 * worker.config.polling.idle_interval.total_seconds())
    for key, owned in sorted(worker.state.owned.items()):
        consumer = owned.consumer
        if consumer is not None and owned.task is not None and not owned.task.done():
            silent = time.monotonic() - consumer.last_read_at
            if silent > quiet:
                return Readiness(False, f"shard {key} not read for {silent:.0f}s")
    lag = worker.metrics.value("bridge_lag_ms")
    if lag >= ready_lag * 1000:
        return Readiness(False, f"lag {lag:.0f} ms over {ready_lag * 1000:.0f} ms")
    verdict = getattr(getattr(worker.factory, "readiness", None), "verdict", None)
    if callable(verdict):
        ready, reason = verdict(time.monotonic())
        if not ready:
            return Readiness(False, f"processor: {reason}")
    return Readiness(True, "ready")


class HealthServer:
    def __init__(
        self,
        metrics: Metrics,
        readiness: Callable[[], Readiness],
        *,
        host: str = "0.0.0.0",  # probes and scrapers come from outside the pod
        port: int = 9400,
    ) -> None:
        self.metrics = metrics
        self.readiness = readiness
        self.host = host
        self.port = port
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/metrics", self._metrics)
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/readyz", self._readyz)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        server = site._server  # the bound port, when 0 asked for any free one
        sockets = getattr(server, "sockets", None) or []
        if sockets:
            self.port = int(sockets[0].getsockname()[1])
        log.info("serving metrics and probes", port=self.port)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _metrics(self, request: web.Request) -> web.Response:
        body = generate_latest(self.metrics.registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def _healthz(self, request: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    async def _readyz(self, request: web.Request) -> web.Response:
        state = self.readiness()
        return web.Response(status=200 if state.ready else 503, text=state.reason + "\n")
