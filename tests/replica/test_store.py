"""The replica file: the SQLite processor's layout, offsets committed with the data."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from bridge.local.processes import KafkaBroker
from bridge.processors.sqlite import Replica
from bridge.replica import ReplicaFileError, ReplicaStore, stored_offsets
from bridge.replica._messages import Delete, Upsert
from bridge.replica._store import Entry
from tests.kafka.topic_reader import create_topic
from tests.replica.support import Publisher, replica_config, replica_rows, write_yaml


def put(pk: str, v: int, seq: int) -> Upsert:
    return Upsert(
        "orders", {"pk": pk, "sk": 1}, f'{{"pk":"{pk}","sk":1,"v":{v}}}'.encode(), str(seq)
    )


def entries(*changes: object, partition: int = 0, first: int = 0) -> list[Entry]:
    return [
        Entry(partition, first + n, 1_000 + n, change)  # type: ignore[arg-type]
        for n, change in enumerate(changes)
    ]


@pytest.fixture
def store(tmp_path: Path) -> ReplicaStore:
    store = ReplicaStore(tmp_path / "r.db")
    store.open()
    return store


def test_puts_and_deletes_land_with_their_offsets(store: ReplicaStore) -> None:
    assert store.apply("t", entries(put("a", 1, 10), put("b", 1, 11), put("a", 2, 12))) == 3
    assert store.apply("t", entries(Delete("orders", {"pk": "b", "sk": 1}, "13"), first=3)) == 1
    assert replica_rows(store.path, "orders") == {("a", 1): {"pk": "a", "sk": 1, "v": 2}}
    assert stored_offsets(store.path, "t") == {0: 3}
    assert store.offsets("t")[0].message_ms == 1_000


def test_applying_an_offset_again_changes_nothing(store: ReplicaStore) -> None:
    store.apply("t", entries(put("a", 1, 10), put("a", 2, 11)))
    assert store.apply("t", entries(put("a", 9, 99))) == 0  # offset 0 again
    assert replica_rows(store.path, "orders")[("a", 1)]["v"] == 2


def test_a_change_published_twice_cannot_undo_a_newer_one(store: ReplicaStore) -> None:
    # At-least-once upstream: the worker may publish seq 10 again after seq 11.
    store.apply("t", entries(put("a", 1, 10), put("a", 2, 11), put("a", 1, 10)))
    store.apply("t", entries(Delete("orders", {"pk": "a", "sk": 1}, "10"), first=3))
    assert replica_rows(store.path, "orders")[("a", 1)]["v"] == 2


def test_a_tombstone_without_headers_deletes_from_the_only_table(store: ReplicaStore) -> None:
    store.apply("t", entries(put("a", 1, 10), Delete(None, {"sk": 1, "pk": "a"}, None)))
    assert replica_rows(store.path, "orders") == {}


def test_a_failed_batch_leaves_data_and_offsets_as_they_were(store: ReplicaStore) -> None:
    store.apply("t", entries(put("a", 1, 10)))
    wrong_key = Upsert("orders", {"id": "x"}, b"{}", "11")
    with pytest.raises(ReplicaFileError, match=r"has key \['pk', 'sk'\]"):
        store.apply("t", entries(put("b", 1, 12), wrong_key, first=1))
    assert set(replica_rows(store.path, "orders")) == {("a", 1)}
    assert stored_offsets(store.path, "t") == {0: 0}


def test_offsets_survive_reopening_and_partitions_are_separate(tmp_path: Path) -> None:
    path = tmp_path / "r.db"
    first = ReplicaStore(path)
    first.open()
    first.apply("t", entries(put("a", 1, 10), partition=0, first=4))
    first.apply("t", entries(put("b", 1, 11), partition=1, first=0))
    first.close()
    again = ReplicaStore(path)
    again.open()
    assert {p: o.last_offset for p, o in again.offsets("t").items()} == {0: 4, 1: 0}
    assert again.apply("t", entries(put("a", 5, 20), partition=0, first=4)) == 0
    assert again.apply("t", entries(put("a", 5, 20), partition=0, first=5)) == 1


def test_the_sqlite_processors_reader_reads_it(store: ReplicaStore) -> None:
    store.apply("t", entries(put("a", 1, 10)))
    store.write_status(True, "ready", 0.0, 1_000, "streaming")
    with Replica(store.path) as replica:
        replica.ensure_ready()
        assert replica.get(pk="a", sk=1) == {"pk": "a", "sk": 1, "v": 1}
    with sqlite3.connect(store.path) as db:
        assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)


def test_table_override(tmp_path: Path) -> None:
    store = ReplicaStore(tmp_path / "r.db", table="copy")
    store.open()
    store.apply("t", entries(put("a", 1, 10)))
    assert set(replica_rows(store.path, "copy")) == {("a", 1)}


def test_bridge_replica_exits_2_when_the_file_holds_another_key(
    kafka_broker: KafkaBroker, tmp_path: Path
) -> None:
    path = tmp_path / "r.db"
    store = ReplicaStore(path)
    store.open()
    store.apply("old", entries(put("a", 1, 10)))  # table orders keyed (pk, sk)
    store.close()
    topic = create_topic(kafka_broker.bootstrap_servers, partitions=1)
    publisher = Publisher(kafka_broker.bootstrap_servers, topic)
    publisher.publish([publisher.change("INSERT", "b")])  # keyed (pk) only
    config = write_yaml(
        tmp_path / "replica.yaml", replica_config(path, kafka_broker.bootstrap_servers, topic)
    )
    clean = {k: v for k, v in os.environ.items() if not k.startswith("BRIDGE_")}
    done = subprocess.run(
        [sys.executable, "-m", "bridge", "replica", "-c", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=clean,
    )
    assert done.returncode == 2, done.stderr
    assert "replica table orders has key ['pk', 'sk']" in done.stderr.splitlines()[-1]
