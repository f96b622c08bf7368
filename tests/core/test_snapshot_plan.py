"""Snapshot segments as leases: their keys never look like shards, name their snapshot, and
say where a shard's reading skips to; a scan close to the stream's retention is refused."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from bridge.core.snapshot_plan import (
    RetentionVerdict,
    Segment,
    cutoff_of,
    retention_verdict,
    segment_of,
    segments,
)


@given(cutoff=st.integers(0, 10**13), total=st.integers(1, 1000), data=st.data())
def test_a_segment_key_names_its_snapshot_and_place(
    cutoff: int, total: int, data: st.DataObject
) -> None:
    index = data.draw(st.integers(0, total - 1))
    segment = Segment(cutoff, index, total)
    assert segment_of(segment.key) == segment
    assert not segment.key.startswith("shardId-")


def test_shard_ids_are_not_segments() -> None:
    assert segment_of("shardId-00000001700000000000-abcdef12") is None
    assert segment_of("bridge-snapshot-12-0001-of-00x2") is None


def test_segment_keys_sort_in_segment_order() -> None:
    keys = [segment.key for segment in segments(5, 12)]
    assert keys == sorted(keys)


def test_a_shard_skips_to_the_latest_snapshot_among_its_parents() -> None:
    first, second = segments(1_000, 2)[0].key, segments(2_000, 2)[1].key
    assert cutoff_of({"shardId-1", first, second}) == 2_000
    assert cutoff_of({"shardId-1"}) is None
    assert cutoff_of(set()) is None


def test_a_scan_near_retention_is_refused_and_at_half_warned() -> None:
    day = 24 * 3600.0
    assert retention_verdict(3600, day) is RetentionVerdict.OK
    assert retention_verdict(0.6 * day, day) is RetentionVerdict.WARN
    assert retention_verdict(0.95 * day, day) is RetentionVerdict.REFUSE
