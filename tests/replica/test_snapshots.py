"""Snapshots against the real broker (tansu) and moto's S3 over HTTP: one is uploaded on its
interval with a valid manifest; a new node (a separate ``bridge replica`` process, empty
directory) restores the newest usable one, is ready, and catches up; corrupt and stale ones
are rejected with their reason and the fallback happens; ``bootstrap_on_failure: fail`` exits
1 naming why; retention deletes old ones."""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import json
import sqlite3
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import boto3
import pytest

from bridge import __version__
from bridge.local.processes import KafkaBroker, MotoServer, free_port
from bridge.replica import SCHEMA_VERSION, ReplicaFollower, stored_offsets
from bridge.replica._consumer import KafkaPartitionConsumer
from bridge.snapshots import Manifest, newest_first
from tests.kafka.topic_reader import create_topic
from tests.replica.support import (
    Publisher,
    await_for,
    following,
    replica_config,
    replica_rows,
    wait_for,
    write_yaml,
)
from tests.replica.test_with_broker import readyz, replica_process


class Bucket:
    def __init__(self, moto: MotoServer) -> None:
        self.endpoint_url = moto.endpoint_url
        self.name = f"snap-{uuid.uuid4().hex[:12]}"
        self.s3 = boto3.client("s3", endpoint_url=moto.endpoint_url, region_name="us-east-1")
        self.s3.create_bucket(Bucket=self.name)

    def settings(self, **extra: Any) -> dict[str, Any]:
        return {
            "bucket": self.name,
            "prefix": "edge/",
            "endpoint_url": self.endpoint_url,
            **extra,
        }

    def keys(self) -> list[str]:
        page = self.s3.list_objects_v2(Bucket=self.name)
        return sorted(o["Key"] for o in page.get("Contents", []))

    def manifests(self) -> list[Manifest]:
        return [Manifest.model_validate_json(self.get(k)) for k in newest_first(self.keys())]

    def get(self, key: str) -> bytes:
        return bytes(self.s3.get_object(Bucket=self.name, Key=key)["Body"].read())

    def put(self, key: str, data: bytes) -> None:
        self.s3.put_object(Bucket=self.name, Key=key, Body=data)


@pytest.fixture
def bucket(moto_server: MotoServer) -> Bucket:
    return Bucket(moto_server)


def json_log(path: Path) -> list[dict[str, Any]]:
    lines = []
    for line in path.read_text().splitlines():
        if line.startswith("{"):
            lines.append(json.loads(line))
    return lines


async def snapshot_of(config: Any, until: int) -> Manifest:
    """Follow until ``until`` messages are applied, then take one snapshot."""
    path = config.sqlite.path
    async with following(config) as follower:
        await await_for(
            lambda: sum(o + 1 for o in applied(path, config.kafka.topic).values()) >= until,
            20,
            f"{until} messages applied",
        )
        manifest = await follower.take_snapshot()
    assert manifest is not None
    return manifest


def applied(path: Path, topic: str) -> dict[int, int]:
    """The stored offsets, or none while the file or its tables do not exist yet."""
    try:
        return dict(stored_offsets(path, topic))
    except sqlite3.Error:
        return {}


def manifest_key(manifest: Manifest) -> str:
    return manifest.object.key.removesuffix(".sqlite.gz") + ".manifest.json"


def flip_bytes(bucket: Bucket, manifest: Manifest) -> None:
    data = bytearray(bucket.get(manifest.object.key))
    for at in (len(data) // 2, len(data) // 2 + 1):
        data[at] ^= 0xFF
    bucket.put(manifest.object.key, bytes(data))


async def test_a_snapshot_is_uploaded_on_its_interval_with_a_valid_manifest(
    kafka_broker: KafkaBroker, bucket: Bucket, tmp_path: Path
) -> None:
    servers = kafka_broker.bootstrap_servers
    topic = create_topic(servers, partitions=2)
    publisher = Publisher(servers, topic)
    publisher.publish([publisher.change("INSERT", f"k{n}", n=n) for n in range(30)])
    publisher.publish([publisher.change("REMOVE", "k0")])
    path = tmp_path / "r.db"
    config = replica_config(path, servers, topic, snapshots=bucket.settings(interval="200ms"))
    async with following(config) as follower:
        await await_for(lambda: follower.verdict().ready, 20, "ready")
        applied = dict(stored_offsets(path, topic))
        await await_for(
            lambda: any(m.offsets == applied for m in bucket.manifests()), 20, "the snapshot"
        )
        rows = replica_rows(path, "orders")
    manifest = next(m for m in bucket.manifests() if m.offsets == applied)
    assert manifest.source.topic == topic and manifest.source.tables == ["orders"]
    assert manifest.items == 29 == len(rows)
    assert manifest.schema_version == SCHEMA_VERSION and manifest.bridge_version == __version__
    assert manifest.watermark_ms is not None and manifest.created_ms >= manifest.watermark_ms
    assert manifest.object.key.startswith("edge/replica-test/") and manifest.object.key.endswith(
        ".sqlite.gz"
    )
    data = bucket.get(manifest.object.key)
    assert (len(data), hashlib.sha256(data).hexdigest()) == (
        manifest.object.size,
        manifest.object.sha256,
    )
    copy = tmp_path / "copy.db"
    copy.write_bytes(gzip.decompress(data))
    assert replica_rows(copy, "orders") == rows
    assert dict(stored_offsets(copy, topic)) == applied


async def test_a_new_node_restores_the_snapshot_is_ready_and_catches_up(
    kafka_broker: KafkaBroker, bucket: Bucket, tmp_path: Path
) -> None:
    servers = kafka_broker.bootstrap_servers
    topic = create_topic(servers, partitions=2)
    publisher = Publisher(servers, topic)
    publisher.publish([publisher.change("INSERT", f"k{n}", n=n) for n in range(40)])
    source = replica_config(tmp_path / "a.db", servers, topic, snapshots=bucket.settings())
    manifest = await snapshot_of(source, 40)
    # after the snapshot: an update, a delete (envelope + tombstone), an insert
    publisher.publish(
        [
            publisher.change("MODIFY", "k1", n=100),
            publisher.change("REMOVE", "k2"),
            publisher.change("INSERT", "new", n=1),
        ]
    )

    path = tmp_path / "node" / "b.db"
    port = free_port()
    node = replica_config(path, servers, topic, snapshots=bucket.settings(), metrics={"port": port})
    log = tmp_path / "node.log"

    def caught_up() -> bool:
        rows = replica_rows(path, "orders")
        return rows.get(("k1",), {}).get("n") == 100 and ("new",) in rows

    with replica_process(write_yaml(tmp_path / "node.yaml", node), log) as process:
        # Ready once restored: the snapshot is younger than ready_lag, so the replica is within
        # ready_lag of the topic by time; then it catches up with what came after it.
        wait_for(lambda: (readyz(port) or (0,))[0] == 200, 30, "the new node ready")
        wait_for(caught_up, 30, "the changes made after the snapshot")
        rows = replica_rows(path, "orders")
        process.terminate()
        assert process.wait(30) == 0
    assert len(rows) == 40 and rows[("k1",)]["n"] == 100 and ("k2",) not in rows
    assert ("new",) in rows
    events = json_log(log)
    restored = [e for e in events if e["event"] == "snapshot restored"]
    assert [e["key"] for e in restored] == [
        manifest.object.key.replace(".sqlite.gz", ".manifest.json")
    ]
    (assigned,) = [e for e in events if e["event"] == "partitions assigned"]
    assert assigned["positions"] == {str(p): o + 1 for p, o in manifest.offsets.items()}


async def test_a_corrupt_snapshot_is_rejected_and_the_older_one_restored(
    kafka_broker: KafkaBroker, bucket: Bucket, tmp_path: Path
) -> None:
    servers = kafka_broker.bootstrap_servers
    topic = create_topic(servers, partitions=1)
    publisher = Publisher(servers, topic)
    publisher.publish([publisher.change("INSERT", f"k{n}", n=n) for n in range(20)])
    source = replica_config(tmp_path / "a.db", servers, topic, snapshots=bucket.settings())
    older = await snapshot_of(source, 20)
    publisher.publish([publisher.change("INSERT", f"k{n}", n=n) for n in range(20, 30)])
    newer = await snapshot_of(source, 30)
    flip_bytes(bucket, newer)

    path = tmp_path / "node" / "b.db"
    port = free_port()
    node = replica_config(path, servers, topic, snapshots=bucket.settings(), metrics={"port": port})
    log = tmp_path / "node.log"
    with replica_process(write_yaml(tmp_path / "node.yaml", node), log) as process:
        wait_for(lambda: (readyz(port) or (0,))[0] == 200, 30, "the new node ready")
        # the older snapshot held 20; the 10 after it come from the topic
        wait_for(lambda: len(replica_rows(path, "orders")) == 30, 30, "the rest from the topic")
        process.terminate()
        assert process.wait(30) == 0
    events = json_log(log)
    (rejected,) = [e for e in events if e["event"] == "snapshot rejected"]
    assert rejected["key"].startswith(newer.object.key.removesuffix(".sqlite.gz"))
    assert rejected["reason"] == "corrupt: sha256 of the object does not match the manifest"
    (restored,) = [e for e in events if e["event"] == "snapshot restored"]
    assert restored["offsets"] == {"0": older.offsets[0]}


class TrimmedTopic(KafkaPartitionConsumer):
    """The real consumer, except that the topic reports it begins later: what retention does
    to a topic, which the test broker cannot (it has no DeleteRecords)."""

    def __init__(self, *args: Any, begins: dict[int, int], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.begins = begins

    def low_watermarks(self, partitions: list[int], timeout: float) -> dict[int, int]:
        real = super().low_watermarks(partitions, timeout)
        return {p: max(low, self.begins.get(p, 0)) for p, low in real.items()}


async def test_corrupt_and_stale_snapshots_are_rejected_then_the_topic_is_replayed(
    kafka_broker: KafkaBroker, bucket: Bucket, tmp_path: Path
) -> None:
    servers = kafka_broker.bootstrap_servers
    topic = create_topic(servers, partitions=1)
    publisher = Publisher(servers, topic)
    publisher.publish([publisher.change("INSERT", f"k{n}", n=n) for n in range(10)])
    source = replica_config(tmp_path / "a.db", servers, topic, snapshots=bucket.settings())
    stale = await snapshot_of(source, 10)  # offset 9: stale once the topic begins at 15
    publisher.publish([publisher.change("INSERT", f"k{n}", n=n) for n in range(10, 20)])
    corrupt = await snapshot_of(source, 20)
    flip_bytes(bucket, corrupt)

    path = tmp_path / "b.db"
    config = replica_config(path, servers, topic, snapshots=bucket.settings())
    consumer = TrimmedTopic(config.kafka, app=config.app, begins={0: 15})
    follower = ReplicaFollower(config, consumer=consumer)
    task = asyncio.create_task(follower.run())
    try:
        await await_for(lambda: follower.verdict().ready, 20, "ready after the replay")
    finally:
        follower.request_stop()
        await asyncio.wait_for(task, 30)
    assert follower.restored is None and follower.restore_result is not None
    reasons = [(r.key, r.reason) for r in follower.restore_result.rejected]
    assert reasons == [
        (manifest_key(corrupt), "corrupt: sha256 of the object does not match the manifest"),
        (
            manifest_key(stale),
            "stale: partition 0: offsets 10..14 (5 messages) are no longer in the topic "
            "(it begins at 15)",
        ),
    ]
    assert len(replica_rows(path, "orders")) == 20  # replayed from the beginning


def test_bootstrap_on_failure_fail_exits_naming_why(
    kafka_broker: KafkaBroker, bucket: Bucket, tmp_path: Path
) -> None:
    servers = kafka_broker.bootstrap_servers
    topic = create_topic(servers, partitions=1)
    publisher = Publisher(servers, topic)
    publisher.publish([publisher.change("INSERT", "a", n=1)])
    source = replica_config(tmp_path / "a.db", servers, topic, snapshots=bucket.settings())
    corrupt = asyncio.run(snapshot_of(source, 1))
    flip_bytes(bucket, corrupt)
    node = replica_config(
        tmp_path / "b.db",
        servers,
        topic,
        snapshots=bucket.settings(bootstrap_on_failure="fail"),
    )
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "bridge",
            "replica",
            "-c",
            str(write_yaml(tmp_path / "n.yaml", node)),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1, done.stderr
    assert "error: no usable snapshot in s3://" in done.stderr
    assert "corrupt: sha256 of the object does not match the manifest" in done.stderr
    assert "bootstrap_on_failure is fail" in done.stderr
    assert not (tmp_path / "b.db").exists()


async def test_retention_keeps_the_newest_snapshots(
    kafka_broker: KafkaBroker, bucket: Bucket, tmp_path: Path
) -> None:
    servers = kafka_broker.bootstrap_servers
    topic = create_topic(servers, partitions=1)
    publisher = Publisher(servers, topic)
    path = tmp_path / "a.db"
    config = replica_config(path, servers, topic, snapshots=bucket.settings(keep=2))
    taken: list[Manifest] = []
    async with following(config) as follower:
        for n in range(4):
            publisher.publish([publisher.change("INSERT", f"k{n}", n=n)])
            await await_for(
                lambda n=n: applied(path, topic).get(0) == n,  # type: ignore[misc]
                20,
                f"message {n}",
            )
            manifest = await follower.take_snapshot()
            assert manifest is not None
            taken.append(manifest)
        assert await follower.take_snapshot() is None  # nothing new: no snapshot
    keys = bucket.keys()
    assert len(keys) == 4
    assert [m.id for m in bucket.manifests()] == [taken[3].id, taken[2].id]
    assert {m.object.key for m in taken[2:]} <= set(keys)
    with sqlite3.connect(path) as db:  # the replica itself is untouched
        assert db.execute("SELECT count(*) FROM orders").fetchone() == (4,)
