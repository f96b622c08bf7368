"""The SQLite replica: upserts and deletes, data and checkpoint in one transaction, lossless
values, idempotent re-application, and a file any SQLite client can read while it is written."""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path

import pytest

from bridge.core.readiness import Readiness
from bridge.processors.sqlite import SqliteProcessorFactory
from bridge.processors.sqlite.processor import ReplicaSchemaError
from tests.sqlite.records import SHARD, batch, change


@pytest.fixture
async def factory(tmp_path: Path) -> AsyncIterator[SqliteProcessorFactory]:
    made = SqliteProcessorFactory(str(tmp_path / "replica.db"), "orders")
    await made.open()
    yield made
    await made.close()


def rows(path: Path, sql: str = "SELECT * FROM orders ORDER BY 1") -> list[tuple[object, ...]]:
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
        return db.execute(sql).fetchall()


async def test_puts_and_deletes_land_with_the_checkpoint(factory: SqliteProcessorFactory) -> None:
    processor = factory.create(SHARD)
    # a new replica reads from the oldest record, whatever the lease table says
    assert await processor.start(context=None) == "TRIM_HORIZON"  # type: ignore[arg-type]
    await processor.process(
        batch(
            change("INSERT", 101, {"id": "a"}, {"qty": 1}),
            change("INSERT", 102, {"id": "b"}, {"qty": 2}),
            change("MODIFY", 103, {"id": "a"}, {"qty": 3}),
            change("REMOVE", 104, {"id": "b"}),
        )
    )
    assert [(r[0], json.loads(str(r[1])), r[2]) for r in rows(factory.path)] == [
        ("a", {"id": "a", "qty": 3}, "103".rjust(40, "0"))  # padded: sorts in stream order
    ]
    assert rows(factory.path, "SELECT shard_id, checkpoint FROM _bridge_checkpoints") == [
        (SHARD, "104")
    ]
    # the checkpoint stored with the data is what the next owner of the shard starts from
    assert await factory.create(SHARD).start(context=None) == "104"  # type: ignore[arg-type]


async def test_reapplying_a_change_already_applied_changes_nothing(
    factory: SqliteProcessorFactory,
) -> None:
    processor = factory.create(SHARD)
    await processor.process(batch(change("INSERT", 9, {"id": "a"}, {"v": "new"})))
    await processor.process(batch(change("INSERT", 8, {"id": "a"}, {"v": "old"})))
    await processor.process(batch(change("INSERT", 9, {"id": "a"}, {"v": "again"})))
    await processor.process(batch(change("REMOVE", 7, {"id": "a"})))
    assert [json.loads(str(r[1]))["v"] for r in rows(factory.path)] == ["new"]
    # sequence numbers are compared as numbers, not text: "10" is after "9"
    await processor.process(batch(change("MODIFY", 10, {"id": "a"}, {"v": "ten"})))
    assert [json.loads(str(r[1]))["v"] for r in rows(factory.path)] == ["ten"]


async def test_a_failing_batch_leaves_data_and_checkpoint_as_they_were(
    factory: SqliteProcessorFactory,
) -> None:
    processor = factory.create(SHARD)
    await processor.process(batch(change("INSERT", 1, {"id": "a"}, {"v": 1})))
    broken = change("MODIFY", 3, {"id": "c"})  # no new image: KEYS_ONLY stream
    with pytest.raises(ReplicaSchemaError, match="NEW_IMAGE or NEW_AND_OLD_IMAGES"):
        await processor.process(batch(change("INSERT", 2, {"id": "b"}, {"v": 2}), broken))
    assert [r[0] for r in rows(factory.path)] == ["a"]
    assert rows(factory.path, "SELECT checkpoint FROM _bridge_checkpoints") == [("1",)]


async def test_values_are_kept_exactly(factory: SqliteProcessorFactory) -> None:
    processor = factory.create(SHARD)
    big = Decimal("12345678901234567890.123456789012345678")
    await processor.process(
        batch(
            change(
                "INSERT",
                1,
                {"id": "a"},
                {"big": big, "blob": b"\x00\xff", "tags": {"x", "y"}, "nested": {"n": None}},
            )
        )
    )
    ((item,),) = rows(factory.path, "SELECT item FROM orders")
    decoded = json.loads(str(item), parse_float=Decimal)
    assert decoded["big"] == big
    assert decoded["blob"] == "AP8="  # base64, as DynamoDB JSON carries binary
    assert sorted(decoded["tags"]) == ["x", "y"]
    assert decoded["nested"] == {"n": None}


async def test_typed_key_columns_in_the_order_asked_for(tmp_path: Path) -> None:
    factory = SqliteProcessorFactory(str(tmp_path / "r.db"), "events", key_order=["tenant", "at"])
    await factory.open()
    try:
        processor = factory.create(SHARD)
        await processor.process(
            batch(
                change("INSERT", 1, {"at": 20, "tenant": "t1"}, {"x": 1}),
                change("INSERT", 2, {"at": 3, "tenant": "t1"}, {"x": 2}),
            )
        )
        found = rows(factory.path, "SELECT tenant, at, typeof(at) FROM events ORDER BY at")
        assert found == [("t1", 3, "integer"), ("t1", 20, "integer")]
        info = rows(factory.path, "PRAGMA table_info(events)")
        assert [(r[1], r[2], r[5]) for r in info[:2]] == [
            ("tenant", "TEXT", 1),
            ("at", "", 2),  # no affinity: SQLite keeps each number as bound, never rounds it
        ]
    finally:
        await factory.close()


async def test_readers_see_the_file_while_it_is_written(factory: SqliteProcessorFactory) -> None:
    processor = factory.create(SHARD)
    await processor.process(batch(change("INSERT", 1, {"id": "a"}, {"v": 1})))
    reader = sqlite3.connect(f"file:{factory.path}?mode=ro", uri=True)
    try:
        reader.execute("BEGIN")
        assert reader.execute("SELECT count(*) FROM orders").fetchone() == (1,)
        await processor.process(batch(change("INSERT", 2, {"id": "b"}, {"v": 2})))
        assert reader.execute("SELECT count(*) FROM orders").fetchone() == (1,)  # snapshot
        reader.execute("COMMIT")
        assert reader.execute("SELECT count(*) FROM orders").fetchone() == (2,)
        assert reader.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    finally:
        reader.close()


async def test_a_binary_key_is_a_blob_column_and_removes_find_it(tmp_path: Path) -> None:
    factory = SqliteProcessorFactory(str(tmp_path / "b.db"), "blobs")
    await factory.open()
    try:
        processor = factory.create(SHARD)
        await processor.process(
            batch(
                change("INSERT", 1, {"id": b"\x01\x02"}, {"v": 1}),
                change("INSERT", 2, {"id": b"\xff"}, {"v": 2}),
                change("REMOVE", 3, {"id": b"\x01\x02"}),
            )
        )
        assert rows(factory.path, "SELECT id, typeof(id) FROM blobs") == [(b"\xff", "blob")]
    finally:
        await factory.close()


async def test_the_worker_hears_the_replicas_own_verdict(factory: SqliteProcessorFactory) -> None:
    # /readyz asks the factory: a replica reading no shard is not ready, one caught up is
    assert factory.freshness(time.monotonic()) == Readiness(False, "no shards being read")
    processor = factory.create(SHARD)
    await processor.start(context=None)  # type: ignore[arg-type]
    await processor.process(batch(change("INSERT", 1, {"id": "a"}, {"v": 1})))
    await processor.at_tip()
    assert factory.freshness(time.monotonic()) == Readiness(True, "ready")
