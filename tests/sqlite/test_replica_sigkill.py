"""``bridge run`` with the SQLite replica killed with SIGKILL mid-scan and mid-stream, then
restarted: the scan resumes, and the replica ends equal to the table, item by item."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import boto3
import pytest

from bridge.local.endpoint import LocalEndpoint
from tests.sqlite.test_replica_e2e import TrickleWriter, fill, replica_items, scan
from tests.support.workload import create_table


def query(path: Path, sql: str) -> list[tuple[object, ...]]:
    if not path.exists():
        return []
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5) as db:
            return db.execute(sql).fetchall()
    except sqlite3.OperationalError:
        return []  # the table is not there yet


def wait_for(condition: Callable[[], bool], within: float, what: str) -> None:
    deadline = time.monotonic() + within
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {within}s waiting for {what}")
        time.sleep(0.02)


@pytest.mark.slow
def test_sigkill_during_bootstrap_and_streaming_then_the_replica_equals_the_table(
    make_local_endpoint: Callable[..., LocalEndpoint], tmp_path: Path
) -> None:
    local = make_local_endpoint(shards=4, rotate_records=3_000)
    ddb = boto3.client("dynamodb", endpoint_url=local.endpoint_url, region_name="us-east-1")
    table, _ = create_table(ddb, prefix="kill")
    items = 20_000
    fill(ddb, table, items)
    path = tmp_path / "replica.db"
    config = tmp_path / "bridge.yaml"
    config.write_text(
        f"app: kill-{table}\n"
        f"source: {{table: {table}, endpoint_url: '{local.endpoint_url}', start: auto,\n"
        "  aws_access_key_id: x, aws_secret_access_key: x}\n"
        "coordination: {lease_duration: 2s, take_interval: 200ms}\n"
        "polling: {interval: 20ms, idle_interval: 200ms}\n"
        f"processor: {{kind: sqlite, options: {{path: '{path}', bootstrap_segments: 2}}}}\n"
        "metrics: {enabled: false}\n"
    )
    log = tmp_path / "worker.log"

    def start() -> subprocess.Popen[bytes]:
        with log.open("ab") as out:
            return subprocess.Popen(
                [sys.executable, "-m", "bridge", "run", "-c", str(config)], stdout=out, stderr=out
            )

    def kill(process: subprocess.Popen[bytes]) -> None:
        os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=10)

    writer = TrickleWriter(ddb, table, items, rate=50)
    writer.start()
    try:
        first = start()
        scanned = "SELECT sum(items), min(done) FROM _bridge_bootstrap"
        wait_for(lambda: (query(path, scanned) or [(0, 0)])[0][0] or 0, 120, "the scan to begin")
        kill(first)
        at_kill = query(path, scanned)[0]
        assert at_kill[1] == 0, "killed too late: the scan had finished"

        second = start()  # "auto" finishes the interrupted scan instead of starting over
        checkpoints = "SELECT count(*) FROM _bridge_checkpoints"
        wait_for(lambda: (query(path, checkpoints) or [(0,)])[0][0] > 0, 120, "streaming")
        time.sleep(0.5)  # let some changes flow before the second kill; any moment will do
        kill(second)
        assert query(path, scanned)[0][1] == 1

        third = start()
        writer.done.set()
        writer.join()
        expected = scan(ddb, table)
        wait_for(lambda: replica_items(path, table) == expected, 120, "the replica to converge")
        third.send_signal(signal.SIGTERM)
        assert third.wait(timeout=60) == 0
    finally:
        writer.done.set()
    total = query(path, "SELECT sum(items) FROM _bridge_bootstrap")[0][0]
    print(f"\nscan killed at {at_kill[0]} items; {total} scanned in all; {writer.writes} writes")
    # resumed where it stopped: a scan started over would have read the first part twice
    assert int(str(total)) <= items + writer.writes
