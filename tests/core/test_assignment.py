"""The leader's plan for the whole cluster (``plan_assignments``): each worker's orders."""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import replace

from hypothesis import given
from hypothesis import strategies as st

from bridge.core.assignment import ordered_keys, plan_assignments
from bridge.core.leasing import ExpiryTracker, Lease, TakePlan

LEASE = 10.0


def plan(leases: list[Lease], live: set[str], **options: object) -> dict[str, TakePlan]:
    tracker = options.pop("tracker", None) or ExpiryTracker()
    if not isinstance(tracker, ExpiryTracker):
        raise TypeError(tracker)
    tracker.observe(leases, 0.0)
    return plan_assignments(
        leases=leases,
        live_workers=live,
        tracker=tracker,
        now=float(options.pop("now", 0.0)),  # type: ignore[arg-type]
        lease_duration=LEASE,
        rng=random.Random(1),
        **options,  # type: ignore[arg-type]
    )


def carry_out(leases: list[Lease], orders: dict[str, TakePlan]) -> list[Lease]:
    moved = {lease.key: worker for worker, p in orders.items() for lease in p.take + p.steal}
    return [
        replace(lease, owner=moved[lease.key], counter=lease.counter + 1)
        if lease.key in moved
        else lease
        for lease in leases
    ]


def loads(leases: list[Lease]) -> Counter[str | None]:
    return Counter(lease.owner for lease in leases)


def test_a_cold_start_is_split_evenly_in_two_rounds_and_then_left_alone() -> None:
    leases = [Lease(f"s{i}") for i in range(10)]
    workers = {"a", "b", "c"}

    first = plan(leases, workers)
    leases = carry_out(leases, first)
    assert sorted(loads(leases).values()) == [1, 3, 3, 3]  # floors first, one still free
    second = plan(leases, workers)
    leases = carry_out(leases, second)
    assert sorted(n for owner, n in loads(leases).items() if owner) == [3, 3, 4]
    assert plan(leases, workers) == {}  # balanced: no orders, no writes


def test_orders_carry_each_lease_as_it_was_read() -> None:
    leases = [Lease("s0", owner="gone", counter=7), Lease("s1")]
    orders = plan(leases, {"a"}, dead={"gone"})
    assert sorted(orders["a"].take, key=lambda lease: lease.key) == leases


def test_the_previous_leaders_leases_are_ordered_at_once_though_not_yet_expired() -> None:
    leases = [Lease(f"s{i}", owner="old" if i < 4 else "a", counter=3) for i in range(8)]
    waiting = plan(leases, {"a", "b"})
    assert "b" not in waiting or not waiting["b"].take  # alive by the tracker: only steals
    orders = plan(leases, {"a", "b"}, dead={"old"})
    taken = {lease.key for p in orders.values() for lease in p.take}
    assert taken == {"s0", "s1", "s2", "s3"}


def test_a_leaving_workers_leases_are_all_claimed_in_one_plan() -> None:
    leases = [Lease(f"s{i}", owner=["a", "b", "c"][i % 3], counter=1) for i in range(9)]
    orders = plan(leases, {"a", "b", "c"}, leaving={"c"}, max_steals=1)
    claimed = {lease.key for p in orders.values() for lease in p.steal}
    assert claimed == {lease.key for lease in leases if lease.owner == "c"}
    assert "c" not in orders


def test_a_joining_worker_is_ordered_its_share_from_the_most_loaded() -> None:
    leases = [Lease(f"s{i}", owner=["a", "b"][i % 2], counter=1) for i in range(12)]
    orders = plan(leases, {"a", "b", "d"}, max_steals=5)
    assert set(orders) == {"d"}
    assert len(orders["d"].steal) == 4
    assert loads(carry_out(leases, orders)) == Counter({"a": 4, "b": 4, "d": 4})


@given(
    owners=st.lists(st.sampled_from([None, "a", "b", "c", "d", "gone"]), max_size=40),
    live=st.sets(st.sampled_from(["a", "b", "c", "d"]), min_size=1),
    leaving=st.sets(st.sampled_from(["a", "b", "c", "d"])),
    dead=st.sets(st.sampled_from(["gone", "d"])),
    max_steals=st.integers(1, 4),
    later=st.sampled_from([0.0, LEASE]),
)
def test_no_lease_is_ordered_twice_and_only_live_workers_leases_are_asked_for(
    owners: list[str | None],
    live: set[str],
    leaving: set[str],
    dead: set[str],
    max_steals: int,
    later: float,
) -> None:
    leases = [Lease(f"s{i}", owner=owner, counter=1) for i, owner in enumerate(owners)]
    tracker = ExpiryTracker()
    orders = plan(
        leases,
        live - dead,
        leaving=leaving & live,
        dead=dead,
        max_steals=max_steals,
        tracker=tracker,
        now=later,
    )
    keys = ordered_keys(orders)
    assert len(keys) == len(set(keys))
    assert not set(orders) & (leaving | dead)
    for worker, p in orders.items():
        assert all(lease.owner != worker for lease in p.take + p.steal)
        for lease in p.steal:
            assert lease.owner in live - dead
        for lease in p.take:
            assert (
                lease.owner is None
                or lease.owner in dead
                or lease.owner not in live
                or tracker.expired(lease, later, LEASE)
            )
