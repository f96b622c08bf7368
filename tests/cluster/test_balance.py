"""Three workers share eight rotating shards evenly, and then leave them where they are."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from tests.cluster.analysis import duplicates
from tests.cluster.conftest import Cluster, Timing
from tests.cluster.scenarios import WORKERS, finish, steals


def converge_then_stay_put(make: Callable[..., Cluster], window: float) -> None:
    cluster = make()
    cluster.start_writer()
    for name in WORKERS:
        cluster.start_worker(name)
    converged = cluster.wait_for(cluster.balanced, 60, "three workers within 1 of each other")
    print(f"\nconverged {converged:.2f}s after starting 3 workers: {cluster.load()}")

    # Stay put: sample the lease table through the window; every lease keeps the one owner it
    # had (a new child lease gets its first owner, a finished one may be released: no moves).
    owners: dict[str, list[str]] = {}
    samples = 0
    deadline = time.monotonic() + window
    while time.monotonic() < deadline:
        for lease in cluster.leases():
            seen = owners.setdefault(lease.key, [])
            if lease.owner is not None and lease.owner not in seen:
                seen.append(lease.owner)
        samples += 1
        for worker in cluster.workers.values():
            worker.ensure_alive()
        time.sleep(0.1)
    moved = {key: seen for key, seen in owners.items() if len(seen) > 1}
    new = len(owners) - 8
    print(f"stay-put window {window:.1f}s: {samples} samples, {len(owners)} leases ({new} new)")
    print(f"steals over the whole run: {steals(cluster)}")
    assert not moved, f"leases changed owner in a balanced cluster: {moved}"
    cluster.wait_for(cluster.balanced, 10, "still within 1 after the window")
    print(f"after the window: {cluster.load()}")
    # Every worker was processing its shards through the window.
    pids = {line.pid for line in cluster.journal().lines if line.t > deadline - window}
    assert pids == {worker.pid for worker in cluster.workers.values()}
    finish(cluster, killed=set())


def test_three_workers_converge_and_stay_put(cluster: Callable[..., Cluster]) -> None:
    converge_then_stay_put(cluster, window=10 * Timing().take_interval)


@pytest.mark.slow
def test_three_workers_stay_put_for_30_seconds(cluster: Callable[..., Cluster]) -> None:
    converge_then_stay_put(cluster, window=30.0)


@pytest.mark.slow
def test_a_joining_worker_is_handed_its_share_at_batch_boundaries(
    cluster: Callable[..., Cluster],
) -> None:
    """Rebalancing toward a new worker asks the owners for leases instead of taking them from
    under a batch: every lease it gets is handed over after a checkpoint, and no record is
    processed twice."""
    pair = cluster()
    pair.start_writer()
    for name in ("w1", "w2"):
        pair.start_worker(name)
    pair.wait_for(pair.balanced, 60, "two workers within 1 of each other")
    pair.wait_until_settled()
    joined = pair.start_worker("w3")
    pair.wait_for(pair.balanced, 60, "three workers within 1 of each other")
    events = [event.get("event") for event in joined.log_events()]
    print(f"\nw3 joined: {events.count('lease received')} leases handed over, loads {pair.load()}")
    # Its share may come partly from the children of rotating shards, free to take.
    assert events.count("lease received") >= 1, events
    assert steals(pair) == 0, "a lease was taken from under its owner"
    received = {
        event["shard"] for event in joined.log_events() if event.get("event") == "lease received"
    }
    handed = {
        event["shard"]
        for worker in pair.workers.values()
        for event in worker.log_events()
        if event.get("event") == "lease handed over" and event.get("to") == "w3"
    }
    assert received <= handed, f"received but not handed over by its owner: {received - handed}"
    finish(pair, killed=set())
    assert not duplicates(pair.journal()), "records processed twice across a handoff"
