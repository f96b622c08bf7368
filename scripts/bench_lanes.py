"""``processor.parallelism``: a processor that calls a slow service, with one lane and with N.

A table in ``bridge local`` with 4 shards is written first (``--writes`` changes over
``--keys`` items); then, side by side in one run, a worker with ``parallelism: 1`` and one with
``parallelism: N`` each read it all, as new applications, through a processor that takes
``--per-record`` seconds for each record, one record after another within a call (an HTTP
API at 20 ms a call). Timed from the first record handed to the processor to the last; the
ratio is what lanes buy. Each run also checks that every item's changes arrived in order.

    .venv/bin/python scripts/bench_lanes.py [--writes 2000] [--keys 100] [--lanes 5]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
import uuid
from collections import defaultdict
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchlib.cluster import create_table, dynamodb

from bridge.config import BridgeConfig
from bridge.local.endpoint import LocalEndpoint
from bridge.processors.api import Batch, Processor
from bridge.worker.app import open_runtime

SEEN: dict[str, list[tuple[float, str, int]]] = defaultdict(list)
DONE: dict[str, asyncio.Event] = defaultdict(asyncio.Event)
WANTED: dict[str, int] = {}


class SlowService(Processor):
    """Each record takes ``per_record`` seconds, as a call to another service would."""

    def __init__(self, run: str, per_record: float) -> None:
        self.run = run
        self.per_record = per_record

    async def process(self, batch: Batch) -> None:
        for record in batch.records:
            await asyncio.sleep(self.per_record)
            version = int((record.new_image or {}).get("version", 0))
            SEEN[self.run].append((time.monotonic(), str(record.keys["pk"]), version))
        if len(SEEN[self.run]) >= WANTED.get(self.run, sys.maxsize):
            DONE[self.run].set()


def write(endpoint: str, table: str, writes: int, keys: int) -> None:
    ddb = dynamodb(endpoint)
    create_table(ddb, table)
    for start in range(0, writes, 25):
        items = [
            {"PutRequest": {"Item": {"pk": {"S": f"k{n % keys:03d}"}, "version": {"N": str(n)}}}}
            for n in range(start, min(start + 25, writes))
        ]
        # one key at most once per request: 25 writes over at least 25 keys
        ddb.batch_write_item(RequestItems={table: items})


def loaded() -> Any:
    """The copy of this module the worker imported (``bench_lanes``): its processors' state."""
    return sys.modules["bench_lanes"]


async def run(endpoint: str, table: str, lanes: int, writes: int, per_record: float) -> float:
    name = f"lanes-{lanes}"
    config = BridgeConfig.model_validate(
        {
            "app": f"bench-{name}-{uuid.uuid4().hex[:6]}",
            "source": {
                "table": table,
                "endpoint_url": endpoint,
                "aws_access_key_id": "testing",
                "aws_secret_access_key": "testing",
            },
            "coordination": {"take_interval": "200ms"},
            "polling": {"interval": "50ms", "idle_interval": "200ms"},
            "processor": {
                "kind": "bench_lanes:SlowService",
                "options": {"run": name, "per_record": per_record},
                "parallelism": lanes,
            },
            "metrics": {"enabled": False},
        }
    )
    async with open_runtime(config) as runtime:
        worker = asyncio.create_task(runtime.worker.run(runtime.stream_arn))
        loaded().WANTED[name] = writes
        done = asyncio.ensure_future(loaded().DONE[name].wait())
        await asyncio.wait({done, worker}, return_when=asyncio.FIRST_COMPLETED)
        runtime.worker.request_stop()
        await worker
    times = [t for t, _, _ in loaded().SEEN[name]]
    versions: dict[str, list[int]] = defaultdict(list)
    for _, key, version in loaded().SEEN[name]:
        versions[key].append(version)
    assert all(v == sorted(v) for v in versions.values()), f"{name}: an item out of order"
    return len(times) / (max(times) - min(times))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--writes", type=int, default=2000)
    parser.add_argument("--keys", type=int, default=100)
    parser.add_argument("--lanes", type=int, default=5)
    parser.add_argument("--per-record", type=float, default=0.02)
    args = parser.parse_args(argv)
    local = LocalEndpoint(shards=4).start()
    try:
        table = f"lanes-{uuid.uuid4().hex[:6]}"
        write(local.endpoint_url, table, args.writes, args.keys)
        one = asyncio.run(run(local.endpoint_url, table, 1, args.writes, args.per_record))
        many = asyncio.run(run(local.endpoint_url, table, args.lanes, args.writes, args.per_record))
    finally:
        local.stop()
    ms = args.per_record * 1000
    print(f"{args.writes} changes over {args.keys} items, 4 shards, {ms:.0f} ms a record")
    print(f"parallelism 1: {one:,.0f} records/s")
    print(f"parallelism {args.lanes}: {many:,.0f} records/s ({many / one:.2f}x)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
