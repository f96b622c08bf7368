"""A destination that is down (its processor raises ``RetriableError``, or never answers):
the worker waits it out without dead-lettering, halting or checkpointing, and a stop during
the outage still drains promptly, leaving the batch to the shard's next owner."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from bridge.local.endpoint import LocalEndpoint
from bridge.processors.api import EndReason
from tests.support.memory import RecordSink
from tests.support.workload import Writer, create_table, plan_writes
from tests.worker.conftest import dynamodb, running_worker, worker_config

WRITES = 200
KEYS = 40
MAX_ATTEMPTS = 2


async def written_table(local: LocalEndpoint) -> str:
    ddb = dynamodb(local.endpoint_url)
    table, _ = create_table(ddb, prefix="outage")
    await asyncio.to_thread(Writer(ddb, table, plan_writes(WRITES, KEYS)).write)
    return table


async def test_an_outage_past_max_attempts_is_waited_out_and_nothing_is_dead_lettered(
    local_endpoint: LocalEndpoint, tmp_path: Path
) -> None:
    table = await written_table(local_endpoint)
    dead_letters = tmp_path / "dead.jsonl"
    sink = RecordSink(down=True)
    config = worker_config(
        local_endpoint.endpoint_url,
        table,
        sink,
        processor={
            "on_error": "dead_letter",
            "dead_letter_path": str(dead_letters),
            "max_attempts": MAX_ATTEMPTS,
        },
    )
    async with running_worker(config) as running:
        # Three times the attempts that would have dead-lettered or halted a shard.
        await sink.wait_until(lambda: sink.outage_calls >= 3 * MAX_ATTEMPTS * 2, within=60)
        during = await running.leases()
        assert all(lease.checkpoint == "TRIM_HORIZON" for lease in during.values()), "moved"
        assert not dead_letters.exists()
        assert sink.ends == [], "a shard stopped during the outage"

        sink.down = False
        await sink.wait_until(lambda: len(sink.records) >= WRITES, within=60)
        await running.stop()
        metrics = running.worker.metrics

    assert len(sink.records) == WRITES
    assert len({(r.key, r.version) for r in sink.records}) == WRITES
    assert not dead_letters.exists()
    assert metrics.value("bridge_dead_letters_total") == 0
    assert metrics.value("bridge_errors_fatal_total") == 0
    assert metrics.value("bridge_errors_transient_total") >= sink.outage_calls


async def test_a_stop_during_an_outage_drains_at_once_and_checkpoints_nothing(
    local_endpoint: LocalEndpoint,
) -> None:
    table = await written_table(local_endpoint)
    sink = RecordSink(down=True)
    config = worker_config(local_endpoint.endpoint_url, table, sink)
    async with running_worker(config) as running:
        await sink.wait_until(lambda: sink.outage_calls >= 2 * MAX_ATTEMPTS, within=60)
        asked = time.monotonic()
        await running.stop()
        took = time.monotonic() - asked
        leases = await running.leases()

    # Well inside the drain timeout (30 s): the retry wait ends with the stop request.
    assert took < config.coordination.drain_timeout.total_seconds() / 3, took
    assert sink.records == []
    assert leases and all(lease.checkpoint == "TRIM_HORIZON" for lease in leases.values())
    assert all(lease.owner is None for lease in leases.values()), "leases not released"
    assert sink.ends and {reason for _, reason in sink.ends} == {EndReason.SHUTDOWN}


async def test_a_destination_that_never_answers_is_abandoned_at_the_drain_timeout(
    local_endpoint: LocalEndpoint,
) -> None:
    table = await written_table(local_endpoint)
    sink = RecordSink(hang=True)
    config = worker_config(
        local_endpoint.endpoint_url, table, sink, coordination={"drain_timeout": "1s"}
    )
    async with running_worker(config) as running:
        await sink.wait_until(lambda: sink.outage_calls >= 1, within=60)
        asked = time.monotonic()
        await running.stop()
        took = time.monotonic() - asked
        leases = await running.leases()

    assert 1.0 <= took < 10, took
    assert sink.records == []
    assert leases and all(lease.checkpoint == "TRIM_HORIZON" for lease in leases.values())
    assert all(lease.owner is None for lease in leases.values()), "leases not released"
    assert {reason for _, reason in sink.ends} == {EndReason.SHUTDOWN}
