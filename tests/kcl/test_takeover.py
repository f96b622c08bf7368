"""A KCL application's lease table taken over by ``bridge run`` (a separate process, against
``bridge local``): no record at or before a KCL checkpoint is delivered again, none after it is
missing, and no item gets an older version after a newer one.

- ``A``: single-stream leases, open shards checkpointed halfway, finished parents at SHARD_END,
  every lease held by a KCL worker that is gone (taken once expired, not stolen).
- ``B``: A, with the rows KCL 3.5+ keeps beside its leases (leader, version migration, worker
  metrics): passed over, left as they are.
- ``D``: B, with finished parents' leases deleted as the adapter does once their children have
  checkpoints, while the stream still lists the parents: they are not read again.
- ``C``: D's table keyed as KCL's multi-stream mode keys it, with a lease of another table's
  stream beside it: bridge keys the leases it creates the same way and leaves the other alone.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import boto3
import pytest
import yaml

from bridge.core.lease_keys import StreamId
from bridge.local.endpoint import LocalEndpoint
from tests.kcl.kcl_tables import (
    NOT_LEASES,
    kcl_checkpoints,
    other_stream_lease,
    processed_by_kcl,
    read_stream,
    write_kcl_table,
)
from tests.support.journal import read_journal
from tests.support.worker_process import ROOT, WorkerProcess
from tests.support.workload import Writer, create_table, plan_writes, versions_by_key

KCL_ONLY = {"checkpointOwner", "pendingCheckpoint", "pendingCheckpointSubSequenceNumber"}


def clients(endpoint: str) -> tuple[Any, Any]:
    options = {"endpoint_url": endpoint, "region_name": "us-east-1"}
    return boto3.client("dynamodb", **options), boto3.client("dynamodbstreams", **options)


def bridge_config(tmp_path: Path, endpoint: str, table: str, lease_table: str) -> Path:
    path = tmp_path / "bridge.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "app": f"takeover-{uuid.uuid4().hex[:6]}",
                "source": {"table": table, "endpoint_url": endpoint},
                "coordination": {
                    "lease_table": lease_table,
                    "lease_duration": "3s",
                    "take_interval": "300ms",
                    "shard_sync_interval": "1s",
                },
                "polling": {"interval": "50ms", "idle_interval": "200ms"},
                "processor": {
                    "kind": "tests.support.journal:JournalProcessor",
                    "options": {"path": str(tmp_path / "journal.jsonl")},
                },
                "metrics": {"port": 0},
            }
        )
    )
    return path


def kcl_check(config: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bridge", "kcl", "check", "-c", str(config)],
        check=False,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize(
    "case",
    [
        pytest.param("A", marks=pytest.mark.slow),
        pytest.param("B", marks=pytest.mark.slow),
        pytest.param("D", marks=pytest.mark.slow),
        pytest.param("C", marks=pytest.mark.slow),  # D's table, with multi-stream keys
    ],
)
async def test_a_kcl_lease_table_is_taken_over_without_replay_or_loss(
    make_local_endpoint: Callable[..., LocalEndpoint], tmp_path: Path, case: str
) -> None:
    local = make_local_endpoint(rotate_records=40)
    ddb, streams = clients(local.endpoint_url)
    table, arn = create_table(ddb, prefix="kcl")
    writer = Writer(ddb, table, plan_writes(360, 30, seed=3))
    writer.write(260)
    shape = read_stream(streams, arn)
    assert shape.closed and any(shape.parents[s] in shape.closed for s in shape.parents)
    checkpoints = kcl_checkpoints(shape)
    lease_table = f"kcl-app-{uuid.uuid4().hex[:6]}"
    stream = StreamId.of_arn(arn) if case == "C" else None
    write_kcl_table(
        ddb,
        lease_table,
        shape,
        checkpoints,
        delete_finished_parents=case in ("C", "D"),
        other_rows=case != "A",
        stream=stream,
    )
    if stream is not None:
        ddb.put_item(TableName=lease_table, Item=other_stream_lease(stream))
    done = processed_by_kcl(shape, checkpoints)
    config = bridge_config(tmp_path, local.endpoint_url, table, lease_table)

    check = await asyncio.to_thread(kcl_check, config)
    assert check.returncode == 0, check.stdout + check.stderr
    assert check.stdout.strip().endswith(": safe")
    if case in ("C", "D"):  # the parents the adapter deleted are skipped, not read again
        skipped = {line.split()[1].rstrip(":") for line in check.stdout.splitlines()}
        assert shape.closed <= skipped

    worker = WorkerProcess("w1", config, tmp_path / "w1.log")
    try:
        await asyncio.to_thread(writer.write)  # the rest, while bridge takes over
        everything = {
            r.seq for records in read_stream(streams, arn).records.values() for r in records
        }
        expected = everything - done
        journal = tmp_path / "journal.jsonl"
        deadline = asyncio.get_running_loop().time() + 90
        while not expected <= {entry.seq for entry in read_journal(journal)}:
            worker.ensure_alive()
            assert asyncio.get_running_loop().time() < deadline, "bridge did not catch up"
            await asyncio.sleep(0.2)
        worker.terminate()
        assert await asyncio.to_thread(worker.wait, 60) == 0
    finally:
        worker.stop_for_teardown()

    entries = read_journal(journal)
    delivered = [entry.seq for entry in entries]
    assert not set(delivered) & done, "records KCL had processed were delivered again"
    assert set(delivered) == expected
    for key, versions in versions_by_key((e.key, e.version) for e in entries).items():
        assert versions == sorted(versions), f"{key} went back to an older version"

    rows = ddb.scan(TableName=lease_table, ConsistentRead=True)["Items"]
    if stream is not None:  # the other stream's lease is left exactly as it was
        other = other_stream_lease(stream)
        assert [row for row in rows if row["leaseKey"] == other["leaseKey"]] == [other]
        rows = [row for row in rows if row["leaseKey"] != other["leaseKey"]]
        assert all(
            row["leaseKey"]["S"].startswith(stream.identifier)
            for row in rows
            if "entityType" not in row
        )
    leases = [row for row in rows if "entityType" not in row]
    taken = [row for row in leases if row["checkpoint"]["S"] != "SHARD_END" or "bridgeLagMs" in row]
    assert taken and all(not KCL_ONLY & set(row) for row in taken)
    assert all("checkpoint" in row for row in leases)
    if case != "A":
        kept = [row for row in rows if "entityType" in row]
        assert sorted(kept, key=str) == sorted(NOT_LEASES, key=str)


@pytest.mark.slow
async def test_a_checkpoint_bridge_does_not_know_stops_that_shard_only(
    make_local_endpoint: Callable[..., LocalEndpoint], tmp_path: Path
) -> None:
    # KCL's AT_TIMESTAMP: bridge will not guess where to start. The check says so and exits 2;
    # a worker started anyway stops that shard with one line naming it and keeps its lease,
    # and reads every other shard as it would.
    local = make_local_endpoint(rotate_records=40)
    ddb, streams = clients(local.endpoint_url)
    table, arn = create_table(ddb, prefix="kcl")
    Writer(ddb, table, plan_writes(200, 20, seed=5)).write()
    shape = read_stream(streams, arn)
    checkpoints = kcl_checkpoints(shape)
    odd = shape.leaves[0]
    checkpoints[odd] = "AT_TIMESTAMP"
    lease_table = f"kcl-app-{uuid.uuid4().hex[:6]}"
    write_kcl_table(
        ddb, lease_table, shape, checkpoints, delete_finished_parents=False, other_rows=False
    )
    config = bridge_config(tmp_path, local.endpoint_url, table, lease_table)
    check = await asyncio.to_thread(kcl_check, config)
    assert check.returncode == 2
    assert f"unknown  {odd}: checkpoint 'AT_TIMESTAMP'" in check.stdout

    done = processed_by_kcl(shape, checkpoints)
    expected = {
        record.seq for shard, records in shape.records.items() if shard != odd for record in records
    } - done
    journal = tmp_path / "journal.jsonl"
    worker = WorkerProcess("w1", config, tmp_path / "w1.log")
    try:
        deadline = asyncio.get_running_loop().time() + 60
        while not expected <= {entry.seq for entry in read_journal(journal)}:
            worker.ensure_alive()  # the worker itself goes on
            assert asyncio.get_running_loop().time() < deadline, "bridge did not catch up"
            await asyncio.sleep(0.2)
        lines = [line for line in worker.log.read_text().splitlines() if "AT_TIMESTAMP" in line]
        assert any(odd in line and "stopped" in line for line in lines), lines
        row = ddb.get_item(TableName=lease_table, Key={"leaseKey": {"S": odd}})["Item"]
        assert row["leaseOwner"]["S"] == "w1" and row["checkpoint"]["S"] == "AT_TIMESTAMP"
        worker.terminate()
        await asyncio.to_thread(worker.wait, 60)
    finally:
        worker.stop_for_teardown()
    assert not {entry.seq for entry in read_journal(journal)} & done
