"""What polling and coordination cost, counted at the endpoint (every call any worker made).

Part 1, per contender (one worker each, its own table): GetRecords calls per shard-second on
idle shards and on busy ones (writes at a steady rate), and lease-table requests per
worker-minute. Part 2, bridge only: DescribeStream calls per minute and lease-table requests
per worker-minute with 1, 3 and 6 workers, each cluster on its own stream, measured in one
window (only a cluster's leader lists shards).

Part 3, the lease tables with more shards (60 idle shards, 3 workers), their read and
write units a second beside what the lease simulation projects for the same cluster.

Lease-table costs are in capacity units as DynamoDB bills them (a Scan costs a read unit per
4 KB it read, a write a unit per 1 KB), counted by ``bridge local``'s capacity meter; request
counts are kept beside them. Dollar figures are an assumption stated with them: DynamoDB
Streams at $0.02 per 100,000 read request units with one unit per GetRecords call, and
on-demand tables at $0.125 per million read and $0.625 per million write request units (the
public us-east-1 prices).
"""

from __future__ import annotations

import contextlib
import time
from pathlib import Path
from typing import Any

from benchlib import machine, plots
from benchlib.cluster import BRIDGE, CONTENDERS, Coordination
from benchlib.endpoint import Capacity, calls, operation_units, table_calls, units
from benchlib.rig import Rig, warm_up
from benchlib.traffic import ArrivalRecorder, write_at_rate

NAME = "cost"
STREAMS_PRICE_PER_CALL = 0.02 / 100_000
"""USD per GetRecords call: $0.02 per 100,000 Streams read request units, 1 unit a call."""
WRITE_PRICE_PER_UNIT = 0.625 / 1_000_000
READ_PRICE_PER_UNIT = 0.125 / 1_000_000
"""USD per on-demand write and read request unit, us-east-1 (prices since November 2024)."""
HOURS_PER_MONTH = 730


def settings(quick: bool) -> dict[str, Any]:
    if quick:
        return {
            "shards": 4,
            "idle_seconds": 5.0,
            "busy_seconds": 4.0,
            "busy_rate": 100,
            "workers": [1, 3, 6],
            "sync_interval": 5.0,
            "window_seconds": 10.0,
            "wide": {"shards": 40, "workers": 3, "seconds": 10.0},
        }
    return {
        "shards": 6,
        "idle_seconds": 30.0,
        "busy_seconds": 20.0,
        "busy_rate": 100,
        "workers": [1, 3, 6],
        "sync_interval": 10.0,
        "window_seconds": 60.0,
        # 6 workers on 200 shards do not settle on these 2 cores (their renewals starve and
        # leases expire): the full run keeps to what the machine holds.
        "wide": {"shards": 60, "workers": 3, "seconds": 30.0},
    }


def lease_tables(app: str) -> tuple[str, str]:
    return f"{app}-leases", f"{app}-leases-coordination"


def lease_requests(before: Any, after: Any, app: str) -> dict[str, int]:
    leases, coordination = lease_tables(app)
    a, b = table_calls(before, after, leases), table_calls(before, after, coordination)
    return {"reads": a["reads"] + b["reads"], "writes": a["writes"] + b["writes"]}


def lease_units(before: Capacity, after: Capacity, app: str) -> dict[str, float]:
    leases, coordination = lease_tables(app)
    a, b = units(before, after, leases), units(before, after, coordination)
    return {"read": a["read"] + b["read"], "write": a["write"] + b["write"]}


def per_worker_minute(
    requests: dict[str, int], spent: dict[str, float], seconds: float, workers: int = 1
) -> dict[str, float]:
    scale = 60 / seconds / workers
    return {
        "lease_reads_per_worker_minute": round(requests["reads"] * scale, 1),
        "lease_writes_per_worker_minute": round(requests["writes"] * scale, 1),
        "lease_read_units_per_worker_minute": round(spent["read"] * scale, 1),
        "lease_write_units_per_worker_minute": round(spent["write"] * scale, 1),
    }


def run(quick: bool, out: Path, work: Path) -> dict[str, Any]:
    conf = settings(quick)
    started = time.monotonic()
    with Rig(work / NAME, shards=conf["shards"]) as rig:
        per_contender = measure_polling(rig, conf)
        clusters = measure_clusters(rig, conf)
    wide = measure_wide(work, conf["wide"])
    result = {
        "quick": quick,
        "settings": conf,
        "assumptions": {
            "streams_usd_per_getrecords_call": STREAMS_PRICE_PER_CALL,
            "lease_table_usd_per_write_unit": WRITE_PRICE_PER_UNIT,
            "lease_table_usd_per_read_unit": READ_PRICE_PER_UNIT,
            "hours_per_month": HOURS_PER_MONTH,
            "text": "DynamoDB Streams: $0.02 per 100,000 read request units, 1 unit per "
            "GetRecords call; lease and coordination tables on-demand at $0.625 per million "
            "write and $0.125 per million read request units, counted as DynamoDB bills "
            "them (a read unit per 4 KB a consistent read or Scan read, a write unit per "
            "1 KB written) by bridge local's capacity meter (us-east-1 public prices; check "
            "yours)",
        },
        "fixed_250ms_true_calls_per_shard_second": 4.0,
        "contenders": per_contender,
        "clusters": clusters,
        "wide": wide,
        "wall_seconds": round(time.monotonic() - started, 1),
        "machine": machine.machine_info(),
    }
    print_table(result)
    plot(result, out / f"{NAME}.png")
    machine.save(out, NAME, result)
    return result


def measure_polling(rig: Rig, conf: dict[str, Any]) -> dict[str, Any]:
    coordination = Coordination(lease_duration=10, take_interval=2, shard_sync_interval=60)
    tables = {c.name: rig.new_table(f"cost-{c.name}") for c in CONTENDERS}
    apps = {name: f"app-{table}" for name, table in tables.items()}
    workers = {
        c.name: rig.start_worker(
            f"cost-{c.name}", rig.config(apps[c.name], tables[c.name], c, coordination)
        )
        for c in CONTENDERS
    }
    shards = conf["shards"]
    results: dict[str, Any] = {c.name: {"description": c.description} for c in CONTENDERS}
    with ArrivalRecorder(rig.broker.bootstrap_servers, tables.values()) as arrivals:
        warm_up(rig, arrivals, tables, workers)
        time.sleep(4.0)  # back off to the idle pace (1 s is reached after 3 empty reads)
        before, t0 = rig.endpoint.counts(), time.monotonic()
        capacity_before = rig.endpoint.capacity()
        metrics_before = {n: w.metrics() for n, w in workers.items()}
        time.sleep(conf["idle_seconds"])
        after, seconds = rig.endpoint.counts(), time.monotonic() - t0
        capacity_after = rig.endpoint.capacity()
        metrics_after = {n: w.metrics() for n, w in workers.items()}
        total_idle = calls(before, after, "GetRecords")
        for name in tables:
            made = _delta(
                metrics_before[name], metrics_after[name], "bridge_getrecords_calls_total"
            )
            lease = lease_requests(before, after, apps[name])
            spent = lease_units(capacity_before, capacity_after, apps[name])
            results[name]["idle"] = {
                "getrecords_per_shard_second": round(made / shards / seconds, 3),
                **per_worker_minute(lease, spent, seconds),
                "seconds": round(seconds, 1),
            }
        endpoint_idle = total_idle / (len(tables) * shards * seconds)
        for contender in CONTENDERS:
            name = contender.name
            worker = workers[name]
            before, m_before, t0 = rig.endpoint.counts(), worker.metrics(), time.monotonic()
            capacity_before = rig.endpoint.capacity()
            write_at_rate(rig.ddb, tables[name], "busy", conf["busy_rate"], conf["busy_seconds"])
            after, m_after, seconds = rig.endpoint.counts(), worker.metrics(), time.monotonic() - t0
            capacity_after = rig.endpoint.capacity()
            made = _delta(m_before, m_after, "bridge_getrecords_calls_total")
            lease = lease_requests(before, after, apps[name])
            spent = lease_units(capacity_before, capacity_after, apps[name])
            results[name]["busy"] = {
                "rate": conf["busy_rate"],
                "getrecords_per_shard_second": round(made / shards / seconds, 3),
                **per_worker_minute(lease, spent, seconds),
                "seconds": round(seconds, 1),
            }
            time.sleep(1.0)
    for name in tables:
        workers[name].terminate()
    for name in tables:
        with contextlib.suppress(Exception):
            workers[name].wait(30)
    results["endpoint_check"] = {
        "idle_getrecords_per_shard_second_all_contenders": round(endpoint_idle, 3)
    }
    return results


def measure_clusters(rig: Rig, conf: dict[str, Any]) -> list[dict[str, Any]]:
    """1, 3 and 6 bridge workers, each cluster on its own table, all in one window (the
    endpoint attributes DescribeStream to its stream's table)."""
    coordination = Coordination(
        lease_duration=10, take_interval=2, shard_sync_interval=conf["sync_interval"]
    )
    clusters = []
    for count in conf["workers"]:
        table = rig.new_table(f"cost-n{count}")
        config = rig.config(f"app-{table}", table, BRIDGE, coordination)
        workers = [rig.start_worker(f"cost-n{count}-w{i}", config) for i in range(count)]
        clusters.append((count, table, workers))
    tables = {f"n{count}": table for count, table, _ in clusters}
    with ArrivalRecorder(rig.broker.bootstrap_servers, tables.values()) as arrivals:
        warm_up(rig, arrivals, tables, {f"n{c}": w[0] for c, _, w in clusters})
    time.sleep(2.0)
    before, t0 = rig.endpoint.counts(), time.monotonic()
    capacity_before = rig.endpoint.capacity()
    time.sleep(conf["window_seconds"])
    after, seconds = rig.endpoint.counts(), time.monotonic() - t0
    capacity_after = rig.endpoint.capacity()
    out = []
    for count, table, workers in clusters:
        describe = calls(before, after, "DescribeStream", table)
        lease = lease_requests(before, after, f"app-{table}")
        spent = lease_units(capacity_before, capacity_after, f"app-{table}")
        by_worker = {}
        for worker in workers:
            with contextlib.suppress(Exception):
                metrics = worker.metrics()
                by_worker[worker.name] = metrics.get("bridge_describestream_calls_total", 0.0)
        out.append(
            {
                "workers": count,
                "seconds": round(seconds, 1),
                "describestream_per_minute": round(describe * 60 / seconds, 2),
                "describestream_by_worker_since_start": by_worker,
                **per_worker_minute(lease, spent, seconds, count),
            }
        )
    for _, _, workers in clusters:
        for worker in workers:
            worker.terminate()
    return out


def measure_wide(work: Path, conf: dict[str, Any]) -> dict[str, Any]:
    """Many shards: what every worker's take cycle (a consistent Scan of the whole lease
    table every take interval) costs in units, beside the lease simulation's projection."""
    from simulate_leases import cost as simulated_cost

    coordination = Coordination(lease_duration=10, take_interval=2, shard_sync_interval=60)
    with Rig(work / f"{NAME}-wide", shards=conf["shards"]) as rig:
        table = rig.new_table("cost-wide")
        app = f"app-{table}"
        config = rig.config(app, table, BRIDGE, coordination)
        workers = [rig.start_worker(f"cost-wide-w{i}", config) for i in range(conf["workers"])]
        wait_balanced(rig, lease_tables(app)[0], conf["shards"], workers)
        time.sleep(coordination.take_interval)
        before, t0 = rig.endpoint.capacity(), time.monotonic()
        time.sleep(conf["seconds"])
        after, seconds = rig.endpoint.capacity(), time.monotonic() - t0
        for worker in workers:
            worker.terminate()
    spent = lease_units(before, after, app)
    simulated = {
        design: simulated_cost(conf["shards"], conf["workers"], design, restarts=0, seed=7).idle
        for design in ("scan", "assigned")
    }
    leases, coordination_table = lease_tables(app)
    return {
        **conf,
        "measured_seconds": round(seconds, 1),
        "read_units_per_second": round(spent["read"] / seconds, 1),
        "write_units_per_second": round(spent["write"] / seconds, 1),
        "units_by_operation": {
            "leases": operation_units(before, after, leases),
            "coordination": operation_units(before, after, coordination_table),
        },
        "simulated_units_per_second": {
            design: {"read": round(read, 1), "write": round(write, 1)}
            for design, (read, write) in simulated.items()
        },
    }


def wait_balanced(rig: Rig, lease_table: str, shards: int, workers: list[Any]) -> None:
    """Until every lease is held and the workers hold within one of each other."""
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        rows = rig.ddb.get_paginator("scan").paginate(TableName=lease_table)
        try:
            owners = [
                item.get("leaseOwner", {}).get("S") for page in rows for item in page["Items"]
            ]
        except rig.ddb.exceptions.ResourceNotFoundException:  # no worker made it yet
            owners = []
        held: dict[str, int] = {}
        for owner in owners:
            if owner:
                held[owner] = held.get(owner, 0) + 1
        complete = len(owners) >= shards and None not in owners and len(held) == len(workers)
        if complete and max(held.values()) - min(held.values()) <= 1:
            return
        time.sleep(1.0)
    tails = "\n".join(worker.log_tail() for worker in workers)
    raise RuntimeError(f"{len(workers)} workers never balanced {shards} shards\n{tails}")


def _delta(before: dict[str, float], after: dict[str, float], name: str) -> float:
    return after.get(name, 0.0) - before.get(name, 0.0)


def per_shard_hour(calls_per_shard_second: float) -> float:
    return calls_per_shard_second * 3600


def usd_per_shard_month(calls_per_shard_second: float) -> float:
    return calls_per_shard_second * 3600 * HOURS_PER_MONTH * STREAMS_PRICE_PER_CALL


def print_table(result: dict[str, Any]) -> None:
    print(
        f"{'contender':<13}{'idle calls/shard-s':>20}{'busy calls/shard-s':>20}"
        f"{'lease units r/w per worker-min (idle)':>39}"
    )
    for name, row in result["contenders"].items():
        if name == "endpoint_check":
            continue
        idle, busy = row["idle"], row["busy"]
        print(
            f"{name:<13}{idle['getrecords_per_shard_second']:>20.2f}"
            f"{busy['getrecords_per_shard_second']:>20.2f}"
            f"{idle['lease_read_units_per_worker_minute']:>28.0f} / "
            f"{idle['lease_write_units_per_worker_minute']:<8.0f}"
        )
    print(f"{'a true 250 ms poller':<33}{4.0:>20.2f} (by definition, idle or busy)")
    print(
        f"{'workers':<10}{'DescribeStream/min':>20}{'read units/worker-min':>24}"
        f"{'write units/worker-min':>25}"
    )
    for row in result["clusters"]:
        print(
            f"{row['workers']:<10}{row['describestream_per_minute']:>20.1f}"
            f"{row['lease_read_units_per_worker_minute']:>24.1f}"
            f"{row['lease_write_units_per_worker_minute']:>25.1f}"
        )
    wide = result["wide"]
    print(
        f"{wide['workers']} workers, {wide['shards']} shards: "
        f"{wide['read_units_per_second']} read / {wide['write_units_per_second']} write units/s"
        f" (simulated: {wide['simulated_units_per_second']})"
    )


def plot(result: dict[str, Any], path: Path) -> None:
    fig, axes = plots.figure(columns=2, width=6.0, height=4.2)
    ax = axes[0][0]
    labels, idle, busy = [], [], []
    for name, row in result["contenders"].items():
        if name == "endpoint_check":
            continue
        labels.append(name)
        idle.append(per_shard_hour(row["idle"]["getrecords_per_shard_second"]))
        busy.append(per_shard_hour(row["busy"]["getrecords_per_shard_second"]))
    labels.append("true 250 ms\npoller")
    idle.append(per_shard_hour(4.0))
    busy.append(per_shard_hour(4.0))
    xs = range(len(labels))
    width = 0.38
    bars = ax.bar([x - width / 2 for x in xs], idle, width, label="idle shard")
    bars2 = ax.bar([x + width / 2 for x in xs], busy, width, label="busy shard")
    for bar in [*bars, *bars2]:
        calls_per_second = bar.get_height() / 3600
        ax.annotate(
            f"${usd_per_shard_month(calls_per_second):.2f}",
            (bar.get_x() + bar.get_width() / 2, bar.get_height()),
            ha="center",
            va="bottom",
            fontsize=7,
        )
    ax.set_xticks(list(xs), labels, fontsize=8)
    ax.set_ylabel("GetRecords calls per shard-hour")
    ax.set_title("Polling cost (labels: USD per shard-month at \\$0.02 per 100k calls)", fontsize=9)
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    ax = axes[0][1]
    counts = [row["workers"] for row in result["clusters"]]
    ax.plot(
        counts,
        [row["describestream_per_minute"] for row in result["clusters"]],
        "o-",
        label="DescribeStream / min (cluster)",
    )
    ax.plot(
        counts,
        [row["lease_write_units_per_worker_minute"] for row in result["clusters"]],
        "s--",
        label="lease-table write units / worker-min",
    )
    ax.plot(
        counts,
        [row["lease_read_units_per_worker_minute"] for row in result["clusters"]],
        "^--",
        label="lease-table read units / worker-min",
    )
    ax.set_xticks(counts)
    ax.set_xlabel("workers")
    ax.set_ylim(bottom=0)
    ax.set_title(
        f"Coordination (shard sync every {result['settings']['sync_interval']:g} s)", fontsize=9
    )
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    plots.save(fig, path, "Cost: Streams and lease-table calls")
