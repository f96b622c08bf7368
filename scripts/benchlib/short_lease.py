"""Short leases: lease-table requests against the leases a worker holds, and failover after
SIGKILL, for ``coordination.liveness: lease`` and ``heartbeat`` side by side, both with
``lease_duration`` 3 s and ``take_interval`` 1 s (renewals every second). ``lease`` renews each
lease it holds every round (KCL's way); ``heartbeat`` moves its heartbeat row in the
coordination table once a round and reads the rows it holds in one BatchGetItem.

Part 1, requests: one worker per mode, alone on its own stream, holds every lease of a stream
of 2 shards, then of 20 (one ``bridge local`` each: an endpoint gives every stream the same
shards). Once it holds them all and a lease duration passed, the counting endpoint's calls
on the lease table and on its ``-coordination`` table are counted by operation over a window
with no writes (idle shards: no checkpoint is due, what is left is the cost of keeping the
leases) and one with light writes (each change read is checkpointed, in either mode alike;
the worker's own checkpoint count tells them from renewals), both modes in the same windows.

Part 2, failover: 3 workers share a stream of 6 shards under continuous writes; once
balanced, the worker holding most leases is SIGKILLed; a replacement joins, and the kill is
repeated. Failover is the disruption benchmark's: the longest delivery gap
(``disruption.gaps_by_shard``) on the killed worker's shards from the kill to the next event;
beside it, the longest latency of a change on those shards, and when the survivors' logs say
each was taken. The modes run in turn on one endpoint and broker, with the same timings.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Any

from benchlib import machine, plots
from benchlib.cluster import BRIDGE, BenchWorker, Coordination
from benchlib.cost import lease_tables
from benchlib.disruption import IDLE_START_MS, SHARDS, Scenario, gaps_by_shard
from benchlib.endpoint import READ_OPERATIONS, WRITE_OPERATIONS, table_operations
from benchlib.rig import Rig, warm_up
from benchlib.traffic import Arrival, ArrivalRecorder, now_ms, write_at_rate

NAME = "short-lease"
MODES = ("lease", "heartbeat")
Case = tuple[str, str, BenchWorker]  # table, app, its one worker
TABLES = ("lease_table", "coordination_table")


def settings(quick: bool) -> dict[str, Any]:
    timings = {"lease_duration": 3.0, "take_interval": 1.0, "shard_counts": [2, 20], "workers": 3}
    if quick:
        sizes = {"window_seconds": 10.0, "rate": 60, "settle": 2.0, "baseline": 5.0, "kills": 1}
    else:
        sizes = {"window_seconds": 30.0, "rate": 100, "settle": 3.0, "baseline": 10.0, "kills": 2}
    return {**timings, **sizes, "light_rate": 10}


def coordination(conf: dict[str, Any], liveness: str) -> Coordination:
    return Coordination(conf["lease_duration"], conf["take_interval"], 60.0, liveness)


def run(quick: bool, out: Path, work: Path) -> dict[str, Any]:
    conf = settings(quick)
    started = time.monotonic()
    requests: list[dict[str, Any]] = []
    for shards in conf["shard_counts"]:
        with Rig(work / NAME / f"{shards}-shards", shards=shards) as rig:
            requests += measure_requests(rig, shards, conf)
    with Rig(work / NAME / "failover", shards=SHARDS) as rig:
        failovers = [measure_failover(rig, mode, conf) for mode in MODES]
    result = {
        "quick": quick,
        "settings": {**conf, "failover_shards": SHARDS},
        "requests": requests,
        "failover": failovers,
        "wall_seconds": round(time.monotonic() - started, 1),
        "machine": machine.machine_info(),
    }
    print_table(result)
    plot(result, out / "short-lease.png")
    machine.save(out, NAME, result)
    return result


# -- part 1: requests per worker-minute ------------------------------------------------------


def measure_requests(rig: Rig, shards: int, conf: dict[str, Any]) -> list[dict[str, Any]]:
    """One worker per mode, each alone on its own stream (so it holds every lease), counted
    in the same windows: whatever the shared machine does then, both modes meet it."""
    cases: dict[str, Case] = {}
    for mode in MODES:
        table = rig.new_table(f"sl{shards}-{mode}")
        config = rig.config(f"app-{table}", table, BRIDGE, coordination(conf, mode))
        cases[mode] = (table, f"app-{table}", rig.start_worker(f"{mode}-{shards}", config))
    for _, app, worker in cases.values():
        wait_holding(rig, app, worker, shards, 120)
    time.sleep(conf["lease_duration"])  # the takes' writes and first reads well behind us
    rows = count_window(rig, cases, shards, 0, conf)
    rows += count_window(rig, cases, shards, conf["light_rate"], conf)
    stop_all([worker for _, _, worker in cases.values()])
    return rows


def stop_all(workers: list[BenchWorker]) -> None:
    """SIGTERM all, then wait: the next measurement shares their cores."""
    for worker in workers:
        worker.terminate()
    for worker in workers:
        with contextlib.suppress(Exception):
            worker.wait(30)


def wait_holding(rig: Rig, app: str, worker: BenchWorker, shards: int, timeout: float) -> None:
    """Until ``worker`` holds all ``shards`` leases (before the windows: this Scan counts)."""
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(rig.ddb.exceptions.ResourceNotFoundException):
            items = rig.ddb.scan(TableName=f"{app}-leases", ConsistentRead=True)["Items"]
            owners = [item.get("leaseOwner", {}).get("S") for item in items]
            if len(owners) == shards and set(owners) == {worker.name}:
                return
        worker.ensure_alive()
        if time.monotonic() > deadline:
            raise RuntimeError(f"{worker.name} does not hold {shards} leases\n{worker.log_tail()}")
        time.sleep(0.2)


def count_window(
    rig: Rig, cases: dict[str, Case], shards: int, rate: float, conf: dict[str, Any]
) -> list[dict[str, Any]]:
    """Every call on each case's lease and coordination tables over one window, with ``rate``
    writes a second into each case's table meanwhile (none: idle shards)."""
    seconds = conf["window_seconds"]
    with ThreadPoolExecutor(len(cases)) as writers:
        before, t0 = rig.endpoint.counts(), time.monotonic()
        checkpoints = {mode: _checkpoints(worker) for mode, (_, _, worker) in cases.items()}
        writes = [
            writers.submit(write_at_rate, rig.ddb, table, "light", rate, seconds)
            for table, _, _ in cases.values()
            if rate
        ]
        time.sleep(seconds)
        after, elapsed = rig.endpoint.counts(), time.monotonic() - t0
        for done in writes:
            done.result(30)  # a writer's error, if any, here
    rows = []
    for mode, (_, app, worker) in cases.items():
        made = _checkpoints(worker) - checkpoints[mode]
        rows.append(
            {
                "liveness": mode,
                "leases_held": shards,
                "writes_per_s": rate,
                "seconds": round(elapsed, 1),
                **by_table(before, after, app, elapsed),
                "checkpoints_per_minute": round(made * 60 / elapsed, 1),
            }
        )
    return rows


def _checkpoints(worker: BenchWorker) -> float:
    return worker.metrics().get("bridge_checkpoint_writes_total", 0.0)


def by_table(
    before: Counter[str], after: Counter[str], app: str, worker_seconds: float
) -> dict[str, Any]:
    """Requests per worker-minute on ``app``'s lease table and on its coordination table."""
    tables = zip(TABLES, lease_tables(app), strict=True)
    return {
        key: per_minute(table_operations(before, after, t), worker_seconds) for key, t in tables
    }


def per_minute(calls: dict[str, int], seconds: float) -> dict[str, Any]:
    """One worker's calls on one table, as requests per minute: reads, writes, by operation."""
    rate = 60 / seconds
    return {
        "reads_per_minute": round(sum(calls.get(op, 0) for op in READ_OPERATIONS) * rate, 1),
        "writes_per_minute": round(sum(calls.get(op, 0) for op in WRITE_OPERATIONS) * rate, 1),
        "by_operation_per_minute": {op: round(n * rate, 1) for op, n in calls.items()},
    }


# -- part 2: failover after SIGKILL ----------------------------------------------------------


class ModeScenario(Scenario):
    """The disruption benchmark's scenario with ``coordination.liveness`` set, its workers
    named after the mode (both modes share one endpoint and one log directory)."""

    def __init__(self, rig: Rig, conf: dict[str, Any], liveness: str) -> None:
        super().__init__(rig, conf)
        self.liveness = liveness
        self.config = rig.config(self.app, self.table, BRIDGE, coordination(conf, liveness))

    def start(self) -> BenchWorker:
        self._names += 1
        worker = self.rig.start_worker(f"{self.liveness}-w{self._names}", self.config)
        self.live.append(worker)
        return worker


def measure_failover(rig: Rig, mode: str, conf: dict[str, Any]) -> dict[str, Any]:
    print(f"  failover, liveness: {mode}", flush=True)
    scenario = ModeScenario(rig, conf, mode)
    for _ in range(conf["workers"]):
        scenario.start()
    stop = threading.Event()
    recorder = ArrivalRecorder(rig.broker.bootstrap_servers, [scenario.table])
    with recorder as arrivals, ThreadPoolExecutor(1) as writer:
        warm_up(rig, arrivals, {mode: scenario.table}, {mode: scenario.live[0]}, 24)
        scenario.wait_balanced()
        t0, before, started = now_ms(), rig.endpoint.counts(), time.monotonic()
        writes = writer.submit(
            write_at_rate, rig.ddb, scenario.table, "f", conf["rate"], 3600, stop
        )
        time.sleep(conf["baseline"])  # > IDLE_START_MS + 2 s: gaps with no event, to compare
        seconds = (time.monotonic() - started) * conf["workers"]
        requests = by_table(before, rig.endpoint.counts(), scenario.app, seconds)
        try:
            kill_and_replace(scenario, conf)
        finally:
            end = now_ms()
            stop.set()  # else the pool would wait an hour for the writer
        count = writes.result(60).written
        arrivals.wait_for(scenario.table, "f", count, timeout=60)
        samples = [a for a in arrivals.snapshot() if a.phase == "f"]
        duplicates = arrivals.duplicates
    stop_all(scenario.live)
    kills = [e for e in scenario.events if e["kind"] == "SIGKILL"]
    for kill in kills:
        kill["taken"] = taken_after([w for w in rig.workers if w.name.startswith(f"{mode}-")], kill)
    baseline = gaps_by_shard(samples, t0 + IDLE_START_MS, kills[0]["at_ms"] - 2000)
    return {
        "liveness": mode,
        "written": count,
        "arrived": len(samples),
        "duplicates": duplicates,
        "baseline_max_gap_ms": round(max(baseline.values(), default=0.0)),
        "baseline_requests_per_worker_minute": requests,
        "kills": [failover(samples, scenario.events, e, end) for e in kills],
    }


def kill_and_replace(scenario: Scenario, conf: dict[str, Any]) -> None:
    """SIGKILL the worker holding most leases, ``kills`` times, a replacement joining (and
    the cluster balanced again) in between."""
    for number in range(conf["kills"]):
        if number:
            scenario.join()
            time.sleep(conf["settle"])
        owners = scenario.owners()
        victim = max(scenario.live, key=lambda w: sum(o == w.name for o in owners.values()))
        scenario.kill(victim)
        scenario.wait_balanced()
        scenario.events[-1]["balanced_ms"] = now_ms()
        time.sleep(conf["settle"])


def failover(
    samples: list[Arrival], events: list[dict[str, Any]], kill: dict[str, Any], end_ms: float
) -> dict[str, Any]:
    """One kill: the longest gap on the killed worker's shards up to the next event (as the
    disruption benchmark has it), and the longest latency of a change on those shards written
    from 2 s before the kill on (a gap pairs each change with the one that arrived just before
    it, which in one delivery need not be the one written just before it)."""
    start = kill["at_ms"]
    after = events[events.index(kill) + 1 :]
    until = after[0]["at_ms"] if after else end_ms
    gaps = gaps_by_shard(samples, start, until)
    held = {shard: round(gaps.get(shard, 0.0)) for shard in kill["shards"]}
    waits = [
        a.latency_ms for a in samples if a.shard in held and start - 2000 <= a.written_ms < until
    ]
    others = [gap for shard, gap in gaps.items() if shard not in held]
    return {
        "worker": kill["worker"],
        "at_ms": round(start),
        "shards": len(held),
        "failover_s": round(max(held.values(), default=0) / 1000, 2),
        "gap_ms_by_shard": held,
        "max_latency_s": round(max(waits, default=0.0) / 1000, 2),
        "taken_after_ms_by_shard": kill["taken"],
        "other_shards_max_gap_ms": round(max(others, default=0.0)),
        "rebalanced_s": round((kill["balanced_ms"] - start) / 1000, 2),
    }


def taken_after(workers: list[BenchWorker], kill: dict[str, Any]) -> dict[str, int]:
    """Milliseconds from the kill to each of its shards' "lease taken" in a survivor's log
    (epoch clock, like the kill's): detection and take, before the first read."""
    found: dict[str, float] = {}
    for worker in workers:
        for event in worker.logged("lease taken"):
            at = datetime.fromisoformat(event["timestamp"]).timestamp() * 1000
            if event.get("shard") in kill["shards"] and at > kill["at_ms"]:
                found[event["shard"]] = min(at, found.get(event["shard"], at))
    return {shard: round(at - kill["at_ms"]) for shard, at in sorted(found.items())}


# -- output -----------------------------------------------------------------------------------


def print_table(result: dict[str, Any]) -> None:
    s = result["settings"]
    print(f"requests per worker-minute, {s['window_seconds']:g} s windows (W: writes, R: reads)")
    print(
        f"{'liveness':<11}{'leases':>7}{'writes/s':>9}{'lease W':>9}{'lease R':>9}"
        f"{'coord W':>9}{'coord R':>9}{'ckpts':>7}  lease-table operations"
    )
    for r in result["requests"]:
        lease, coord = r["lease_table"], r["coordination_table"]
        ops = ", ".join(f"{op} {n:g}" for op, n in lease["by_operation_per_minute"].items())
        print(
            f"{r['liveness']:<11}{r['leases_held']:>7}{r['writes_per_s']:>9}"
            f"{lease['writes_per_minute']:>9.0f}{lease['reads_per_minute']:>9.0f}"
            f"{coord['writes_per_minute']:>9.0f}{coord['reads_per_minute']:>9.0f}"
            f"{r['checkpoints_per_minute']:>7.0f}  {ops}"
        )
    print(
        f"SIGKILL: {s['workers']} workers, {s['failover_shards']} shards, {s['rate']} writes/s, "
        f"lease {s['lease_duration']:g} s, take {s['take_interval']:g} s"
    )
    print(
        f"{'liveness':<11}{'kill':>5}{'failover s':>11}{'max lat s':>10}{'taken ms':>9}"
        f"{'rebalanced s':>13}{'others ms':>10}{'baseline ms':>12}"
    )
    for f in result["failover"]:
        for number, k in enumerate(f["kills"], 1):
            print(
                f"{f['liveness']:<11}{number:>5}{k['failover_s']:>11.2f}{k['max_latency_s']:>10.2f}"
                f"{max(k['taken_after_ms_by_shard'].values(), default=-1):>9}"
                f"{k['rebalanced_s']:>13.2f}{k['other_shards_max_gap_ms']:>10}"
                f"{f['baseline_max_gap_ms']:>12}"
            )
    for f in result["failover"]:
        lease, coord = (f["baseline_requests_per_worker_minute"][k] for k in TABLES)
        print(
            f"{f['liveness']}: before the kills, per worker-minute: lease table reads "
            f"{lease['reads_per_minute']:.0f} / writes {lease['writes_per_minute']:.0f}, "
            f"coordination {coord['reads_per_minute']:.0f} / {coord['writes_per_minute']:.0f}"
        )


def plot(result: dict[str, Any], path: Path) -> None:
    fig, axes = plots.figure(columns=2, width=5.5, height=4.0)
    ax = axes[0][0]
    for offset, mode in ((-0.2, "lease"), (0.2, "heartbeat")):
        rows = [r for r in result["requests"] if r["liveness"] == mode and not r["writes_per_s"]]
        xs = [i + offset for i in range(len(rows))]
        leases = [r["lease_table"]["writes_per_minute"] for r in rows]
        colour = "#1f77b4" if mode == "lease" else "#ff7f0e"
        ax.bar(xs, leases, 0.4, color=colour, label=f"{mode}: lease table")
        coord = [r["coordination_table"]["writes_per_minute"] for r in rows]
        ax.bar(xs, coord, 0.4, bottom=leases, color=colour, alpha=0.35, label=f"{mode}: coord.")
        ax.set_xticks(range(len(rows)), [f"{r['leases_held']} leases" for r in rows])
    ax.set_ylabel("writes / worker-minute, idle shards")
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    ax = axes[0][1]
    for offset, f in zip((-0.2, 0.2), result["failover"], strict=True):
        values = [k["failover_s"] for k in f["kills"]]
        ax.bar([i + offset for i in range(len(values))], values, 0.4, label=f["liveness"])
    lease = result["settings"]["lease_duration"]
    ax.axhline(lease, color="grey", linestyle="--", linewidth=1, label=f"lease {lease:g} s")
    kills = range(result["settings"]["kills"])
    ax.set_xticks(kills, [f"kill {i + 1}" for i in kills])
    ax.set_ylabel("failover after SIGKILL (s)")
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    plots.save(fig, path, "Short leases: lease-table writes and failover")
