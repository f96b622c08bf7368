"""A worker dies (SIGKILL) or leaves (SIGTERM): the others carry on with its shards.

Failover is timed from the signal to the moment another process started reading each of the
leaving worker's shards (its processor's ``start``: the lease taken, the consumer launched),
which is what the lease protocol decides; how soon records then flow depends on how busy the
machine is, and is measured by ``scripts/bench.py disruption``. The test also waits until every
one of the shards was processed elsewhere.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from datetime import UTC, datetime

import pytest

from tests.cluster.analysis import (
    assert_duplicates_only_after_checkpoints,
    duplicates,
    start_times,
    takeover_times,
)
from tests.cluster.conftest import Cluster, Timing, WorkerProcess
from tests.cluster.scenarios import balanced_trio, busiest, finish

# After a take: launching the consumer and opening its processor, on 2 busy cores.
START_ALLOWANCE = 0.5


def first_arrivals(
    cluster: Cluster, shards: list[str], gone: WorkerProcess, since: float
) -> dict[str, str]:
    """How each shard first came to a worker other than ``gone`` after ``since`` (epoch
    seconds): ``received`` (handed over), ``taken free`` (released), or ``taken from
    <owner>`` (expired, or stolen)."""
    after = datetime.fromtimestamp(since, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")
    first: dict[str, tuple[str, str]] = {}
    for worker in cluster.workers.values():
        if worker is gone:
            continue
        for event in worker.log_events():
            stamp = str(event.get("timestamp", ""))
            if event.get("shard") not in shards or stamp < after:
                continue
            if event.get("event") == "lease received":
                how = "received"
            elif event.get("event") in ("lease taken", "lease stolen"):
                previous = event.get("previous_owner")
                how = "taken free" if previous is None else f"taken from {previous}"
            else:
                continue
            if event["shard"] not in first or stamp < first[event["shard"]][0]:
                first[event["shard"]] = (stamp, how)
    return {shard: first.get(shard, ("", "not seen"))[1] for shard in shards}


def kill_and_time_failover(cluster: Cluster, victim: WorkerProcess) -> dict[str, float]:
    """SIGKILL ``victim``; returns its shards' takeover times once every one was taken over,
    after checking that only records after its last checkpoints were handed over twice."""
    timing = cluster.timing
    killed_wall = time.time()
    killed_at = victim.kill()
    # Nobody else writes its leases until they expire: these are its last checkpoints.
    leases = cluster.leases()
    shards = [lease.key for lease in leases if lease.owner == victim.name and not lease.finished]
    checkpoints = {lease.key: lease.checkpoint for lease in leases}
    assert shards, f"{victim.name} held no leases when killed"

    def times() -> dict[str, float | None]:
        return takeover_times(cluster.journal(), shards, after=killed_at, not_pid=victim.pid)

    cluster.wait_for(
        lambda: None not in times().values(),
        timing.lease_duration * 4,
        f"{victim.name}'s shards processed elsewhere",
    )
    starts = start_times(cluster.journal(), shards, after=killed_at, not_pid=victim.pid)
    failover = {shard: t for shard, t in starts.items() if t is not None}
    assert failover.keys() == set(shards), f"no start seen elsewhere: {starts}"
    print(
        f"\nkill -9 {victim.name} ({len(shards)} shards): failover "
        + ", ".join(f"{t:.2f}s" for t in sorted(failover.values()))
        + f" (lease {timing.lease_duration}s, take interval {timing.take_interval}s)"
    )
    # Taken over once expired, from the dead owner (how soon is what the disruption benchmark
    # measures, on a quiet machine; a loaded one only makes it later, never unsafe).
    how = first_arrivals(cluster, shards, victim, killed_wall)
    assert set(how.values()) == {f"taken from {victim.name}"}, how
    mine = [
        d
        for d in duplicates(cluster.journal())
        if d.shard in shards and d.first.pid == victim.pid and d.again.t >= killed_at
    ]
    assert_duplicates_only_after_checkpoints(mine, pid=victim.pid, checkpoints=checkpoints)
    return failover


def test_kill_9_moves_its_shards_within_a_lease_and_a_take(
    cluster: Callable[..., Cluster],
) -> None:
    trio = balanced_trio(cluster)
    victim = busiest(trio)
    kill_and_time_failover(trio, victim)
    trio.wait_for(trio.balanced, 30, "two workers within 1 of each other")
    finish(trio, {victim.pid})


@pytest.mark.slow
def test_kill_9_three_times_with_replacements(cluster: Callable[..., Cluster]) -> None:
    trio = balanced_trio(cluster)
    killed: set[int] = set()
    worst = 0.0
    for round_ in range(3):
        victim = busiest(trio)
        killed.add(victim.pid)
        worst = max(worst, *kill_and_time_failover(trio, victim).values())
        trio.start_worker(f"r{round_}")
        trio.wait_for(trio.balanced, 60, "the replacement within 1 of the others")
        trio.wait_until_settled()
    print(f"worst failover over 3 kills: {worst:.2f}s")
    finish(trio, killed)


def test_sigterm_hands_its_shards_over_at_once(cluster: Callable[..., Cluster]) -> None:
    trio = balanced_trio(cluster)
    timing = trio.timing
    leaving = busiest(trio)
    shards = [
        lease.key for lease in trio.leases() if lease.owner == leaving.name and not lease.finished
    ]
    sent_wall = time.time()
    sent = leaving.terminate()
    assert leaving.wait(30) == 0, leaving.log_tail()
    exited = time.monotonic() - sent

    def times() -> dict[str, float | None]:
        journal = trio.journal()
        # A shard that closed meanwhile may have been read to its end by the leaving worker
        # during its drain: nothing of it is left to hand over (its children are new leases).
        finished_in_drain = {
            event.shard
            for event in journal.events
            if event.event == "end" and event.reason == "shard_end" and event.pid == leaving.pid
        }
        handed_over = [shard for shard in shards if shard not in finished_in_drain]
        return takeover_times(journal, handed_over, after=sent, not_pid=leaving.pid)

    trio.wait_for(lambda: None not in times().values(), timing.lease_duration * 4, "takeover")
    handed_over = list(times())
    starts = start_times(trio.journal(), handed_over, after=sent, not_pid=leaving.pid)
    failover = {shard: t for shard, t in starts.items() if t is not None}
    assert failover.keys() == set(handed_over), f"no start seen elsewhere: {starts}"
    print(
        f"\nSIGTERM {leaving.name} ({len(shards)} shards, exit 0 after {exited:.2f}s): failover "
        + ", ".join(f"{t:.2f}s" for t in sorted(failover.values()))
        + f" (lease {timing.lease_duration}s, take interval {timing.take_interval}s)"
    )
    # Given up, not left to expire: each shard handed over at a batch boundary to a worker that
    # asked for it or, when nobody asked before the leaving worker's bounded wait ended (a
    # loaded machine), released and taken free. A lease taken after expiry would name its
    # previous owner.
    how = first_arrivals(trio, handed_over, leaving, sent_wall)
    assert set(how.values()) <= {"received", "taken free"}, how
    handed = {event["shard"] for event in leaving.logged("lease handed over")}
    assert {shard for shard, arrived in how.items() if arrived == "received"} <= handed
    # Graceful: the last batches were checkpointed before the release, so none is repeated.
    again = [
        d
        for d in duplicates(trio.journal())
        if d.shard in shards and d.first.pid == leaving.pid and d.again.t >= sent
    ]
    assert not again, f"records of the leaving worker processed twice: {again[:3]}"
    trio.wait_for(trio.balanced, 30, "two workers within 1 of each other")
    finish(trio, killed=set())


@pytest.mark.slow
@pytest.mark.parametrize("liveness", ["lease", "heartbeat"])
def test_heartbeat_liveness_writes_no_renewals_and_fails_over_within_a_lease(
    cluster: Callable[..., Cluster], liveness: str
) -> None:
    """``coordination.liveness: heartbeat``: the leases held are kept by the heartbeat row
    alone (their counters stand still while the heartbeats move), and a kill -9 still moves
    them once the heartbeat expires. Run with ``lease`` too, so the test is seen to tell the
    two apart."""
    trio = balanced_trio(functools.partial(cluster, timing=Timing(liveness=liveness)))
    before = {lease.key: lease for lease in trio.leases()}
    beats = trio.heartbeats()
    # Three heartbeats of every worker: three renew intervals.
    trio.wait_for(
        lambda: all(trio.heartbeats().get(name, 0) >= beats[name] + 3 for name in beats),
        trio.timing.lease_duration * 3,
        "three heartbeats of every worker",
    )
    kept = [
        (lease.counter - before[lease.key].counter)
        for lease in trio.leases()
        if lease.key in before
        and lease.owner is not None
        and lease.owner == before[lease.key].owner
        and not lease.finished
    ]
    assert kept, "no lease kept its owner over three renew intervals"
    if liveness == "heartbeat":
        assert set(kept) == {0}, f"lease counters moved without a change of owner: {kept}"
    else:
        assert min(kept) >= 2, f"leases renewed less than twice in three intervals: {kept}"
    victim = busiest(trio)
    failover = kill_and_time_failover(trio, victim)
    if liveness == "heartbeat":
        bound = trio.timing.lease_duration + START_ALLOWANCE
        assert max(failover.values()) <= bound, f"failover slower than {bound}s: {failover}"
    trio.wait_for(trio.balanced, 30, "two workers within 1 of each other")
    finish(trio, {victim.pid})


@pytest.mark.slow
def test_workers_stopping_together_do_not_wait_for_askers(
    cluster: Callable[..., Cluster],
) -> None:
    """A whole deployment stopped at once (scale to zero): each leaving worker sees the others
    leaving too, so nobody will ask for its leases; it releases them at once instead of
    waiting the two take intervals a handoff may take."""
    timing = Timing(take_interval=2.0, lease_duration=10.0)
    pair = cluster(timing=timing)
    pair.start_writer()
    for name in ("w1", "w2"):
        pair.start_worker(name)
    pair.wait_for(pair.balanced, 60, "two workers within 1 of each other")
    sent = min(worker.terminate() for worker in pair.workers.values())
    for worker in pair.workers.values():
        assert worker.wait(30) == 0, worker.log_tail()
    took = time.monotonic() - sent
    print(f"\nboth stopped {took:.2f}s after SIGTERM")
    assert took < 2 * timing.take_interval + 1, f"waited {took:.2f}s for askers"
    assert all(lease.owner is None for lease in pair.leases()), "a lease was left held"
