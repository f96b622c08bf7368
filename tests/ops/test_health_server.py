"""The probe and metrics endpoints answer over real HTTP from the worker's event loop."""

from __future__ import annotations

import aiohttp

from bridge.health import HealthServer, Readiness
from bridge.metrics import Metrics


async def test_metrics_and_probes() -> None:
    metrics = Metrics("app-x", "orders")
    state = Readiness(False, "no leases yet")
    server = HealthServer(metrics, lambda: state, host="127.0.0.1", port=0)
    await server.start()
    base = f"http://127.0.0.1:{server.port}"
    try:
        async with aiohttp.ClientSession() as http:
            metrics.records_processed.inc(7)
            async with http.get(f"{base}/metrics") as answer:
                text = await answer.text()
            assert 'bridge_records_processed_total{app="app-x",table="orders"} 7.0' in text
            async with http.get(f"{base}/healthz") as answer:
                assert answer.status == 200
            async with http.get(f"{base}/readyz") as answer:
                assert answer.status == 503
                assert "no leases yet" in await answer.text()
            state = Readiness(True, "ready")
            async with http.get(f"{base}/readyz") as answer:
                assert answer.status == 200
    finally:
        await server.stop()
