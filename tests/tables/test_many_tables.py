"""One application, several tables (``source.tables``): two ``bridge run`` processes against
``bridge local`` (shards rotating), three tables matching a pattern (one with a sort key),
then a fourth created while they run. Every change of every table is delivered once, in order
per item; the leases of all tables are shared fairly; the new table is picked up by the next
shard sync."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import boto3
import pytest
import yaml

from bridge.core.lease_keys import split_key, stream_of_identifier
from bridge.local.endpoint import LocalEndpoint
from tests.support.journal import read_journal
from tests.support.worker_process import WorkerProcess
from tests.support.workload import batches, plan_writes

SYNC_INTERVAL = 2.0


def create(ddb: Any, name: str, *, sort_key: bool) -> None:
    keys = [{"AttributeName": "pk", "KeyType": "HASH"}]
    attributes = [{"AttributeName": "pk", "AttributeType": "S"}]
    if sort_key:
        keys.append({"AttributeName": "sk", "KeyType": "RANGE"})
        attributes.append({"AttributeName": "sk", "AttributeType": "N"})
    ddb.create_table(
        TableName=name,
        KeySchema=keys,
        AttributeDefinitions=attributes,
        BillingMode="PAY_PER_REQUEST",
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
    )


def write(ddb: Any, table: str, plan: list[tuple[str, int]], *, sort_key: bool) -> None:
    for batch in batches(plan):
        items = []
        for key, version in batch:
            item = {"pk": {"S": key}, "version": {"N": str(version)}}
            if sort_key:
                item["sk"] = {"N": "7"}
            items.append({"PutRequest": {"Item": item}})
        request: dict[str, Any] = {table: items}
        while request:
            request = ddb.batch_write_item(RequestItems=request).get("UnprocessedItems") or {}


def config(path: Path, endpoint: str, pattern: str, journal: Path) -> Path:
    path.write_text(
        yaml.safe_dump(
            {
                "app": f"tables-{uuid.uuid4().hex[:6]}",
                "source": {"tables": [pattern], "endpoint_url": endpoint},
                "coordination": {
                    "lease_duration": "3s",
                    "take_interval": "300ms",
                    "shard_sync_interval": f"{SYNC_INTERVAL}s",
                },
                "polling": {"interval": "50ms", "idle_interval": "200ms"},
                "processor": {
                    "kind": "tests.support.journal:JournalProcessor",
                    "options": {"path": str(journal)},
                },
                "metrics": {"port": 0},
            }
        )
    )
    return path


def owners_by_table(ddb: Any, lease_table: str) -> dict[str, Counter[str]]:
    """For each table, how many of its unfinished leases each worker holds."""
    held: dict[str, Counter[str]] = defaultdict(Counter)
    for row in ddb.scan(TableName=lease_table, ConsistentRead=True)["Items"]:
        if row.get("checkpoint", {}).get("S") == "SHARD_END":
            continue
        identifier = split_key(row["leaseKey"]["S"]).stream
        stream = stream_of_identifier(identifier) if identifier else None
        assert stream is not None, f"not a multi-stream key: {row['leaseKey']}"
        held[stream.table][row.get("leaseOwner", {}).get("S", "")] += 1  # "": free
    return held


async def eventually(condition: Callable[[], bool], within: float, what: str) -> None:
    deadline = time.monotonic() + within
    while not await asyncio.to_thread(condition):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.2)


@pytest.mark.slow
async def test_one_app_reads_every_table_matching_its_pattern(
    make_local_endpoint: Callable[..., LocalEndpoint], tmp_path: Path
) -> None:
    local = make_local_endpoint(rotate_records=60)
    ddb = boto3.client("dynamodb", endpoint_url=local.endpoint_url, region_name="us-east-1")
    prefix = f"mt{uuid.uuid4().hex[:6]}"
    tables = {f"{prefix}-a": False, f"{prefix}-b": True, f"{prefix}-c": False}
    for name, sort_key in tables.items():
        create(ddb, name, sort_key=sort_key)
    create(ddb, f"other{prefix}-x", sort_key=False)  # does not match: never read
    plans = {name: plan_writes(240, 20, seed=n) for n, name in enumerate(tables)}
    for name, plan in plans.items():
        write(ddb, name, plan[:120], sort_key=tables[name])
    journal = tmp_path / "journal.jsonl"
    path = config(tmp_path / "bridge.yaml", local.endpoint_url, f"{prefix}-*", journal)
    lease_table = f"{yaml.safe_load(path.read_text())['app']}-leases"

    def delivered() -> dict[str, dict[str, list[int]]]:
        out: dict[str, dict[str, list[int]]] = defaultdict(lambda: defaultdict(list))
        for entry in read_journal(journal):
            out[entry.table][entry.key].append(entry.version)
        return out

    def expected(name: str, plan: list[tuple[str, int]]) -> dict[str, list[int]]:
        versions: dict[str, list[int]] = defaultdict(list)
        for key, version in plan:
            versions[key].append(version)
        return versions

    workers = [WorkerProcess(name, path, tmp_path / f"{name}.log") for name in ("w1", "w2")]
    try:
        for name, plan in plans.items():
            await asyncio.to_thread(write, ddb, name, plan[120:], sort_key=tables[name])
        await eventually(
            lambda: all(delivered()[n] == expected(n, p) for n, p in plans.items()),
            90,
            "every change of the three tables",
        )
        # A fourth table matching the pattern, created while the workers run.
        late = f"{prefix}-d"
        create(ddb, late, sort_key=True)
        created = time.monotonic()
        late_plan = plan_writes(60, 10, seed=9)
        await asyncio.to_thread(write, ddb, late, late_plan, sort_key=True)
        await eventually(lambda: late in owners_by_table(ddb, lease_table), 30, "its leases")
        picked_up = time.monotonic() - created
        await eventually(
            lambda: delivered()[late] == expected(late, late_plan), 60, "the new table's changes"
        )

        def balanced() -> bool:
            counts: Counter[str] = Counter()
            for held in owners_by_table(ddb, lease_table).values():
                counts.update({owner: n for owner, n in held.items() if owner})
            return len(counts) == 2 and max(counts.values()) - min(counts.values()) <= 1

        await eventually(balanced, 30, "the leases of all tables shared fairly")
        for worker in workers:
            worker.ensure_alive()
            worker.terminate()
        for worker in workers:
            assert await asyncio.to_thread(worker.wait, 60) == 0, worker.log_tail()
    finally:
        for worker in workers:
            worker.stop_for_teardown()

    print(f"\nnew table leased {picked_up:.1f}s after it was created (sync every {SYNC_INTERVAL}s)")
    assert picked_up <= SYNC_INTERVAL + 2.0  # the leader's next sync, and a scan to see it
    got = delivered()
    assert set(got) == {*tables, late}  # the table outside the pattern was never read
    for name, plan in [*plans.items(), (late, late_plan)]:
        assert got[name] == expected(name, plan), f"{name}: lost, repeated or out of order"


@pytest.mark.slow
async def test_a_table_whose_stream_is_turned_off_and_on_is_followed_to_its_new_stream(
    make_local_endpoint: Callable[..., LocalEndpoint], tmp_path: Path
) -> None:
    local = make_local_endpoint(rotate_records=60)
    ddb = boto3.client("dynamodb", endpoint_url=local.endpoint_url, region_name="us-east-1")
    prefix = f"mt{uuid.uuid4().hex[:6]}"
    table = f"{prefix}-a"
    create(ddb, table, sort_key=False)
    first_arn = ddb.describe_table(TableName=table)["Table"]["LatestStreamArn"]
    before, after = plan_writes(80, 10, seed=3), plan_writes(80, 10, seed=4)
    after = [(key, version + 100) for key, version in after]  # versions go on growing
    journal = tmp_path / "journal.jsonl"
    path = config(tmp_path / "bridge.yaml", local.endpoint_url, f"{prefix}-*", journal)

    def seen() -> set[tuple[str, int]]:
        return {(e.key, e.version) for e in read_journal(journal) if e.table == table}

    worker = WorkerProcess("w1", path, tmp_path / "w1.log")
    try:
        await asyncio.to_thread(write, ddb, table, before, sort_key=False)
        await eventually(lambda: set(before) <= seen(), 60, "the first stream's changes")
        off = {"StreamEnabled": False}
        on = {"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"}
        ddb.update_table(TableName=table, StreamSpecification=off)
        ddb.update_table(TableName=table, StreamSpecification=on)
        second_arn = ddb.describe_table(TableName=table)["Table"]["LatestStreamArn"]
        assert second_arn != first_arn
        await asyncio.to_thread(write, ddb, table, after, sort_key=False)
        await eventually(lambda: set(after) <= seen(), 60, "the new stream's changes")
        worker.ensure_alive()
        worker.terminate()
        assert await asyncio.to_thread(worker.wait, 60) == 0, worker.log_tail()
    finally:
        worker.stop_for_teardown()
    entries = [e for e in read_journal(journal) if e.table == table]
    assert len(entries) == len(before) + len(after)  # each change once
    assert {e.shard for e in entries if (e.key, e.version) in set(after)}.isdisjoint(
        {e.shard for e in entries if (e.key, e.version) in set(before)}
    )
