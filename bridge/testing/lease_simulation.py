"""A deterministic cluster of leasers on a virtual clock, for tests and ``simulate_leases.py``.

It drives the pure lease logic (``bridge.core.leasing``) exactly as workers do: renew, observe,
plan, take with a write conditional on owner and counter. Workers join, leave gracefully
(release everything), crash (stop renewing, rows stay), and pause (stop, then wake up holding
stale counters). Every cycle checks that at most one worker can write each lease.

Two designs of the take cycle: ``scan``, every worker reads the whole table and plans for
itself; ``assigned``, one leader reads it and plans for everyone (``plan_assignments``), and
each worker only reads its orders. The leader holds a lock; when it crashes or pauses, another
worker leads once the lock stood still for a lease duration, and knows the old leader dead.
What every cycle costs in capacity units is billed on ``bill`` (``lease_costs``).
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, field, replace

from bridge.core.assignment import plan_assignments
from bridge.core.leasing import ExpiryTracker, Lease, TakePlan, fair_share, plan_take
from bridge.testing.lease_costs import LeaseBill


@dataclass
class SimWorker:
    name: str
    leases: ExpiryTracker = field(default_factory=ExpiryTracker)
    peers: ExpiryTracker = field(default_factory=ExpiryTracker)
    held: dict[str, int] = field(default_factory=dict)
    """Lease key -> the counter this worker holds it at (its fencing token)."""
    paused_until: float = 0.0


@dataclass
class LeaseSimulation:
    shards: int
    lease_duration: float = 10.0
    max_steals: int = 1
    max_leases: int = 0
    seed: int = 0
    design: str = "scan"
    """``scan`` (every worker plans for itself) or ``assigned`` (a leader plans for all)."""
    bill: LeaseBill = field(default_factory=LeaseBill)
    now: float = 0.0
    moves: int = 0
    table: dict[str, Lease] = field(default_factory=dict)
    heartbeats: dict[str, Lease] = field(default_factory=dict)
    workers: dict[str, SimWorker] = field(default_factory=dict)
    fast: bool = False
    """Skip planning for workers at or above their share (large projections only: what
    they would plan is nothing, but computing it is a pass over every lease)."""
    leader: str | None = None
    lock_moved: float = 0.0
    """When the leader last held its lock (the lock's heartbeat), for a takeover."""
    _names: int = 0

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)
        self.table = {f"shard-{i:05d}": Lease(f"shard-{i:05d}") for i in range(self.shards)}

    # -- membership ---------------------------------------------------------------------------

    def join(self) -> str:
        self._names += 1
        name = f"w{self._names:03d}"
        self.workers[name] = SimWorker(name)
        self.heartbeats[name] = Lease(name, owner=name)
        return name

    def leave(self, name: str) -> None:
        """SIGTERM: release every lease, the heartbeat row and the leader's lock, then go."""
        worker = self.workers.pop(name)
        if self.leader == name:
            self.leader = None
        for key, counter in worker.held.items():
            row = self.table[key]
            if (row.owner, row.counter) == (name, counter):
                self.table[key] = replace(row, owner=None, counter=counter + 1)
        self.heartbeats.pop(name, None)

    def crash(self, name: str) -> None:
        """SIGKILL: nothing is released; others find out by expiry."""
        del self.workers[name]

    def pause(self, name: str, seconds: float) -> None:
        """SIGSTOP for ``seconds``: the worker wakes up believing it still holds its leases."""
        self.workers[name].paused_until = self.now + seconds

    # -- time ---------------------------------------------------------------------------------

    def cycle(self) -> None:
        """One take interval: every running worker renews, then plans and takes (``scan``),
        or the leader plans and the workers carry out their orders (``assigned``)."""
        self.now += 1.0
        self.bill.cycle()
        running = [w for w in self.workers.values() if w.paused_until <= self.now]
        self.rng.shuffle(running)
        for worker in running:
            self._renew(worker)
        self.bill.renew(sum(len(w.held) for w in running), len(running), by_heartbeat=False)
        self.bill.lock(len(running))
        if self.design == "assigned":
            self._lead(running)
        else:
            for worker in running:
                self._take(worker)
        self.check_fencing()

    def _renew(self, worker: SimWorker) -> None:
        beat = self.heartbeats.get(worker.name, Lease(worker.name, owner=worker.name))
        self.heartbeats[worker.name] = replace(beat, counter=beat.counter + 1)
        for key, counter in list(worker.held.items()):
            row = self.table[key]
            if (row.owner, row.counter) != (worker.name, counter):
                del worker.held[key]  # the conditional renewal is refused: lease lost
                continue
            self.table[key] = replace(row, counter=counter + 1)
            worker.held[key] = counter + 1

    def live_workers(self, worker: SimWorker) -> set[str]:
        worker.peers.observe(self.heartbeats.values(), self.now)
        return {
            beat.key
            for beat in self.heartbeats.values()
            if not worker.peers.expired(beat, self.now, self.lease_duration)
        }

    def _take(self, worker: SimWorker) -> None:
        leases = list(self.table.values())
        self.bill.scan_leases(len(leases))
        self.bill.query_heartbeats(len(self.heartbeats))
        worker.leases.observe(leases, self.now)
        if self.fast and len(worker.held) >= fair_share(len(leases), len(self.workers)):
            return
        plan = plan_take(
            leases=leases,
            me=worker.name,
            held=set(worker.held),
            live_workers=self.live_workers(worker),
            tracker=worker.leases,
            now=self.now,
            lease_duration=self.lease_duration,
            max_leases=self.max_leases,
            max_steals=self.max_steals,
            rng=self.rng,
        )
        self._carry_out(worker, plan)

    def _carry_out(self, worker: SimWorker, plan: TakePlan) -> None:
        self.bill.take(len(plan.take))
        self.bill.handoff(len(plan.steal))
        for lease in [*plan.take, *plan.steal]:
            row = self.table[lease.key]
            if (row.owner, row.counter) != (lease.owner, lease.counter):
                continue  # lost the race for it
            self.table[lease.key] = replace(row, owner=worker.name, counter=row.counter + 1)
            worker.held[lease.key] = row.counter + 1
            self.moves += 1

    # -- the assigned design --------------------------------------------------------------------

    def _lead(self, running: list[SimWorker]) -> None:
        """The leader reads the table and the heartbeats and writes each worker's orders,
        which the workers read (every ``orders_poll``) and carry out within the cycle."""
        self.bill.read_orders(len(running))
        leader, dead = self._elect(running)
        if leader is None:
            return
        leases = list(self.table.values())
        self.bill.scan_leases(len(leases))
        self.bill.query_heartbeats(len(self.heartbeats))
        leader.leases.observe(leases, self.now)
        orders = plan_assignments(
            leases=leases,
            live_workers=self.live_workers(leader),
            dead=dead,
            tracker=leader.leases,
            now=self.now,
            lease_duration=self.lease_duration,
            max_leases=self.max_leases,
            max_steals=self.max_steals,
            rng=self.rng,
        )
        for name, plan in orders.items():
            self.bill.write_orders(len(plan.take) + len(plan.steal))
            worker = self.workers.get(name)
            if worker is not None and worker in running:
                self._carry_out(worker, plan)

    def _elect(self, running: list[SimWorker]) -> tuple[SimWorker | None, frozenset[str]]:
        """The leader this cycle, and the workers it knows dead: a leader that took the lock
        from one that stood still for a lease duration knows that one gone."""
        current = self.workers.get(self.leader) if self.leader else None
        if current is not None and current in running:
            self.lock_moved = self.now
            return current, frozenset()
        if not running:
            return None, frozenset()
        stale = self.leader is not None and self.now - self.lock_moved < self.lease_duration
        if stale:
            return None, frozenset()  # the lock is still held: nobody may lead yet
        dead = frozenset([self.leader]) if self.leader is not None else frozenset()
        chosen = min(running, key=lambda worker: worker.name)
        # What a former leader saw long ago must not make it judge leases expired at once.
        chosen.leases = ExpiryTracker()
        chosen.peers = ExpiryTracker()
        self.leader, self.lock_moved = chosen.name, self.now
        return chosen, dead

    # -- observations -------------------------------------------------------------------------

    def check_fencing(self) -> None:
        """At most one worker can write each lease: the one whose token matches the row."""
        holders: Counter[str] = Counter()
        for worker in self.workers.values():
            for key, counter in worker.held.items():
                row = self.table[key]
                if (row.owner, row.counter) == (worker.name, counter):
                    holders[key] += 1
        doubled = [key for key, n in holders.items() if n > 1]
        if doubled:
            raise AssertionError(f"leases writable by two workers: {doubled[:5]}")

    def loads(self) -> dict[str, int]:
        counts = dict.fromkeys(self.workers, 0)
        for row in self.table.values():
            if row.owner in counts:
                counts[row.owner] += 1
        return counts

    def balanced(self) -> bool:
        """Every lease held by a worker that exists, and shares within one of each other."""
        loads = self.loads()
        if not loads or sum(loads.values()) != len(self.table):
            return False
        target = fair_share(len(self.table), len(loads), self.max_leases)
        return max(loads.values()) - min(loads.values()) <= 1 and max(loads.values()) <= target
