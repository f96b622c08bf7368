"""``bridge status`` reads the lease table as it is: owners, checkpoints, lineage states."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from pathlib import Path

import aioboto3

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
        leases = {lease.key: lease for lease in await store.list_leases()}
        parent = await store.take(leases["parent"], "worker-a")
        await store.checkpoint(parent, "SHARD_END")
        other = await store.take(leases["other"], "worker-b")
        await store.checkpoint(other, "4200")

    done = bridge(
        "status", "-c", str(write_config(tmp_path, moto_server.endpoint_url, app)), "--json"
    )
    assert done.returncode == 0, done.stderr
    status = json.loads(done.stdout)
    rows = {row["shard"]: row for row in status["leases"]}
    assert rows["parent"]["state"] == "historical"
    assert rows["child"] == {
        "shard": "child",
        "owner": None,
        "counter": 0,
        "checkpoint": None,
        "parents": ["parent"],
        "state": "initializing",
    }
    assert (rows["other"]["owner"], rows["other"]["checkpoint"]) == ("worker-b", "4200")
    assert rows["other"]["state"] == "active"
    assert status["workers"] == ["worker-a", "worker-b"]
    assert status["leader"] is None

    table = bridge("status", "-c", str(write_config(tmp_path, moto_server.endpoint_url, app)))
    assert table.returncode == 0, table.stderr
    assert "worker-b" in table.stdout and "historical" in table.stdout


def test_status_of_an_app_that_never_ran_says_so(tmp_path: Path, moto_server: MotoServer) -> None:
    done = bridge(
        "status", "-c", str(write_config(tmp_path, moto_server.endpoint_url, "never-ran"))
    )
    assert done.returncode == 1
    assert "never-ran-leases does not exist" in done.stderr
