"""``bridge query`` and the ``Replica`` reader: answers when ready, refuses when stale."""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bridge.processors.sqlite import Replica, ReplicaNotReadyError, SqliteProcessorFactory
from tests.sqlite.records import SHARD, batch, change


def write_config(tmp_path: Path, replica: Path) -> Path:
    path = tmp_path / "bridge.yaml"
    path.write_text(
        "app: q\nsource: {table: orders}\n"
        f"processor: {{kind: sqlite, options: {{path: '{replica}'}}}}\n"
    )
    return path


def bridge(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bridge", *args], capture_output=True, text=True, check=False
    )


async def bridge_beside(*args: str) -> subprocess.CompletedProcess[str]:
    """``bridge`` run while the writer of this loop goes on publishing its status, as a live
    writer does, however long the command takes to start on a loaded machine."""
    return await asyncio.to_thread(bridge, *args)


@contextlib.asynccontextmanager
async def replica_writer(
    path: Path, *, lag_s: float, status_interval: float = 3600
) -> AsyncIterator[SqliteProcessorFactory]:
    """A running writer that applied two changes written ``lag_s`` seconds ago; it publishes
    its status every ``status_interval`` (an hour: only the status published at start)."""
    factory = SqliteProcessorFactory(str(path), "orders", status_interval=status_interval)
    await factory.open()
    try:
        processor = factory.create(SHARD)
        await processor.start(context=None)  # type: ignore[arg-type]
        created = time.time() - lag_s
        await processor.process(
            batch(
                change("INSERT", 1, {"id": "a"}, {"qty": 1}, created=created),
                change("INSERT", 2, {"id": "b"}, {"qty": 22}, created=created),
            )
        )
        await factory.publish_status()
        yield factory
    finally:
        await factory.close()


async def test_query_answers_from_a_ready_replica(tmp_path: Path) -> None:
    replica = tmp_path / "r.db"
    async with replica_writer(replica, lag_s=0.0, status_interval=0.5):
        await check_ready_answers(tmp_path, replica)


async def check_ready_answers(tmp_path: Path, replica: Path) -> None:
    config = write_config(tmp_path, replica)
    done = await bridge_beside(
        "query",
        "-c",
        str(config),
        "SELECT id, json_extract(item, '$.qty') AS qty FROM orders ORDER BY id",
        "--json",
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == [{"id": "a", "qty": 1}, {"id": "b", "qty": 22}]
    with Replica(replica) as reader:
        assert reader.status().ready
        assert reader.get(id="b") == {"id": "b", "qty": 22}
        assert reader.get(id="zz") is None
    bad = await bridge_beside("query", "-c", str(config), "SELEKT nonsense")
    assert bad.returncode == 2 and "query failed" in bad.stderr


async def test_query_refuses_a_replica_that_is_not_ready(tmp_path: Path) -> None:
    replica = tmp_path / "r.db"
    async with replica_writer(replica, lag_s=120.0):
        config = write_config(tmp_path, replica)
        done = bridge("query", "-c", str(config), "SELECT count(*) AS n FROM orders")
    assert done.returncode == 1
    assert "not ready: lag 120" in done.stderr
    stale = bridge(
        "query", "-c", str(config), "SELECT count(*) AS n FROM orders", "--json", "--stale-ok"
    )
    assert stale.returncode == 0 and json.loads(stale.stdout) == [{"n": 2}]


async def test_a_ready_row_from_a_writer_long_gone_is_not_ready(tmp_path: Path) -> None:
    replica = tmp_path / "r.db"
    async with replica_writer(replica, lag_s=0.0):
        with Replica(replica, stale_after=0.0) as reader:
            status = reader.status()
    assert not status.ready and status.reason.startswith("writer silent")
    with Replica(replica) as reader:
        assert reader.status().reason == "stopped"  # a writer that stops says so
        with pytest.raises(ReplicaNotReadyError, match="stopped"):
            reader.ensure_ready()
