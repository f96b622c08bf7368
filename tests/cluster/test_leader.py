"""The leader (holder of the shard-sync lock) killed: another worker leads within the lock's
lease, and shards opened after that still get leases and are read."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from tests.cluster.conftest import Cluster
from tests.cluster.scenarios import balanced_trio, finish


@pytest.mark.slow
def test_a_killed_leader_is_replaced_and_new_shards_still_get_leases(
    cluster: Callable[..., Cluster],
) -> None:
    trio = balanced_trio(cluster)
    lock_lease = trio.timing.lease_duration  # the lock's lease is the lease duration
    heartbeat = lock_lease / 10  # the lock's heartbeat, and how often contenders look at it
    status = trio.status()
    old = status["leader"]
    assert old in trio.workers, f"bridge status names no running worker as leader: {status}"
    assert trio.leader() == old

    killed_at = trio.workers[old].kill()
    trio.wait_for(lambda: trio.leader() not in (None, old), lock_lease * 4, "a new leader")
    elected = time.monotonic() - killed_at
    new = trio.leader()
    assert new in trio.running()
    print(
        f"\nleader {old} killed: {new} leads {elected:.2f}s later "
        f"(lock lease {lock_lease}s, heartbeat {heartbeat}s)"
    )
    # Within the lock's lease, give or take the calls themselves on two busy cores.
    assert elected <= lock_lease + 0.3
    assert trio.status()["leader"] == new
    trio.wait_for(
        lambda: any(
            e.get("event") == "became leader: this worker syncs shards"
            for e in trio.workers[new].log_events()
        ),
        5,
        "the new leader's log",
    )

    # Shards opened now, under the new leader, get leases and are read.
    opened = trio.local.rotate(trio.table)["opened"]
    assert len(opened) == 8

    def children_read() -> bool:  # a record processed means its lease was taken first
        leased = {lease.key for lease in trio.leases()}
        read = {line.shard for line in trio.journal().lines if line.t > killed_at}
        return set(opened) <= leased & read

    took = trio.wait_for(children_read, 30, "the new shards leased and read")
    print(f"the 8 shards opened by a rotation were leased and read within {took:.2f}s")
    finish(trio, killed={trio.workers[old].pid})
