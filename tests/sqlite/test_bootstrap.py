"""Checkpoint first, scan second: the scan fills the replica, resumes after a crash, and
records the cut-off the stream is replayed from."""

from __future__ import annotations

import sqlite3
import time
import uuid
from pathlib import Path
from typing import Any

import boto3
import pytest

from bridge.config import SourceConfig
from bridge.local.endpoint import LocalEndpoint
from bridge.processors.sqlite import Replica, SqliteProcessorFactory
from bridge.processors.sqlite.bootstrap import BootstrapError, TableScanner


class ScanKilledError(Exception):
    """Stands in for the process dying between two pages."""


def make_table(endpoint: LocalEndpoint, items: int) -> str:
    name = f"boot-{uuid.uuid4().hex[:6]}"
    ddb = boto3.client("dynamodb", endpoint_url=endpoint.endpoint_url, region_name="us-east-1")
    ddb.create_table(
        TableName=name,
        KeySchema=[
            {"AttributeName": "tenant", "KeyType": "HASH"},
            {"AttributeName": "n", "KeyType": "RANGE"},
        ],
        AttributeDefinitions=[
            {"AttributeName": "tenant", "AttributeType": "S"},
            {"AttributeName": "n", "AttributeType": "N"},
        ],
        BillingMode="PAY_PER_REQUEST",
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
    )
    for start in range(0, items, 25):
        ddb.batch_write_item(
            RequestItems={
                name: [
                    {
                        "PutRequest": {
                            "Item": {
                                "tenant": {"S": f"t{n % 7}"},
                                "n": {"N": str(n)},
                                "blob": {"B": bytes([n % 256])},
                                "price": {"N": "12345678901234567890.5"},
                            }
                        }
                    }
                    for n in range(start, min(start + 25, items))
                ]
            }
        )
    return name


def source(endpoint: LocalEndpoint, table: str) -> SourceConfig:
    return SourceConfig(
        table=table,
        endpoint_url=endpoint.endpoint_url,
        aws_access_key_id="testing",  # type: ignore[arg-type]
        aws_secret_access_key="testing",  # type: ignore[arg-type]
    )


def replica_rows(path: Path, table: str) -> set[tuple[Any, ...]]:
    with sqlite3.connect(path) as db:
        return set(db.execute(f'SELECT tenant, n, _seq FROM "{table}"').fetchall())


async def test_bootstrap_scans_every_item_with_typed_keys(
    tmp_path: Path, local_endpoint: LocalEndpoint
) -> None:
    table = make_table(local_endpoint, 600)
    path = tmp_path / "r.db"
    before = time.time()
    factory = SqliteProcessorFactory(
        str(path),
        table,
        start="bootstrap",
        source=source(local_endpoint, table),
        bootstrap_segments=3,
        bootstrap_margin=5.0,
    )
    await factory.open()
    try:
        assert factory.cutoff_ms is not None
        assert before - 5.5 <= factory.cutoff_ms / 1000 <= time.time()
        assert factory.readiness.phase == "streaming"
    finally:
        await factory.close()
    rows = replica_rows(path, table)
    assert rows == {(f"t{n % 7}", n, "0" * 40) for n in range(600)}  # older than any change
    with Replica(path) as replica:
        item = replica.get(tenant="t3", n=10)
        assert item is not None
        assert str(item["price"]) == "12345678901234567890.5"  # exact, not a float
        assert item["blob"] == "Cg=="  # base64 of b"\x0a"


async def test_a_crashed_scan_resumes_where_each_segment_stopped(
    tmp_path: Path, local_endpoint: LocalEndpoint, monkeypatch: pytest.MonkeyPatch
) -> None:
    table = make_table(local_endpoint, 300)
    path = tmp_path / "r.db"
    pages: list[int] = []
    real_write = TableScanner._write_page

    def crash_after_three_pages(self: TableScanner, segment: int, items: Any, key: Any) -> None:
        if len(pages) == 3:
            raise ScanKilledError("killed mid-scan")
        pages.append(len(items))
        real_write(self, segment, items, key)

    monkeypatch.setattr(TableScanner, "_write_page", crash_after_three_pages)
    factory = SqliteProcessorFactory(
        str(path),
        table,
        start="bootstrap",
        source=source(local_endpoint, table),
        bootstrap_segments=2,
    )
    factory.bootstrap = type(factory.bootstrap)(segments=2, page_size=40)
    with pytest.raises(ScanKilledError, match="killed mid-scan"):
        await factory.open()
    await factory.close()
    scanned_before = len(replica_rows(path, table))
    assert scanned_before == sum(pages) == 120

    monkeypatch.setattr(TableScanner, "_write_page", real_write)
    resumed = SqliteProcessorFactory(
        str(path), table, start="auto", source=source(local_endpoint, table)
    )
    await resumed.open()  # "auto": an unfinished bootstrap is finished, not restarted
    await resumed.close()
    assert len(replica_rows(path, table)) == 300
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT sum(items), min(done) FROM _bridge_bootstrap").fetchone() == (
            300,
            1,
        )


async def test_bootstrap_of_a_missing_table_says_so(
    tmp_path: Path, local_endpoint: LocalEndpoint
) -> None:
    factory = SqliteProcessorFactory(
        str(tmp_path / "r.db"), "nope", start="bootstrap", source=source(local_endpoint, "nope")
    )
    with pytest.raises(BootstrapError, match="table nope does not exist"):
        await factory.open()
    await factory.close()


def test_a_scan_that_would_outlive_retention_fails_clearly() -> None:
    scanner = TableScanner.__new__(TableScanner)
    scanner.source_table = "orders"
    scanner.settings = type("S", (), {"retention": 3600.0})()  # type: ignore[assignment]
    scanner.clock = lambda: 10_000.0
    scanner._warned = False
    scanner._check_retention(cutoff_ms=int((10_000.0 - 1000) * 1000))
    assert not scanner._warned
    scanner._check_retention(cutoff_ms=int((10_000.0 - 2000) * 1000))
    assert scanner._warned
    with pytest.raises(BootstrapError, match="close to the stream's retention"):
        scanner._check_retention(cutoff_ms=int((10_000.0 - 3300) * 1000))
