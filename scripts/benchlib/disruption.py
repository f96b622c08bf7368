"""Latency, delivery gaps and duplicates while workers die, stop, join and restart, under
continuous writes.

Three ``bridge run`` workers share a stream of 6 shards. Writes run throughout; a consumer
records every change's latency. Then, in turn: one worker is SIGKILLed (its leases expire
after ``lease_duration`` and are taken), a replacement joins; one is SIGTERMed (it drains,
checkpoints and releases its leases, which others take at once), a replacement joins; and a
rolling restart replaces all three, one at a time (new one started, then the old one
SIGTERMed, as a Kubernetes Deployment does).

An event's window runs from it to the next event (the last to the last arrival). The
*delivery gap* of a shard is the longest a change arriving in the window waited for its shard
to be read again, from the later of its write and the shard's previous arrival to its own
arrival: about one poll interval while the shard is read, and how long it went unread when
its reader changed (a quiet moment with nothing written is not counted as a gap). Failover
time (SIGKILL) and handoff time (SIGTERM) are the longest gap over the shards the stopped
worker held. Each join lands in a balanced cluster and steals leases: the
*scale-out* row covers both joins' windows, its shards being those whose owner changed between
just before the join and the cluster balanced again (the ones the joiner took).

*Duplicates*: every repeated copy of a change (at-least-once delivery) counts once, in the
window where that copy arrived, not where the change was written: that is the window of the
event that made a worker re-read it. The baseline's are those arriving between the start of
writes and the first event, so baseline and windows together count every repeat of a timed
write (the warm-up's are left out).
"""

from __future__ import annotations

import itertools
import threading
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from benchlib import machine, plots
from benchlib.cluster import BRIDGE, BenchWorker, Coordination
from benchlib.rig import Rig, warm_up
from benchlib.stats import summary
from benchlib.traffic import Arrival, ArrivalRecorder, now_ms, write_at_rate

NAME = "disruption"
SHARDS = 6
SCALE_OUT = "scale-out: worker joins"
IDLE_START_MS = 1500

Span = tuple[float, float, list[str]]  # start ms, end ms, the shards the event affected


def settings(quick: bool) -> dict[str, Any]:
    if quick:
        return {
            "rate": 60,
            "lease_duration": 4.0,
            "take_interval": 0.5,
            "settle": 2.0,
            "baseline": 4.0,
        }
    return {
        "rate": 100,
        "lease_duration": 10.0,
        "take_interval": 2.0,
        "settle": 5.0,
        "baseline": 10.0,
    }


class Scenario:
    def __init__(self, rig: Rig, conf: dict[str, Any]) -> None:
        self.rig = rig
        self.conf = conf
        self.table = rig.new_table("disrupt")
        self.app = f"app-{self.table}"
        coordination = Coordination(
            lease_duration=conf["lease_duration"],
            take_interval=conf["take_interval"],
            shard_sync_interval=60,
        )
        self.config = rig.config(self.app, self.table, BRIDGE, coordination)
        self.live: list[BenchWorker] = []
        self.events: list[dict[str, Any]] = []
        self._names = 0

    def start(self) -> BenchWorker:
        self._names += 1
        worker = self.rig.start_worker(f"w{self._names}", self.config)
        self.live.append(worker)
        return worker

    def owners(self) -> dict[str, str | None]:
        """Unfinished lease -> owner, read consistently from the lease table."""
        items = self.rig.ddb.scan(TableName=f"{self.app}-leases", ConsistentRead=True)["Items"]
        return {
            item["leaseKey"]["S"]: item.get("leaseOwner", {}).get("S")
            for item in items
            if item.get("checkpoint", {}).get("S") != "SHARD_END"
        }

    def wait_balanced(self, timeout: float = 120.0) -> float:
        """Every lease held by a live worker, shares within one; returns the seconds taken."""
        started = time.monotonic()
        names = {w.name for w in self.live}
        while True:
            owners = self.owners()
            loads = [sum(1 for o in owners.values() if o == n) for n in names]
            if (
                len(owners) == SHARDS
                and all(o in names for o in owners.values())
                and max(loads) - min(loads) <= 1
            ):
                return time.monotonic() - started
            if time.monotonic() - started > timeout:
                raise RuntimeError(f"not balanced after {timeout}s: {owners}")
            time.sleep(0.2)

    def mark(
        self, kind: str, worker: BenchWorker, shards: list[str] | None = None
    ) -> dict[str, Any]:
        event = {"kind": kind, "worker": worker.name, "at_ms": now_ms(), "shards": shards or []}
        self.events.append(event)
        print(f"  {kind} {worker.name} (held {len(shards or [])} shards)", flush=True)
        return event

    def held_by(self, worker: BenchWorker) -> list[str]:
        return sorted(k for k, o in self.owners().items() if o == worker.name)

    def kill(self, worker: BenchWorker) -> None:
        self.mark("SIGKILL", worker, self.held_by(worker))
        worker.kill()
        self.live.remove(worker)

    def terminate(self, worker: BenchWorker, kind: str = "SIGTERM") -> None:
        self.mark(kind, worker, self.held_by(worker))
        worker.terminate()
        worker.wait(60)
        self.live.remove(worker)

    def join(self) -> None:
        """Start a worker into the balanced cluster and wait until it is balanced again. The
        event's ``moved`` lists the leases that changed owner meanwhile: the joiner stole them,
        so those shards paused while their old owner let go and the joiner started reading."""
        before = self.owners()
        worker = self.start()
        event = self.mark("join", worker)
        self.wait_balanced()
        after = self.owners()
        event["moved"] = sorted(k for k, o in after.items() if o != before.get(k))
        print(f"  {worker.name} took {len(event['moved'])} shards", flush=True)


def run(quick: bool, out: Path, work: Path) -> dict[str, Any]:
    conf = settings(quick)
    started = time.monotonic()
    with Rig(work / NAME, shards=SHARDS) as rig:
        scenario = Scenario(rig, conf)
        for _ in range(3):
            scenario.start()
        stop = threading.Event()
        with ArrivalRecorder(rig.broker.bootstrap_servers, [scenario.table]) as arrivals:
            warm_up(rig, arrivals, {"bridge": scenario.table}, {"bridge": scenario.live[0]}, 24)
            scenario.wait_balanced()
            writer_result: list[Any] = []
            writer = threading.Thread(
                target=lambda: writer_result.append(
                    write_at_rate(rig.ddb, scenario.table, "d", conf["rate"], 3600, stop)
                ),
                daemon=True,
            )
            t0 = now_ms()
            writer.start()
            time.sleep(conf["baseline"])
            timeline(scenario, conf)
            stop.set()
            writer.join(60)
            written = writer_result[0].written if writer_result else 0
            arrivals.wait_for(scenario.table, "d", written, timeout=60)
            samples = [a for a in arrivals.snapshot() if a.phase == "d"]
            repeats = [a for a in arrivals.repeated() if a.phase == "d"]
            duplicates = arrivals.duplicates
    result = analyse(samples, repeats, scenario.events, t0)
    result.update(
        {
            "quick": quick,
            "settings": {**conf, "shards": SHARDS, "workers": 3},
            "written": written,
            "arrived": len(samples),
            "duplicates": duplicates,
            "wall_seconds": round(time.monotonic() - started, 1),
            "machine": machine.machine_info(),
        }
    )
    print_table(result)
    plot(samples, scenario.events, t0, result, out / f"{NAME}.png")
    machine.save(out, NAME, result)
    return result


def timeline(scenario: Scenario, conf: dict[str, Any]) -> None:
    settle = conf["settle"]
    scenario.kill(scenario.live[0])
    scenario.wait_balanced()
    time.sleep(settle)
    scenario.join()
    time.sleep(settle)
    scenario.terminate(scenario.live[0])
    scenario.wait_balanced()
    time.sleep(settle)
    scenario.join()
    time.sleep(settle)
    for old in list(scenario.live):
        new = scenario.start()
        new.metrics_port()  # up and serving before the old one goes
        scenario.mark("rolling: new", new)
        scenario.terminate(old, "rolling: SIGTERM")
        scenario.wait_balanced()
    time.sleep(settle)


def gaps_by_shard(samples: list[Arrival], start_ms: float, end_ms: float) -> dict[str, float]:
    """Per shard, the longest a change arriving in [start, end] (or the first after it) waited
    for its shard to be read again: from the later of its write and the previous arrival on
    the shard, to its own arrival. Time with nothing written is no gap: a 250 ms poller whose
    read finds nothing delivers its next change 500 ms after its last, yet kept up."""
    arrivals: dict[str, list[Arrival]] = defaultdict(list)
    for a in samples:
        arrivals[a.shard].append(a)
    out = {}
    for shard, seen in arrivals.items():
        seen.sort(key=lambda a: a.arrived_ms)
        before = [a for a in seen if a.arrived_ms <= start_ms][-1:]
        inside = [a for a in seen if start_ms < a.arrived_ms <= end_ms]
        after = [a for a in seen if a.arrived_ms > end_ms][:1]
        points = before + inside + after
        out[shard] = max(
            (b.arrived_ms - max(a.arrived_ms, b.written_ms) for a, b in itertools.pairwise(points)),
            default=0.0,
        )
    return out


def spans_by_window(events: list[dict[str, Any]], ends: list[float]) -> dict[str, list[Span]]:
    """The rows of the table, each as the spans of time it covers and the shards each affected.

    SIGKILL and SIGTERM are one event each; both joins form the scale-out row (the same
    two-to-three step twice); the rolling restart runs from its first event to the end of its
    last, affecting every shard its stopped workers held."""
    rows: dict[str, list[Span]] = {"SIGKILL": [], "SIGTERM": [], SCALE_OUT: []}
    for event, end in zip(events, ends, strict=True):
        if event["kind"] in ("SIGKILL", "SIGTERM"):
            rows[event["kind"]] = [(event["at_ms"], end, event["shards"])]
        elif event["kind"] == "join":
            rows[SCALE_OUT].append((event["at_ms"], end, event["moved"]))
    rolling = [e for e in events if e["kind"].startswith("rolling")]
    if rolling:
        shards = sorted({s for e in rolling for s in e["shards"]})
        rows["rolling restart"] = [(rolling[0]["at_ms"], ends[events.index(rolling[-1])], shards)]
    return {name: spans for name, spans in rows.items() if spans}


def window(
    name: str, spans: list[Span], samples: list[Arrival], repeats: list[Arrival], t0: float
) -> dict[str, Any]:
    """Gaps, latency (by write time) and duplicates (by repeat arrival time) over ``spans``."""
    held: dict[str, float] = {}
    others = 0.0
    for start, end, shards in spans:
        gaps = gaps_by_shard(samples, start, end)
        for shard in shards:
            held[shard] = max(held.get(shard, 0.0), gaps.get(shard, 0.0))
        others = max([others, *(g for s, g in gaps.items() if s not in shards)])

    def inside(ms: float) -> bool:
        return any(start <= ms < end for start, end, _ in spans)

    return {
        "event": name,
        "at_s": round((spans[0][0] - t0) / 1000, 1),
        "window_s": round(sum(end - start for start, end, _ in spans) / 1000, 1),
        "affected_shards": len(held),
        "max_gap_ms": round(max(held.values(), default=0.0)),
        "gap_ms_by_shard": {s: round(g) for s, g in sorted(held.items())},
        "other_shards_max_gap_ms": round(others),
        "latency": summary([a.latency_ms for a in samples if inside(a.written_ms)]),
        "duplicates": sum(1 for r in repeats if inside(r.arrived_ms)),
    }


def analyse(
    samples: list[Arrival], repeats: list[Arrival], events: list[dict[str, Any]], t0: float
) -> dict[str, Any]:
    first_event = events[0]["at_ms"]
    # Up to the first event, less the last 2 s: changes written just before a SIGKILL wait
    # for the failover, and belong to it.
    baseline = [a.latency_ms for a in samples if a.written_ms < first_event - 2000]
    # Steady: less the first 1.5 s too, when shards slowed to the idle pace meet the writes
    # (as in the latency benchmark's "p99 after 1.5 s").
    steady = [
        a.latency_ms for a in samples if t0 + IDLE_START_MS <= a.written_ms < first_event - 2000
    ]
    # Windows are half-open, so the last one ends just after the last copy arrived.
    last = max(a.arrived_ms for a in [*samples, *repeats]) + 1
    ends = [e["at_ms"] for e in events[1:]] + [last]
    rows = spans_by_window(events, ends)
    windows = [window(name, spans, samples, repeats, t0) for name, spans in rows.items()]
    by = {w["event"]: w for w in windows}
    return {
        "baseline_latency": summary(steady),
        "baseline_with_idle_start_latency": summary(baseline),
        "baseline_duplicates": sum(1 for r in repeats if t0 <= r.arrived_ms < first_event),
        "windows": windows,
        "failover_after_sigkill_s": round(by["SIGKILL"]["max_gap_ms"] / 1000, 2),
        "handoff_after_sigterm_s": round(by["SIGTERM"]["max_gap_ms"] / 1000, 2),
        "join_max_gap_s": round(by[SCALE_OUT]["max_gap_ms"] / 1000, 2),
        "rolling_restart_max_gap_s": round(by["rolling restart"]["max_gap_ms"] / 1000, 2),
        "rolling_p99_vs_baseline": round(
            by["rolling restart"]["latency"]["p99_ms"] / summary(steady)["p99_ms"], 2
        ),
        "events": [{**e, "at_s": round((e["at_ms"] - t0) / 1000, 2)} for e in events],
        "kcl_defaults": {
            "failover_s": 10.0,
            "note": "KCL: failover after the 10 s lease "
            "expires (failoverTimeMillis); leases are not released on shutdown by "
            "default, so a graceful stop also waits for expiry",
        },
    }


def print_table(result: dict[str, Any]) -> None:
    base = result["baseline_latency"]
    print(
        f"{'window':<24}{'shards':>7}{'max gap':>9}{'p50':>8}{'p99':>8}{'max':>8}{'dups':>6}  (ms)"
    )
    idle = result["baseline_with_idle_start_latency"]
    print(
        f"{'baseline (no event)':<24}{'-':>7}{'-':>9}{base.get('p50_ms', 0):>8.0f}"
        f"{base.get('p99_ms', 0):>8.0f}{base.get('max_ms', 0):>8.0f}"
        f"{result['baseline_duplicates']:>6}"
    )
    print(
        f"{'  with its first 1.5 s':<24}{'-':>7}{'-':>9}{idle.get('p50_ms', 0):>8.0f}"
        f"{idle.get('p99_ms', 0):>8.0f}{idle.get('max_ms', 0):>8.0f}{'':>6}"
    )
    for w in result["windows"]:
        lat = w["latency"]
        print(
            f"{w['event']:<24}{w['affected_shards']:>7}{w['max_gap_ms']:>9.0f}"
            f"{lat.get('p50_ms', 0):>8.0f}{lat.get('p99_ms', 0):>8.0f}"
            f"{lat.get('max_ms', 0):>8.0f}{w['duplicates']:>6}"
        )
    print(
        f"failover after SIGKILL {result['failover_after_sigkill_s']} s, handoff after "
        f"SIGTERM {result['handoff_after_sigterm_s']} s (KCL defaults: 10 s and 10 s), "
        f"longest gap on a shard a joiner took {result['join_max_gap_s']} s"
    )
    timed = result["baseline_duplicates"] + sum(w["duplicates"] for w in result["windows"])
    print(
        f"{result['written']} written, {result['arrived']} arrived; {result['duplicates']} "
        f"repeated copies, {timed} of timed writes (in the window where the repeat arrived)"
    )


def plot(
    samples: list[Arrival],
    events: list[dict[str, Any]],
    t0: float,
    result: dict[str, Any],
    path: Path,
) -> None:
    fig, axes = plots.figure(width=11.0, height=4.2)
    ax = axes[0][0]
    xs = [(a.written_ms - t0) / 1000 for a in samples]
    ys = [a.latency_ms for a in samples]
    ax.scatter(xs, ys, s=2, alpha=0.4, color=plots.COLOURS["bridge"], label="change latency")
    colours = {
        "SIGKILL": "red",
        "SIGTERM": "purple",
        "join": "green",
        "rolling: new": "green",
        "rolling: SIGTERM": "purple",
    }
    top = max(ys, default=1000)
    for event in events:
        x = (event["at_ms"] - t0) / 1000
        ax.axvline(x, color=colours.get(event["kind"], "grey"), linestyle="--", linewidth=1)
        if event["kind"] == "rolling: new":
            continue  # the SIGTERM just after it carries the label
        label = {"join": "+ {}", "rolling: SIGTERM": "rolling: TERM {}"}.get(
            event["kind"], event["kind"].replace("SIG", "") + " {}"
        )
        ax.annotate(
            label.format(event["worker"]), (x, top), rotation=90, fontsize=7, va="top", ha="right"
        )
    ax.set_xlabel("seconds since writes started (write time)")
    ax.set_ylabel("write -> Kafka consumer (ms)")
    ax.set_yscale("log")
    ax.grid(alpha=0.3)
    plots.save(
        fig,
        path,
        f"Latency through SIGKILL, SIGTERM, joins and a rolling restart "
        f"(lease {result['settings']['lease_duration']:g} s)",
    )
