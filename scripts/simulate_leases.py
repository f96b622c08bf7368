"""The lease logic at scale on a virtual clock: how fast a cluster rebalances, and how much.

1,000 shards; workers join in waves up to 50, then some leave (SIGTERM: leases released),
some crash (SIGKILL: leases expire), some pause past their lease duration (SIGSTOP) and
come back. After each event it counts the take cycles until shares are within one of each
other, and compares the leases that moved with the fewest that had to move (the sum of what
each worker gained). Fencing (no lease writable by two workers) is checked every cycle.

Each scenario runs side by side for several ``max_steals_per_cycle`` values: with 1,000
shards on 50 workers a newcomer's share is 20 leases, so one steal per cycle needs ~20 cycles
to balance it.

    .venv/bin/python scripts/simulate_leases.py [--shards 1000] [--workers 50]
        [--lease-duration 10] [--steals 1,3,5] [--seed 7]

``--cost`` prints what coordination costs in DynamoDB capacity units a second instead, for
each number of shards and workers and both designs of the take cycle (``scan``: every worker
reads the lease table; ``assigned``: a leader reads it and writes each worker its orders):
idle once balanced, and during a rolling restart (one worker at a time leaves and its
replacement joins, 5 take cycles apart). Timing as bridge's defaults: lease 10 s, take
interval 2 s, renewals every 3.3 s.

    .venv/bin/python scripts/simulate_leases.py --cost [--shards 1000,10000]
        [--workers 10,50,200,1000] [--restarts 5]
"""

from __future__ import annotations

import argparse
import random
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bridge.testing.lease_costs import LeaseBill, Timing
from bridge.testing.lease_simulation import LeaseSimulation

# On-demand prices, us-east-1: $0.125 per million read and $0.625 per million write units.
READ_PRICE, WRITE_PRICE = 0.125e-6, 0.625e-6
MONTH = 730 * 3600


@dataclass
class Outcome:
    event: str
    cycles: int
    moved: int
    needed: int


def settle(sim: LeaseSimulation, event: str, act: Callable[[], None], limit: int) -> Outcome:
    before = sim.loads()
    moves = sim.moves
    act()
    cycles = 0
    while cycles <= limit:
        cycles += 1
        sim.cycle()
        if sim.balanced():
            break
    after = sim.loads()
    needed = sum(max(0, n - before.get(name, 0)) for name, n in after.items())
    return Outcome(event, cycles, sim.moves - moves, needed)


def scenario(
    shards: int, workers: int, lease_duration: float, steals: int, seed: int
) -> list[Outcome]:
    sim = LeaseSimulation(shards, lease_duration, max_steals=steals, seed=seed)
    rng = random.Random(seed)
    limit = 400
    outcomes = [
        settle(sim, "start 10 workers", lambda: [sim.join() for _ in range(10)] and None, limit)
    ]
    while len(sim.workers) < workers:
        wave = min(10, workers - len(sim.workers))
        outcomes.append(
            settle(
                sim,
                f"{wave} join ({len(sim.workers) + wave})",
                lambda w=wave: [sim.join() for _ in range(w)] and None,
                limit,
            )
        )
    outcomes.append(settle(sim, "1 joins", lambda: sim.join() and None, limit))
    outcomes.append(
        settle(sim, "1 leaves (SIGTERM)", lambda: sim.leave(rng.choice(sorted(sim.workers))), limit)
    )
    outcomes.append(
        settle(
            sim,
            "5 leave (SIGTERM)",
            lambda: [sim.leave(n) for n in rng.sample(sorted(sim.workers), 5)] and None,
            limit,
        )
    )
    outcomes.append(
        settle(
            sim, "1 crashes (SIGKILL)", lambda: sim.crash(rng.choice(sorted(sim.workers))), limit
        )
    )
    outcomes.append(
        settle(
            sim,
            "5 crash (SIGKILL)",
            lambda: [sim.crash(n) for n in rng.sample(sorted(sim.workers), 5)] and None,
            limit,
        )
    )
    paused = rng.choice(sorted(sim.workers))
    held = sim.loads()[paused]
    moves = sim.moves
    sim.pause(paused, 2 * lease_duration)
    for _ in range(int(2 * lease_duration)):
        sim.cycle()
    outcomes.append(Outcome("1 paused 2x lease", int(2 * lease_duration), sim.moves - moves, held))
    outcomes.append(settle(sim, "  ... and woken up", lambda: None, limit))
    quiet = sim.moves
    for _ in range(int(3 * lease_duration)):
        sim.cycle()
    outcomes.append(Outcome("quiet 3x lease", 0, sim.moves - quiet, 0))
    return outcomes


@dataclass
class Cost:
    idle: tuple[float, float]
    rolling: tuple[float, float]


def cost(shards: int, workers: int, design: str, restarts: int, seed: int) -> Cost:
    """Read and write units a second, idle and during a rolling restart."""
    timing = Timing()
    cycles = timing.lease_duration / timing.take_interval
    sim = LeaseSimulation(
        shards, cycles, max_steals=5, seed=seed, design=design, fast=shards * workers > 100_000
    )
    for _ in range(workers):
        sim.join()
    for _ in range(100):
        sim.cycle()
        if sim.balanced():
            break
    sim.bill = LeaseBill(timing)
    for _ in range(5):
        sim.cycle()
    idle = sim.bill.per_second()
    sim.bill = LeaseBill(timing)
    rng = random.Random(seed)
    for _ in range(min(restarts, workers)):
        sim.leave(rng.choice(sorted(sim.workers)))
        sim.cycle()
        sim.join()
        for _ in range(4):
            sim.cycle()
    return Cost(idle, sim.bill.per_second())


def print_costs(
    shard_counts: list[int], worker_counts: list[int], restarts: int, seed: int
) -> None:
    print("Lease and coordination tables, capacity units a second (read / write), and what the")
    print("reads cost a month on demand ($0.125 per million read units):")
    print()
    print(
        "| shards | workers | design | idle reads/s | idle writes/s | idle reads $/month |"
        " rolling reads/s | rolling writes/s | reads vs scan |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for shards in shard_counts:
        for workers in worker_counts:
            scan = cost(shards, workers, "scan", restarts, seed)
            assigned = cost(shards, workers, "assigned", restarts, seed)
            for design, c in (("scan", scan), ("assigned", assigned)):
                ratio = c.idle[0] / scan.idle[0]
                rolling_ratio = c.rolling[0] / scan.rolling[0]
                print(
                    f"| {shards:,} | {workers:,} | {design} | {c.idle[0]:,.1f} | {c.idle[1]:,.1f}"
                    f" | ${c.idle[0] * READ_PRICE * MONTH:,.0f} | {c.rolling[0]:,.1f}"
                    f" | {c.rolling[1]:,.1f} | {ratio:.3f} idle, {rolling_ratio:.3f} rolling |",
                    flush=True,
                )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--cost", action="store_true", help="capacity units, not balance")
    parser.add_argument("--restarts", type=int, default=5, help="with --cost: rolling restarts")
    parser.add_argument("--shards", default="1000")
    parser.add_argument("--workers", default="50")
    parser.add_argument("--lease-duration", type=float, default=10.0, help="in take cycles")
    parser.add_argument("--steals", default="1,3,5", help="max_steals_per_cycle values to compare")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    shard_counts = [int(v) for v in args.shards.split(",")]
    worker_counts = [int(v) for v in args.workers.split(",")]
    if args.cost:
        print_costs(shard_counts, worker_counts, args.restarts, args.seed)
        return
    args.shards, args.workers = shard_counts[0], worker_counts[0]
    steal_values = [int(v) for v in args.steals.split(",")]
    results = {
        s: scenario(args.shards, args.workers, args.lease_duration, s, args.seed)
        for s in steal_values
    }
    print(
        f"{args.shards} shards, up to {args.workers} workers, "
        f"lease duration {args.lease_duration:g} cycles"
    )
    print(
        "cycles to balance (max - min <= 1) and leases moved / fewest needed, "
        "per max_steals_per_cycle"
    )
    header = f"{'event':<24}" + "".join(f"{'steals=' + str(s):>22}" for s in steal_values)
    print(header)
    print("-" * len(header))
    for i, outcome in enumerate(results[steal_values[0]]):
        cells = []
        for s in steal_values:
            o = results[s][i]
            cycles = ">400" if o.cycles > 400 else str(o.cycles)
            cells.append(f"{cycles:>6} cyc {o.moved:>5}/{o.needed:<5}")
        print(f"{outcome.event:<24}" + "".join(f"{c:>22}" for c in cells))


if __name__ == "__main__":
    main()
