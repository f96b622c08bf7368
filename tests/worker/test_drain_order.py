"""A draining worker removes its heartbeat row before it releases its leases: the others read
the lease table first and the heartbeat rows second in a take cycle, so whoever sees a lease
released also sees its old owner gone, and takes the lease on that very cycle instead of
counting the leaver in its fair share for one more."""

from __future__ import annotations

import asyncio

from bridge.local.endpoint import LocalEndpoint
from tests.support.memory import RecordSink
from tests.support.workload import Writer, create_table, plan_writes
from tests.worker.conftest import dynamodb, running_worker, worker_config


async def test_the_heartbeat_row_goes_before_any_lease_is_released(
    local_endpoint: LocalEndpoint,
) -> None:
    ddb = dynamodb(local_endpoint.endpoint_url)
    table, _ = create_table(ddb, prefix="drain")
    await asyncio.to_thread(Writer(ddb, table, plan_writes(40, 10)).write)
    sink = RecordSink()
    config = worker_config(local_endpoint.endpoint_url, table, sink)
    calls: list[str] = []
    async with running_worker(config) as running:
        await sink.wait_until(lambda: len(sink.records) >= 40, within=30)
        worker = running.worker
        registry = worker.membership.registry
        assert registry is not None
        leave, release = registry.leave, worker.store.release

        async def recorded_leave(worker_id: str) -> None:
            calls.append("heartbeat removed")
            await leave(worker_id)

        async def recorded_release(lease: object) -> None:
            calls.append("lease released")
            await release(lease)  # type: ignore[arg-type]

        registry.leave = recorded_leave  # type: ignore[method-assign]
        worker.store.release = recorded_release  # type: ignore[method-assign]
        await running.stop()
        leases = await running.leases()

    assert "lease released" in calls
    assert calls[0] == "heartbeat removed", calls
    assert all(lease.owner is None for lease in leases.values())
