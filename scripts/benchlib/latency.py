"""End-to-end latency: DynamoDB write -> Streams -> ``bridge run`` -> Kafka -> a consumer.

Three contenders run in the same run, on the same endpoint and broker, each a ``bridge run``
worker with its own table and topic, all alive throughout: bridge's adaptive polling, a fixed
250 ms poller and KCL's default 1 s pacing (the baselines are bridge with
interval = idle_interval, which still re-reads at once after a non-empty read, so at these
rates they are, if anything, slightly flattered). For each rate, each contender in turn gets
writes at that rate for a fixed time while the others are idle; the order rotates per rate so
that drift on a shared machine does not always hit the same contender.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from benchlib import machine, plots
from benchlib.cluster import CONTENDERS, Coordination
from benchlib.rig import Rig, warm_up
from benchlib.stats import summary
from benchlib.traffic import Arrival, ArrivalRecorder, now_ms, write_at_rate

NAME = "latency"
STEADY_AFTER_MS = 1500


def settings(quick: bool) -> dict[str, Any]:
    if quick:
        return {"rates": [50, 200], "seconds": 5.0, "shards": 4, "quiet": 2.0}
    return {"rates": [50, 200, 500], "seconds": 20.0, "shards": 4, "quiet": 3.0}


def run(quick: bool, out: Path, work: Path) -> dict[str, Any]:
    conf = settings(quick)
    coordination = Coordination(lease_duration=10, take_interval=1, shard_sync_interval=60)
    started = time.monotonic()
    with Rig(work / NAME, shards=conf["shards"]) as rig:
        tables = {c.name: rig.new_table(f"lat-{c.name.replace('.', '')}") for c in CONTENDERS}
        workers = {
            c.name: rig.start_worker(
                f"lat-{c.name}",
                rig.config(f"app-{tables[c.name]}", tables[c.name], c, coordination),
            )
            for c in CONTENDERS
        }
        with ArrivalRecorder(rig.broker.bootstrap_servers, tables.values()) as arrivals:
            warm_up(rig, arrivals, tables, workers)
            time.sleep(conf["quiet"])
            phases: list[dict[str, Any]] = []
            for index, rate in enumerate(conf["rates"]):
                order = CONTENDERS[index % 3 :] + CONTENDERS[: index % 3]
                for contender in order:
                    table, worker = tables[contender.name], workers[contender.name]
                    calls_before = worker.metrics().get("bridge_getrecords_calls_total", 0.0)
                    phase_started = now_ms()
                    writes = write_at_rate(rig.ddb, table, str(rate), rate, conf["seconds"])
                    complete = arrivals.wait_for(table, str(rate), writes.written, timeout=60)
                    calls = worker.metrics().get("bridge_getrecords_calls_total", 0.0)
                    phases.append(
                        {
                            "contender": contender.name,
                            "rate": rate,
                            "written": writes.written,
                            "achieved_rate": round(writes.achieved_rate, 1),
                            "seconds": round(writes.elapsed, 2),
                            "complete": complete,
                            "started_ms": phase_started,
                            "getrecords_calls": calls - calls_before,
                        }
                    )
                    print(
                        f"  {contender.name:<12} {rate:>4}/s: {writes.written} written "
                        f"({writes.achieved_rate:.0f}/s)"
                    )
                    time.sleep(conf["quiet"])
            samples = arrivals.snapshot()
            duplicates = arrivals.duplicates
    by_table = {table: name for name, table in tables.items()}
    latencies: dict[str, dict[str, list[float]]] = {c.name: {} for c in CONTENDERS}
    grouped: dict[tuple[str, str], list[Arrival]] = {}
    for arrival in samples:
        if arrival.phase != "warmup":
            grouped.setdefault((by_table[arrival.topic], arrival.phase), []).append(arrival)
            latencies[by_table[arrival.topic]].setdefault(arrival.phase, []).append(
                arrival.latency_ms
            )
    for phase in phases:
        got = grouped.get((phase["contender"], str(phase["rate"])), [])
        phase["arrived"] = len(got)
        phase["latency"] = summary([a.latency_ms for a in got])
        # Past the first STEADY_AFTER_MS of the phase: shards no longer paced as idle ones.
        steady_from = phase["started_ms"] + STEADY_AFTER_MS
        phase["latency_steady"] = summary(
            [a.latency_ms for a in got if a.written_ms >= steady_from]
        )
    result = {
        "quick": quick,
        "settings": conf,
        "contenders": {c.name: c.description for c in CONTENDERS},
        "coordination": coordination.__dict__,
        "phases": phases,
        "duplicates": duplicates,
        "wall_seconds": round(time.monotonic() - started, 1),
        "machine": machine.machine_info(),
    }
    result["ratios"] = ratios(phases)
    print_table(result)
    plot(latencies, conf["rates"], out / f"{NAME}.png")
    machine.save(out, NAME, result)
    return result


def ratios(phases: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Per rate: each baseline's p50 and p99 divided by bridge's (above 1: bridge is faster)."""
    out: dict[str, dict[str, float]] = {}
    by = {(p["contender"], p["rate"]): p["latency"] for p in phases}
    for (name, rate), lat in by.items():
        base = by.get(("bridge", rate))
        if name == "bridge" or not base or not lat.get("n") or not base.get("n"):
            continue
        for q in ("p50_ms", "p99_ms"):
            out.setdefault(str(rate), {})[f"{name} / bridge {q[:3]}"] = round(lat[q] / base[q], 2)
    return out


def print_table(result: dict[str, Any]) -> None:
    print(
        f"{'contender':<13}{'rate/s':>7}{'n':>7}{'p50':>8}{'p95':>8}{'p99':>8}{'max':>8}"
        f"{'steady p99':>12}  ms"
    )
    for p in result["phases"]:
        lat = p["latency"]
        if not lat.get("n"):
            print(f"{p['contender']:<13}{p['rate']:>7}  no arrivals")
            continue
        print(
            f"{p['contender']:<13}{p['rate']:>7}{lat['n']:>7}{lat['p50_ms']:>8.0f}"
            f"{lat['p95_ms']:>8.0f}{lat['p99_ms']:>8.0f}{lat['max_ms']:>8.0f}"
            f"{p['latency_steady'].get('p99_ms', 0):>12.0f}"
        )


def plot(latencies: dict[str, dict[str, list[float]]], rates: list[int], path: Path) -> None:
    import numpy as np

    fig, axes = plots.figure(columns=len(rates))
    for ax, rate in zip(axes[0], rates, strict=True):
        for name, phases in latencies.items():
            values = np.sort(np.asarray(phases.get(str(rate), []), dtype=float))
            if len(values):
                ax.plot(
                    values,
                    np.arange(1, len(values) + 1) / len(values),
                    label=name,
                    color=plots.COLOURS.get(name),
                )
        ax.set_title(f"{rate} writes/s")
        ax.set_xlabel("write -> Kafka consumer (ms)")
        ax.set_ylabel("fraction of changes")
        ax.set_xlim(left=0)
        ax.grid(alpha=0.3)
        ax.legend(loc="lower right")
    plots.save(fig, path, "End-to-end latency CDF per contender")
