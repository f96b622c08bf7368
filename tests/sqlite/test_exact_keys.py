"""Exact keys in the SQLite processor's file: distinct DynamoDB numbers stay distinct rows,
``_seq`` sorts in stream order, and a file of the previous layout is migrated when opened."""

from __future__ import annotations

import contextlib
import json
import random
import sqlite3
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from bridge.processors.sqlite import Replica, SqliteProcessorFactory
from bridge.processors.sqlite import layout as layout_module
from bridge.processors.sqlite.keys import number_value
from bridge.processors.sqlite.schema import SCHEMA_VERSION
from bridge.processors.sqlite.snapshot_restorer import Wanted, check_manifest, verify_file
from bridge.snapshots import (
    SnapshotObject,
    SnapshotRejectedError,
    StreamManifest,
    StreamSnapshotSource,
)
from tests.sqlite.exact_keys import KEPT, PK, SORT_KEYS, shuffled_changes, table_rows
from tests.sqlite.records import batch

# DynamoDB numbers: up to 38 significant digits, exponents within its range.
numbers = st.builds(
    lambda digits, exponent, negative: Decimal(f"{'-' if negative else ''}{digits}E{exponent}"),
    st.integers(min_value=0, max_value=10**38 - 1),
    st.integers(min_value=-60, max_value=60),
    st.booleans(),
)


@settings(max_examples=400, deadline=None)
@given(st.lists(numbers, min_size=2, max_size=12))
@example([Decimal("1.000000000000000010"), Decimal("1.00000000000000001"), Decimal("1.1")])
@example([Decimal("1E+2"), Decimal("100"), Decimal("100.0"), Decimal("-0"), Decimal("0E-7")])
@example([Decimal(2**63), Decimal(2**63 - 1), Decimal(-(2**63)), Decimal(-(2**63) - 1)])
def test_distinct_numbers_are_distinct_rows_and_read_back_exactly(values: list[Decimal]) -> None:
    with contextlib.closing(sqlite3.connect(":memory:")) as db:
        db.execute("CREATE TABLE t (k NOT NULL PRIMARY KEY, n TEXT) WITHOUT ROWID")
        db.executemany(
            "INSERT OR REPLACE INTO t VALUES (?, ?)",
            [(number_value(str(v)), str(v)) for v in values],
        )
        assert db.execute("SELECT count(*) FROM t").fetchone()[0] == len(set(values))
        for stored, text in db.execute("SELECT k, n FROM t"):
            back = Decimal(repr(stored)) if isinstance(stored, float) else Decimal(str(stored))
            assert back == Decimal(text)  # the double's shortest form is the number itself


def test_each_number_is_bound_as_the_rule_says() -> None:
    assert [number_value(k) for k in SORT_KEYS] == [
        2,
        "12345678901234567890123",  # beyond 64 bits, not a double's shortest form: text
        "12345678901234567890124",
        1,
        "1.00000000000000001",
        9007199254740992,
        9007199254740993,  # beyond 2^53 but within 64 bits: still an INTEGER
        -0.5,
    ]
    assert number_value("1E+2") == 100 and number_value("-0") == 0
    assert number_value("0.1") == 0.1 and number_value("1E+20") == 1e20
    assert number_value("9223372036854775808") == "9223372036854775808"  # 2^63


@pytest.mark.parametrize("seed", range(6))
async def test_every_distinct_number_key_is_a_row_whatever_the_order(
    tmp_path: Path, seed: int
) -> None:
    path = tmp_path / "r.db"
    factory = SqliteProcessorFactory(str(path), "orders")
    await factory.open()
    try:
        processor = factory.create("shardId-0001")
        changes = shuffled_changes(seed)
        rng = random.Random(seed)
        while changes:  # batches of random sizes, as polls give them
            size = rng.randint(1, 4)
            await processor.process(batch(*changes[:size]))
            changes = changes[size:]
    finally:
        await factory.close()
    rows = table_rows(path, "orders")
    assert sorted(json.loads(item)["text"] for _, _, item, _ in rows) == sorted(KEPT)
    assert {(sk, kind) for sk, kind, _, _ in rows} == {
        (number_value(k), {int: "integer", float: "real", str: "text"}[type(number_value(k))])
        for k in KEPT
    }
    seqs = [seq for *_, seq in rows]
    assert all(len(s) == 40 for s in seqs) and [int(s) for s in seqs] == sorted(map(int, seqs))
    with Replica(path) as replica:  # every digit counts in a lookup
        for key in KEPT:
            item = replica.get(pk=PK, sk=Decimal(key))
            assert item is not None and item["text"] == key
        assert replica.get(pk=PK, sk=Decimal("12345678901234567890124")) is None
        assert replica.get(pk=PK, sk=1) is None


async def test_numbers_are_queried_exactly_as_docs_sqlite_md_says(tmp_path: Path) -> None:
    path = tmp_path / "r.db"
    factory = SqliteProcessorFactory(str(path), "orders")
    await factory.open()
    try:
        await factory.create("shardId-0001").process(batch(*shuffled_changes(0)))
    finally:
        await factory.close()
    with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:

        def texts(where: str) -> list[str]:
            sql = f"SELECT item ->> '$.text' FROM orders WHERE {where} ORDER BY _seq"
            return [text for (text,) in db.execute(sql)]

        assert texts("sk = 2") == ["2"]
        assert texts("sk = -0.5") == ["-0.5"]
        assert texts("sk = 9007199254740993") == ["9007199254740993"]
        assert texts("sk = '12345678901234567890123'") == ["12345678901234567890123"]
        assert texts("sk = '1.00000000000000001'") == ["1.00000000000000001"]
        assert texts("sk = 1") == []  # deleted: its neighbour 1.00000000000000001 stays
        # the item column: -> gives JSON text (exact), json_extract SQLite values (rounded)
        ((exact, rounded),) = db.execute(
            "SELECT item -> '$.copy', json_extract(item, '$.copy') FROM orders "
            "WHERE sk = '12345678901234567890123'"
        ).fetchall()
        assert exact == "12345678901234567890123" and rounded == 1.2345678901234568e22


LAYOUT_1 = """
CREATE TABLE _bridge_checkpoints (shard_id TEXT PRIMARY KEY, checkpoint TEXT NOT NULL,
    updated_ms INTEGER NOT NULL);
CREATE TABLE _bridge_status (id INTEGER PRIMARY KEY CHECK (id = 0), ready INTEGER NOT NULL,
    lag_ms REAL, watermark_ms INTEGER, phase TEXT NOT NULL, reason TEXT NOT NULL,
    updated_ms INTEGER NOT NULL);
CREATE TABLE _bridge_tables (name TEXT PRIMARY KEY, key_columns TEXT NOT NULL);
CREATE TABLE "orders" ("pk" TEXT NOT NULL, "sk" NUMERIC NOT NULL, item TEXT NOT NULL,
    _seq TEXT NOT NULL, _updated_ms INTEGER NOT NULL, PRIMARY KEY ("pk", "sk")) WITHOUT ROWID;
INSERT INTO _bridge_tables VALUES ('orders', '[["pk","S"],["sk","N"]]');
INSERT INTO _bridge_checkpoints VALUES ('shardId-0001', '900', 1);
CREATE INDEX by_text ON orders (item ->> '$.text');
PRAGMA user_version = 1;
"""


def layout_1_file(path: Path) -> None:
    """A file as the previous bridge wrote it: number keys bound as their wire text into a
    NUMERIC column (so rounded), ``_seq`` unpadded."""
    with contextlib.closing(sqlite3.connect(path, isolation_level=None)) as db:
        db.executescript(LAYOUT_1)
        upsert = (
            "INSERT INTO orders VALUES (?, ?, ?, ?, 1) ON CONFLICT (pk, sk) DO UPDATE SET "
            "item = excluded.item, _seq = excluded._seq"
        )
        for seq, key in enumerate(SORT_KEYS, start=100):
            item = json.dumps({"pk": PK, "sk": "@", "text": key}).replace('"@"', key)
            db.execute(upsert, (PK, key, item, str(seq)))


def test_layout_1_rounded_the_keys() -> None:
    # The bug itself, as the previous layout had it: eight items, six rows.
    with contextlib.closing(sqlite3.connect(":memory:")) as db:
        db.execute("CREATE TABLE t (k NUMERIC PRIMARY KEY)")
        db.executemany("INSERT OR IGNORE INTO t VALUES (?)", [(k,) for k in SORT_KEYS])
        assert db.execute("SELECT count(*) FROM t").fetchone()[0] == 6


async def test_a_layout_1_file_is_migrated_in_place_when_opened(tmp_path: Path) -> None:
    path = tmp_path / "r.db"
    layout_1_file(path)
    factory = SqliteProcessorFactory(str(path), "orders")
    await factory.open()
    try:
        # Keys back to their exact values from the items layout 1 kept (the twins it merged
        # stay merged: the later write won), _seq padded, the checkpoint and index kept.
        rows = table_rows(path, "orders")
        assert [(sk, json.loads(item)["text"], seq) for sk, _, item, seq in rows] == [
            (2, "2", "100".rjust(40, "0")),
            ("12345678901234567890124", "12345678901234567890124", "102".rjust(40, "0")),
            ("1.00000000000000001", "1.00000000000000001", "104".rjust(40, "0")),
            (9007199254740992, "9007199254740992", "105".rjust(40, "0")),
            (9007199254740993, "9007199254740993", "106".rjust(40, "0")),
            (-0.5, "-0.5", "107".rjust(40, "0")),
        ]
        assert await factory.checkpoint_of("shardId-0001") == "900"
        # and the file now keeps what layout 1 lost: the twin written again is its own row
        again = [r for r in shuffled_changes(0) if r.keys["sk"] == 12345678901234567890123]
        await factory.create("shardId-0001").process(batch(again[0]))
        assert len(table_rows(path, "orders")) == 7
    finally:
        await factory.close()
    with contextlib.closing(sqlite3.connect(path)) as db:
        assert db.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)
        info = db.execute("PRAGMA table_info(orders)").fetchall()
        assert [(r[1], r[2]) for r in info[:2]] == [("pk", "TEXT"), ("sk", "")]
        indexes = db.execute("SELECT name FROM sqlite_schema WHERE type = 'index'").fetchall()
        assert ("by_text",) in indexes


async def test_a_migration_that_fails_leaves_the_file_as_it_was(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "r.db"
    layout_1_file(path)

    def fail(*args: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(layout_module, "register", fail)
    factory = SqliteProcessorFactory(str(path), "orders")
    with pytest.raises(OSError, match="disk full"):
        await factory.open()
    await factory.close()
    with contextlib.closing(sqlite3.connect(path)) as db:
        assert db.execute("PRAGMA user_version").fetchone() == (1,)
        assert db.execute("SELECT count(*), min(_seq) FROM orders").fetchone() == (6, "100")


def stream_manifest(version: int, path: Path) -> StreamManifest:
    return StreamManifest(
        id="abcd",
        app="orders-replica",
        created_ms=0,
        created="-",
        source=StreamSnapshotSource(table="orders", stream_arn="arn", replica_table="orders"),
        checkpoints={"shardId-0001": "900"},
        watermark_ms=None,
        schema_version=version,
        items=6,
        object=SnapshotObject(key="k", size=1, sha256="0", raw_size=path.stat().st_size),
        bridge_version="0",
    )


async def test_a_snapshot_of_layout_1_is_restored_then_migrated(tmp_path: Path) -> None:
    # The restorer accepts it (its checks do not depend on the layout) and the writer, which
    # opens the restored file next, migrates it as it would a file of its own.
    path = tmp_path / "restored.db"
    layout_1_file(path)
    wanted = Wanted(source_table="orders", replica_table="orders", stream_arn="arn", retention_s=1)
    check_manifest(stream_manifest(1, path), wanted, now_ms=0)
    verify_file(path, stream_manifest(1, path))
    with pytest.raises(SnapshotRejectedError, match="incompatible: replica layout version 3"):
        check_manifest(stream_manifest(3, path), wanted, now_ms=0)
    factory = SqliteProcessorFactory(str(path), "orders")
    await factory.open()
    await factory.close()
    assert {sk for sk, *_ in table_rows(path, "orders")} >= {"1.00000000000000001"}
