"""A replica bootstrapped from a live table through a running worker: it converges on the
table item by item, is never ready while bootstrapping or behind, and stops being ready
when its stream goes away."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import threading
import time
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import boto3
import pytest

from bridge.config import BridgeConfig
from bridge.local.endpoint import LocalEndpoint
from bridge.processors.sqlite import Replica
from bridge.records import decode_item
from tests.support.workload import create_table
from tests.worker.conftest import running_worker


def fill(ddb: Any, table: str, items: int) -> None:
    for start in range(0, items, 25):
        ddb.batch_write_item(
            RequestItems={
                table: [
                    {"PutRequest": {"Item": {"pk": {"S": f"k{n:06d}"}, "v": {"N": "0"}}}}
                    for n in range(start, min(start + 25, items))
                ]
            }
        )


class TrickleWriter(threading.Thread):
    """About ``rate`` changes a second (updates, new items, deletes) until stopped."""

    def __init__(self, ddb: Any, table: str, items: int, rate: float) -> None:
        super().__init__(daemon=True, name="trickle")
        self.ddb, self.table, self.items, self.rate = ddb, table, items, rate
        self.done = threading.Event()
        self.writes = 0

    def run(self) -> None:
        n = 0
        while not self.done.is_set():
            n += 1
            key = f"k{(n * 7919) % self.items:06d}"
            if n % 10 == 0:
                self.ddb.delete_item(TableName=self.table, Key={"pk": {"S": key}})
            elif n % 10 == 5:
                item = {"pk": {"S": f"new{n:06d}"}, "v": {"N": str(n)}}
                self.ddb.put_item(TableName=self.table, Item=item)
            else:
                self.ddb.update_item(
                    TableName=self.table,
                    Key={"pk": {"S": key}},
                    UpdateExpression="SET v = :v, note = :s",
                    ExpressionAttributeValues={":v": {"N": f"{n}.5"}, ":s": {"S": f"w{n}"}},
                )
            self.writes += 1
            self.done.wait(1 / self.rate)


def scan(ddb: Any, table: str) -> dict[str, dict[str, Any]]:
    items: dict[str, dict[str, Any]] = {}
    kwargs: dict[str, Any] = {"TableName": table, "ConsistentRead": True}
    while True:
        page = ddb.scan(**kwargs)
        for raw in page["Items"]:
            item = decode_item(raw)
            items[item["pk"]] = item
        if "LastEvaluatedKey" not in page:
            return items
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def replica_items(path: Path, table: str) -> dict[str, dict[str, Any]]:
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
        rows = db.execute(f'SELECT pk, item FROM "{table}"').fetchall()
    return {pk: json.loads(item, parse_float=Decimal) for pk, item in rows}


def status(path: Path) -> tuple[int, str, str] | None:
    if not path.exists():
        return None
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
        try:
            return db.execute("SELECT ready, phase, reason FROM _bridge_status").fetchone()
        except sqlite3.OperationalError:
            return None


async def eventually(condition: Callable[[], bool], within: float, what: str) -> None:
    deadline = time.monotonic() + within
    while not await asyncio.to_thread(condition):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {within}s waiting for {what}")
        await asyncio.sleep(0.1)


@pytest.mark.parametrize(
    "items",
    [pytest.param(1_500, id="1.5k"), pytest.param(50_000, id="50k", marks=pytest.mark.slow)],
)
async def test_bootstrap_under_writes_converges_and_readiness_tells_the_truth(
    items: int, make_local_endpoint: Callable[..., LocalEndpoint], tmp_path: Path
) -> None:
    local = make_local_endpoint(shards=4, rotate_records=2_000)
    ddb = boto3.client("dynamodb", endpoint_url=local.endpoint_url, region_name="us-east-1")
    table, _ = create_table(ddb, prefix="cfg")
    await asyncio.to_thread(fill, ddb, table, items)
    path = tmp_path / "replica.db"
    config = BridgeConfig.model_validate(
        {
            "app": f"rep-{table}",
            "worker_id": "replica-1",
            "source": {"table": table, "endpoint_url": local.endpoint_url, "start": "bootstrap"},
            "coordination": {"lease_duration": "4s", "take_interval": "200ms"},
            "polling": {"interval": "50ms", "idle_interval": "200ms"},
            "processor": {
                "kind": "sqlite",
                "options": {"path": str(path), "stall_after": 3, "bootstrap_segments": 4},
            },
        }
    )
    writer = TrickleWriter(ddb, table, items, rate=20)
    writer.start()
    phases: list[tuple[int, str, str]] = []
    try:
        async with running_worker(config) as running:

            def saw_bootstrap_then_ready() -> bool:
                current = status(path)
                if current is not None and (not phases or phases[-1] != current):
                    phases.append(current)
                return current is not None and current[0] == 1

            await eventually(saw_bootstrap_then_ready, 240, "the replica to become ready")
            writer.done.set()
            writer.join()
            expected = await asyncio.to_thread(scan, ddb, table)
            await eventually(
                lambda: replica_items(path, table) == expected, 60, "the replica to converge"
            )
            await eventually(lambda: status(path)[0] == 1, 10, "ready once caught up")  # type: ignore[index]
            # the stream goes away: no reads succeed, the replica stops claiming to be fresh
            local.stop()
            await eventually(lambda: status(path)[0] == 0, 30, "not ready after the stream died")  # type: ignore[index]
            running.worker.request_stop()
    finally:
        writer.done.set()
    assert writer.writes > 0
    # Before the file knows it bootstraps it says so; the first phase after is the scan.
    assert phases[0][:2] in ((0, "starting"), (0, "bootstrapping")), phases
    begun = [phase for phase in phases if phase[1] != "starting"]
    assert begun[0][:2] == (0, "bootstrapping"), phases
    assert all(ready == 0 for ready, phase, _ in phases if phase == "bootstrapping")
    with Replica(path) as replica:
        assert not replica.status().ready
    print(f"\n{items} items, {writer.writes} writes during the run, phases: {phases}")
