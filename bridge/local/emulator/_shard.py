"""One shard: an append-only run of records that closes once and is trimmed from the front.

Positions are sequence numbers, not list indexes, so trimming (which drops list heads) never
moves what an iterator points at. A position below ``trimmed_through`` names a record that
is gone, which is exactly when the real service answers TrimmedDataAccessException.
"""

from __future__ import annotations

from array import array
from bisect import bisect_left
from dataclasses import dataclass

from bridge.local.emulator._errors import TrimmedDataAccessError
from bridge.local.emulator._sequence import format_sequence

HASH_SPACE = 1 << 32


@dataclass(frozen=True, slots=True)
class HashRange:
    """The partition-key hashes ``[low, high)`` a shard takes; children split or keep it."""

    low: int
    high: int

    def __contains__(self, value: object) -> bool:
        return isinstance(value, int) and self.low <= value < self.high

    def halves(self) -> tuple[HashRange, HashRange] | None:
        if self.high - self.low < 2:
            return None
        middle = (self.low + self.high) // 2
        return HashRange(self.low, middle), HashRange(middle, self.high)


@dataclass(frozen=True, slots=True)
class ShardRead:
    """A GetRecords answer from one shard: ``exhausted`` means closed and nothing after it."""

    records: list[bytes]
    next_position: int
    exhausted: bool


class Shard:
    """Records ``start_sequence``, ``start_sequence + 1``, ... in order; the retained ones begin
    at ``trimmed_through``, so a record's number is that plus its index in the list."""

    __slots__ = (
        "_records",
        "_times",
        "closed_at",
        "end_sequence",
        "hash_range",
        "opened_at",
        "parent_id",
        "record_bytes",
        "shard_id",
        "span",
        "start_sequence",
        "trimmed_through",
        "written",
    )

    def __init__(
        self,
        shard_id: str,
        parent_id: str | None,
        hash_range: HashRange,
        *,
        start_sequence: int,
        span: int,
        opened_at: float,
    ) -> None:
        self.shard_id = shard_id
        self.parent_id = parent_id
        self.hash_range = hash_range
        self.start_sequence = start_sequence
        self.span = span
        self.opened_at = opened_at
        self.end_sequence: int | None = None
        self.closed_at: float | None = None
        self.trimmed_through = start_sequence
        self.written = 0
        self.record_bytes = 0
        self._records: list[bytes] = []
        self._times = array("d")

    @property
    def closed(self) -> bool:
        return self.end_sequence is not None

    @property
    def full(self) -> bool:
        """Every number of the shard's block is used: it must close now."""
        return self.written >= self.span

    @property
    def next_sequence(self) -> int:
        """The number the next record appended here gets."""
        return self.start_sequence + self.written

    @property
    def retained(self) -> int:
        return len(self._records)

    @property
    def oldest_time(self) -> float | None:
        return self._times[0] if self._times else None

    def append(self, created_at: float, record: bytes) -> int:
        """Keep ``record`` (encoded with ``next_sequence``); returns its sequence number."""
        assert self.end_sequence is None, f"{self.shard_id} is closed"
        assert not self.full, f"{self.shard_id} has no sequence numbers left"
        sequence = self.next_sequence
        self._records.append(record)
        self._times.append(created_at)
        self.written += 1
        self.record_bytes += len(record)
        return sequence

    def close(self, now: float) -> None:
        """Seal the shard; an empty one ends where it started, as it never held anything."""
        if self.end_sequence is None:
            self.end_sequence = self.next_sequence - 1 if self.written else self.start_sequence
            self.closed_at = now

    def trim(self, cutoff: float) -> int:
        """Drop records created before ``cutoff``; returns how many went."""
        count = bisect_left(self._times, cutoff)
        if count == 0:
            return 0
        self.trimmed_through += count
        self.record_bytes -= sum(len(record) for record in self._records[:count])
        del self._records[:count]
        del self._times[:count]
        return count

    @property
    def trim_horizon(self) -> int:
        return self.trimmed_through

    def has_trimmed(self, sequence: int) -> bool:
        """True when ``sequence`` lies in the part of this shard that retention removed."""
        return self.start_sequence <= sequence < self.trimmed_through

    def latest(self) -> int:
        """Where a LATEST iterator starts: after the last record, there is or will be."""
        return self.next_sequence

    def contains(self, sequence: int) -> bool:
        """Could ``sequence`` belong to this shard (from its start up to its end or the head)?"""
        last = self.end_sequence if self.end_sequence is not None else self.next_sequence - 1
        return self.start_sequence <= sequence <= max(last, self.start_sequence)

    def read(self, position: int, limit: int, max_bytes: int) -> ShardRead:
        if position < self.trimmed_through:
            raise TrimmedDataAccessError(
                f"Records of {self.shard_id} from sequence {format_sequence(position)} "
                "were trimmed (older than the stream's retention)"
            )
        start = min(position - self.trimmed_through, len(self._records))
        stop = min(start + limit, len(self._records))
        taken: list[bytes] = []
        size = 0
        for index in range(start, stop):
            record = self._records[index]
            size += len(record)
            if taken and size > max_bytes:
                break
            taken.append(record)
        end = start + len(taken)
        next_position = self.trimmed_through + end if taken else position
        exhausted = self.end_sequence is not None and end >= len(self._records)
        return ShardRead(taken, next_position, exhausted)

    def describe(self) -> dict[str, object]:
        numbers = {"StartingSequenceNumber": format_sequence(self.start_sequence)}
        if self.end_sequence is not None:
            numbers["EndingSequenceNumber"] = format_sequence(self.end_sequence)
        description: dict[str, object] = {
            "ShardId": self.shard_id,
            "SequenceNumberRange": numbers,
        }
        if self.parent_id is not None:
            description["ParentShardId"] = self.parent_id
        return description
