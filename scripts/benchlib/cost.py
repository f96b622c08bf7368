"""What polling and coordination cost, counted at the endpoint (every call any worker made).

Part 1, per contender (one worker each, its own table): GetRecords calls per shard-second on
idle shards and on busy ones (writes at a steady rate), and lease-table requests per
worker-minute. Part 2, bridge only: DescribeStream calls per minute and lease-table requests
per worker-minute with 1, 3 and 6 workers, each cluster on its own stream, measured in one
window (only a cluster's leader lists shards).

Dollar figures are an assumption stated with them: DynamoDB Streams at $0.02 per 100,000
read request units with one unit per GetRecords call (the public us-east-1 price), and
on-demand lease-table requests at one request unit each (items are far below 1 KB).
"""

from __future__ import annotations

import contextlib
import time
from pathlib import Path
from typing import Any

from benchlib import machine, plots
from benchlib.cluster import BRIDGE, CONTENDERS, Coordination
from benchlib.endpoint import calls, table_calls
from benchlib.rig import Rig, warm_up
from benchlib.traffic import ArrivalRecorder, write_at_rate

NAME = "cost"
STREAMS_PRICE_PER_CALL = 0.02 / 100_000
"""USD per GetRecords call: $0.02 per 100,000 Streams read request units, 1 unit a call."""
WRITE_PRICE_PER_REQUEST = 0.625 / 1_000_000
READ_PRICE_PER_REQUEST = 0.125 / 1_000_000
"""USD per lease-table write and (strongly consistent, under 4 KB) read request, on-demand,
us-east-1 (prices since November 2024)."""
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
        }
    return {
        "shards": 6,
        "idle_seconds": 30.0,
        "busy_seconds": 20.0,
        "busy_rate": 100,
        "workers": [1, 3, 6],
        "sync_interval": 10.0,
        "window_seconds": 60.0,
    }


def lease_tables(app: str) -> tuple[str, str]:
    return f"{app}-leases", f"{app}-leases-coordination"


def lease_requests(before: Any, after: Any, app: str) -> dict[str, int]:
    leases, coordination = lease_tables(app)
    a, b = table_calls(before, after, leases), table_calls(before, after, coordination)
    return {"reads": a["reads"] + b["reads"], "writes": a["writes"] + b["writes"]}


def run(quick: bool, out: Path, work: Path) -> dict[str, Any]:
    conf = settings(quick)
    started = time.monotonic()
    with Rig(work / NAME, shards=conf["shards"]) as rig:
        per_contender = measure_polling(rig, conf)
        clusters = measure_clusters(rig, conf)
    result = {
        "quick": quick,
        "settings": conf,
        "assumptions": {
            "streams_usd_per_getrecords_call": STREAMS_PRICE_PER_CALL,
            "lease_table_usd_per_write_request": WRITE_PRICE_PER_REQUEST,
            "lease_table_usd_per_read_request": READ_PRICE_PER_REQUEST,
            "hours_per_month": HOURS_PER_MONTH,
            "text": "DynamoDB Streams: $0.02 per 100,000 read request units, 1 unit per "
            "GetRecords call; lease and coordination tables on-demand at $0.625 per million "
            "write and $0.125 per million read request units, 1 unit per request "
            "(us-east-1 public prices; check yours)",
        },
        "fixed_250ms_true_calls_per_shard_second": 4.0,
        "contenders": per_contender,
        "clusters": clusters,
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
        metrics_before = {n: w.metrics() for n, w in workers.items()}
        time.sleep(conf["idle_seconds"])
        after, seconds = rig.endpoint.counts(), time.monotonic() - t0
        metrics_after = {n: w.metrics() for n, w in workers.items()}
        total_idle = calls(before, after, "GetRecords")
        for name in tables:
            made = _delta(
                metrics_before[name], metrics_after[name], "bridge_getrecords_calls_total"
            )
            lease = lease_requests(before, after, apps[name])
            results[name]["idle"] = {
                "getrecords_per_shard_second": round(made / shards / seconds, 3),
                "lease_reads_per_worker_minute": round(lease["reads"] * 60 / seconds, 1),
                "lease_writes_per_worker_minute": round(lease["writes"] * 60 / seconds, 1),
                "seconds": round(seconds, 1),
            }
        endpoint_idle = total_idle / (len(tables) * shards * seconds)
        for contender in CONTENDERS:
            name = contender.name
            worker = workers[name]
            before, m_before, t0 = rig.endpoint.counts(), worker.metrics(), time.monotonic()
            write_at_rate(rig.ddb, tables[name], "busy", conf["busy_rate"], conf["busy_seconds"])
            after, m_after, seconds = rig.endpoint.counts(), worker.metrics(), time.monotonic() - t0
            made = _delta(m_before, m_after, "bridge_getrecords_calls_total")
            lease = lease_requests(before, after, apps[name])
            results[name]["busy"] = {
                "rate": conf["busy_rate"],
                "getrecords_per_shard_second": round(made / shards / seconds, 3),
                "lease_reads_per_worker_minute": round(lease["reads"] * 60 / seconds, 1),
                "lease_writes_per_worker_minute": round(lease["writes"] * 60 / seconds, 1),
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
    time.sleep(conf["window_seconds"])
    after, seconds = rig.endpoint.counts(), time.monotonic() - t0
    out = []
    for count, table, workers in clusters:
        describe = calls(before, after, "DescribeStream", table)
        lease = lease_requests(before, after, f"app-{table}")
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
                "lease_reads_per_worker_minute": round(lease["reads"] * 60 / seconds / count, 1),
                "lease_writes_per_worker_minute": round(lease["writes"] * 60 / seconds / count, 1),
            }
        )
    for _, _, workers in clusters:
        for worker in workers:
            worker.terminate()
    return out


def _delta(before: dict[str, float], after: dict[str, float], name: str) -> float:
    return after.get(name, 0.0) - before.get(name, 0.0)


def per_shard_hour(calls_per_shard_second: float) -> float:
    return calls_per_shard_second * 3600


def usd_per_shard_month(calls_per_shard_second: float) -> float:
    return calls_per_shard_second * 3600 * HOURS_PER_MONTH * STREAMS_PRICE_PER_CALL


def print_table(result: dict[str, Any]) -> None:
    print(
        f"{'contender':<13}{'idle calls/shard-s':>20}{'busy calls/shard-s':>20}"
        f"{'lease r/w per worker-min (idle)':>33}"
    )
    for name, row in result["contenders"].items():
        if name == "endpoint_check":
            continue
        idle, busy = row["idle"], row["busy"]
        print(
            f"{name:<13}{idle['getrecords_per_shard_second']:>20.2f}"
            f"{busy['getrecords_per_shard_second']:>20.2f}"
            f"{idle['lease_reads_per_worker_minute']:>22.0f} / "
            f"{idle['lease_writes_per_worker_minute']:<8.0f}"
        )
    print(f"{'a true 250 ms poller':<33}{4.0:>20.2f} (by definition, idle or busy)")
    print(
        f"{'workers':<10}{'DescribeStream/min':>20}{'lease reads/worker-min':>24}"
        f"{'lease writes/worker-min':>25}"
    )
    for row in result["clusters"]:
        print(
            f"{row['workers']:<10}{row['describestream_per_minute']:>20.1f}"
            f"{row['lease_reads_per_worker_minute']:>24.1f}"
            f"{row['lease_writes_per_worker_minute']:>25.1f}"
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
        [row["lease_writes_per_worker_minute"] for row in result["clusters"]],
        "s--",
        label="lease-table writes / worker-min",
    )
    ax.plot(
        counts,
        [row["lease_reads_per_worker_minute"] for row in result["clusters"]],
        "^--",
        label="lease-table reads / worker-min",
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
