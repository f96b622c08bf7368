"""One ``bridge run`` worker end to end, on a stream filled faster than moto could.

``bridge local``'s ``POST /_bridge/append`` puts N synthetic INSERTs straight onto a table's
stream, so the source is not the limit. Then, each on its own copy of the stream:

- ``bridge → kafka``: one worker process with the Kafka processor, from TRIM_HORIZON, timed
  from its start to the last record processed (its metrics); the whole path: signed HTTP
  GetRecords, decoding, envelopes, delivery reports, checkpoints; start-up included.
- ``bridge → sqlite``: the same with the SQLite processor.
- ``naive loop → kafka``: what a user writes in an afternoon, in this process: boto3's
  DescribeStream, GetShardIterator and GetRecords shard by shard, ``json.dumps`` of each
  record, confluent-kafka ``produce``, one ``flush`` at the end.
- ``raw producer``: confluent-kafka alone, producing the naive loop's messages again.

Each worker's CPU seconds per 10,000 records come from /proc (user + system).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import boto3
import yaml
from confluent_kafka import Producer

from benchlib import machine
from benchlib.cluster import BRIDGE, BenchWorker, Coordination
from benchlib.rig import Rig

NAME = "end-to-end"


def settings(quick: bool) -> dict[str, Any]:
    if quick:
        return {"records": 20_000, "shards": 4, "size": 200}
    return {"records": 150_000, "shards": 8, "size": 200}


def run(quick: bool, out: Path, work: Path) -> dict[str, Any]:
    conf = settings(quick)
    started = time.monotonic()
    with Rig(work / NAME, shards=conf["shards"]) as rig:
        contenders = {
            "bridge → kafka": bridge_run(rig, conf, "kafka"),
            "bridge → sqlite": bridge_run(rig, conf, "sqlite", work / NAME),
        }
        naive, messages = naive_loop(rig, conf)
        contenders["naive loop → kafka"] = naive
        contenders["raw producer"] = raw_producer(rig, messages)
    kafka = contenders["bridge → kafka"]["records_per_second"]
    result = {
        "quick": quick,
        "settings": conf,
        "contenders": contenders,
        "ratios": {
            "bridge_kafka_vs_naive": round(kafka / naive["records_per_second"], 2),
            "bridge_kafka_vs_raw_producer": round(
                kafka / contenders["raw producer"]["records_per_second"], 2
            ),
        },
        "wall_seconds": round(time.monotonic() - started, 1),
        "machine": machine.machine_info(),
    }
    for name, row in contenders.items():
        print(f"{name:<22}{row['records_per_second']:>12,.0f} records/s  {row}")
    print(result["ratios"])
    machine.save(out, NAME, result)
    return result


def filled_table(rig: Rig, conf: dict[str, Any], prefix: str) -> str:
    table = rig.new_table(prefix)
    rig.endpoint.append(table, conf["records"], size=conf["size"])
    return table


def bridge_run(
    rig: Rig, conf: dict[str, Any], processor: str, work: Path | None = None
) -> dict[str, Any]:
    table = filled_table(rig, conf, f"e2e-{processor}")
    app = f"app-{table}"
    config = rig.config(app, table, BRIDGE, Coordination(shard_sync_interval=60))
    if processor == "sqlite":
        assert work is not None
        settings_ = yaml.safe_load(config.read_text())
        settings_["processor"] = {"kind": "sqlite", "options": {"path": str(work / f"{app}.db")}}
        config.write_text(yaml.safe_dump(settings_, sort_keys=False))
    t0 = time.monotonic()
    worker = rig.start_worker(f"e2e-{processor}", config)
    first: float | None = None
    processed = 0.0
    deadline = t0 + 600
    while processed < conf["records"]:
        if time.monotonic() > deadline:
            raise RuntimeError(
                f"{processed:.0f} of {conf['records']} in 600 s\n{worker.log_tail()}"
            )
        processed = processed_so_far(worker)
        if processed and first is None:
            first = time.monotonic()
        time.sleep(0.05)
    done = time.monotonic()
    cpu = cpu_seconds(worker.pid)
    worker.terminate()
    worker.wait(60)
    records = conf["records"]
    return {
        **rates(records, done - t0, cpu),
        "records_per_second_after_first": round(records / (done - (first or t0))),
    }


def naive_loop(rig: Rig, conf: dict[str, Any]) -> tuple[dict[str, Any], list[tuple[bytes, bytes]]]:
    table = filled_table(rig, conf, "e2e-naive")
    kwargs = {
        "endpoint_url": rig.endpoint.endpoint_url,
        "region_name": "us-east-1",
        "aws_access_key_id": "testing",
        "aws_secret_access_key": "testing",
    }
    t0, cpu0 = time.monotonic(), time.process_time()
    ddb = boto3.client("dynamodb", **kwargs)
    streams = boto3.client("dynamodbstreams", **kwargs)
    producer = Producer({"bootstrap.servers": rig.broker.bootstrap_servers, "linger.ms": 5})
    arn = ddb.describe_table(TableName=table)["Table"]["LatestStreamArn"]
    shards = streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"]
    messages: list[tuple[bytes, bytes]] = []
    for shard in shards:
        iterator = streams.get_shard_iterator(
            StreamArn=arn, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        while iterator:
            page = streams.get_records(ShardIterator=iterator, Limit=1000)
            for record in page["Records"]:
                key = json.dumps(record["dynamodb"]["Keys"]).encode()
                value = json.dumps(record, default=str).encode()
                produce(producer, table, key, value)
                messages.append((key, value))
            iterator = page.get("NextShardIterator") if page["Records"] else None
    producer.flush(120)
    return rates(len(messages), time.monotonic() - t0, time.process_time() - cpu0), messages


def raw_producer(rig: Rig, messages: list[tuple[bytes, bytes]]) -> dict[str, Any]:
    topic = rig.new_table("e2e-raw")
    producer = Producer({"bootstrap.servers": rig.broker.bootstrap_servers, "linger.ms": 5})
    t0, cpu0 = time.monotonic(), time.process_time()
    for key, value in messages:
        produce(producer, topic, key, value)
    producer.flush(120)
    return rates(len(messages), time.monotonic() - t0, time.process_time() - cpu0)


def rates(records: int, seconds: float, cpu: float) -> dict[str, Any]:
    return {
        "records": records,
        "seconds": round(seconds, 2),
        "records_per_second": round(records / seconds),
        "cpu_seconds": round(cpu, 2),
        "cpu_seconds_per_10k": round(cpu / max(1, records) * 10_000, 3),
    }


def produce(producer: Producer, topic: str, key: bytes, value: bytes) -> None:
    """Produce, waiting for room when librdkafka's queue is full."""
    while True:
        try:
            producer.produce(topic, key=key, value=value)
            break
        except BufferError:
            producer.poll(0.01)
    producer.poll(0)


def processed_so_far(worker: BenchWorker) -> float:
    if worker.process.poll() is not None:
        raise RuntimeError(f"worker {worker.name} exited:\n{worker.log_tail()}")
    try:
        return worker.metrics().get("bridge_records_processed_total", 0.0)
    except OSError:  # not serving metrics yet
        return 0.0


def cpu_seconds(pid: int) -> float:
    """User and system CPU a process has used so far (Linux /proc)."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def report(r: dict[str, Any]) -> str:
    """The BENCHMARKS.md section."""
    s = r["settings"]
    rows = "\n".join(
        f"| {name} | {c['records_per_second']:,} | "
        + (
            f"{c['records_per_second_after_first']:,}"
            if "records_per_second_after_first" in c
            else "-"
        )
        + f" | {c['seconds']:g} | {c['cpu_seconds_per_10k']:.2f} |"
        for name, c in r["contenders"].items()
    )
    ratios = r["ratios"]
    return f"""## End to end: one worker, a stream filled by `bridge local`

{s["records"]:,} synthetic INSERTs ({s["size"]}-byte payloads) put straight onto {s["shards"]}
shards by `POST /_bridge/append` (moto, which takes a few hundred writes a second, is not the
source), then read from TRIM_HORIZON, each contender on its own copy of the stream
(`python scripts/bench.py end-to-end`). *After first*: from the first record processed, so
without the worker's start-up; *CPU*: the reader's user + system CPU seconds per 10,000 records
(start-up included). The broker and `bridge local` share the same cores.

| contender | records/s, start-up included | after first | seconds | CPU s / 10k |
|---|---|---|---|---|
{rows}

- bridge → kafka: {ratios["bridge_kafka_vs_naive"]:.2f}x the naive loop,
  {ratios["bridge_kafka_vs_raw_producer"]:.2f}x the raw producer alone on the same messages.
"""
