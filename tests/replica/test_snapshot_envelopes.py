"""The table's snapshot at the edge: SNAPSHOT items fill rows no change wrote, SNAPSHOT_END
markers are kept with the offsets, and the replica is not ready until every partition holds
every segment of the newest snapshot."""

from __future__ import annotations

from pathlib import Path
from unittest.mock import patch

import pytest

from bridge.processors.api import SnapshotBatch
from bridge.processors.kafka._snapshot import SnapshotEncoder
from bridge.records import encode_item
from bridge.replica import FilterConfig, ItemFilter, ReplicaStore
from bridge.replica._messages import (
    BadMessageError,
    Fetched,
    SnapshotEnd,
    SnapshotMark,
    Upsert,
    change_of,
)
from bridge.replica._readiness import FollowerReadiness
from bridge.replica._snapshot_progress import SEEN, MarkRow, SnapshotProgress, mark_row
from bridge.replica._store import Entry
from tests.kafka.changes import from_stream
from tests.replica.support import replica_rows
from tests.replica.test_changes import messages

CUTOFF = 1_767_323_045_000
KEEP_ALL = ItemFilter()


def page(*items: dict[str, object], segment: int = 0, segments: int = 2) -> SnapshotBatch:
    return SnapshotBatch(
        f"bridge-snapshot-{CUTOFF}-{segment}-of-{segments}",
        segment,
        segments,
        CUTOFF,
        ["pk", "sk"],
        [encode_item(item) for item in items],
        CUTOFF + 5,
        True,
    )


def snapshot_messages(batch: SnapshotBatch, *, first: int = 0) -> list[Fetched]:
    encoder = SnapshotEncoder("orders")
    out = [*encoder.items(batch), encoder.segment_end(batch)]
    return [
        Fetched(0, first + n, key, value, {k: bytes(v) for k, v in headers})
        for n, (key, value, headers) in enumerate(out)
    ]


def test_a_snapshot_item_is_an_upsert_older_than_any_change_and_its_end_a_mark() -> None:
    item, end = snapshot_messages(page({"pk": "a", "sk": 1, "v": 7}, segment=1))
    mark = SnapshotMark(CUTOFF, 1, 2)
    change = change_of(item, KEEP_ALL)
    assert isinstance(change, Upsert)
    assert (change.keys, change.seq, change.snapshot) == ({"pk": "a", "sk": 1}, "0", mark)
    assert change.key_types == (("pk", "S"), ("sk", "N"))
    assert change_of(end, KEEP_ALL) == SnapshotEnd(mark)
    assert mark_row(0, change) == MarkRow(0, CUTOFF, 2, SEEN)
    assert mark_row(3, SnapshotEnd(mark)) == MarkRow(3, CUTOFF, 2, 1)


def test_a_snapshot_item_the_filter_drops_changes_nothing() -> None:

    keep = ItemFilter.from_config(FilterConfig(attribute="tenant", equals="t1"))
    (item, _) = snapshot_messages(page({"pk": "a", "sk": 1, "tenant": "t2"}))
    assert change_of(item, keep) is None


@pytest.mark.parametrize(
    "block",
    [b"null", b'{"cutoff_ms": 1, "segment": 2, "segments": 2}', b'{"segment": 0}'],
)
def test_a_snapshot_message_without_a_sound_snapshot_block_is_refused(block: bytes) -> None:
    value = b'{"table":"t","event":"SNAPSHOT_END","keys":null,"seq":null,"snapshot":%s}' % block
    with pytest.raises(BadMessageError, match="partition 0 offset 4"):
        change_of(Fetched(0, 4, b"k", value), KEEP_ALL)


def change(event: str, pk: str, v: int, seq: str) -> Fetched:
    keys = {"pk": pk, "sk": 1}
    new = None if event == "REMOVE" else {**keys, "v": v}
    old = {**keys, "v": v} if event == "REMOVE" else None
    (message,) = messages(from_stream(event, keys, new, old, seq=seq))  # type: ignore[arg-type]
    return message


def apply(store: ReplicaStore, fetched: list[Fetched], *, first: int, at_ms: int) -> None:
    entries = [Entry(0, first + n, 0, change_of(m, KEEP_ALL)) for n, m in enumerate(fetched)]
    with patch("bridge.replica._store.time.time", return_value=at_ms / 1000):
        store.apply("t", entries)


def test_a_snapshot_item_replaces_what_came_before_it_and_any_change_after_replaces_it(
    tmp_path: Path,
) -> None:
    store = ReplicaStore(tmp_path / "r.db")
    store.open()
    before = [change("INSERT", "b", 9, "5")]
    first = snapshot_messages(page({"pk": "a", "sk": 1, "v": 1}, {"pk": "b", "sk": 1, "v": 1}))
    again = snapshot_messages(page({"pk": "a", "sk": 1, "v": 2}, {"pk": "b", "sk": 1, "v": 2}))
    fetched = [*before, *first, *again]
    apply(store, fetched, first=0, at_ms=1_000)
    rows = replica_rows(store.path, "orders")
    assert rows[("a", 1)]["v"] == 2  # a later snapshot read replaces an earlier one
    assert rows[("b", 1)]["v"] == 2  # and a change published before the snapshot
    apply(store, [change("MODIFY", "a", 3, "6")], first=len(fetched), at_ms=2_000)
    assert replica_rows(store.path, "orders")[("a", 1)]["v"] == 3  # any change after wins
    assert set(store.snapshot_marks("t")) == {MarkRow(0, CUTOFF, 2, SEEN), MarkRow(0, CUTOFF, 2, 0)}
    store.close()
    reopened = ReplicaStore(store.path)
    reopened.open()
    assert len(reopened.snapshot_marks("t")) == 2  # kept with the offsets
    reopened.close()


def test_a_complete_snapshot_deletes_the_rows_of_items_it_no_longer_holds(tmp_path: Path) -> None:
    # An edge that held "gone" before records were lost: the item was deleted meanwhile, and
    # its REMOVE never reached the topic. The fresh snapshot does not hold it; once the
    # snapshot is whole in every partition the edge read, the row goes.
    store = ReplicaStore(tmp_path / "r.db")
    store.open()
    apply(
        store,
        [change("INSERT", "gone", 1, "5"), change("INSERT", "kept", 1, "6")],
        first=0,
        at_ms=1_000,
    )
    first_half = snapshot_messages(page({"pk": "kept", "sk": 1, "v": 2}, segment=0))
    apply(store, first_half, first=2, at_ms=2_000)
    assert ("gone", 1) in replica_rows(store.path, "orders")  # segment 1 not through yet
    apply(store, [change("INSERT", "new", 1, "7")], first=4, at_ms=3_000)  # after it, kept
    apply(store, snapshot_messages(page(segment=1)), first=5, at_ms=4_000)
    assert replica_rows(store.path, "orders") == {
        ("kept", 1): {"pk": "kept", "sk": 1, "v": 2},
        ("new", 1): {"pk": "new", "sk": 1, "v": 1},
    }
    # Swept once: a row written before the snapshot's start, later, is not its business.
    apply(store, [change("INSERT", "again", 1, "8")], first=6, at_ms=500)
    apply(store, snapshot_messages(page(segment=1)), first=7, at_ms=5_000)
    assert ("again", 1) in replica_rows(store.path, "orders")
    store.close()


def following() -> FollowerReadiness:
    state = FollowerReadiness(ready_lag=2.0, broker="k:9092", phase="streaming")
    state.broker_answered(100.0)
    for partition in (0, 1):
        state.assigned(partition, 0, None)
        state.reached_end(partition, 0)
    return state


def test_not_ready_until_every_partition_holds_every_segment_of_the_newest_snapshot() -> None:
    state = following()
    assert state.verdict(100.0, 0) == (True, "ready")  # a topic without a snapshot
    state.snapshots.add(MarkRow(1, CUTOFF, 2, SEEN))  # one item read, in partition 1
    ready, reason = state.verdict(100.0, 0)
    assert not ready
    assert reason == "table snapshot of 2026-01-02T03:04:05+00:00: partition 0 has 0 of 2 segments"
    for partition in (0, 1):
        state.snapshots.add(MarkRow(partition, CUTOFF, 2, 0))
    state.snapshots.add(MarkRow(0, CUTOFF, 2, 1))
    assert state.verdict(100.0, 0)[1].endswith("partition 1 has 1 of 2 segments")
    state.snapshots.add(MarkRow(1, CUTOFF, 2, 1))
    state.snapshots.add(MarkRow(1, CUTOFF, 2, 1))  # a marker published twice counts once
    assert state.verdict(100.0, 0) == (True, "ready")
    # A newer snapshot (taken after records were trimmed) is awaited in turn; the old one no
    # longer matters once the newest is complete.
    state.snapshots.add(MarkRow(0, CUTOFF + 1, 1, SEEN))
    assert not state.verdict(100.0, 0)[0]
    assert (
        SnapshotProgress.of(
            [MarkRow(p, CUTOFF + 1, 1, 0) for p in (0, 1)] + [MarkRow(0, CUTOFF, 2, SEEN)]
        ).incomplete([0, 1])
        is None
    )
