"""Records trimmed by retention before they were read: counted exactly, ``on_trimmed`` obeyed.

A first worker reads batch A and checkpoints it. While no worker runs, batch B is written,
time passes, batch C is written and retention trims A and B. The next worker's checkpoint
points into the trimmed part: B is lost, and bridge must say exactly how much (sequence
numbers of ``bridge local`` are consecutive within a shard, so the count can be exact).

Three layouts of the loss, as they happen after an outage:

- ``open``: the shard is still open; C follows B in the same shard.
- ``closed``: the shard closed after B (C went to its children) and nothing of it is left
  but its place in the stream; the loss runs to the shard's ending sequence number.
- ``gone``: the closed shard aged out of the stream entirely; how many records went with it
  cannot be known, so ``resume`` treats it as ended (its children go on) and counts nothing.

One shard at the start, so the count never depends on which shard noticed first.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from bridge.core.leasing import Lease
from bridge.core.positions import SHARD_END
from bridge.errors import WorkerFailedError
from bridge.local.endpoint import LocalEndpoint
from bridge.processors.api import EndReason, LeaseLostError
from tests.support.memory import RecordSink
from tests.support.workload import (
    Writer,
    create_table,
    expected_versions,
    plan_writes,
    versions_by_key,
)
from tests.worker.conftest import dynamodb, running_worker, worker_config

A, B, C = 300, 200, 300
LOST = {"open": B, "closed": B, "gone": 0}  # "gone": unknowable, so not counted


async def lose_b(local: LocalEndpoint, layout: str) -> tuple[str, str, Writer, str, str]:
    """Read A, then lose B; returns (table, app, writer, shard, its checkpoint after A)."""
    ddb = dynamodb(local.endpoint_url)
    table, _ = create_table(ddb)
    writer = Writer(ddb, table, plan_writes(A + B + C, keys=50))
    sink = RecordSink()
    config = worker_config(local.endpoint_url, table, sink)
    async with running_worker(config) as running:
        await asyncio.to_thread(writer.write, A)
        await sink.wait_until(lambda: len(sink.records) >= A, within=60)
        await running.stop()
        [(shard, lease)] = (await running.leases()).items()
    assert lease.checkpoint == sink.records[-1].seq

    writer.write(B)
    if layout == "open":
        local.advance_clock("50m")
        writer.write(C)
        trimmed = local.trim(advance="20m")  # retention 1h: A and B are older than that
        assert trimmed["records"] == A + B
    else:
        local.advance_clock("30m")
        local.rotate()
        if layout == "gone":
            local.advance_clock("40m")  # past the closed shard's retention: it leaves
        writer.write(C)
        local.trim(advance="40m" if layout == "closed" else "25m")
        shards = local.stats()
        assert shards["records_retained"] == C
        assert shards["shards_closed"] == (1 if layout == "closed" else 0)
    return table, config.app, writer, shard, lease.checkpoint


@pytest.mark.parametrize("layout", ["open", "closed", "gone"])
async def test_on_trimmed_fail_stops_with_a_clear_error_and_counts_the_loss(
    make_local_endpoint: Callable[..., LocalEndpoint], layout: str
) -> None:
    local = make_local_endpoint(shards=1, retention="1h")
    table, app, _, shard, checkpoint = await lose_b(local, layout)

    sink = RecordSink()
    config = worker_config(local.endpoint_url, table, sink, app=app, source={"on_trimmed": "fail"})
    async with running_worker(config) as running:
        with pytest.raises(WorkerFailedError) as failed:
            await asyncio.wait_for(asyncio.shield(running.task), 60)
        lost = running.worker.metrics.value("bridge_records_lost_total")
        after = await running.leases()

    message = str(failed.value)
    assert shard in message and "trimmed" in message and "on_trimmed: fail" in message
    assert lost == LOST[layout]
    assert sink.records == []  # nothing past the gap, not even in the children
    assert sink.ends == [(shard, EndReason.FAILED)]
    assert after[shard].checkpoint == checkpoint  # the checkpoint stays before the gap
    assert all(lease.owner is None for lease in after.values())


@pytest.mark.parametrize("layout", ["open", "closed", "gone"])
async def test_on_trimmed_resume_counts_the_loss_and_delivers_everything_after(
    make_local_endpoint: Callable[..., LocalEndpoint], layout: str
) -> None:
    local = make_local_endpoint(shards=1, retention="1h")
    table, app, writer, shard, _ = await lose_b(local, layout)

    sink = RecordSink()
    config = worker_config(
        local.endpoint_url, table, sink, app=app, source={"on_trimmed": "resume"}
    )
    async with running_worker(config) as running:
        await sink.wait_until(lambda: len(sink.records) >= C, within=60)
        await running.stop()
        lost = running.worker.metrics.value("bridge_records_lost_total")
        leases = await running.leases()

    assert lost == LOST[layout]
    seen = [(r.key, r.version) for r in sink.records]
    assert len(seen) == C
    assert versions_by_key(seen) == expected_versions(writer.written[A + B :])
    if layout != "open":  # the trimmed shard ended, so its children could start
        assert (shard, EndReason.SHARD_END) in sink.ends
        assert shard not in leases or leases[shard].checkpoint == SHARD_END  # or cleaned up
        assert {r.shard for r in sink.records} == set(leases) - {shard}


async def test_a_loss_is_counted_once_when_the_lease_moves_before_the_checkpoint_past_it(
    make_local_endpoint: Callable[..., LocalEndpoint],
) -> None:
    """The checkpoint past the gap is refused (the lease moved on): whoever resumes from the
    checkpoint before the gap finds the same gap. Only a loss a checkpoint covers is counted,
    so the two finds count it once."""
    local = make_local_endpoint(shards=1, retention="1h")
    table, app, _, _, _ = await lose_b(local, "open")

    sink = RecordSink()
    config = worker_config(
        local.endpoint_url, table, sink, app=app, source={"on_trimmed": "resume"}
    )
    async with running_worker(config) as running:
        store = running.worker.store
        checkpoint = store.checkpoint
        refused: list[str] = []

        async def refuse_the_first(lease: Lease, sequence_number: str) -> Lease:
            if not refused:
                refused.append(sequence_number)
                raise LeaseLostError(f"lease {lease.key} taken by another worker (injected)")
            return await checkpoint(lease, sequence_number)

        store.checkpoint = refuse_the_first  # type: ignore[method-assign]
        # C delivered, the checkpoint refused, the lease taken again: C delivered again
        await sink.wait_until(lambda: len(sink.records) >= 2 * C, within=60)
        await running.stop()
        lost = running.worker.metrics.value("bridge_records_lost_total")

    assert refused, "no checkpoint was refused"
    assert [reason for _, reason in sink.ends].count(EndReason.LEASE_LOST) == 1
    assert lost == B, f"the loss was counted {lost / B:g} times"
