"""Worker heartbeat rows in the coordination table, beside the leader's lock."""

from __future__ import annotations

import uuid

import aioboto3

from bridge.config import SourceConfig
from bridge.core.leasing import ExpiryTracker
from bridge.leases.heartbeats import WorkerRegistry
from bridge.leases.leader import LeaderElection
from bridge.local.processes import MotoServer


async def test_beats_are_counted_listed_and_removed_on_leave(moto_server: MotoServer) -> None:
    table = f"app-{uuid.uuid4().hex[:6]}-leases-coordination"
    session = aioboto3.Session()
    async with session.client(
        "dynamodb", endpoint_url=moto_server.endpoint_url, region_name="us-east-1"
    ) as client:
        registry = WorkerRegistry(client, table)
        await registry.ensure_table()
        await registry.ensure_table()  # idempotent
        await registry.beat("w1")
        await registry.beat("w1")
        await registry.beat("w2")
        rows = {row.key: row.counter for row in await registry.workers()}
        assert rows == {"w1": 2, "w2": 1}

        tracker = ExpiryTracker()
        tracker.observe(await registry.workers(), now=0.0)
        await registry.beat("w1")
        tracker.observe(await registry.workers(), now=10.0)
        alive = {
            row.key for row in await registry.workers() if not tracker.expired(row, 10.0, 10.0)
        }
        assert alive == {"w1"}  # w2 has not beaten for a whole lease duration

        await registry.leave("w2")
        assert [row.key for row in await registry.workers()] == ["w1"]

        # the leader's lock lives in the same table without disturbing the rows
        source = SourceConfig(
            table="orders",
            endpoint_url=moto_server.endpoint_url,
            aws_access_key_id="testing",  # type: ignore[arg-type]
            aws_secret_access_key="testing",  # type: ignore[arg-type]
        )
        leader = LeaderElection(source, table=table, worker_id="w1", lease_duration=2.0)
        leader.start()
        try:
            assert leader.wait_until_leader(30)
            assert [row.key for row in await registry.workers()] == ["w1"]
        finally:
            leader.stop()
