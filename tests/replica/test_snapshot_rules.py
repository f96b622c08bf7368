"""The pure parts of snapshots: which ones expire, when offsets fell out of the topic, and
gzip + sha256 catching a damaged object."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bridge.snapshots import (
    CorruptSnapshotError,
    compress_file,
    created_of,
    data_key_of,
    decompress_file,
    describe_gap,
    expired,
    newest_first,
    offsets_gap,
    sha256_of,
    snapshot_base,
)

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def snapshot_keys(count: int, *, every: timedelta = timedelta(minutes=10)) -> list[str]:
    keys: list[str] = []
    for n in range(count):
        base, _ = snapshot_base("p/", "edge", T0 + n * every)
        keys += [base + ".sqlite.gz", base + ".manifest.json"]
    return keys


def test_keys_sort_by_creation_and_name_their_time() -> None:
    keys = snapshot_keys(3)
    manifests = newest_first(keys)
    assert [created_of(k) for k in manifests] == [T0 + timedelta(minutes=m) for m in (20, 10, 0)]
    assert all(k.startswith("p/edge/") for k in keys)
    assert data_key_of(manifests[0]) in keys


def test_retention_keeps_the_newest_and_deletes_manifests_first() -> None:
    keys = snapshot_keys(5)
    doomed = expired(keys, keep=2, max_age=None, now=T0 + timedelta(hours=1))
    kept = set(keys) - set(doomed)
    assert newest_first(list(kept)) == newest_first(keys)[:2]
    assert len(doomed) == 6
    manifests = [k for k in doomed if k.endswith(".manifest.json")]
    assert doomed[: len(manifests)] == manifests  # a snapshot stops existing before its data


def test_max_age_expires_old_ones_but_never_the_newest() -> None:
    keys = snapshot_keys(3, every=timedelta(days=1))
    now = T0 + timedelta(days=30)
    doomed = expired(keys, keep=5, max_age=timedelta(days=7), now=now)
    assert set(keys) - set(doomed) == set(keys[-2:])  # the newest, though older than 7 days


def test_data_left_without_a_manifest_expires_after_a_grace() -> None:
    keys = snapshot_keys(2, every=timedelta(hours=2))
    orphan = keys[0]  # the first snapshot's data, its manifest never written
    keys.remove(keys[1])
    assert expired(keys, keep=5, max_age=None, now=T0 + timedelta(hours=3)) == [orphan]
    fresh = snapshot_keys(2, every=timedelta(minutes=1))
    fresh.remove(fresh[1])  # maybe being uploaded right now: kept
    assert expired(fresh, keep=5, max_age=None, now=T0) == []


def test_offsets_below_the_low_watermark_are_a_gap() -> None:
    # last applied 9 -> next 10; the topic now begins at 15: offsets 10..14 are gone.
    gaps = offsets_gap({0: 9, 1: 100, 2: 4}, {0: 15, 1: 3, 2: 5})
    assert gaps == {0: (10, 15)}
    assert describe_gap(gaps) == (
        "partition 0: offsets 10..14 (5 messages) are no longer in the topic (it begins at 15)"
    )
    assert offsets_gap({0: 14}, {0: 15}) == {}  # exactly at the boundary: nothing lost
    assert offsets_gap({3: 1}, {0: 99}) == {}  # a partition the broker did not report


@pytest.mark.parametrize("flip_at", [0, 100, -5])
def test_a_flipped_byte_is_caught(tmp_path: Path, flip_at: int) -> None:
    source = tmp_path / "a.bin"
    source.write_bytes(b"replica rows " * 10_000)
    packed = tmp_path / "a.gz"
    result = compress_file(source, packed, level=3)
    assert result.raw_size == source.stat().st_size
    assert result.sha256 == sha256_of(packed)
    out = tmp_path / "b.bin"
    assert decompress_file(packed, out) == result.raw_size
    assert out.read_bytes() == source.read_bytes()

    data = bytearray(packed.read_bytes())
    data[flip_at] ^= 0xFF
    packed.write_bytes(bytes(data))
    assert sha256_of(packed) != result.sha256
    with pytest.raises(CorruptSnapshotError):
        decompress_file(packed, out)
