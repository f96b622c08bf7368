"""``bridge status`` shows each owned shard's lag, as its owner last measured it, from the lease
table alone; once the owner dies, the reading goes stale and says so."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import boto3

from bridge.local.endpoint import LocalEndpoint
from tests.support.workload import Writer, create_table, plan_writes


def status(config: Path) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-m", "bridge", "status", "-c", str(config), "--json"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    answer: dict[str, Any] = json.loads(done.stdout)
    return answer


def lease_items(ddb: Any, table: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = ddb.scan(TableName=table, ConsistentRead=True)["Items"]
    return items


def test_status_shows_the_lag_of_every_owned_shard_and_when_it_goes_stale(
    local_endpoint: LocalEndpoint, tmp_path: Path
) -> None:
    ddb = boto3.client(
        "dynamodb", endpoint_url=local_endpoint.endpoint_url, region_name="us-east-1"
    )
    table, _ = create_table(ddb, prefix="lag")
    app = f"lag-{table}"
    config = tmp_path / "bridge.yaml"
    config.write_text(
        f"app: {app}\nworker_id: lag-worker\n"
        f"source: {{table: {table}, endpoint_url: '{local_endpoint.endpoint_url}',\n"
        "  aws_access_key_id: x, aws_secret_access_key: x}\n"
        "coordination: {lease_duration: 3s, renew_interval: 500ms, take_interval: 200ms}\n"
        "polling: {interval: 50ms, idle_interval: 250ms}\n"
        "processor: {kind: log, options: {images: false}}\n"
        "metrics: {enabled: false}\n"
    )
    log = tmp_path / "worker.log"
    with log.open("wb") as out:
        worker = subprocess.Popen(
            [sys.executable, "-m", "bridge", "--log-level", "warning", "run", "-c", str(config)],
            stdout=out,
            stderr=out,
        )
    try:
        Writer(ddb, table, plan_writes(200, 50)).write()

        def every_shard_reported() -> bool:
            try:
                items = lease_items(ddb, f"{app}-leases")
            except ddb.exceptions.ResourceNotFoundException:
                return False
            owned = [item for item in items if "leaseOwner" in item]
            return len(owned) == 4 and all("bridgeLagMs" in item for item in owned)

        deadline = time.monotonic() + 30
        while not every_shard_reported():
            assert worker.poll() is None, log.read_text()[-3000:]
            assert time.monotonic() < deadline, "no lag reading on every owned lease"
            time.sleep(0.1)

        seen = status(config)
        owned = [row for row in seen["leases"] if row["owner"] == "lag-worker"]
        assert len(owned) == 4
        for row in owned:
            assert row["lag_ms"] is not None and row["lag_ms"] >= 0, row
            assert row["lag_measured_at"] is not None and not row["lag_stale"], row
        assert seen["summary"]["owned"] == 4 and seen["summary"]["max_lag_ms"] is not None

        worker.send_signal(signal.SIGKILL)  # no drain: the leases stay owned by a dead worker
        worker.wait(timeout=10)
        time.sleep(2.0)  # three renewal intervals (1.5 s), and a margin
        after = status(config)
        stale = [row for row in after["leases"] if row["owner"] == "lag-worker"]
        assert stale and all(row["lag_stale"] for row in stale), stale
        assert after["summary"]["stale_lags"] == len(stale)
        assert after["summary"]["max_lag_ms"] is None
    finally:
        if worker.poll() is None:
            worker.terminate()
            worker.wait(timeout=60)
