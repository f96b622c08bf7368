"""Snapshots of the SQLite processor's replica, against ``bridge local`` (DynamoDB, Streams and
S3 on one endpoint): one is uploaded with its checkpoints, a new node restores it and catches
up, a corrupt or stale one is refused with its reason and the usual start follows, and
``bootstrap_on_failure: fail`` stops the worker naming why."""

from __future__ import annotations

import asyncio
import sqlite3
import subprocess
import sys
import uuid
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import boto3
import pytest
import yaml

from bridge.config import BridgeConfig
from bridge.errors import WorkerFailedError
from bridge.local.endpoint import LocalEndpoint
from bridge.processors.sqlite import SqliteProcessorFactory
from bridge.processors.sqlite.schema import SCHEMA_VERSION
from bridge.processors.sqlite.snapshots import SnapshotRestoreError, SqliteSnapshots
from bridge.snapshots import StreamManifest, newest_first, sha256_of
from tests.sqlite.test_replica_e2e import eventually, replica_items, scan, status
from tests.support.workload import create_table
from tests.worker.conftest import RunningWorker, running_worker


class Bucket:
    def __init__(self, endpoint_url: str) -> None:
        self.endpoint_url = endpoint_url
        self.name = f"snap-{uuid.uuid4().hex[:12]}"
        self.s3 = boto3.client("s3", endpoint_url=endpoint_url, region_name="us-east-1")
        self.s3.create_bucket(Bucket=self.name)

    def settings(self, **extra: Any) -> dict[str, Any]:
        return {"bucket": self.name, "prefix": "r/", "endpoint_url": self.endpoint_url, **extra}

    def keys(self) -> list[str]:
        page = self.s3.list_objects_v2(Bucket=self.name)
        return sorted(o["Key"] for o in page.get("Contents", []))

    def manifests(self) -> list[StreamManifest]:
        return [StreamManifest.model_validate_json(self.get(k)) for k in newest_first(self.keys())]

    def get(self, key: str) -> bytes:
        return bytes(self.s3.get_object(Bucket=self.name, Key=key)["Body"].read())

    def put(self, key: str, data: bytes) -> None:
        self.s3.put_object(Bucket=self.name, Key=key, Body=data)


class Table:
    def __init__(self, endpoint_url: str) -> None:
        self.ddb = boto3.client("dynamodb", endpoint_url=endpoint_url, region_name="us-east-1")
        self.name, self.stream_arn = create_table(self.ddb, prefix="snap")

    def put(self, key: str, n: int) -> None:
        item = {"pk": {"S": key}, "n": {"N": str(n)}}
        self.ddb.put_item(TableName=self.name, Item=item)

    def delete(self, key: str) -> None:
        self.ddb.delete_item(TableName=self.name, Key={"pk": {"S": key}})

    def fill(self, items: int) -> None:
        for start in range(0, items, 25):
            self.ddb.batch_write_item(
                RequestItems={
                    self.name: [
                        {"PutRequest": {"Item": {"pk": {"S": f"k{n:04d}"}, "n": {"N": str(n)}}}}
                        for n in range(start, min(start + 25, items))
                    ]
                }
            )

    def scan(self) -> dict[str, dict[str, Any]]:
        return scan(self.ddb, self.name)


def config(
    endpoint_url: str, table: Table, path: Path, snapshots: dict[str, Any], start: str = "auto"
) -> BridgeConfig:
    return BridgeConfig.model_validate(
        {
            "app": f"app-{table.name}",
            "worker_id": "replica-1",
            "source": {"table": table.name, "endpoint_url": endpoint_url, "start": start},
            "coordination": {"lease_duration": "4s", "take_interval": "100ms"},
            "polling": {"interval": "20ms", "idle_interval": "100ms"},
            "processor": {
                "kind": "sqlite",
                "options": {"path": str(path), "stall_after": 5, "snapshots": snapshots},
            },
            "metrics": {"enabled": False},
        }
    )


def factory_of(running: RunningWorker) -> SqliteProcessorFactory:
    factory = running.worker.factory
    assert isinstance(factory, SqliteProcessorFactory)
    return factory


def file_checkpoints(path: Path) -> dict[str, str]:
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
        return dict(db.execute("SELECT shard_id, checkpoint FROM _bridge_checkpoints").fetchall())


def scanned_after(path: Path, manifest: StreamManifest) -> bool:
    """Whether the replica's bootstrap scan started after the snapshot was taken (a restored
    file carries the first worker's scan, from before it)."""
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
        (started,) = db.execute("SELECT max(started_ms) FROM _bridge_bootstrap").fetchone()
    return started is not None and started > manifest.created_ms


def items_of(path: Path, table: str) -> dict[str, dict[str, Any]] | None:
    """The replica's items, None while the file or its table does not exist yet."""
    if not path.exists():
        return None
    try:
        return replica_items(path, table)
    except sqlite3.OperationalError:
        return None


async def converged(path: Path, table: Table) -> None:
    expected = await asyncio.to_thread(table.scan)
    await eventually(
        lambda: items_of(path, table.name) == expected, 20, "the replica to equal the table"
    )


async def snapshot_taken(
    endpoint_url: str, table: Table, path: Path, bucket: Bucket
) -> StreamManifest:
    """A worker follows the table into ``path`` until it equals it, then takes a snapshot."""
    async with running_worker(config(endpoint_url, table, path, bucket.settings())) as running:
        await converged(path, table)
        await eventually(lambda: (status(path) or (0,))[0] == 1, 10, "the first worker ready")
        manifest = await factory_of(running).take_snapshot()
        assert manifest is not None
        assert manifest.checkpoints == file_checkpoints(path)
        await running.stop()
    return manifest


def more_taken(snapshots: SqliteSnapshots, than: int) -> bool:
    return snapshots.taken > than


def changes_after_the_snapshot(table: Table) -> None:
    table.put("k0001", 1001)  # an update
    table.delete("k0002")
    table.put("new-1", 1)


def flip_a_byte(bucket: Bucket, key: str) -> None:
    data = bytearray(bucket.get(key))
    data[len(data) // 2] ^= 0xFF
    bucket.put(key, bytes(data))


async def test_a_snapshot_is_uploaded_with_the_checkpoints_of_its_copy(
    local_endpoint: LocalEndpoint, tmp_path: Path
) -> None:
    url = local_endpoint.endpoint_url
    bucket, table = Bucket(url), Table(url)
    await asyncio.to_thread(table.fill, 60)
    manifest = await snapshot_taken(url, table, tmp_path / "a.db", bucket)

    [stored] = bucket.manifests()
    assert stored == manifest
    assert manifest.app == f"app-{table.name}"
    assert manifest.source.table == table.name
    assert manifest.source.replica_table == table.name
    assert manifest.source.stream_arn == table.stream_arn
    assert manifest.items == 60 and manifest.schema_version == SCHEMA_VERSION
    assert manifest.checkpoints and all(c.isdigit() for c in manifest.checkpoints.values())
    assert manifest.watermark_ms is not None
    data = tmp_path / "data.gz"
    data.write_bytes(bucket.get(manifest.object.key))
    assert sha256_of(data) == manifest.object.sha256
    assert data.stat().st_size == manifest.object.size
    assert bucket.keys() == sorted(
        [manifest.object.key, manifest.object.key.replace(".sqlite.gz", ".manifest.json")]
    )


async def test_a_new_node_restores_the_snapshot_is_not_ready_until_caught_up_then_equals_the_table(
    local_endpoint: LocalEndpoint, tmp_path: Path
) -> None:
    url = local_endpoint.endpoint_url
    bucket, table = Bucket(url), Table(url)
    await asyncio.to_thread(table.fill, 60)
    manifest = await snapshot_taken(url, table, tmp_path / "a.db", bucket)
    await asyncio.to_thread(changes_after_the_snapshot, table)
    expected = await asyncio.to_thread(table.scan)

    path = tmp_path / "node" / "b.db"  # an empty directory: nothing local to resume from
    seen: list[tuple[int, str, str]] = []

    def ready() -> bool:
        current = status(path)
        if current is not None and (not seen or seen[-1] != current):
            seen.append(current)
        return current is not None and current[0] == 1

    async with running_worker(config(url, table, path, bucket.settings())) as running:
        await eventually(ready, 10, "the restored node ready")
        at_ready = replica_items(path, table.name)
        factory = factory_of(running)
        await running.stop()
    assert factory.restored is not None and factory.restored.id == manifest.id
    assert not scanned_after(path, manifest)  # resumed from the snapshot, no scan
    assert all(ready == 0 for ready, _, _ in seen[:-1]) and seen[0][0] == 0
    assert at_ready == expected
    assert at_ready["k0001"]["n"] == 1001 and "k0002" not in at_ready and "new-1" in at_ready


async def test_a_corrupt_snapshot_is_refused_and_the_table_is_loaded_by_a_scan(
    local_endpoint: LocalEndpoint, tmp_path: Path
) -> None:
    url = local_endpoint.endpoint_url
    bucket, table = Bucket(url), Table(url)
    await asyncio.to_thread(table.fill, 40)
    manifest = await snapshot_taken(url, table, tmp_path / "a.db", bucket)
    await asyncio.to_thread(flip_a_byte, bucket, manifest.object.key)
    await asyncio.to_thread(changes_after_the_snapshot, table)

    path = tmp_path / "node" / "b.db"
    async with running_worker(config(url, table, path, bucket.settings())) as running:
        await converged(path, table)
        factory = factory_of(running)
        await running.stop()
    assert factory.restored is None
    result = factory.snapshots.restore_result if factory.snapshots else None
    assert result is not None
    [rejection] = result.rejected
    assert rejection.reason == "corrupt: sha256 of the object does not match the manifest"
    assert scanned_after(path, manifest)


async def test_a_stale_snapshot_is_refused_and_the_table_is_loaded_by_a_scan(
    make_local_endpoint: Callable[..., LocalEndpoint], tmp_path: Path
) -> None:
    local = make_local_endpoint(shards=2)  # its clock moves: not the shared endpoint
    url = local.endpoint_url
    bucket, table = Bucket(url), Table(url)
    await asyncio.to_thread(table.fill, 40)
    manifest = await snapshot_taken(url, table, tmp_path / "a.db", bucket)
    await asyncio.to_thread(changes_after_the_snapshot, table)
    local.trim(advance="25h")  # every record the snapshot has not applied is gone

    path = tmp_path / "node" / "b.db"
    async with running_worker(config(url, table, path, bucket.settings())) as running:
        await converged(path, table)
        factory = factory_of(running)
        await running.stop()
    assert factory.restored is None
    result = factory.snapshots.restore_result if factory.snapshots else None
    assert result is not None
    [rejection] = result.rejected
    assert rejection.reason.startswith("stale: shard "), rejection.reason
    assert "trimmed" in rejection.reason
    assert scanned_after(path, manifest)


async def test_with_bootstrap_on_failure_fail_the_worker_stops_naming_each_refusal(
    local_endpoint: LocalEndpoint, tmp_path: Path
) -> None:
    url = local_endpoint.endpoint_url
    bucket, table = Bucket(url), Table(url)
    await asyncio.to_thread(table.fill, 10)
    manifest = await snapshot_taken(url, table, tmp_path / "a.db", bucket)
    await asyncio.to_thread(flip_a_byte, bucket, manifest.object.key)

    path = tmp_path / "node" / "b.db"
    settings = bucket.settings(bootstrap_on_failure="fail")
    with pytest.raises(SnapshotRestoreError) as failed:
        async with running_worker(config(url, table, path, settings)) as running:
            await asyncio.wait_for(running.task, 10)
    message = str(failed.value)
    assert message.startswith(f"no usable snapshot in s3://{bucket.name}/r/app-{table.name}/ (")
    assert "corrupt: sha256 of the object does not match the manifest" in message
    assert "bootstrap_on_failure is fail" in message
    assert not path.exists()


def test_bridge_run_exits_1_when_no_snapshot_is_usable_and_fallback_is_off(
    local_endpoint: LocalEndpoint, tmp_path: Path
) -> None:
    url = local_endpoint.endpoint_url
    bucket, table = Bucket(url), Table(url)
    settings = config(url, table, tmp_path / "b.db", bucket.settings(bootstrap_on_failure="fail"))
    file = tmp_path / "bridge.yaml"
    file.write_text(yaml.safe_dump(settings.model_dump(mode="json", exclude_none=True)))
    run = subprocess.run(
        [sys.executable, "-m", "bridge", "run", "-c", str(file)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert run.returncode == 1, run.stderr
    assert "no usable snapshot in s3://" in run.stderr
    assert "(no snapshot found)" in run.stderr


async def test_snapshots_are_taken_every_interval_and_old_ones_expire(
    local_endpoint: LocalEndpoint, tmp_path: Path
) -> None:
    url = local_endpoint.endpoint_url
    bucket, table = Bucket(url), Table(url)
    await asyncio.to_thread(table.fill, 20)
    path = tmp_path / "a.db"
    settings = bucket.settings(interval="200ms", keep=2)
    async with running_worker(config(url, table, path, settings)) as running:
        factory = factory_of(running)
        snapshots = factory.snapshots
        assert snapshots is not None
        for round_ in range(3):
            taken = snapshots.taken
            await asyncio.to_thread(table.put, f"k{round_:04d}", 100 + round_)
            await converged(path, table)
            await eventually(partial(more_taken, snapshots, taken), 10, "the next snapshot")
        assert await factory.take_snapshot() is None  # nothing applied since the last one
        await running.stop()
    manifests = bucket.manifests()
    assert len(manifests) == 2 and len(bucket.keys()) == 4
    assert manifests[0].checkpoints == file_checkpoints(path)
    assert manifests[0].created_ms > manifests[1].created_ms


async def test_a_restore_behind_the_lease_tables_finished_shards_stops_instead_of_skipping(
    local_endpoint: LocalEndpoint, tmp_path: Path
) -> None:
    url = local_endpoint.endpoint_url
    bucket, table = Bucket(url), Table(url)
    await asyncio.to_thread(table.fill, 20)
    path = tmp_path / "a.db"
    async with running_worker(config(url, table, path, bucket.settings())) as running:
        await converged(path, table)
        await eventually(lambda: (status(path) or (0,))[0] == 1, 10, "the first worker ready")
        assert await factory_of(running).take_snapshot() is not None
        local_endpoint.rotate(table.name)  # the snapshot's shards close; the worker finishes them
        await asyncio.to_thread(changes_after_the_snapshot, table)
        await converged(path, table)
        await running.stop()

    node = config(url, table, tmp_path / "node" / "b.db", bucket.settings())  # same lease table
    with pytest.raises(WorkerFailedError) as failed:
        async with running_worker(node) as running:
            await asyncio.wait_for(running.task, 10)
    assert "while the lease table marks it finished" in str(failed.value)
