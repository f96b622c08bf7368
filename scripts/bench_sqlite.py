"""SQLite replica apply rate: bridge's processor against a raw ``executemany`` upsert.

Both write the same rows (key, item JSON, sequence number, time) to a WAL-mode file with the
same pragmas, in batches of the same size, one transaction per batch, interleaved round by
round in one process. bridge's side starts from ``ChangeRecord``s as the stream delivers
them, so it also pays for turning DynamoDB JSON into item JSON, the idempotence guard on
``_seq`` and the checkpoint row written in each transaction; the raw side gets ready-made
tuples.

    .venv/bin/python scripts/bench_sqlite.py [--records 50000] [--batch 1000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bridge.item_json import EXACT
from bridge.processors.api import Batch
from bridge.processors.sqlite import SqliteProcessorFactory
from bridge.records import ChangeRecord, encode_item

SHARD = "shardId-bench"


def records(count: int) -> list[ChangeRecord]:
    made = []
    now = time.time()
    for n in range(count):
        keys = {"id": f"item-{n % 5000:05d}"}
        image = {
            **keys,
            "qty": n % 97,
            "price": f"{n % 1000}.25",
            "name": f"product {n}",
            "tags": ["a", "b"],
            "attrs": {"colour": "red", "size": n % 7},
        }
        raw = {
            "eventName": "MODIFY",
            "dynamodb": {
                "Keys": encode_item(keys),
                "NewImage": encode_item(image),
                "SequenceNumber": str(10**20 + n),
                "SizeBytes": 200,
                "ApproximateCreationDateTime": now,
            },
        }
        made.append(ChangeRecord.from_raw(raw, SHARD))
    return made


async def run_bridge(path: Path, batches: list[list[ChangeRecord]]) -> float:
    factory = SqliteProcessorFactory(str(path), "bench", status_interval=3600)
    await factory.open()
    processor = factory.create(SHARD)
    started = time.perf_counter()
    for chunk in batches:
        await processor.process(Batch(SHARD, chunk))
    elapsed = time.perf_counter() - started
    await factory.close()
    return elapsed


def run_raw(path: Path, rows: list[list[tuple[str, str, str, int]]]) -> float:
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=wal")
    db.execute("PRAGMA synchronous=normal")
    db.execute(
        "CREATE TABLE bench (id TEXT NOT NULL PRIMARY KEY, item TEXT NOT NULL, "
        "_seq TEXT NOT NULL, _updated_ms INTEGER NOT NULL) WITHOUT ROWID"
    )
    upsert = (
        "INSERT INTO bench VALUES (?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET "
        "item = excluded.item, _seq = excluded._seq, _updated_ms = excluded._updated_ms"
    )
    started = time.perf_counter()
    for chunk in rows:
        db.execute("BEGIN")
        db.executemany(upsert, chunk)
        db.execute("COMMIT")
    elapsed = time.perf_counter() - started
    db.close()
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--records", type=int, default=50_000)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    changes = records(args.records)
    batches = [changes[i : i + args.batch] for i in range(0, len(changes), args.batch)]
    now_ms = int(time.time() * 1000)
    rows = [
        [
            (
                str(r.keys["id"]),
                EXACT.item_json(r.raw["dynamodb"]["NewImage"]).decode(),
                r.sequence_number,
                now_ms,
            )
            for r in chunk
        ]
        for chunk in batches
    ]
    bridge_rates, raw_rates = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for n in range(args.rounds):
            raw_rates.append(args.records / run_raw(Path(tmp) / f"raw-{n}.db", rows))
            bridge_rates.append(
                args.records / asyncio.run(run_bridge(Path(tmp) / f"bridge-{n}.db", batches))
            )
    raw, bridge = statistics.median(raw_rates), statistics.median(bridge_rates)
    print(f"{args.records} changes in batches of {args.batch}, median of {args.rounds} rounds")
    print(f"  raw executemany upsert (tuples ready) {raw:>12,.0f} changes/s")
    print(f"  bridge SqliteProcessor (from records) {bridge:>12,.0f} changes/s")
    print(f"  ratio bridge / raw                    {bridge / raw:>12.2f}")


if __name__ == "__main__":
    main()
