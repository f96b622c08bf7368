"""``bridge status`` reads the lease table as it is: owners, checkpoints, lineage states, the
owners' lag readings; once, or again and again with ``--watch``."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import replace
from pathlib import Path

import aioboto3
import boto3

from bridge.core.leasing import LagReading
from bridge.leases.store import DynamoLeaseStore
from bridge.local.processes import MotoServer


def write_config(tmp_path: Path, endpoint: str, app: str) -> Path:
    path = tmp_path / "bridge.yaml"
    path.write_text(
        f"app: {app}\n"
        f"source: {{table: orders, endpoint_url: '{endpoint}', region: us-east-1,\n"
        "  aws_access_key_id: testing, aws_secret_access_key: testing}\n"
    )
    return path


def bridge(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bridge", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, "COLUMNS": "200"},  # one table row per line, whatever the terminal
    )


async def test_status_shows_each_lease_with_owner_checkpoint_and_state(
    tmp_path: Path, moto_server: MotoServer
) -> None:
    app = f"st-{uuid.uuid4().hex[:6]}"
    session = aioboto3.Session()
    async with session.client(
        "dynamodb", endpoint_url=moto_server.endpoint_url, region_name="us-east-1"
    ) as client:
        store = DynamoLeaseStore(client, f"{app}-leases")
        await store.ensure_table()
        await store.create_lease("parent", frozenset())
        await store.create_lease("child", frozenset(["parent"]))
        await store.create_lease("other", frozenset())
        await store.create_lease("stuck", frozenset())
        leases = {lease.key: lease for lease in await store.list_leases()}
        now_ms = round(time.time() * 1000)
        parent = await store.take(leases["parent"], "worker-a")
        await store.checkpoint(replace(parent, lag=LagReading(5, now_ms)), "SHARD_END")
        other = await store.take(leases["other"], "worker-b")
        other = await store.checkpoint(other, "4200")
        await store.renew(replace(other, lag=LagReading(lag_ms=1234, measured_at_ms=now_ms)))
        stuck = await store.take(leases["stuck"], "worker-a")
        await store.renew(replace(stuck, lag=LagReading(80, now_ms - 600_000)))

    done = bridge(
        "status", "-c", str(write_config(tmp_path, moto_server.endpoint_url, app)), "--json"
    )
    assert done.returncode == 0, done.stderr
    status = json.loads(done.stdout)
    rows = {row["shard"]: row for row in status["leases"]}
    assert rows["parent"]["state"] == "historical"
    assert rows["child"] == {
        "table": None,  # one table: its leases are keyed by shard id
        "shard": "child",
        "owner": None,
        "counter": 0,
        "checkpoint": "TRIM_HORIZON",  # as created, as KCL creates its leases
        "parents": ["parent"],
        "state": "initializing",
        "lag_ms": None,
        "lag_measured_at": None,
        "lag_age_ms": None,
        "lag_stale": False,
    }
    assert (rows["other"]["owner"], rows["other"]["checkpoint"]) == ("worker-b", "4200")
    assert rows["other"]["state"] == "active"
    assert (rows["other"]["lag_ms"], rows["other"]["lag_stale"]) == (1234, False)
    assert rows["other"]["lag_measured_at"].endswith("+00:00")
    assert (rows["stuck"]["lag_ms"], rows["stuck"]["lag_stale"]) == (80, True)
    assert rows["stuck"]["lag_age_ms"] >= 600_000
    assert rows["parent"]["lag_ms"] is None  # finished: no lag to speak of
    assert status["workers"] == ["worker-a", "worker-b"]
    assert status["leader"] is None
    assert status["summary"] == {
        "leases": 4,
        "owned": 2,
        "free": 1,
        "finished": 1,
        "workers": 2,
        "registered_workers": 0,
        "leader": None,
        "max_lag_ms": 1234,
        "stale_lags": 1,
    }

    table = bridge("status", "-c", str(write_config(tmp_path, moto_server.endpoint_url, app)))
    assert table.returncode == 0, table.stderr
    assert "worker-b" in table.stdout and "historical" in table.stdout
    assert "1.2s" in table.stdout and "stale: 10m" in table.stdout
    assert "4 total, 2 owned, 1 free, 1 finished" in table.stdout


def test_watch_with_json_prints_a_document_per_refresh_until_interrupted(
    tmp_path: Path, moto_server: MotoServer
) -> None:
    app = f"sw-{uuid.uuid4().hex[:6]}"
    boto3.client(
        "dynamodb", endpoint_url=moto_server.endpoint_url, region_name="us-east-1"
    ).create_table(
        TableName=f"{app}-leases",
        KeySchema=[{"AttributeName": "leaseKey", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "leaseKey", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    config = write_config(tmp_path, moto_server.endpoint_url, app)
    command = [sys.executable, "-m", "bridge", "status", "-c", str(config), "--json", "--watch"]
    with subprocess.Popen(
        [*command, "--interval", "100ms"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as watch:
        try:
            assert watch.stdout is not None and watch.stderr is not None
            documents = [json.loads(watch.stdout.readline()) for _ in range(2)]
            assert [doc["app"] for doc in documents] == [app, app]
            assert documents[0]["read_at"] < documents[1]["read_at"]
            assert documents[1]["summary"]["leases"] == 0
            watch.send_signal(signal.SIGINT)
            assert watch.wait(timeout=20) == 0, watch.stderr.read()
        finally:
            if watch.poll() is None:
                watch.kill()


def test_status_of_an_app_that_never_ran_says_so(tmp_path: Path, moto_server: MotoServer) -> None:
    done = bridge(
        "status", "-c", str(write_config(tmp_path, moto_server.endpoint_url, "never-ran"))
    )
    assert done.returncode == 1
    assert "never-ran-leases does not exist" in done.stderr
