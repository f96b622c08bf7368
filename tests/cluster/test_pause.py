"""A worker frozen (SIGSTOP) for twice the lease duration, then thawed (SIGCONT).

While it is frozen its leases expire and the others take them. When it wakes it still believes
in them for an instant, with perhaps a batch in hand: that batch's checkpoint must be refused
(fencing), the worker must drop those shards, and the lease table's checkpoints must never go
back to where the frozen worker left them.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from tests.cluster.analysis import tenures
from tests.cluster.conftest import CheckpointWatch, Cluster, Timing
from tests.cluster.scenarios import balanced_trio, busiest, finish


@pytest.mark.slow
def test_a_frozen_worker_loses_its_leases_and_writes_nothing_for_them(
    cluster: Callable[..., Cluster],
) -> None:
    # Each batch takes a while, so that the freeze likely catches batches in hand.
    trio = balanced_trio(lambda: cluster(timing=Timing(processor_delay=0.05)))
    lease = trio.timing.lease_duration
    frozen = busiest(trio, besides=trio.leader())  # the leader's lock is another test's
    others = [name for name in trio.running() if name != frozen.name]

    with CheckpointWatch(trio.local.endpoint_url, trio.lease_table) as watch:
        trio.wait_for(lambda: watch.samples >= 3, 10, "the checkpoint watch")
        held = [row.key for row in trio.leases() if row.owner == frozen.name and not row.finished]
        assert held
        paused_at = frozen.pause()

        # Its leases were taken by the others while it was frozen.
        def taken() -> bool:  # by another worker (who may since have read it to its end)
            rows = {row.key: row for row in trio.leases()}
            return all(rows[key].owner in others or rows[key].finished for key in held)

        took = trio.wait_for(taken, 2 * lease, f"{frozen.name}'s leases taken by the others")
        # Frozen for 2 x lease_duration: the pause is the scenario, not a stand-in for a wait.
        time.sleep(max(0.0, paused_at + 2 * lease - time.monotonic()))
        resumed_at = frozen.resume()

        # It notices: each lease it held is logged lost, and its consumers stop.
        def lost() -> dict[str, str]:
            return {
                event["shard"]: event["reason"]
                for event in frozen.log_events()
                if event.get("event") == "lease lost" and event.get("shard") in held
            }

        trio.wait_for(lambda: set(held) <= lost().keys(), 10, f"{frozen.name} logging lease lost")
        old_tenures = [
            t
            for shard in held
            for t in tenures(trio.journal()).get(shard, [])
            if t.worker == frozen.name and t.start < paused_at
        ]
        trio.wait_for(
            lambda: all(trio.journal().ends().get(t.tenure) is not None for t in old_tenures),
            10,
            "its consumers of those shards to stop",
        )
        trio.wait_for(trio.balanced, 30, "three workers balanced again")
    print(
        f"\n{frozen.name} frozen with {len(held)} leases: taken by {others} "
        f"{took:.2f}s after SIGSTOP (lease {lease}s); thawed after {resumed_at - paused_at:.2f}s"
    )
    print(f"its lease-lost reasons: {sorted(set(lost().values()))}")

    # Fencing: no checkpoint of its landed (none ever went backwards, in {watch.samples} samples).
    assert not watch.backwards, f"checkpoints went backwards: {watch.backwards}"
    # It dropped the shards: its old tenures ended with lease_lost, and processed at most the
    # one batch it had in hand when it was frozen.
    journal = trio.journal()
    ends = journal.ends()
    late_batches = 0
    for tenure in tenures(journal).values():
        for t in tenure:
            if t.tenure not in {o.tenure for o in old_tenures}:
                continue
            assert ends[t.tenure].reason == "lease_lost", (t.shard, ends[t.tenure])
            late = [batch for batch in t.batches.values() if batch[1] > resumed_at]
            assert len(late) <= 1, f"{t.shard}: {len(late)} batches after the thaw"
            late_batches += len(late)
    retaken = sorted(
        {
            t.shard
            for ts in tenures(journal).values()
            for t in ts
            if t.worker == frozen.name and t.start > resumed_at and t.shard in held
        }
    )
    print(
        f"in-flight batches processed after the thaw: {late_batches}; "
        f"shards it later took back by rebalancing: {len(retaken)}; "
        f"checkpoint samples: {watch.samples}"
    )
    finish(trio, killed=set())
