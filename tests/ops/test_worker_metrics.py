"""A running ``bridge run`` process seen from outside, as Prometheus and Kubernetes see it:
counters and gauges move with the writes, and /readyz tells the truth when the stream dies."""

from __future__ import annotations

import re
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

import boto3

from bridge.local.endpoint import LocalEndpoint
from bridge.local.processes import free_port
from tests.support.workload import Writer, create_table, plan_writes


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()
    except OSError:
        return 0, ""


def sample(metrics: str, name: str) -> float:
    found = re.search(rf"^{name}{{[^}}]*}} (\S+)$", metrics, re.MULTILINE)
    return float(found.group(1)) if found else float("nan")


def total(metrics: str, name: str, **labels: str) -> float:
    """The sum of a family's series whose labels include ``labels``."""
    summed = 0.0
    for found in re.finditer(rf"^{name}{{([^}}]*)}} (\S+)$", metrics, re.MULTILINE):
        series = dict(re.findall(r'(\w+)="([^"]*)"', found.group(1)))
        if labels.items() <= series.items():
            summed += float(found.group(2))
    return summed


def wait_for(
    condition: Callable[[], bool],
    within: float,
    what: str,
    process: subprocess.Popen[bytes],
    log: Path,
) -> None:
    deadline = time.monotonic() + within
    while not condition():
        if process.poll() is not None:
            raise AssertionError(f"worker exited {process.returncode}:\n{log.read_text()[-3000:]}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {within}s waiting for {what}")
        time.sleep(0.1)


def test_metrics_move_with_writes_and_readyz_follows_the_stream(
    make_local_endpoint: Callable[..., LocalEndpoint], tmp_path: Path
) -> None:
    local = make_local_endpoint(shards=4, rotate_records=300)
    ddb = boto3.client("dynamodb", endpoint_url=local.endpoint_url, region_name="us-east-1")
    table, _ = create_table(ddb, prefix="ops")
    port = free_port()
    config = tmp_path / "bridge.yaml"
    config.write_text(
        f"app: ops-{table}\n"
        f"source: {{table: {table}, endpoint_url: '{local.endpoint_url}',\n"
        "  aws_access_key_id: x, aws_secret_access_key: x}\n"
        "coordination: {lease_duration: 3s, take_interval: 200ms}\n"
        "polling: {interval: 50ms, idle_interval: 250ms}\n"
        "processor: {kind: log, options: {images: false}}\n"
        f"metrics: {{port: {port}}}\n"
        "ready_lag: 5s\n"
    )
    log = tmp_path / "worker.log"
    base = f"http://127.0.0.1:{port}"
    with log.open("wb") as out:
        worker = subprocess.Popen(
            [sys.executable, "-m", "bridge", "--log-level", "warning", "run", "-c", str(config)],
            stdout=out,
            stderr=out,
        )
    try:
        wait_for(lambda: get(f"{base}/readyz")[0] == 200, 60, "ready", worker, log)
        assert get(f"{base}/healthz") == (200, "ok\n")
        _, before = get(f"{base}/metrics")
        Writer(ddb, table, plan_writes(1_000, 100)).write()

        def processed_all() -> bool:
            return sample(get(f"{base}/metrics")[1], "bridge_records_processed_total") >= 1_000

        wait_for(processed_all, 60, "1,000 records processed", worker, log)
        _, after = get(f"{base}/metrics")
        assert sample(after, "bridge_records_consumed_total") >= 1_000
        calls = sample(after, "bridge_getrecords_calls_total")
        assert calls > sample(before, "bridge_getrecords_calls_total")
        assert sample(after, "bridge_leases_owned") >= 1
        assert sample(after, "bridge_lag_ms") >= 0
        assert sample(after, "bridge_records_lost_total") == 0
        checkpoints = sample(after, "bridge_checkpoint_writes_total")
        assert checkpoints > 0
        # Units as DynamoDB billed them: every checkpoint is a write of at least one unit,
        # take cycles scan the lease table, the leader's lock and heartbeats use the other.
        leases, coordination = f"ops-{table}-leases", f"ops-{table}-leases-coordination"
        units = "bridge_lease_table_write_units_total"
        assert total(after, units, dynamodb_table=leases, operation="UpdateItem") >= checkpoints
        reads = "bridge_lease_table_read_units_total"
        assert total(after, reads, dynamodb_table=leases, operation="Scan") > 0
        assert total(after, units, dynamodb_table=coordination) > 0

        local.stop()  # the stream (and lease table) go away
        wait_for(lambda: get(f"{base}/readyz")[0] == 503, 30, "not ready", worker, log)
        _, reason = get(f"{base}/readyz")
        assert "not read" in reason or "lease table" in reason, reason
        assert get(f"{base}/healthz")[0] == 200  # alive, just not useful: no restart wanted
    finally:
        worker.terminate()
        worker.wait(timeout=60)
