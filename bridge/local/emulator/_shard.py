"""One shard: an append-only run of records that closes once and is trimmed from the front.

Positions are sequence counters, not list indexes, so trimming (which drops list heads) never
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
    __slots__ = (
        "_last_sequence",
        "_records",
        "_sequences",
        "_times",
        "closed_at",
        "end_sequence",
        "hash_range",
        "opened_at",
        "parent_id",
        "record_bytes",
        "shard_id",
        "start_sequence",
        "trimmed_through",
        "written",
    )

    def __init__(
        self,
        shard_id: str,
        parent_id: str | None,
        hash_range: HashRange,
        start_sequence: int,
        opened_at: float,
    ) -> None:
        self.shard_id = shard_id
        self.parent_id = parent_id
        self.hash_range = hash_range
        self.start_sequence = start_sequence
        self.opened_at = opened_at
        self.end_sequence: int | None = None
        self.closed_at: float | None = None
        self.trimmed_through = start_sequence
        self.written = 0
        self.record_bytes = 0
        self._last_sequence: int | None = None
        self._records: list[bytes] = []
        self._sequences = array("q")
        self._times = array("d")

    @property
    def closed(self) -> bool:
        return self.end_sequence is not None

    @property
    def retained(self) -> int:
        return len(self._records)

    @property
    def oldest_time(self) -> float | None:
        return self._times[0] if self._times else None

    def append(self, sequence: int, created_at: float, record: bytes) -> None:
        assert self.end_sequence is None, f"{self.shard_id} is closed"
        self._records.append(record)
        self._sequences.append(sequence)
        self._times.append(created_at)
        self._last_sequence = sequence
        self.written += 1
        self.record_bytes += len(record)

    def close(self, now: float) -> None:
        """Seal the shard; an empty one ends where it started, as it never held anything."""
        if self.end_sequence is None:
            last = self._last_sequence
            self.end_sequence = self.start_sequence if last is None else last
            self.closed_at = now

    def trim(self, cutoff: float) -> int:
        """Drop records created before ``cutoff``; returns how many went."""
        count = bisect_left(self._times, cutoff)
        if count == 0:
            return 0
        self.trimmed_through = self._sequences[count - 1] + 1
        self.record_bytes -= sum(len(record) for record in self._records[:count])
        del self._records[:count]
        del self._sequences[:count]
        del self._times[:count]
        return count

    @property
    def trim_horizon(self) -> int:
        return self.trimmed_through

    def has_trimmed(self, sequence: int) -> bool:
        """True when ``sequence`` lies in the part of this shard that retention removed."""
        return self.trimmed_through > self.start_sequence and sequence < self.trimmed_through

    def latest(self, next_sequence: int) -> int:
        return next_sequence if self.end_sequence is None else self.end_sequence + 1

    def contains(self, sequence: int, next_sequence: int) -> bool:
        """Could ``sequence`` belong to this shard (from its start up to its end or the head)?"""
        last = self.end_sequence if self.end_sequence is not None else next_sequence - 1
        return self.start_sequence <= sequence <= max(last, self.start_sequence)

    def read(self, position: int, limit: int, max_bytes: int) -> ShardRead:
        if position < self.trimmed_through:
            raise TrimmedDataAccessError(
                f"Records of {self.shard_id} from sequence {format_sequence(position)} "
                "were trimmed (older than the stream's retention)"
            )
        start = bisect_left(self._sequences, position)
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
        next_position = self._sequences[end - 1] + 1 if taken else position
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
