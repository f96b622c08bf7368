"""Steps the cluster tests share: a balanced trio, the busiest worker, the closing checks."""

from __future__ import annotations

from collections.abc import Callable

from tests.cluster.analysis import (
    assert_all_delivered_in_order,
    assert_duplicates_explained,
    assert_one_owner_at_a_time,
    describe_duplicates,
    duplicates,
    tenures,
)
from tests.cluster.conftest import Cluster, WorkerProcess

WORKERS = ("w1", "w2", "w3")


def balanced_trio(make: Callable[..., Cluster]) -> Cluster:
    """Three workers under writes, within 1 of each other, each processing records."""
    cluster = make()
    cluster.start_writer()
    for name in WORKERS:
        cluster.start_worker(name)
    cluster.wait_for(cluster.balanced, 60, "three workers within 1 of each other")
    cluster.wait_until_settled()
    pids = {w.pid for w in cluster.workers.values()}
    cluster.wait_for(
        lambda: pids <= {line.pid for line in cluster.journal().lines},
        30,
        "every worker processing",
    )
    return cluster


def busiest(cluster: Cluster, besides: str | None = None) -> WorkerProcess:
    """The running worker holding the most leases (not ``besides``)."""
    load = cluster.load()
    names = [name for name in cluster.running() if name != besides]
    return cluster.workers[max(names, key=lambda n: (load.get(n, 0), n))]


def processed_more(cluster: Cluster, lines: int, what: str) -> None:
    """Let the cluster process ``lines`` more records (about ``lines / rate`` seconds)."""
    target = len(cluster.journal().lines) + lines
    cluster.wait_for(lambda: len(cluster.journal().lines) >= target, 60, what)


def steals(cluster: Cluster) -> int:
    """Leases stolen so far, from the workers' logs."""
    return sum(
        1
        for worker in cluster.workers.values()
        for event in worker.log_events()
        if event.get("event") == "lease stolen"
    )


def finish(cluster: Cluster, killed: set[int]) -> None:
    """Stop writing, wait for every change, and check the journal as a whole: nothing lost,
    per-key order of first appearances, every duplicate explained by a kill or a lost lease,
    and one owner per shard at a time (``assert_one_owner_at_a_time``)."""
    assert cluster.writer is not None
    written = cluster.writer.stop()
    waited = cluster.wait_until_delivered(written, 60)

    def superseded_tenures_ended() -> bool:
        journal = cluster.journal()
        ends = journal.ends()
        return all(
            earlier.tenure in ends or earlier.pid in killed
            for ordered in tenures(journal).values()
            for earlier in ordered[:-1]
        )

    cluster.wait_for(superseded_tenures_ended, 10, "every earlier owner's consumer to stop")
    journal = cluster.journal()
    assert_all_delivered_in_order(journal, written)
    found = duplicates(journal)
    assert_duplicates_explained(journal, found, killed)
    in_flight = assert_one_owner_at_a_time(journal, killed)
    print(
        f"{len(written)} changes written, all delivered in order ({waited:.1f}s after the "
        f"writer stopped); {describe_duplicates(found)}; {in_flight} in-flight overlaps"
    )
