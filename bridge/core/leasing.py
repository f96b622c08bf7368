"""Lease values, expiry judged on our own clock, and the plan of what to take and steal.

Expiry never compares wall clocks across machines: a lease is expired when its counter has
not moved for ``lease_duration`` since *this* worker saw it move, by this worker's monotonic
clock. Clock skew between pods cannot make a live worker look dead.
"""

from __future__ import annotations

import math
import random
from collections import Counter
from collections.abc import Iterable, Sequence, Set
from dataclasses import dataclass, field

from bridge.core.lineage import parents_exhausted
from bridge.core.positions import SHARD_END


@dataclass(frozen=True)
class LagReading:
    """How far behind its stream the owner's reading of a shard was, and when it measured it.

    Written by the owner along with its renewals and checkpoints, for ``bridge status`` only:
    ``measured_at_ms`` is the owner's wall clock (epoch ms), so its age as seen from another
    machine is off by the clock skew between the two, never used to judge expiry.
    """

    lag_ms: int
    measured_at_ms: int


@dataclass(frozen=True)
class Lease:
    """One row of the lease table: a shard, who holds it, and how far it was read."""

    key: str
    owner: str | None = None
    counter: int = 0
    checkpoint: str | None = None
    parents: frozenset[str] = frozenset()
    children: frozenset[str] = frozenset()
    owner_switches: int = 0
    lag: LagReading | None = None
    """The owner's last lag reading; renewals and checkpoints write it when set."""
    snapshot_wanted_ms: int | None = None
    """When its owner found records trimmed before it read them, with ``on_trimmed:
    rebootstrap``: the leader then takes a fresh snapshot unless one since covers it."""
    paused_for_ms: int | None = None
    """The cut-off of the fresh snapshot its owner stopped reading for: the scan of a fresh
    snapshot starts only once no reader can publish a change during it."""
    handoff_to: str | None = None
    """The worker this lease is asked for (a cooperative steal, or a claim on a leaving
    worker's lease): its owner hands it over there at its next batch boundary."""

    @property
    def finished(self) -> bool:
        return self.checkpoint == SHARD_END


@dataclass
class ExpiryTracker:
    """When this worker last saw each lease change owner or counter.

    A change is credited to the earliest moment it may be said to have happened: the later of
    the previous read (which still saw the old value) and this read less ``slack``. With reads
    a take interval apart, crediting the change to the read that saw it would add up to that
    interval to every failover. It is safe because every owner keeps its lease only for
    ``lease_duration - slack`` after each write it sends (``LeaseHolder``), and a write seen
    by a read was sent before that read ended. A lease first seen counts as changed when it
    was seen.
    """

    slack: float = 0.0
    _seen: dict[str, tuple[str | None, int, float, float]] = field(default_factory=dict)
    """Per lease: owner, counter, when the change was credited, when last read."""

    def observe(self, leases: Iterable[Lease], now: float) -> None:
        current: dict[str, tuple[str | None, int, float, float]] = {}
        for lease in leases:
            previous = self._seen.get(lease.key)
            if previous is None:
                current[lease.key] = (lease.owner, lease.counter, now, now)
            elif previous[:2] == (lease.owner, lease.counter):
                current[lease.key] = (*previous[:3], now)
            else:
                credited = max(previous[3], now - self.slack)
                current[lease.key] = (lease.owner, lease.counter, credited, now)
        self._seen = current

    def expired(self, lease: Lease, now: float, lease_duration: float) -> bool:
        """Free leases are always takeable; owned ones after ``lease_duration`` without change.

        A lease first seen now counts as just changed: a worker that starts must watch a lease
        for a whole duration before calling its owner dead.
        """
        if lease.owner is None:
            return True
        seen = self._seen.get(lease.key)
        if seen is None or seen[:2] != (lease.owner, lease.counter):
            return False
        return now - seen[2] >= lease_duration

    def next_expiry(self, now: float, lease_duration: float, *, besides: str) -> float | None:
        """When (on the same clock as ``now``) the next lease held by someone other than
        ``besides`` expires if its counter does not move again; None when no lease is pending.

        A worker that looks again exactly then takes a dead worker's leases at the moment they
        expire, rather than up to a take interval later.
        """
        due = [
            seen + lease_duration
            for owner, _, seen, _ in self._seen.values()
            if owner is not None and owner != besides and seen + lease_duration > now
        ]
        return min(due, default=None)


@dataclass(frozen=True)
class TakePlan:
    take: list[Lease]
    steal: list[Lease]
    target: int


def fair_share(active_leases: int, workers: int, max_leases: int = 0) -> int:
    """ceil(leases / workers), capped by ``max_leases`` when that is set (0 = no cap)."""
    share = math.ceil(active_leases / max(1, workers))
    return min(share, max_leases) if max_leases > 0 else share


def workable(leases: Iterable[Lease]) -> list[Lease]:
    """The leases that are work now: not finished, and not waiting for a parent to finish.

    A parent and its child are one piece of work, read one after the other: counting both
    while the parent is read would double the lineage's weight in the fair share. A worker
    would take children it cannot start (idle, yet counted as its share), and once the
    parents ended it would hold more than its share and be stolen from. The child becomes
    work the moment its parent's lease reads SHARD_END, as the parent stops being work.
    """
    leases = list(leases)
    checkpoints = {lease.key: lease.checkpoint for lease in leases}
    return [
        lease
        for lease in leases
        if not lease.finished and parents_exhausted(lease.parents, checkpoints)
    ]


def plan_take(
    *,
    leases: Iterable[Lease],
    me: str,
    held: Set[str],
    live_workers: Set[str],
    leaving: Set[str] = frozenset(),
    beating: Set[str] | None = None,
    tracker: ExpiryTracker,
    now: float,
    lease_duration: float,
    max_leases: int = 0,
    max_steals: int = 1,
    rng: random.Random,
) -> TakePlan:
    """What this worker should take (free or expired) and steal (from the most loaded) now.

    Only workable leases count (``workable``): finished ones and children still waiting for a
    parent are nobody's load, and nobody takes a waiting child. Stealing happens only when
    nothing is free, at most ``max_steals`` a cycle, and only from a worker above the fair
    share (or at it, when we are two or more below), which is what keeps the cluster from
    trading leases forever. A ``leaving`` worker (stopping, still finishing its batches) is
    owed no share: every lease it holds is stealable, first and beyond ``max_steals``, so
    that it is handed over while its owner still reads it.

    ``beating`` (heartbeat liveness): the workers with a heartbeat row; the leases of those
    are alive while their owner is among ``live_workers``, whatever their counters do. Leases
    of owners without a row are judged by their counters, as always.
    """
    active = workable(leases)

    def is_alive(lease: Lease) -> bool:
        if lease.owner is None:
            return False
        if beating is not None and lease.owner in beating:
            return lease.owner in live_workers
        return not tracker.expired(lease, now, lease_duration)

    alive = {lease.key for lease in active if is_alive(lease)}
    load = Counter(
        lease.owner
        for lease in active
        if lease.key in alive and lease.owner != me and lease.owner not in leaving
    )
    # A worker whose every lease has expired is gone, whatever its heartbeat row says yet (the
    # two are read at different moments): it is owed no share, so one cycle takes all it held.
    expired_owners = {x.owner for x in active if x.owner and x.key not in alive} - set(load)
    workers = (set(live_workers) - expired_owners - set(leaving)) | set(load) | {me}
    target = fair_share(len(active), len(workers), max_leases)
    mine = sum(1 for lease in active if lease.key in held)
    need = target - mine
    if need <= 0:
        return TakePlan([], [], target)

    available = [
        lease
        for lease in active
        if lease.key not in held and (lease.key not in alive or lease.owner == me)
    ]
    if available:
        # Fill up to the floor of the share first: with every worker taking up to the ceiling,
        # the first ones in a cycle would take the remainder and the rest would steal it back.
        floor = min(len(active) // len(workers), target)
        want = floor - mine if mine < floor else need
        rng.shuffle(available)
        return TakePlan(available[:want], [], target)

    # Only from live workers: an owner with no heartbeat row (a KCL worker whose table is
    # being taken over, or one of ours whose row expired) keeps its leases until they expire.
    return TakePlan(
        [],
        _steals(
            active=active,
            alive=alive,
            leaving=leaving,
            load=Counter({owner: n for owner, n in load.items() if owner in live_workers}),
            target=target,
            need=need,
            max_steals=max_steals,
            rng=rng,
        ),
        target,
    )


def _steals(
    *,
    active: list[Lease],
    alive: Set[str],
    leaving: Set[str],
    load: Counter[str | None],
    target: int,
    need: int,
    max_steals: int,
    rng: random.Random,
) -> list[Lease]:
    """From the most loaded first, what they hold above the fair share; then one lease each
    from workers at the share, but only while we stay at least two below it, so that after
    the steal we still hold no more than they do: that is what keeps a balanced cluster
    from trading leases back and forth. Before all of them, what leaving workers hold."""
    claimed = [lease for lease in active if lease.key in alive and lease.owner in leaving]
    rng.shuffle(claimed)
    del claimed[need:]
    need -= len(claimed)
    budget = min(need, max_steals)
    at_share_budget = need - 1
    stolen: list[Lease] = []
    for victim, victim_load in sorted(load.items(), key=lambda item: (-item[1], str(item[0]))):
        if budget <= 0:
            break
        if victim_load > target:
            count = min(budget, victim_load - target)
        elif victim_load == target and len(stolen) < at_share_budget:
            count = 1
        else:
            break
        candidates = [lease for lease in active if lease.owner == victim and lease.key in alive]
        rng.shuffle(candidates)
        stolen.extend(candidates[:count])
        budget -= count
    return claimed + stolen


def continuation_of(parent: str, children: Sequence[str]) -> Lease | None:
    """The child lease the reader of ``parent`` takes itself once it read the parent to its end
    and leased its children (None for a shard with no children).

    The lineage goes on with the worker that read it, rather than with whichever take cycle
    runs first: under a throttled lease table that may be another worker's, and then this one
    is a lease short and steals one back. That holds whoever created the child's lease (the
    leader's sync may have been first): the take is conditional on the lease being free, so a
    child someone else already took stays theirs. A child waiting for its parent is nobody's
    load (``workable``), so holding it early unbalances nothing.
    """
    if not children:
        return None
    return Lease(children[0], parents=frozenset([parent]))
