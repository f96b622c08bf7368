"""Cut off from the lease table (renewals hang, as on a silent connection): the worker stops
every shard's consumer at its own lease deadline, even one stuck in the processor, instead of
when a socket finally times out, long after another worker may have taken the shard."""

from __future__ import annotations

import asyncio
import time

from bridge.core.leasing import Lease
from bridge.local.endpoint import LocalEndpoint
from bridge.processors.api import EndReason
from tests.support.memory import RecordSink
from tests.support.workload import Writer, create_table, plan_writes
from tests.worker.conftest import dynamodb, running_worker, worker_config

LEASE = 2.0


async def test_consumers_stop_at_the_lease_deadline_while_renewals_hang(
    local_endpoint: LocalEndpoint,
) -> None:
    ddb = dynamodb(local_endpoint.endpoint_url)
    table, _ = create_table(ddb, prefix="silent")
    await asyncio.to_thread(Writer(ddb, table, plan_writes(100, 20)).write)
    sink = RecordSink(hang=True)  # every batch stays in the processor: nothing else checks
    config = worker_config(
        local_endpoint.endpoint_url,
        table,
        sink,
        coordination={
            "lease_duration": f"{LEASE}s",
            "take_interval": "100ms",
            "drain_timeout": "1s",
        },
    )
    async with running_worker(config) as running:
        store = running.worker.store
        await sink.wait_until(lambda: sink.outage_calls >= 1, within=30)
        held = set(running.worker.status().last_reads)
        assert held

        cut_at = time.monotonic()
        silence = asyncio.Event()

        async def renew_into_silence(lease: Lease) -> Lease:
            await silence.wait()  # never answers
            raise AssertionError("unreachable")

        store.renew = renew_into_silence  # type: ignore[method-assign]
        await sink.wait_until(
            lambda: (
                {shard for shard, reason in sink.ends if reason is EndReason.LEASE_LOST} >= held
            ),
            within=LEASE * 3,
        )
        stopped_after = time.monotonic() - cut_at
        running.worker.request_stop()

    # The last good renewal was at most a renew interval (lease / 3) before the cut.
    assert stopped_after <= LEASE + 0.5, stopped_after
    assert sink.records == []
