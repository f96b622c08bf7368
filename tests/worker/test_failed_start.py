"""A worker whose processor cannot start leaves the cluster at once: no heartbeat row left for
the others to count, and the leader lock given back rather than left to expire."""

from __future__ import annotations

import pytest

from bridge.local.endpoint import LocalEndpoint
from bridge.processors.api import Processor, ProcessorFactory
from bridge.worker.app import open_runtime
from tests.support.memory import RecordSink
from tests.support.workload import create_table
from tests.worker.conftest import dynamodb, worker_config


class UnreachableDestination(ProcessorFactory):
    def __init__(self, **_: object) -> None:
        pass

    async def open(self) -> None:
        raise ConnectionError("destination unreachable at 127.0.0.1:1")

    def create(self, shard_id: str) -> Processor:
        raise AssertionError("no shard may start without an open factory")


async def test_a_failed_start_removes_the_heartbeat_and_releases_the_leader_lock(
    local_endpoint: LocalEndpoint,
) -> None:
    table, _ = create_table(dynamodb(local_endpoint.endpoint_url), prefix="failstart")
    config = worker_config(
        local_endpoint.endpoint_url,
        table,
        RecordSink(),
        processor={"kind": f"{__name__}:UnreachableDestination", "options": {}},
    )
    async with open_runtime(config) as runtime:
        membership = runtime.worker.membership
        with pytest.raises(ConnectionError, match="unreachable"):
            await runtime.worker.run(runtime.stream_arn)
        assert membership.registry is not None
        rows = await membership.registry.workers()
        assert config.worker_id not in {row.key for row in rows}, "heartbeat row left behind"
        assert membership.leader is None or not membership.leader.is_leader
