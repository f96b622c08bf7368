"""The leader's plan for the whole cluster: which worker takes or asks for which lease.

With every worker planning for itself (``plan_take``), every worker must read the whole lease
table every take interval, and the lease table's reads grow as workers x shards. When one
leader reads the table and tells each worker what to take, the reads grow as workers +
shards: the leader's one Scan, and each worker's read of its own orders.

The plan is ``plan_take`` from each worker's point of view, so balance, fair shares, steals
and the claims on leaving workers' leases are decided exactly as when workers plan alone.
Workers are planned least loaded first, and each plan is applied to the leader's view before
the next worker's, so that no lease is ordered to two workers and a lease moved to one
worker counts in its load for the rest. Orders carry the lease as the leader read it: a take
stays conditional on that owner and counter, so an order that comes too late (the lease
renewed, or taken by another since) fails harmlessly.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterable, Mapping, Set
from dataclasses import replace

from bridge.core.leasing import (
    ExpiryTracker,
    Lease,
    TakePlan,
    fair_share,
    plan_take,
    workable,
)


def plan_assignments(
    *,
    leases: Iterable[Lease],
    live_workers: Set[str],
    leaving: Set[str] = frozenset(),
    beating: Set[str] | None = None,
    dead: Set[str] = frozenset(),
    tracker: ExpiryTracker,
    now: float,
    lease_duration: float,
    max_leases: int = 0,
    max_steals: int = 1,
    rng: random.Random,
) -> dict[str, TakePlan]:
    """Each live worker's orders (only the workers that have some).

    ``dead``: workers known to be gone without waiting for their leases to expire (the
    previous leader, whose lock was taken over after it stood still for a lease duration):
    their leases are planned as free.
    """
    rows = {lease.key: lease for lease in leases}
    view = {
        key: replace(lease, owner=None) if lease.owner in dead else lease
        for key, lease in rows.items()
    }
    staying = sorted(set(live_workers) - set(leaving) - set(dead))
    active = workable(view.values())
    load = Counter(lease.owner for lease in active)
    share = fair_share(len(active), len(staying), max_leases)
    orders: dict[str, TakePlan] = {}
    ordered: set[str] = set()
    for worker in sorted(staying, key=lambda name: (load[name], name)):
        if load[worker] >= share:
            # At its share plan_take has nothing for it: planning it would cost a pass over
            # every lease per worker per cycle, the leader's CPU growing as workers x shards.
            continue
        plan = plan_take(
            leases=view.values(),
            me=worker,
            held={key for key, lease in view.items() if lease.owner == worker},
            live_workers=set(live_workers) - set(dead),
            leaving=leaving,
            beating=beating,
            tracker=tracker,
            now=now,
            lease_duration=lease_duration,
            max_leases=max_leases,
            max_steals=max_steals,
            rng=rng,
        )
        # A lease already ordered this round stays with the worker it was ordered to: a later
        # worker's plan may see it there, above that worker's share, and want it.
        take = [lease for lease in plan.take if lease.key not in ordered]
        steal = [lease for lease in plan.steal if lease.key not in ordered]
        if not take and not steal:
            continue
        # The orders name the rows as read (the condition of the take); the view moves the
        # lease to the worker, alive under its new owner for the workers planned after it.
        orders[worker] = TakePlan(
            take=[rows[lease.key] for lease in take],
            steal=[rows[lease.key] for lease in steal],
            target=plan.target,
        )
        for lease in [*take, *steal]:
            ordered.add(lease.key)
            view[lease.key] = replace(lease, owner=worker, counter=lease.counter + 1)
            load[lease.owner] -= 1
            load[worker] += 1
    return orders


def ordered_keys(orders: Mapping[str, TakePlan]) -> list[str]:
    """Every lease key the orders name, once per order (a key twice is a planning bug)."""
    return [lease.key for plan in orders.values() for lease in [*plan.take, *plan.steal]]
