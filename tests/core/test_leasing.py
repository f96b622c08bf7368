"""Lease expiry and balancing: N workers on a virtual clock that join, leave, crash and pause.
Writes are conditional on owner and counter, as in the lease table."""

from __future__ import annotations

import random
from dataclasses import replace

from hypothesis import given, settings
from hypothesis import strategies as st

from bridge.core.leasing import ExpiryTracker, Lease, TakePlan, plan_take
from bridge.testing.lease_simulation import LeaseSimulation

LEASE_DURATION = 10.0


@settings(max_examples=120, deadline=None)
@given(
    shards=st.integers(1, 24),
    workers=st.integers(1, 6),
    events=st.lists(st.sampled_from(["crash", "pause", "join", "leave", "wait"]), max_size=25),
    max_steals=st.integers(1, 6),
    seed=st.integers(0, 2**32),
    design=st.sampled_from(["scan", "assigned"]),
)
def test_cluster_converges_to_a_fair_split_and_then_stays_put(
    shards: int, workers: int, events: list[str], max_steals: int, seed: int, design: str
) -> None:
    """Whether every worker plans for itself or a leader plans for all (and crashes, pauses
    or leaves among the others)."""
    sim = LeaseSimulation(shards, LEASE_DURATION, max_steals=max_steals, seed=seed, design=design)
    rng = random.Random(seed)
    for _ in range(workers):
        sim.join()
    for event in events:
        names = sorted(sim.workers)
        if event == "crash" and len(names) > 1:
            sim.crash(rng.choice(names))
        elif event == "leave" and len(names) > 1:
            sim.leave(rng.choice(names))
        elif event == "pause":
            sim.pause(rng.choice(names), rng.uniform(1, 3 * LEASE_DURATION))
        elif event == "join":
            sim.join()
        for _ in range(rng.randint(1, 5)):
            sim.cycle()  # checks fencing every cycle
    for worker in sim.workers.values():
        worker.paused_until = 0.0

    # quiet period: expired leases and heartbeats age out, thieves catch up to their share
    for _ in range(int(3 * LEASE_DURATION) + 2 * shards):
        sim.cycle()
    assert sim.balanced(), sim.loads()

    settled = sim.moves
    for _ in range(int(3 * LEASE_DURATION)):
        sim.cycle()
    assert sim.moves == settled, "leases kept moving in a stable cluster"


@given(seed=st.integers(0, 2**32), shards=st.integers(1, 40))
def test_checkpoints_only_move_forward_under_fencing(seed: int, shards: int) -> None:
    """Each holder checkpoints increasing positions; a stale holder's write is refused, so the
    table's checkpoint of a lease never goes back, whoever wrote it."""
    sim = LeaseSimulation(shards, LEASE_DURATION, seed=seed)
    rng = random.Random(seed)
    for _ in range(3):
        sim.join()
    position = dict.fromkeys(sim.table, 0)
    for step in range(80):
        sim.cycle()
        if step % 13 == 0 and sim.workers:
            sim.pause(rng.choice(sorted(sim.workers)), 2 * LEASE_DURATION)
        for worker in sim.workers.values():
            for key, counter in worker.held.items():
                row = sim.table[key]
                written = int(row.checkpoint or 0)
                proposal = written + rng.randint(1, 5)
                if (row.owner, row.counter) == (worker.name, counter):
                    sim.table[key] = replace(row, checkpoint=str(proposal))
                    assert proposal > position[key]
                    position[key] = proposal


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


def test_the_reader_of_a_parent_continues_with_the_first_child_it_created() -> None:
    from bridge.core.leasing import continuation_of

    assert continuation_of("p", ["c1", "c2"]) == Lease("c1", parents=frozenset({"p"}))
    assert continuation_of("p", []) is None


def test_leases_of_an_owner_with_no_heartbeat_are_taken_only_once_expired() -> None:
    # A KCL worker's leases in a table being taken over: never stolen from under it; taken
    # once its counter has stood still for a lease duration, as any dead owner's.
    leases = [Lease(f"s{i}", owner="kcl-worker", counter=7, checkpoint="40") for i in range(4)]
    tracker = ExpiryTracker()
    tracker.observe(leases, 0.0)

    def plan(now: float) -> tuple[list[str], list[str]]:
        taken = plan_take(
            leases=leases,
            me="me",
            held=set(),
            live_workers={"me"},
            tracker=tracker,
            now=now,
            lease_duration=LEASE_DURATION,
            max_steals=4,
            rng=random.Random(1),
        )
        return [lease.key for lease in taken.take], [lease.key for lease in taken.steal]

    assert plan(LEASE_DURATION - 0.1) == ([], [])
    took, stole = plan(LEASE_DURATION + 0.1)
    assert sorted(took) == ["s0", "s1", "s2", "s3"] and stole == []


def test_every_lease_of_a_dead_worker_is_taken_in_one_cycle_though_its_heartbeat_lingers() -> None:
    # w3 was killed: all its leases have expired in our view, while its heartbeat row is still
    # listed (heartbeats and leases are read at different moments). It is owed no share, so
    # the survivors take all three of its leases this cycle, not one now and more a cycle on.
    leases = (
        [Lease(f"mine{i}", owner="me", counter=1) for i in range(2)]
        + [Lease(f"w2-{i}", owner="w2", counter=1) for i in range(3)]
        + [Lease(f"w3-{i}", owner="w3", counter=5) for i in range(3)]
    )
    tracker = ExpiryTracker()
    tracker.observe(leases, 0.0)
    later = [
        replace(lease, counter=lease.counter + 1) if lease.owner != "w3" else lease
        for lease in leases
    ]
    tracker.observe(later, LEASE_DURATION)  # the live ones renewed; w3's stood still
    plan = plan_take(
        leases=later,
        me="me",
        held={"mine0", "mine1"},
        live_workers={"me", "w2", "w3"},
        tracker=tracker,
        now=LEASE_DURATION + 0.1,
        lease_duration=LEASE_DURATION,
        rng=random.Random(1),
    )
    assert plan.target == 4  # 8 leases over the two live workers, not 3 over three
    taken = {lease.key for lease in plan.take}
    assert len(taken) == 2 and taken <= {"w3-0", "w3-1", "w3-2"}  # w2 takes the third


def _plan(
    leases: list[Lease], me: str, live: set[str], leaving: set[str], steals: int = 1
) -> TakePlan:
    tracker = ExpiryTracker()
    tracker.observe(leases, 0.0)
    return plan_take(
        leases=leases,
        me=me,
        held={lease.key for lease in leases if lease.owner == me},
        live_workers=live,
        leaving=leaving,
        tracker=tracker,
        now=1.0,
        lease_duration=LEASE_DURATION,
        max_steals=steals,
        rng=random.Random(3),
    )


def test_a_leaving_workers_leases_are_asked_for_first_and_beyond_the_steal_budget() -> None:
    # a, b, c hold two each; c is leaving: a and b are owed three each, all from c.
    leases = [Lease(f"s{i}", owner="abc"[i // 2], counter=1) for i in range(6)]
    plan = _plan(leases, "a", {"a", "b", "c"}, {"c"})
    assert plan.target == 3 and [lease.owner for lease in plan.steal] == ["c"]
    # Four workers, the leaver holding three: one asker may claim all of them in one cycle,
    # though it may steal only one lease a cycle from a live worker.
    leases = [Lease(f"s{i}", owner=o, counter=1) for i, o in enumerate("cccddd")]
    leases += [Lease("x1", owner="x", counter=1)]
    plan = _plan(leases, "me", {"me", "c", "d", "x"}, {"c"}, steals=1)
    assert plan.target == 3
    assert sorted(lease.owner for lease in plan.steal) == ["c", "c", "c"]


def test_a_leaving_worker_is_owed_no_share_and_never_stolen_back_to() -> None:
    # Balanced at two each with the leaver counted; without it the share is three.
    leases = [Lease(f"s{i}", owner="abc"[i // 2], counter=1) for i in range(6)]
    assert _plan(leases, "a", {"a", "b", "c"}, set()).steal == []
    plan = _plan(leases, "a", {"a", "b", "c"}, {"c"})
    assert {lease.key for lease in plan.steal} <= {"s4", "s5"}
    # Once the leaver's leases are all handed over, nobody steals from the others.
    handed = [Lease(f"s{i}", owner="ab"[i % 2], counter=2) for i in range(6)]
    assert _plan(handed, "a", {"a", "b", "c"}, {"c"}).steal == []


def test_a_change_is_credited_to_the_read_before_or_slack_before_the_read_that_saw_it() -> None:
    tracker = ExpiryTracker(slack=2.0)
    lease = Lease("s", owner="w", counter=1)
    tracker.observe([lease], 0.0)  # first seen: credited when seen
    assert tracker.next_expiry(0.0, LEASE_DURATION, besides="me") == 10.0
    tracker.observe([lease], 1.0)  # unchanged: the credit stays, the last read moves
    renewed = replace(lease, counter=2)
    # Read again 1.5 s later: the renewal happened after the read at 1.0, so no earlier.
    tracker.observe([renewed], 2.5)
    assert tracker.next_expiry(2.5, LEASE_DURATION, besides="me") == 11.0
    # Reads far apart (a slow take cycle): never more than ``slack`` before the read.
    tracker.observe([replace(renewed, counter=3)], 9.0)
    assert tracker.next_expiry(9.0, LEASE_DURATION, besides="me") == 17.0
    assert not tracker.expired(replace(renewed, counter=3), 16.9, LEASE_DURATION)
    assert tracker.expired(replace(renewed, counter=3), 17.0, LEASE_DURATION)


@given(
    reads=st.lists(st.floats(0.01, 3.0), min_size=2, max_size=30),
    renewals=st.lists(st.floats(0.0, 30.0), min_size=1, max_size=20),
    slack=st.floats(0.0, 3.0),
)
def test_no_lease_is_judged_expired_while_its_owner_still_holds_it(
    reads: list[float], renewals: list[float], slack: float
) -> None:
    """Owners keep a lease ``LEASE_DURATION - slack`` after each renewal they send (a renewal
    is applied some time after it is sent, before the read that sees it ends); readers credit
    the change as ``ExpiryTracker`` does: no reader ever calls a held lease expired."""
    tracker = ExpiryTracker(slack=slack)
    sends = sorted(renewals)
    applied = [t + 0.2 for t in sends]  # each renewal lands 0.2 s after it was sent
    now = 0.0
    for gap in reads:
        now += gap
        counter = sum(1 for t in applied if t <= now)
        lease = Lease("s", owner="w", counter=counter)
        tracker.observe([lease], now)
        held_until = max((t + LEASE_DURATION - slack for t in sends if t + 0.2 <= now), default=0)
        if tracker.expired(lease, now, LEASE_DURATION):
            assert now >= held_until, f"expired at {now} while held until {held_until}"
