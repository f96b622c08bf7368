"""Scale 1 -> 4 -> 1 workers while writing: every change delivered, in order per key, the
duplicates counted, and never two workers processing one shard beyond the batch in hand."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from tests.cluster.conftest import CheckpointWatch, Cluster
from tests.cluster.scenarios import finish, processed_more, steals


@pytest.mark.slow
def test_scale_one_to_four_to_one_while_writing(cluster: Callable[..., Cluster]) -> None:
    group = cluster()
    group.start_writer()
    with CheckpointWatch(group.local.endpoint_url, group.lease_table) as watch:
        first = group.start_worker("w1")
        group.wait_for(lambda: group.balanced(["w1"]), 60, "w1 holding every lease")
        processed_more(group, 300, "w1 processing on its own")

        started = time.monotonic()
        for name in ("w2", "w3", "w4"):
            group.start_worker(name)
        group.wait_for(group.balanced, 60, "four workers within 1 of each other")
        up = time.monotonic() - started
        print(f"\n1 -> 4: balanced {up:.2f}s after starting 3 workers, {steals(group)} steals")
        print(f"loads: {group.load()}")

        def all_busy_since(t: float) -> bool:
            busy = {line.pid for line in group.journal().lines if line.t > t}
            return busy >= {w.pid for w in group.workers.values()}

        group.wait_for(lambda: all_busy_since(time.monotonic() - 1), 30, "all four processing")
        processed_more(group, 600, "four workers processing")

        for name in ("w4", "w3", "w2"):
            leaving = group.workers[name]
            sent = leaving.terminate()
            assert leaving.wait(30) == 0, leaving.log_tail()
            group.wait_for(group.balanced, 30, f"balanced after {name} left")
            print(f"{name} left: exit 0, balanced {time.monotonic() - sent:.2f}s after SIGTERM")
            processed_more(group, 200, f"the rest processing after {name} left")
        group.wait_for(lambda: group.load() == {"w1": 8}, 10, "w1 holding all 8 again")
        first.ensure_alive()
        print(f"steals over the run: {steals(group)}; leases: {len(group.leases())}")

    assert not watch.backwards, f"checkpoints went backwards: {watch.backwards}"
    print(f"checkpoints only moved forward over {watch.samples} samples of the lease table")
    finish(group, killed=set())
