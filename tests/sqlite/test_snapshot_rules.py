"""The checks a SQLite processor's snapshot passes before it is downloaded, and the
``snapshots`` option: pure, no servers."""

from __future__ import annotations

import time

import pytest

from bridge.processors.loader import ProcessorLoadError, load_factory
from bridge.processors.sqlite import SqliteProcessorFactory
from bridge.processors.sqlite.snapshot_restorer import Wanted, check_manifest, plan_probes
from bridge.processors.sqlite.snapshots import LeasesAheadOfSnapshotError, check_parents_read
from bridge.replica import SnapshotsConfig as ReplicaSnapshotsConfig
from bridge.snapshots import (
    SnapshotObject,
    SnapshotRejectedError,
    SnapshotsConfig,
    StreamManifest,
    StreamSnapshotSource,
)
from bridge.streams import Shard

ARN = "arn:aws:dynamodb:us-east-1:1:table/orders/stream/2026-01-01T00:00:00.000"
HOUR_MS = 3600 * 1000


def manifest(
    *, created_ms: int, checkpoints: dict[str, str] | None = None, **source: str
) -> StreamManifest:
    return StreamManifest(
        id="abcd",
        app="orders-replica",
        created_ms=created_ms,
        created="-",
        source=StreamSnapshotSource(
            **{"table": "orders", "stream_arn": ARN, "replica_table": "orders", **source}
        ),
        checkpoints=checkpoints or {},
        watermark_ms=None,
        schema_version=1,
        items=0,
        object=SnapshotObject(key="k", size=1, sha256="0", raw_size=1),
        bridge_version="0",
    )


WANTED = Wanted(source_table="orders", replica_table="orders", stream_arn=ARN, retention_s=86400)


def shard(shard_id: str, start: str = "100", end: str | None = None) -> Shard:
    return Shard(shard_id, None, start, end)


def test_a_fresh_snapshot_of_this_table_and_stream_passes() -> None:
    now = int(time.time() * 1000)
    check_manifest(manifest(created_ms=now - HOUR_MS), WANTED, now)


@pytest.mark.parametrize(
    ("changes", "age_h", "reason"),
    [
        ({}, 25, "stale: taken 25.0 h ago, the stream keeps records only 24.0 h"),
        ({"stream_arn": ARN + "x"}, 1, f"stale: taken from stream {ARN}x"),
        ({"table": "other"}, 1, "incompatible: taken from table other, not orders"),
        ({"replica_table": "t2"}, 1, "incompatible: holds replica table t2, not orders"),
    ],
)
def test_a_snapshot_too_old_or_of_another_stream_or_table_is_refused(
    changes: dict[str, str], age_h: int, reason: str
) -> None:
    now = int(time.time() * 1000)
    with pytest.raises(SnapshotRejectedError) as refused:
        check_manifest(manifest(created_ms=now - age_h * HOUR_MS, **changes), WANTED, now)
    assert str(refused.value).startswith(reason)


def test_checkpoints_are_probed_where_the_worker_would_resume() -> None:
    shards = {"a": shard("a"), "b": shard("b", end="200"), "c": shard("c", start="300")}
    probes = plan_probes({"a": "150", "b": "SHARD_END"}, shards, new_from_start=True)
    assert [(p.shard_id, p.kind, p.sequence_number) for p in probes] == [
        ("a", "AFTER_SEQUENCE_NUMBER", "150"),
        ("c", "AT_SEQUENCE_NUMBER", "300"),  # not in the snapshot: its beginning must remain
    ]
    assert probes[0].stale.startswith("stale: shard a: the records after 150 were trimmed")
    only_checkpoints = plan_probes({"a": "150"}, shards, new_from_start=False)
    assert [p.shard_id for p in only_checkpoints] == ["a"]


def test_a_shard_that_left_the_stream_must_have_been_read_to_its_end() -> None:
    assert plan_probes({"gone": "SHARD_END"}, {}, new_from_start=True) == []
    with pytest.raises(SnapshotRejectedError) as refused:
        plan_probes({"gone": "120"}, {}, new_from_start=True)
    assert str(refused.value).startswith(
        "stale: shard gone left the stream (trimmed) while the snapshot was at 120"
    )


def test_the_snapshots_option_has_the_replicas_keys_and_defaults() -> None:
    ours, theirs = SnapshotsConfig.model_fields, ReplicaSnapshotsConfig.model_fields
    assert ours.keys() == theirs.keys()
    assert {k: f.default for k, f in ours.items()} == {k: f.default for k, f in theirs.items()}


def test_a_bad_snapshots_option_fails_the_start_naming_the_key(tmp_path: object) -> None:
    with pytest.raises(ProcessorLoadError) as failed:
        load_factory(
            "sqlite",
            {"path": "r.db", "snapshots": {"bucket": "b-1", "restore": "always"}},
            table="orders",
            app="a",
        )
    assert "bad processor.options: snapshots.restore:" in str(failed.value)
    factory = load_factory(
        "sqlite",
        {"path": "r.db", "snapshots": {"bucket": "b-1", "interval": "10m", "max_age": "7d"}},
        table="orders",
        app="a",
    )
    assert isinstance(factory, SqliteProcessorFactory) and factory.snapshots is not None
    assert factory.snapshots.settings.interval.total_seconds() == 600


def test_a_child_whose_parent_the_lease_table_finished_after_the_snapshot_is_refused() -> None:
    restored = manifest(created_ms=0, checkpoints={"p": "150", "q": "SHARD_END"})
    check_parents_read("c", {"p": "SHARD_END", "q": "SHARD_END"}, restored)  # read to its end
    check_parents_read("c", {"p": "170"}, restored)  # read on since the restore
    check_parents_read("c", {"gone": None}, restored)  # trimmed before the snapshot
    with pytest.raises(LeasesAheadOfSnapshotError) as refused:
        check_parents_read("c", {"p": "150"}, restored)
    assert "its parent p is only at 150 in the snapshot restored (abcd)" in str(refused.value)
