"""Lease expiry and balancing, simulated: N workers on a virtual clock with crashes, pauses and
restarts. Writes are conditional on owner and counter, as in the lease table."""

from __future__ import annotations

import random
from dataclasses import dataclass, field, replace

from hypothesis import given, settings
from hypothesis import strategies as st

from bridge.core.leasing import ExpiryTracker, Lease, fair_share, plan_take

LEASE_DURATION = 10.0


@dataclass
class SimWorker:
    name: str
    tracker: ExpiryTracker = field(default_factory=ExpiryTracker)
    held: dict[str, int] = field(default_factory=dict)  # key -> counter we hold it at
    paused_until: float = 0.0


@dataclass
class Cluster:
    table: dict[str, Lease]
    rng: random.Random
    workers: dict[str, SimWorker] = field(default_factory=dict)
    now: float = 0.0
    changes: int = 0
    generation: int = 0

    def start_worker(self) -> None:
        self.generation += 1
        name = f"w{self.generation}"
        self.workers[name] = SimWorker(name)

    def tick(self, max_steals: int = 1) -> None:
        self.now += 1.0
        order = list(self.workers.values())
        self.rng.shuffle(order)
        for worker in order:
            if worker.paused_until > self.now:
                continue
            self._renew(worker)
            self._take(worker, max_steals)
        self.check_fencing()

    def _renew(self, worker: SimWorker) -> None:
        for key, counter in list(worker.held.items()):
            row = self.table[key]
            if row.owner != worker.name or row.counter != counter:
                del worker.held[key]  # the conditional renew fails: lease lost
                continue
            self.table[key] = replace(row, counter=counter + 1)
            worker.held[key] = counter + 1

    def _take(self, worker: SimWorker, max_steals: int) -> None:
        leases = list(self.table.values())
        worker.tracker.observe(leases, self.now)
        plan = plan_take(
            leases=leases,
            me=worker.name,
            held=set(worker.held),
            live_workers={worker.name},
            tracker=worker.tracker,
            now=self.now,
            lease_duration=LEASE_DURATION,
            max_steals=max_steals,
            rng=self.rng,
        )
        assert len(plan.steal) <= max_steals
        assert not (plan.take and plan.steal)
        for lease in plan.take + plan.steal:
            row = self.table[lease.key]
            if (row.owner, row.counter) != (lease.owner, lease.counter):
                continue  # the conditional take loses the race
            self.table[lease.key] = replace(row, owner=worker.name, counter=row.counter + 1)
            worker.held[lease.key] = row.counter + 1
            self.changes += 1

    def check_fencing(self) -> None:
        """At most one worker can write each lease: the one whose counter matches the row."""
        for key, row in self.table.items():
            writers = [w.name for w in self.workers.values() if w.held.get(key) == row.counter]
            assert len(writers) <= 1, (key, writers)
            assert not writers or writers == [row.owner]

    def loads(self) -> dict[str, int]:
        counts = dict.fromkeys(self.workers, 0)
        for row in self.table.values():
            if row.owner in counts and not row.finished:
                counts[row.owner] += 1
        return counts


@settings(max_examples=60, deadline=None)
@given(
    leases=st.integers(1, 24),
    workers=st.integers(1, 6),
    events=st.lists(st.sampled_from(["crash", "pause", "join", "tick"]), max_size=25),
    seed=st.integers(0, 2**32),
)
def test_cluster_converges_to_a_fair_split_and_then_stays_put(
    leases: int, workers: int, events: list[str], seed: int
) -> None:
    rng = random.Random(seed)
    cluster = Cluster({f"s{i}": Lease(f"s{i}") for i in range(leases)}, rng)
    for _ in range(workers):
        cluster.start_worker()
    for event in events:
        if event == "crash" and len(cluster.workers) > 1:
            del cluster.workers[rng.choice(sorted(cluster.workers))]
        elif event == "pause":
            victim = cluster.workers[rng.choice(sorted(cluster.workers))]
            victim.paused_until = cluster.now + rng.uniform(1, 3 * LEASE_DURATION)
        elif event == "join":
            cluster.start_worker()
        for _ in range(rng.randint(1, 5)):
            cluster.tick()
    for worker in cluster.workers.values():
        worker.paused_until = 0.0

    # quiet period: expired leases move on, thieves catch up to their fair share
    for _ in range(int(4 * LEASE_DURATION) + 2 * leases):
        cluster.tick()
    owners = {row.owner for row in cluster.table.values()}
    assert owners <= set(cluster.workers), "a lease is still held by a dead worker"
    loads = cluster.loads()
    assert sum(loads.values()) == leases
    target = fair_share(leases, len(cluster.workers))
    assert max(loads.values()) <= target
    assert max(loads.values()) - min(loads.values()) <= 1

    settled = cluster.changes
    for _ in range(int(3 * LEASE_DURATION)):
        cluster.tick()
    assert cluster.changes == settled, "leases kept moving in a stable cluster"


def test_a_new_worker_waits_a_full_lease_duration_before_calling_an_owner_dead() -> None:
    tracker = ExpiryTracker()
    held = Lease("s", owner="other", counter=7)
    tracker.observe([held], now=100.0)
    assert not tracker.expired(held, 100.0 + LEASE_DURATION - 0.1, LEASE_DURATION)
    assert tracker.expired(held, 100.0 + LEASE_DURATION, LEASE_DURATION)


def test_a_renewal_restarts_the_expiry_clock() -> None:
    tracker = ExpiryTracker()
    tracker.observe([Lease("s", owner="o", counter=1)], now=0.0)
    renewed = Lease("s", owner="o", counter=2)
    tracker.observe([renewed], now=9.0)
    assert not tracker.expired(renewed, 18.0, LEASE_DURATION)
    assert tracker.expired(renewed, 19.0, LEASE_DURATION)


def test_free_leases_are_taken_at_once_and_finished_ones_are_nobodys_load() -> None:
    leases = [Lease("a"), Lease("b", owner="x", counter=3, checkpoint="SHARD_END")]
    tracker = ExpiryTracker()
    tracker.observe(leases, 0.0)
    plan = plan_take(
        leases=leases,
        me="me",
        held=set(),
        live_workers={"me"},
        tracker=tracker,
        now=0.0,
        lease_duration=LEASE_DURATION,
        rng=random.Random(1),
    )
    assert [lease.key for lease in plan.take] == ["a"]
    assert plan.steal == []


def test_max_leases_caps_what_one_worker_takes() -> None:
    leases = [Lease(f"s{i}") for i in range(10)]
    tracker = ExpiryTracker()
    plan = plan_take(
        leases=leases,
        me="me",
        held={"s0"},
        live_workers={"me"},
        tracker=tracker,
        now=0.0,
        lease_duration=LEASE_DURATION,
        max_leases=3,
        rng=random.Random(1),
    )
    assert len(plan.take) == 2 and "s0" not in {lease.key for lease in plan.take}
