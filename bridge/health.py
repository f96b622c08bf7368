"""``/metrics``, ``/healthz`` and ``/readyz`` on ``metrics.port``, served from the event loop.

Serving from the loop itself is deliberate: if the loop is stuck, ``/healthz`` stops answering
and the orchestrator restarts the pod, which is the point of a liveness probe.
"""

from __future__ import annotations

from collections.abc import Callable

import structlog
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from bridge.core.readiness import Readiness
from bridge.metrics import Metrics

__all__ = ["HealthServer", "Readiness"]

log = structlog.get_logger("bridge.health")


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
