"""The table's snapshot to Kafka (``source.start: bootstrap``) against a raw parallel Scan.

One table in ``bridge local`` is filled once; then, side by side in one run:

  raw scan        boto3, one thread per segment, every page of a parallel Scan and nothing
                  else (no encoding, no Kafka): the ceiling the source allows here.
  bridge, 1 / 2   ``bridge run`` processes with ``start: bootstrap`` and the Kafka processor,
                  each a new application: the workers share the scan's segments as leases and
                  publish every item as a SNAPSHOT envelope, each page acknowledged before its
                  checkpoint. Timed on the topic, from the first SNAPSHOT message's CreateTime
                  to the last SNAPSHOT_END marker's (worker start-up is not counted).

The raw scan runs before and after the bridge runs; the ratio is taken against their mean.
``bridge local`` answers Scans through moto, so both sides share its speed, as they share the
2 cores with the broker.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import time
import uuid
from pathlib import Path
from typing import Any

import yaml
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from benchlib import machine, plots
from benchlib.cluster import BenchWorker, create_table, dynamodb
from benchlib.traffic import create_topic
from bridge.local.endpoint import LocalEndpoint
from bridge.local.processes import KafkaBroker

NAME = "snapshot"
SEGMENTS = 8
PARTITIONS = 4


def fill(ddb: Any, table: str, items: int, size: int) -> None:
    pad = "x" * size
    for start in range(0, items, 25):
        request: dict[str, Any] = {
            table: [
                {"PutRequest": {"Item": {"pk": {"S": f"item-{n:08d}"}, "n": {"N": str(n)},
                                         "pad": {"S": pad}}}}
                for n in range(start, min(start + 25, items))
            ]
        }  # fmt: skip
        while request:
            request = ddb.batch_write_item(RequestItems=request).get("UnprocessedItems") or {}


def raw_scan(endpoint_url: str, table: str) -> tuple[int, float]:
    """Every page of a parallel Scan, one thread (and client) per segment."""

    def segment(index: int) -> int:
        client = dynamodb(endpoint_url)
        count, start = 0, None
        while True:
            kwargs: dict[str, Any] = {"TableName": table, "Segment": index,
                                      "TotalSegments": SEGMENTS}  # fmt: skip
            if start:
                kwargs["ExclusiveStartKey"] = start
            page = client.scan(**kwargs)
            count += len(page["Items"])
            start = page.get("LastEvaluatedKey")
            if not start:
                return count

    began = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(SEGMENTS) as pool:
        total = sum(pool.map(segment, range(SEGMENTS)))
    return total, time.monotonic() - began


def bridge_snapshot(
    work: Path, endpoint_url: str, broker: KafkaBroker, table: str, workers: int, items: int
) -> dict[str, Any]:
    app = f"snapbench-{uuid.uuid4().hex[:6]}"
    topic = f"{table}-{app}"
    create_topic(broker.bootstrap_servers, topic, PARTITIONS)
    config = work / f"{app}.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "app": app,
                "source": {
                    "table": table,
                    "endpoint_url": endpoint_url,
                    "start": "bootstrap",
                    "bootstrap": {"segments": SEGMENTS},
                },
                "coordination": {"lease_duration": "6s", "take_interval": "200ms"},
                "processor": {
                    "kind": "kafka",
                    "options": {"bootstrap_servers": broker.bootstrap_servers, "topic": topic},
                },
                "metrics": {"port": 0},
            }
        )
    )
    running = [BenchWorker(f"{app}-w{n}", config, work / f"{app}-w{n}.log") for n in range(workers)]
    try:
        first, last, seen = _read_snapshot(broker.bootstrap_servers, topic, items, running)
    finally:
        for worker in running:
            with contextlib.suppress(Exception):
                worker.terminate()
        for worker in running:
            with contextlib.suppress(Exception):
                worker.wait(60)
            worker.stop_for_teardown()
    seconds = max((last - first) / 1000, 1e-3)
    return {"workers": workers, "items": seen, "seconds": round(seconds, 2),
            "items_per_s": round(seen / seconds)}  # fmt: skip


def _read_snapshot(
    servers: str, topic: str, items: int, workers: list[BenchWorker]
) -> tuple[int, int, int]:
    """Read the topic until every segment's end marker is in every partition; returns the
    first SNAPSHOT's and the last marker's CreateTime (epoch ms) and the items seen."""
    import orjson

    consumer = Consumer({"bootstrap.servers": servers, "group.id": f"bench-{uuid.uuid4().hex}",
                         "enable.auto.commit": False})  # fmt: skip
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(PARTITIONS)])
    first = last = 0
    seen = ends = 0
    deadline = time.monotonic() + 900
    try:
        while ends < SEGMENTS * PARTITIONS:
            if time.monotonic() > deadline:
                raise RuntimeError(f"snapshot incomplete: {seen} of {items} items, {ends} ends")
            for worker in workers:
                worker.ensure_alive()
            for message in consumer.consume(1000, timeout=0.2):
                if message.error() or message.value() is None:
                    continue
                event = orjson.loads(message.value())["event"]
                created = message.timestamp()[1]
                if event == "SNAPSHOT":
                    seen += 1
                    first = created if not first else min(first, created)
                elif event == "SNAPSHOT_END":
                    ends += 1
                    last = max(last, created)
    finally:
        consumer.close()
    return first, last, seen


def run(quick: bool, out: Path, work: Path) -> dict[str, Any]:
    work = work / NAME
    work.mkdir(parents=True, exist_ok=True)
    items = 4_000 if quick else 20_000
    size = 200
    local = LocalEndpoint(log_dir=work, shards=4).start()
    broker = KafkaBroker(log_dir=work).start()
    try:
        ddb = dynamodb(local.endpoint_url)
        table = f"snap-{uuid.uuid4().hex[:6]}"
        create_table(ddb, table)
        began = time.monotonic()
        fill(ddb, table, items, size)
        print(f"  filled {items} items of ~{size} bytes in {time.monotonic() - began:.0f} s")
        raw_before = raw_scan(local.endpoint_url, table)
        runs = [
            bridge_snapshot(work, local.endpoint_url, broker, table, workers, items)
            for workers in (1, 2)
        ]
        raw_after = raw_scan(local.endpoint_url, table)
    finally:
        broker.stop()
        local.stop()
    raw_rates = [count / seconds for count, seconds in (raw_before, raw_after)]
    raw = sum(raw_rates) / len(raw_rates)
    for entry in runs:
        entry["ratio_to_raw_scan"] = round(entry["items_per_s"] / raw, 2)
    result = {
        "quick": quick,
        "items": items,
        "item_bytes": size,
        "segments": SEGMENTS,
        "raw_scan_items_per_s": [round(rate) for rate in raw_rates],
        "bridge": runs,
        "machine": machine.machine_info(),
    }
    print_table(result)
    plot(result, out / f"{NAME}.png")
    machine.save(out, NAME, result)
    return result


def print_table(result: dict[str, Any]) -> None:
    raw = result["raw_scan_items_per_s"]
    print(f"{'':<28}{'items/s':>10}{'ratio':>8}")
    print(f"{'raw parallel Scan (before)':<28}{raw[0]:>10,}")
    for entry in result["bridge"]:
        label = f"bridge, {entry['workers']} worker(s)"
        print(f"{label:<28}{entry['items_per_s']:>10,}{entry['ratio_to_raw_scan']:>8.2f}")
    print(f"{'raw parallel Scan (after)':<28}{raw[1]:>10,}")


def plot(result: dict[str, Any], path: Path) -> None:
    fig, axes = plots.figure(columns=1, width=5.0, height=3.4)
    ax = axes[0][0]
    raw = result["raw_scan_items_per_s"]
    bridge = [f"bridge x{e['workers']}" for e in result["bridge"]]
    labels = ["raw (before)", *bridge, "raw (after)"]
    values = [raw[0]] + [e["items_per_s"] for e in result["bridge"]] + [raw[1]]
    colours = ["#999999"] + [plots.COLOURS["bridge"]] * len(result["bridge"]) + ["#999999"]
    ax.bar(labels, values, color=colours)
    ax.set_ylabel("items/s")
    ax.grid(axis="y", alpha=0.3)
    plots.save(fig, path, f"Snapshot to Kafka: {result['items']:,} items, {SEGMENTS} segments")
