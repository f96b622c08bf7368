"""The lease logic at scale, simulated on a virtual clock: no AWS, no processes.

``bridge.testing.lease_simulation`` drives the real pure lease code (renew, observe, plan,
conditional take) for every worker each cycle; ``scripts/simulate_leases.py``'s ``settle``
counts the cycles until shares are within one and the leases that moved. Here: 1,000 shards
and 10, 50 or 200 workers, then 10% more join, 10% leave (SIGTERM: leases released), 10% crash
(SIGKILL: leases expire), one pauses past its lease and wakes up, and a quiet stretch (nothing
must move). One cycle is one take interval (bridge's default: 2 s); the lease duration is 5
cycles (10 s, the default). bridge's default ``max_steals_per_cycle`` (5) runs beside KCL's (1).
"""

from __future__ import annotations

import random
import time
from pathlib import Path
from typing import Any

from simulate_leases import settle

from benchlib import machine, plots
from bridge.testing.lease_simulation import LeaseSimulation

NAME = "scale"
TAKE_INTERVAL_S = 2.0
LEASE_CYCLES = 5.0
LIMIT = 400


def settings(quick: bool) -> dict[str, Any]:
    return {
        "shards": 1000,
        "workers": [10, 50, 200],
        "steals": [5] if quick else [1, 5],
        "seed": 7,
        "lease_cycles": LEASE_CYCLES,
        "take_interval_s": TAKE_INTERVAL_S,
    }


def scenario(shards: int, workers: int, steals: int, seed: int) -> list[dict[str, Any]]:
    sim = LeaseSimulation(shards, LEASE_CYCLES, max_steals=steals, seed=seed)
    rng = random.Random(seed)
    tenth = max(1, workers // 10)
    rows = []

    def record(event: str, act: Any) -> None:
        outcome = settle(sim, event, act, LIMIT)
        loads = sim.loads().values()
        rows.append(
            {
                "event": event,
                "cycles": outcome.cycles,
                "balanced": sim.balanced(),
                "moved": outcome.moved,
                "needed": outcome.needed,
                "spread": max(loads) - min(loads),
                "workers": len(sim.workers),
            }
        )

    record(f"{workers} start", lambda: [sim.join() for _ in range(workers)])
    record(f"{tenth} join", lambda: [sim.join() for _ in range(tenth)])
    record(
        f"{tenth} leave (SIGTERM)",
        lambda: [sim.leave(n) for n in rng.sample(sorted(sim.workers), tenth)],
    )
    record(
        f"{tenth} crash (SIGKILL)",
        lambda: [sim.crash(n) for n in rng.sample(sorted(sim.workers), tenth)],
    )
    paused = rng.choice(sorted(sim.workers))
    held, moves = sim.loads()[paused], sim.moves
    sim.pause(paused, 2 * LEASE_CYCLES)
    for _ in range(int(2 * LEASE_CYCLES)):
        sim.cycle()
    rows.append(
        {
            "event": "1 paused 2x lease",
            "cycles": int(2 * LEASE_CYCLES),
            "balanced": sim.balanced(),
            "moved": sim.moves - moves,
            "needed": held,
            "spread": max(sim.loads().values()) - min(sim.loads().values()),
            "workers": len(sim.workers),
        }
    )
    record("... and woken up", lambda: None)
    quiet = sim.moves
    for _ in range(int(3 * LEASE_CYCLES)):
        sim.cycle()
    loads = sim.loads().values()
    rows.append(
        {
            "event": "quiet 3x lease",
            "cycles": int(3 * LEASE_CYCLES),
            "balanced": sim.balanced(),
            "moved": sim.moves - quiet,
            "needed": 0,
            "spread": max(loads) - min(loads),
            "workers": len(sim.workers),
        }
    )
    return rows


def run(quick: bool, out: Path, work: Path) -> dict[str, Any]:
    conf = settings(quick)
    started = time.monotonic()
    runs = []
    for workers in conf["workers"]:
        for steals in conf["steals"]:
            t = time.monotonic()
            rows = scenario(conf["shards"], workers, steals, conf["seed"])
            runs.append(
                {
                    "workers": workers,
                    "max_steals_per_cycle": steals,
                    "events": rows,
                    "cpu_seconds": round(time.monotonic() - t, 2),
                }
            )
    result = {
        "quick": quick,
        "settings": conf,
        "runs": runs,
        "wall_seconds": round(time.monotonic() - started, 1),
        "machine": machine.machine_info(),
    }
    print_table(result)
    plot(result, out / f"{NAME}.png")
    machine.save(out, NAME, result)
    return result


def print_table(result: dict[str, Any]) -> None:
    print(
        f"{'workers':>7}{'steals':>7}  {'event':<22}{'cycles':>7}{'moved':>7}{'needed':>7}"
        f"{'spread':>7}"
    )
    for run in result["runs"]:
        for row in run["events"]:
            cycles = f">{LIMIT}" if row["cycles"] > LIMIT else str(row["cycles"])
            print(
                f"{run['workers']:>7}{run['max_steals_per_cycle']:>7}  {row['event']:<22}"
                f"{cycles:>7}{row['moved']:>7}{row['needed']:>7}{row['spread']:>7}"
            )


def plot(result: dict[str, Any], path: Path) -> None:
    runs = result["runs"]
    events = ["join", "leave", "crash", "woken"]
    fig, axes = plots.figure(columns=len(events), width=3.6, height=3.4)
    for ax, word in zip(axes[0], events, strict=True):
        for steals, marker in ((1, "o--"), (5, "s-")):
            chosen = [r for r in runs if r["max_steals_per_cycle"] == steals]
            if not chosen:
                continue
            xs = [r["workers"] for r in chosen]
            ys = [
                next(e["cycles"] for e in r["events"] if word in e["event"]) * TAKE_INTERVAL_S
                for r in chosen
            ]
            ax.plot(xs, ys, marker, label=f"max_steals={steals}")
        ax.set_xscale("log")
        ax.set_xticks([10, 50, 200], ["10", "50", "200"])
        ax.set_title(f"10% {word}" if word != "woken" else "paused worker wakes", fontsize=9)
        ax.set_xlabel("workers (1,000 shards)")
        ax.set_ylabel("seconds to balance (2 s cycles)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    plots.save(fig, path, "Lease balancing at scale (simulated, virtual clock)")
