"""Time to ready of a new ``bridge replica`` node: restoring a snapshot vs replaying the topic.

One run: a tansu broker and moto's S3 start; a topic receives ``--items`` INSERT envelopes
(the Kafka processor's own ``EnvelopeEncoder``); a ``bridge replica`` process replays it from
the beginning into an empty directory (timed, start to ``/readyz`` 200); its file is
snapshotted to S3; a second process with an empty directory restores that snapshot (timed the
same way). Prints both times and the ratio.

    .venv/bin/python scripts/bench_coldstart.py --items 1000000
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

from bridge.local.processes import KafkaBroker, MotoServer, free_port
from bridge.processors.kafka import EnvelopeEncoder
from bridge.records import ChangeRecord, encode_item
from bridge.replica import ReplicaConfig, SnapshotTaker, copy_replica
from bridge.snapshots import S3ObjectStore

SHARD = "shardId-00000001700000000000-bench0001"


def produce(servers: str, topic: str, items: int) -> float:
    encoder = EnvelopeEncoder("orders", include_old_image=False, tombstones=False)
    producer = Producer(
        {
            "bootstrap.servers": servers,
            "linger.ms": 50,
            "batch.num.messages": 10_000,
            "queue.buffering.max.messages": 1_000_000,
        }
    )
    at = datetime.now(UTC).timestamp()
    started = time.monotonic()
    for n in range(items):
        pk = f"item-{n:08d}"
        new = {"pk": pk, "n": n, "name": f"product {n % 997}", "qty": n % 50, "tags": ["a", "b"]}
        record = ChangeRecord.from_raw(
            {
                "eventName": "INSERT",
                "dynamodb": {
                    "ApproximateCreationDateTime": at,
                    "Keys": encode_item({"pk": pk}),
                    "NewImage": encode_item(new),
                    "SequenceNumber": str(10**20 + n),
                    "SizeBytes": 100,
                    "StreamViewType": "NEW_IMAGE",
                },
            },
            SHARD,
        )
        for key, value, headers in encoder.messages(record):
            while True:
                try:
                    producer.produce(topic, key=key, value=value, headers=headers)
                    break
                except BufferError:
                    producer.poll(0.05)
        if n % 10_000 == 0:
            producer.poll(0)
    assert producer.flush(300) == 0, "messages not delivered"
    return time.monotonic() - started


def replica_yaml(
    directory: Path, servers: str, topic: str, port: int, snapshots: dict[str, Any] | None
) -> Path:
    config: dict[str, Any] = {
        "app": "bench-edge",
        "kafka": {"bootstrap_servers": servers, "topic": topic, "max_batch": 5000},
        "sqlite": {"path": str(directory / "replica.sqlite")},
        "ready_lag": "100ms",  # ready means read to the end, not "recent messages"
        "metrics": {"port": port},
    }
    if snapshots is not None:
        config["snapshots"] = snapshots
    ReplicaConfig.model_validate(config)
    path = directory / "replica.yaml"
    path.write_text(json.dumps(config))
    return path


def ready(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as answer:
            return bool(answer.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def time_to_ready(config: Path, port: int, log: Path, env: dict[str, str]) -> float:
    started = time.monotonic()
    with log.open("ab") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "bridge", "--log-format", "json", "replica", "-c", str(config)],
            stdout=out,
            stderr=out,
            env=env,
        )
    try:
        while not ready(port):
            if process.poll() is not None:
                raise SystemExit(f"bridge replica exited {process.returncode}: see {log}")
            if time.monotonic() - started > 3600:
                raise SystemExit("not ready within an hour")
            time.sleep(0.05)
        elapsed = time.monotonic() - started
        process.send_signal(signal.SIGTERM)
        process.wait(60)
        return elapsed
    finally:
        if process.poll() is None:
            process.kill()


def rows(path: Path) -> int:
    with contextlib.closing(sqlite3.connect(path)) as db:
        return int(db.execute("SELECT count(*) FROM orders").fetchone()[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=1_000_000)
    parser.add_argument("--partitions", type=int, default=4)
    args = parser.parse_args()
    env = {k: v for k, v in os.environ.items() if not k.startswith("BRIDGE_")}
    env |= {
        "AWS_ACCESS_KEY_ID": "bench",
        "AWS_SECRET_ACCESS_KEY": "bench",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    os.environ.update({k: env[k] for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")})
    with (
        tempfile.TemporaryDirectory(prefix="bench-coldstart-") as tmp,
        KafkaBroker(log_dir=Path(tmp)) as broker,
        MotoServer(log_dir=Path(tmp)) as moto,
    ):
        work = Path(tmp)
        servers, topic = broker.bootstrap_servers, "cdc.bench"
        admin = AdminClient({"bootstrap.servers": servers})
        admin.create_topics([NewTopic(topic, args.partitions, 1)])[topic].result(30)
        s3 = boto3.client("s3", endpoint_url=moto.endpoint_url, region_name="us-east-1")
        s3.create_bucket(Bucket="bench-snapshots")
        snapshots = {
            "bucket": "bench-snapshots",
            "prefix": "bench/",
            "endpoint_url": moto.endpoint_url,
            "compress_level": 1,
        }

        took = produce(servers, topic, args.items)
        print(f"produced {args.items:,} envelopes in {took:.1f}s", flush=True)

        replay_dir = work / "replay"
        replay_dir.mkdir()
        port = free_port()
        config = replica_yaml(replay_dir, servers, topic, port, None)
        replay = time_to_ready(config, port, work / "replay.log", env)
        replayed = rows(replay_dir / "replica.sqlite")
        print(f"replay from the beginning: ready in {replay:.1f}s ({replayed:,} items)", flush=True)

        started = time.monotonic()
        settings = ReplicaConfig.model_validate(
            json.loads(config.read_text()) | {"snapshots": snapshots}
        )
        taker = SnapshotTaker(
            settings,
            S3ObjectStore("bench-snapshots", region="us-east-1", endpoint_url=moto.endpoint_url),
        )
        copy = work / "copy.sqlite"
        copy_replica(replay_dir / "replica.sqlite", copy)
        manifest = taker.upload(copy, work)
        print(
            f"snapshot: {manifest.object.raw_size / 1e6:.0f} MB file, "
            f"{manifest.object.size / 1e6:.0f} MB gzip, taken in {time.monotonic() - started:.1f}s",
            flush=True,
        )

        restore_dir = work / "restore"
        restore_dir.mkdir()
        port = free_port()
        config = replica_yaml(restore_dir, servers, topic, port, snapshots)
        restore = time_to_ready(config, port, work / "restore.log", env)
        restored = rows(restore_dir / "replica.sqlite")
        print(f"restore from a snapshot: ready in {restore:.1f}s ({restored:,} items)", flush=True)
        assert restored == replayed == args.items, (restored, replayed)
        print(f"ratio: {replay / restore:.1f}x faster from a snapshot")


if __name__ == "__main__":
    main()
