"""Helpers for the replica's tests: envelopes published by the Kafka processor's own encoder,
replica configs, the replica's rows and the source table's items in the envelope's encoding."""

from __future__ import annotations

import contextlib
import json
import sqlite3
import time
from collections.abc import AsyncIterator, Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from confluent_kafka import Producer

from bridge.processors.kafka import EnvelopeEncoder
from bridge.records import ChangeRecord, decode_item
from bridge.replica import ReplicaConfig, ReplicaFollower
from tests.kafka.changes import from_stream
from tests.kafka.workload import expected_json


def wait_for(condition: Callable[[], object], within: float, what: str) -> None:
    deadline = time.monotonic() + within
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {within}s waiting for {what}")
        time.sleep(0.02)


async def await_for(condition: Callable[[], object], within: float, what: str) -> None:
    import asyncio

    deadline = time.monotonic() + within
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {within}s waiting for {what}")
        await asyncio.sleep(0.02)


def replica_config(path: Path, servers: str, topic: str, **extra: Any) -> ReplicaConfig:
    return ReplicaConfig.model_validate(
        {
            "app": "replica-test",
            "kafka": {"bootstrap_servers": servers, "topic": topic, "check_interval": "200ms"},
            "sqlite": {"path": str(path)},
            "metrics": {"enabled": False},
            **extra,
        }
    )


def write_yaml(path: Path, config: ReplicaConfig) -> Path:
    path.write_text(json.dumps(config.model_dump(mode="json", by_alias=True)))  # JSON is YAML
    return path


@contextlib.asynccontextmanager
async def following(config: ReplicaConfig) -> AsyncIterator[ReplicaFollower]:
    """A follower running in this event loop, stopped (gracefully) on exit."""
    import asyncio

    follower = ReplicaFollower(config)
    task = asyncio.create_task(follower.run(), name="replica")
    try:
        yield follower
    finally:
        follower.request_stop()
        await asyncio.wait_for(task, 30)


class Publisher:
    """Publishes changes as the Kafka processor does: same encoder, same key, same headers."""

    def __init__(self, servers: str, topic: str, table: str = "orders") -> None:
        self.topic = topic
        self.encoder = EnvelopeEncoder(table, include_old_image=True, tombstones=True)
        self.producer = Producer({"bootstrap.servers": servers, "linger.ms": 5})
        self.seq = 1000

    def publish(self, records: Iterable[ChangeRecord]) -> None:
        for record in records:
            for key, value, headers in self.encoder.messages(record):
                self.producer.produce(self.topic, key=key, value=value, headers=headers)
        assert self.producer.flush(30) == 0

    def change(self, event: str, pk: str, **attributes: Any) -> ChangeRecord:
        """A change of item ``pk`` (with a growing sequence number), created now."""
        self.seq += 1
        keys = {"pk": pk}
        new = {"pk": pk, **attributes} if event != "REMOVE" else None
        return from_stream(
            event,  # type: ignore[arg-type]
            keys,
            new,
            seq=str(self.seq),
            at=datetime.now(UTC),
        )


def replica_rows(path: Path, table: str) -> dict[tuple[Any, ...], Any]:
    """Every row of the replica table: key tuple -> item (parsed JSON)."""
    if not path.exists():
        return {}
    with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)) as db:
        try:
            (columns,) = db.execute(
                "SELECT key_columns FROM _bridge_tables WHERE name = ?", (table,)
            ).fetchone() or (None,)
            if columns is None:
                return {}
            names = [name for name, _ in json.loads(columns)]
            select = ", ".join(f'"{n}"' for n in names)
            rows = db.execute(f'SELECT {select}, item FROM "{table}"').fetchall()
        except sqlite3.OperationalError:
            return {}
    return {tuple(row[:-1]): json.loads(row[-1]) for row in rows}


def source_items(ddb: Any, table: str, keys: tuple[str, ...]) -> dict[tuple[Any, ...], Any]:
    """The table's items in the envelope's encoding, by key tuple."""
    out: dict[tuple[Any, ...], Any] = {}
    kwargs: dict[str, Any] = {"TableName": table, "ConsistentRead": True}
    while True:
        page = ddb.scan(**kwargs)
        for raw in page["Items"]:
            item = expected_json(decode_item(raw))
            out[tuple(item[k] for k in keys)] = item
        if "LastEvaluatedKey" not in page:
            return out
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def status_of(path: Path) -> tuple[bool, str] | None:
    if not path.exists():
        return None
    with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)) as db:
        try:
            row = db.execute("SELECT ready, reason FROM _bridge_status").fetchone()
        except sqlite3.OperationalError:
            return None
    return None if row is None else (bool(row[0]), str(row[1]))
