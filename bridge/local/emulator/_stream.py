"""One table's stream: its shard tree, where each change goes, rotation and trimming.

Keys hash into ``[0, 2**32)``; every open shard owns a range of it. A rotation closes a shard
and opens one child with the same range or two children that halve it, so a key's changes
always move from a parent to one of its own children: per-key order holds along a lineage.
"""

from __future__ import annotations

import hashlib
import random
from bisect import bisect_right
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from bridge.local.emulator._errors import ResourceNotFoundError
from bridge.local.emulator._records import CapturedChange, encode_record
from bridge.local.emulator._sequence import SequenceBlocks
from bridge.local.emulator._settings import StreamSettings
from bridge.local.emulator._shard import HASH_SPACE, HashRange, Shard


def key_hash(partition_key: bytes) -> int:
    """A stable 32-bit hash of an encoded partition key (the same in every process)."""
    return int.from_bytes(hashlib.blake2b(partition_key, digest_size=4).digest(), "big")


@dataclass(frozen=True, slots=True)
class StreamIdentity:
    """What DescribeStream and ListStreams say about a stream besides its shards."""

    arn: str
    table_name: str
    label: str
    view_type: str
    key_schema: tuple[tuple[str, str], ...]  # (AttributeName, KeyType)
    region: str


@dataclass(frozen=True, slots=True)
class TrimReport:
    records: int
    bytes: int
    shards_removed: int


class ShardIdFactory:
    """Real-looking ids (``shardId-<20-digit ms>-<8 hex>``) that sort in creation order."""

    def __init__(self, rng: random.Random) -> None:
        self._rng = rng
        self._last_ms = 0

    def new(self, now: float) -> str:
        self._last_ms = max(int(now * 1000), self._last_ms + 1)
        return f"shardId-{self._last_ms:020d}-{self._rng.getrandbits(32):08x}"


class Stream:
    def __init__(
        self,
        identity: StreamIdentity,
        settings: StreamSettings,
        sequence_blocks: SequenceBlocks,
        rng: random.Random,
        now: float,
    ) -> None:
        self.identity = identity
        self.settings = settings
        self.created_at = now
        self.enabled = True
        self._blocks = sequence_blocks
        self._ids = ShardIdFactory(rng)
        self._shards: dict[str, Shard] = {}  # creation order, which is also id order
        self._open: list[Shard] = []  # sorted by hash_range.low
        self._next_trim_at = float("inf")
        self.records_trimmed = 0
        self.shards_removed = 0
        step = HASH_SPACE // settings.shards
        for index in range(settings.shards):
            high = HASH_SPACE if index == settings.shards - 1 else (index + 1) * step
            self._open_shard(None, HashRange(index * step, high), now)

    @property
    def arn(self) -> str:
        return self.identity.arn

    def shards(self) -> Sequence[Shard]:
        return list(self._shards.values())

    def open_shards(self) -> Sequence[Shard]:
        return list(self._open)

    def shard(self, shard_id: str) -> Shard:
        try:
            return self._shards[shard_id]
        except KeyError:
            raise ResourceNotFoundError(
                f"Requested resource not found: Shard {shard_id} in stream {self.arn}"
            ) from None

    def shard_ids_after(self, shard_id: str) -> Iterator[Shard]:
        """Shards created after ``shard_id``, even one that was since trimmed away (ids sort
        in creation order, so an id is a place in the list whether or not it still exists)."""
        return (shard for shard in self._shards.values() if shard.shard_id > shard_id)

    def append(self, change: CapturedChange, event_id: str, now: float) -> int:
        """Record one change in the shard that owns its key; rotate that shard if it is full.

        Returns the change's sequence number. Writes trim a little behind retention (by 1%
        of it), so a long run of writes sweeps the shards once per 1% of retention rather than
        on every write; reads still see retention applied to the second.
        """
        self.maintain(now, trim_slack=self.settings.retention_seconds / 100)
        if not self.enabled:
            raise ValueError(f"stream {self.arn} is disabled and takes no more changes")
        shard = self._shard_for(key_hash(change.partition_key))
        record = encode_record(
            change,
            sequence=shard.next_sequence,
            created_at=now,
            region=self.identity.region,
            view_type=self.identity.view_type,
            event_id=event_id,
        )
        sequence = shard.append(now, record)
        self._next_trim_at = min(self._next_trim_at, now + self.settings.retention_seconds)
        rotate_records = self.settings.rotate_records
        if shard.full or (rotate_records and shard.written >= rotate_records):
            self.rotate(shard, now)
        return sequence

    def maintain(self, now: float, *, trim_slack: float = 0.0) -> TrimReport | None:
        """Catch up with time: rotate shards past their age, trim records past retention
        (once the oldest is ``trim_slack`` seconds past it)."""
        if self.settings.rotate_seconds and self.enabled:
            age = self.settings.rotate_seconds
            for shard in [s for s in self._open if now - s.opened_at >= age]:
                self.rotate(shard, now)
        if now >= self._next_trim_at + trim_slack:
            return self.trim(now)
        return None

    def rotate(self, shard: Shard, now: float) -> list[Shard]:
        """Close ``shard`` and open its children: two halves while under the open-shard cap."""
        if shard.closed:
            return []
        shard.close(now)
        self._open.remove(shard)
        halves = shard.hash_range.halves()
        if halves is not None and len(self._open) + 2 <= self.settings.open_shard_cap:
            ranges: tuple[HashRange, ...] = halves
        else:
            ranges = (shard.hash_range,)
        self._schedule_trim(shard.closed_at)
        return [self._open_shard(shard.shard_id, hash_range, now) for hash_range in ranges]

    def rotate_all(self, now: float) -> list[Shard]:
        """Rotate every open shard; returns the children opened."""
        return [child for shard in list(self._open) for child in self.rotate(shard, now)]

    def disable(self, now: float) -> None:
        """Stream turned off (or table deleted): its shards close and it stays readable."""
        for shard in list(self._open):
            shard.close(now)
            self._schedule_trim(now)
        self._open.clear()
        self.enabled = False

    def trim(self, now: float) -> TrimReport:
        """Drop records older than retention, and closed shards that are empty and old."""
        cutoff = now - self.settings.retention_seconds
        records = size = removed = 0
        next_due = float("inf")
        for shard in list(self._shards.values()):
            before = shard.record_bytes
            records += shard.trim(cutoff)
            size += before - shard.record_bytes
            if shard.closed_at is not None and shard.retained == 0 and shard.closed_at < cutoff:
                del self._shards[shard.shard_id]
                removed += 1
                continue
            oldest = shard.oldest_time
            if oldest is not None:
                next_due = min(next_due, oldest)
            elif shard.closed_at is not None:
                next_due = min(next_due, shard.closed_at)
        self._next_trim_at = next_due + self.settings.retention_seconds
        self.records_trimmed += records
        self.shards_removed += removed
        return TrimReport(records, size, removed)

    def _schedule_trim(self, when: float | None) -> None:
        if when is not None:
            self._next_trim_at = min(self._next_trim_at, when + self.settings.retention_seconds)

    def _open_shard(self, parent_id: str | None, hash_range: HashRange, now: float) -> Shard:
        shard = Shard(
            self._ids.new(now),
            parent_id,
            hash_range,
            start_sequence=self._blocks.take(),
            span=self._blocks.span,
            opened_at=now,
        )
        self._shards[shard.shard_id] = shard
        lows = [s.hash_range.low for s in self._open]
        self._open.insert(bisect_right(lows, hash_range.low), shard)
        return shard

    def _shard_for(self, hashed: int) -> Shard:
        lows = [s.hash_range.low for s in self._open]
        shard = self._open[bisect_right(lows, hashed) - 1]
        assert hashed in shard.hash_range
        return shard
